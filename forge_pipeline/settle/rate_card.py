"""The versioned rate card (DESIGN §3.4): every price, in integer micro-credits (µcr).

Each version is one immutable file in `forge_pipeline/catalog/rate_cards/`, named after
its version (`2026-11-01.yaml`). New workloads are priced with the latest version; the
version used is recorded on the usage record, and every older version stays loadable,
so a settled or replayed amount never changes. A card with an unknown field, a missing
field or a non-integer amount is refused with every problem named by its field path.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from forge_pipeline.intake.documents import load_document
from forge_pipeline.intake.problems import Problem, Problems, RequestInvalid, join
from forge_pipeline.intake.request import VERIFICATION_MODES
from forge_pipeline.settle.integers import BPS_WHOLE

VERSION = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ISO dates: text order is time order
# Matched with fullmatch: `$` would also match before a final newline.
PRIMITIVE_NAME = re.compile(r"[a-z0-9_]+/[a-z0-9_]+@[1-9][0-9]*")
PROFILE_NAME = re.compile(r"[a-z0-9_]+@[1-9][0-9]*")
# Limits: a price with a few zeros too many is refused rather than billed.
MAX_PRICE_UCR = 10**12
MAX_SURCHARGE_BPS = 10 * BPS_WHOLE
MAX_RETENTION_DAYS = 3650
FIELDS = {"version", "primitives", "verification_surcharge_bps", "aggregation_ucr_per_shard",
          "artifact_ucr_per_kib", "retention", "provider_share_bps", "minimum_charge_ucr"}


class RateCardInvalid(RequestInvalid):
    """A rate card refused, with every problem named by its field path."""


class Unpriced(LookupError):
    """The rate card has no price for this primitive, profile or verification mode."""


@dataclass(frozen=True)
class RateCard:
    version: str
    work_unit_names: Mapping[str, str]  # primitive -> what one unit counts ("draw")
    ucr_per_million_units: Mapping[tuple[str, str], int]  # (primitive, profile) -> price
    verification_surcharge_bps: Mapping[str, int]
    aggregation_ucr_per_shard: int
    artifact_ucr_per_kib: int
    retention_ucr_per_kib_day: int
    retention_days: Mapping[str, int]  # profile -> days the replay evidence is kept
    provider_share_bps: int
    minimum_charge_ucr: int

    def unit_price(self, primitive: str, profile: str) -> int:
        """µcr per million work units."""
        try:
            return self.ucr_per_million_units[primitive, profile]
        except KeyError:
            raise Unpriced(f"rate card {self.version} has no price for {primitive} with profile {profile}") from None

    def surcharge_bps(self, verification_mode: str) -> int:
        try:
            return self.verification_surcharge_bps[verification_mode]
        except KeyError:
            raise Unpriced(f"rate card {self.version} has no surcharge for verification mode "
                           f"{verification_mode!r}") from None


@lru_cache(maxsize=1)
def rate_card_versions() -> tuple[str, ...]:
    """Every packaged version, oldest first; the last one prices new workloads."""
    folder = resources.files("forge_pipeline.catalog").joinpath("rate_cards")
    return tuple(sorted(entry.name.removesuffix(".yaml") for entry in folder.iterdir() if entry.name.endswith(".yaml")))


def load_rate_card(version: str | None = None, path: str | os.PathLike | None = None) -> RateCard:
    """A packaged card by version (None: the latest), or the card file at `path`."""
    if path is None:
        return _packaged_card(version or rate_card_versions()[-1])
    if version is not None:
        raise ValueError("load_rate_card takes a version or a path, not both")
    source = str(path)
    try:
        text = Path(path).read_bytes()
    except (OSError, ValueError) as error:  # ValueError: a NUL byte in the name
        reason = getattr(error, "strerror", None) or error
        raise RateCardInvalid([Problem(source, f"cannot read rate card: {reason}")]) from None
    return parse_rate_card(_load_yaml(text, source), source)


@lru_cache(maxsize=None)
def _packaged_card(version: str) -> RateCard:
    known = rate_card_versions()
    if version not in known:
        raise RateCardInvalid([Problem("version", f"no rate card {version!r}; known: {', '.join(known)}")])
    source = f"rate_cards/{version}.yaml"
    text = resources.files("forge_pipeline.catalog").joinpath("rate_cards", f"{version}.yaml").read_bytes()
    card = parse_rate_card(_load_yaml(text, source), source)
    if card.version != version:
        raise RateCardInvalid([Problem(f"{source}: version", f"must equal the file name {version!r}, got {card.version!r}")])
    return card


def _load_yaml(text: str | bytes, source: str) -> Any:
    """The card's document under the intake limits (duplicate keys refused: a second price is an error)."""
    try:
        return load_document(text, source)
    except RequestInvalid as error:
        raise RateCardInvalid(error.problems).within(source) from None


