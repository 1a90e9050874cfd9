"""API keys of the Web Core HTTP API: who is asking, and what they may do.

A key is `fpk_<key_id>_<secret>`: `key_id` (16 hex digits) is public and finds the row;
`secret` is 32 random bytes (256 bits, base64url). Only `salt` (16 random bytes) and
HMAC-SHA256(salt, secret) are stored, and a presented secret is compared with
`hmac.compare_digest` (constant time). A slow password KDF (scrypt, Argon2) exists to
make guessing a *low-entropy* secret expensive; a 256-bit random secret cannot be guessed
at any speed, so one salted HMAC (~1 µs) is enough, and authentication stays cheap on
every request.

Kinds and scopes: an organization key (a customer) holds any of submit, read, export,
dispute; a provider key holds payouts (its payouts and its Agents' reliability); an
operator key holds operator, which admits every endpoint across organizations.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import Engine, insert, select, update

from forge_pipeline.intake.problems import Problem, RequestInvalid
from forge_pipeline.intake.identifiers import IDENTIFIER_RULE, is_identifier
from forge_pipeline.storage.database import api_keys, utc_now

KEY_PREFIX = "fpk"
KEY_PATTERN = re.compile(r"fpk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
SECRET_BYTES = 32
SALT_BYTES = 16


class Kind(enum.StrEnum):
    ORGANIZATION = "organization"
    PROVIDER = "provider"
    OPERATOR = "operator"


class Scope(enum.StrEnum):
    SUBMIT = "submit"
    READ = "read"
    EXPORT = "export"
    DISPUTE = "dispute"
    PAYOUTS = "payouts"
    OPERATOR = "operator"


SCOPES_OF_KIND = {
    Kind.ORGANIZATION: (Scope.SUBMIT, Scope.READ, Scope.EXPORT, Scope.DISPUTE),
    Kind.PROVIDER: (Scope.PAYOUTS,),
    Kind.OPERATOR: (Scope.OPERATOR,),
}


class Unauthenticated(PermissionError):
    """No key, a malformed key, an unknown key, a wrong secret or a revoked key: all look alike."""


@dataclass(frozen=True)
class Principal:
    """Who a request comes from. `owner` is the organization or provider id ('' for an operator)."""
    key_id: str
    kind: Kind
    owner: str
    scopes: frozenset[Scope]

    @property
    def operator(self) -> bool:
        return self.kind is Kind.OPERATOR

    def allows(self, scope: Scope) -> bool:
        return self.operator or scope in self.scopes


def _secret_hash(salt: bytes, secret: str) -> str:
    return hmac.new(salt, secret.encode(), hashlib.sha256).hexdigest()


def create_key(engine: Engine, kind: Kind, owner: str, scopes: list[str] | None = None) -> tuple[str, str]:
    """Store a new key; returns (key_id, the whole key). The whole key is never stored or shown again.

    Raises RequestInvalid (paths `--org`/`--provider`, `--scope`) for a bad owner id or a
    scope the kind cannot hold. `scopes` None means every scope of the kind."""
    problems = []
    if kind is Kind.OPERATOR:
        owner = ""
    elif not is_identifier(owner):
        flag = "--org" if kind is Kind.ORGANIZATION else "--provider"
        problems.append(Problem(flag, IDENTIFIER_RULE))
    allowed = SCOPES_OF_KIND[kind]
    chosen = sorted(set(scopes)) if scopes else [scope.value for scope in allowed]
    for scope in chosen:
        if scope not in {value.value for value in allowed}:
            problems.append(Problem("--scope", f"{scope!r} is not a scope of a {kind.value} key "
                                               f"(allowed: {', '.join(allowed)})"))
    if problems:
        raise RequestInvalid(problems)
    key_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(SECRET_BYTES), secrets.token_bytes(SALT_BYTES)
    with engine.begin() as connection:
        connection.execute(insert(api_keys).values(
            key_id=key_id, kind=kind.value, owner=owner, scopes=" ".join(chosen), salt=salt.hex(),
            secret_hash=_secret_hash(salt, secret), created_at=utc_now(), revoked_at=None))
    return key_id, f"{KEY_PREFIX}_{key_id}_{secret}"


def list_keys(engine: Engine) -> list[dict]:
    """Every key without its salt or hash, oldest first."""
    columns = [api_keys.c[name] for name in ("key_id", "kind", "owner", "scopes", "created_at", "revoked_at")]
    with engine.connect() as connection:
        rows = connection.execute(select(*columns).order_by(api_keys.c.created_at, api_keys.c.key_id)).mappings()
        return [dict(row) for row in rows]


def revoke_key(engine: Engine, key_id: str) -> bool:
    """Revoke a key from now on; returns False when it was already revoked. RequestInvalid when unknown."""
    with engine.begin() as connection:
        row = connection.execute(select(api_keys.c.revoked_at).where(api_keys.c.key_id == key_id)).first()
        if row is None:
            raise RequestInvalid([Problem("key_id", f"no API key {key_id!r}")])
        if row.revoked_at is not None:
            return False
        connection.execute(update(api_keys).where(api_keys.c.key_id == key_id).values(revoked_at=utc_now()))
    return True


def authenticate(engine: Engine, presented: str) -> Principal:
    """The principal of a presented key; Unauthenticated for anything else (one message for every case,
    so a caller learns nothing about which keys exist)."""
    match = KEY_PATTERN.fullmatch(presented)
    if match is None:
        raise Unauthenticated("missing or malformed API key")
    key_id, secret = match.groups()
    with engine.connect() as connection:
        row = connection.execute(select(api_keys).where(api_keys.c.key_id == key_id)).mappings().first()
    # The hash is computed even for an unknown id, so both cases take the same time.
    expected = row["secret_hash"] if row else "0" * 64
    actual = _secret_hash(bytes.fromhex(row["salt"]) if row else b"\x00" * SALT_BYTES, secret)
    if not hmac.compare_digest(expected, actual) or row is None or row["revoked_at"] is not None:
        raise Unauthenticated("unknown or revoked API key")
    return Principal(key_id, Kind(row["kind"]), row["owner"], frozenset(Scope(name) for name in row["scopes"].split()))
