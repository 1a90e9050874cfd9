"""memory_operations/sort_dedupe@1: the sorted distinct values of a list of uint64 keys.

Keys are given inline or generated: key i = (word 2i | word 2i+1 << 32) mod modulus, Philox
words of stream 0 under generate.seed. Items are input keys with global indices; a shard
returns its own sorted distinct keys (little-endian uint64 bytes, base64), and the merge
is an exact union: concatenate, sort, drop repeats. The output names the result by its
count, min, max and sha256, and lists it only when it is small.
docs/primitives/sort_dedupe.md is the full contract.

The GPU path needs no kernel of its own: Philox words come from kernels/philox.cu and the
sort and dedupe are CuPy's sort (a radix sort on uint64) and a neighbour comparison
(`sorted_distinct`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

import numpy as np

from forge_pipeline.execute.backend import NUMPY_BACKEND, Backend
from forge_pipeline.execute.primitives.base import Primitive
from forge_pipeline.execute.primitives.common import one_source, philox_words_on, sorted_distinct, spot_indices
from forge_pipeline.intake.problems import Problems, join

UINT64_MAX = (1 << 64) - 1
FULL_RANGE = 1 << 64  # modulus 2^64 keeps every 64-bit key
# Input keys per workload: the merge holds every shard's distinct keys at once (8 bytes each,
# about three copies while sorting), and shard results carry them as base64 text.
MAX_KEYS = 20_000_000
MAX_INLINE_KEYS = 100_000  # keys written inline in a request (requests are at most 8 MiB)
OUTPUT_KEYS_MAX = 10_000  # the output lists the distinct keys only up to this many
KEY_STREAM = 0
SUMMARY_KEYS = 10


class SortDedupe(Primitive):
    family = "memory_operations"
    name = "sort_dedupe"
    version = 1
    work_unit = "key"
    item = "key"
    default_shard_size = 1_000_000
    contract = "docs/primitives/sort_dedupe.md"

    def normalize_arguments(self, arguments: Any, problems: Problems, path: str = "arguments") -> dict | None:
        return one_source(arguments, problems, path, {"generate": self._generate, "keys": self._keys})

    @staticmethod
    def _generate(value: Any, problems: Problems, path: str) -> dict | None:
        if problems.mapping(value, path, {"count", "seed", "modulus"}, set()) is None:
            return None
        count = problems.integer(value.get("count"), join(path, "count"), 1, MAX_KEYS) if "count" in value else None
        seed = problems.integer(value.get("seed"), join(path, "seed"), 0, UINT64_MAX) if "seed" in value else None
        modulus = problems.integer(value.get("modulus"), join(path, "modulus"), 1, FULL_RANGE) \
            if "modulus" in value else None
        if None in (count, seed, modulus):
            return None
        return {"count": count, "seed": seed, "modulus": modulus}

    @staticmethod
    def _keys(value: Any, problems: Problems, path: str) -> list[int] | None:
        items = problems.list(value, path, 1, MAX_INLINE_KEYS)
        if items is None:
            return None
        keys = [problems.integer(key, join(path, index), 0, UINT64_MAX) for index, key in enumerate(items)]
        return None if None in keys else keys

    def item_count(self, arguments: dict) -> int:
        return arguments["generate"]["count"] if "generate" in arguments else len(arguments["keys"])

    def work_units(self, arguments: dict, start: int, stop: int) -> int:
        return stop - start

    def execute_shard(self, arguments: dict, seed: int, start: int, stop: int, backend: Backend) -> dict:
        """`seed` (the workload's replay seed) is unused: the keys depend on the arguments alone."""
        distinct = backend.to_host(sorted_distinct(backend.xp, input_keys(arguments, start, stop, backend)))
        return {"start": start, "stop": stop, "input_keys": stop - start, "unique_keys": int(distinct.size),
                "keys_base64": encode_keys(distinct)}

    def plausible_result(self, arguments: dict, start: int, stop: int) -> dict:
        return {"start": start, "stop": stop, "input_keys": stop - start, "unique_keys": 1,
                "keys_base64": encode_keys(np.zeros(1, dtype=np.uint64))}

    def merge(self, arguments: dict, shard_results: list[dict]) -> dict:
        distinct = sorted_distinct(np, np.concatenate([decode_keys(result["keys_base64"]) for result in shard_results]))
        return {
            "input_keys": sum(result["input_keys"] for result in shard_results),
            "unique_keys": int(distinct.size),
            "min": int(distinct[0]),
            "max": int(distinct[-1]),
            "digest": hashlib.sha256(distinct.astype("<u8", copy=False).tobytes()).hexdigest(),
            "keys": [int(key) for key in distinct] if distinct.size <= OUTPUT_KEYS_MAX else None,
        }

    def check_shard(self, arguments: dict, start: int, stop: int, result: dict) -> list[str]:
        problems = []
        count = stop - start
        if result.get("input_keys") != count:
            problems.append(f"input_keys {result.get('input_keys')} != shard size {count}")
        try:
            keys = decode_keys(result.get("keys_base64"))
        except ValueError as error:
            return problems + [str(error)]
        if result.get("unique_keys") != keys.size or not 1 <= keys.size <= count:
            problems.append("unique_keys disagrees with the keys, or is outside [1, shard size]")
        if keys.size > 1 and not bool((keys[1:] > keys[:-1]).all()):
            problems.append("keys are not strictly ascending")
        if "generate" in arguments and keys.size and int(keys[-1]) >= arguments["generate"]["modulus"]:
            problems.append(f"a key is >= the modulus {arguments['generate']['modulus']}")
        if "keys" in arguments:
            given = np.array(arguments["keys"][start:stop], dtype=np.uint64)
            if not bool(np.isin(keys, given).all()):
                problems.append("keys that the shard's input does not hold")
        sampled = np.concatenate([input_keys(arguments, index, index + 1, NUMPY_BACKEND)
                                  for index in spot_indices(start, stop)])
        if not bool(np.isin(sampled, keys).all()):
            problems.append("input keys recomputed at sampled indices are missing from the result")
        return problems

    def benchmark_arguments(self, work_units: int) -> dict:
        count = max(1, min(MAX_KEYS, work_units))
        return {"generate": {"count": count, "seed": 20261125, "modulus": count}}

    def output_summary(self, output: dict) -> dict[str, Any]:
        rows = ["| fact | value |", "|---|---:|",
                f"| input keys | {output['input_keys']} |",
                f"| distinct keys | {output['unique_keys']} |",
                f"| repeats removed | {output['input_keys'] - output['unique_keys']} |",
                f"| min | {output['min']} |",
                f"| max | {output['max']} |"]
        if output["keys"] is not None:
            shown = ", ".join(str(key) for key in output["keys"][:SUMMARY_KEYS])
            rows.append(f"| first keys | {shown}{' ...' if output['unique_keys'] > SUMMARY_KEYS else ''} |")
        return {"input_keys": output["input_keys"], "unique_keys": output["unique_keys"],
                "digest": output["digest"], "table_markdown": "\n".join(rows)}


def input_keys(arguments: dict, start: int, stop: int, backend: Backend) -> Any:
    """Input keys [start, stop) as uint64 on the backend."""
    xp = backend.xp
    if "keys" in arguments:
        return xp.asarray(np.array(arguments["keys"][start:stop], dtype=np.uint64))
    generate = arguments["generate"]
    words = philox_words_on(backend, generate["seed"], KEY_STREAM, 2 * start, 2 * (stop - start))
    # Word 2i is the low half: the words read as little-endian uint64s (device memory is little-endian).
    keys = words.view(xp.uint64) if backend.name == "cupy" else words.astype("<u4", copy=False).view("<u8")
    if generate["modulus"] < FULL_RANGE:
        keys = keys % np.uint64(generate["modulus"])
    return keys


def encode_keys(keys: np.ndarray) -> str:
    """Sorted distinct keys as base64 (RFC 4648, padded) of their little-endian uint64 bytes."""
    return base64.b64encode(np.ascontiguousarray(keys, dtype="<u8").tobytes()).decode("ascii")


def decode_keys(text: Any) -> np.ndarray:
    """The inverse of encode_keys; ValueError when `text` is not base64 of whole uint64s."""
    if not isinstance(text, str):
        raise ValueError("keys_base64 must be a string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("keys_base64 is not valid base64") from None
    if len(raw) % 8:
        raise ValueError("keys_base64 does not hold whole 8-byte keys")
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64)