def parse_rate_card(document: Any, source: str = "(rate card)") -> RateCard:
    problems = Problems()
    root = problems.mapping(document, "", FIELDS, set())
    card = _parse_fields(root, problems) if root is not None else None
    if problems.found or card is None:
        raise RateCardInvalid(problems.found).within(source)
    return card


def _parse_fields(root: dict, problems: Problems) -> RateCard | None:
    """Each present field is checked (a missing one is already reported), so one pass names every problem."""
    version = problems.string(root.get("version"), "version", max_length=32) if "version" in root else None
    if version is not None and not _is_date(version):
        problems.add("version", f"must be a date YYYY-MM-DD, got {version!r}")

    unit_names: dict[str, str] = {}
    prices: dict[tuple[str, str], int] = {}
    for primitive, entry in _names(root, "primitives", PRIMITIVE_NAME, "family/name@version", problems).items():
        path = join("primitives", primitive)
        if problems.mapping(entry, path, {"work_unit", "ucr_per_million_units"}, set()) is None:
            continue
        if "work_unit" in entry:
            unit_names[primitive] = problems.string(entry["work_unit"], join(path, "work_unit"), max_length=64)
        for profile, price in _names(entry, "ucr_per_million_units", PROFILE_NAME, "name@version", problems,
                                     path).items():
            prices[primitive, profile] = problems.integer(price, join(join(path, "ucr_per_million_units"), profile),
                                                          0, MAX_PRICE_UCR)

    surcharge_bps: dict[str, int] = {}
    if "verification_surcharge_bps" in root:
        surcharges = problems.mapping(root["verification_surcharge_bps"], "verification_surcharge_bps",
                                      set(VERIFICATION_MODES), set()) or {}
        surcharge_bps = {mode: problems.integer(surcharges[mode], join("verification_surcharge_bps", mode),
                                                0, MAX_SURCHARGE_BPS)
                         for mode in VERIFICATION_MODES if mode in surcharges}

    retention_price, retention_days = None, {}
    retention = problems.mapping(root["retention"], "retention", {"ucr_per_kib_day", "days"}, set()) \
        if "retention" in root else None
    if retention is not None:
        if "ucr_per_kib_day" in retention:
            retention_price = problems.integer(retention["ucr_per_kib_day"], "retention.ucr_per_kib_day",
                                               0, MAX_PRICE_UCR)
        retention_days = {profile: problems.integer(days, join("retention.days", profile), 0, MAX_RETENTION_DAYS)
                          for profile, days in _names(retention, "days", PROFILE_NAME, "name@version", problems,
                                                      "retention").items()}
        # Every priced profile needs a retention period, or pricing it would fail later.
        for profile in sorted({profile for _, profile in prices} - retention_days.keys()):
            problems.add(join("retention.days", profile), "is required: a primitive is priced with this profile")

    amounts = {name: problems.integer(root[name], name, 0, MAX_PRICE_UCR)
               for name in ("aggregation_ucr_per_shard", "artifact_ucr_per_kib", "minimum_charge_ucr") if name in root}
    share_bps = problems.integer(root["provider_share_bps"], "provider_share_bps", 0, BPS_WHOLE) \
        if "provider_share_bps" in root else None
    if problems.found:
        return None
    return RateCard(
        version=version,
        work_unit_names=MappingProxyType(unit_names),
        ucr_per_million_units=MappingProxyType(prices),
        verification_surcharge_bps=MappingProxyType(surcharge_bps),
        aggregation_ucr_per_shard=amounts["aggregation_ucr_per_shard"],
        artifact_ucr_per_kib=amounts["artifact_ucr_per_kib"],
        retention_ucr_per_kib_day=retention_price,
        retention_days=MappingProxyType(retention_days),
        provider_share_bps=share_bps,
        minimum_charge_ucr=amounts["minimum_charge_ucr"],
    )


def _is_date(text: str) -> bool:
    try:
        return VERSION.fullmatch(text) is not None and dt.date.fromisoformat(text) is not None
    except ValueError:
        return False


def _names(parent: dict, key: str, pattern: re.Pattern, form: str, problems: Problems, parent_path: str = "") -> dict:
    """`parent[key]`: a non-empty mapping keyed by names (primitives, profiles); {} after recording a problem."""
    path = join(parent_path, key)
    if key not in parent:
        return {}  # reported as required by the parent's mapping check
    value = parent[key]
    if not isinstance(value, dict) or not value:
        problems.add(path, "must be a non-empty mapping")
        return {}
    valid = {name: item for name, item in value.items() if isinstance(name, str) and pattern.fullmatch(name)}
    for name in sorted(value.keys() - valid.keys(), key=str):
        problems.add(join(path, str(name)), f"must be a name like {form}")
    return valid
