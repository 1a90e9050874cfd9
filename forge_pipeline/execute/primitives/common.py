"""Helpers that more than one primitive uses, written once against an `xp` namespace (NumPy or CuPy).

Inputs: a document naming exactly one source (`one_source`), Philox words on either
backend (`philox_words_on`) and input files pinned by their sha256 (`pinned_file`,
`require_unchanged`). Ranking: the smallest keys of each
row (`smallest_keys`) and the shape check of a ranked [id, score] list (`ranked_pairs`).
Sets: sorted distinct values (`sorted_distinct`) and the evenly spaced items a shard
check recomputes (`spot_indices`). No Dagster, Polars or SQLAlchemy here: the kernel
paths run with NumPy (and CuPy) alone.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from forge_pipeline.execute.backend import Backend, launch_geometry, raw_kernel
from forge_pipeline.execute.philox import philox_words
from forge_pipeline.intake.inputs import confined_input
from forge_pipeline.intake.limits import MAX_PATH_CHARS
from forge_pipeline.intake.problems import Problem, Problems, RequestInvalid, join

# The largest pinned input file: image_filter's 2^34 input pixels as a uint8 .npy, plus room for its header.
MAX_FILE_BYTES = (1 << 34) + (1 << 20)
SPOT_SAMPLES = 64  # input items a shard check recomputes: a lazy result misses them


def one_source(arguments: Any, problems: Problems, path: str,
               readers: dict[str, Callable[[Any, Problems, str], Any]]) -> dict | None:
    """A mapping that names exactly one of `readers`' sources and nothing else: {source: its reader's result},
    or None with problems recorded (by the reader, or at `path` when zero or several sources are given)."""
    found_before = len(problems.found)
    document = problems.mapping(arguments, path, set(), set(readers))
    if document is None:
        return None
    given = [source for source in readers if source in document]
    if len(given) != 1:
        *others, last = readers
        problems.add(path, f"give exactly one source: {', '.join(others)} or {last}")
        return None
    source = given[0]
    normalized = {source: readers[source](document[source], problems, join(path, source))}
    return None if len(problems.found) > found_before else normalized


def philox_words_on(backend: Backend, seed: int, stream: int, first_word: int, count: int) -> Any:
    """Words [first_word, first_word + count) of a Philox stream as uint32, on the backend's device.

    NumPy: forge_pipeline.execute.philox.philox_words; numba: forge_pipeline.execute.compiled.philox_words
    (every core); CuPy: kernels/philox.cu; all bit-identical.
    """
    if backend.name == "numba":
        from forge_pipeline.execute import compiled  # numba is imported only where this backend was chosen

        return compiled.philox_words(seed, stream, first_word, count)
    if backend.name != "cupy":
        return philox_words(seed, stream, first_word, count)
    xp = backend.xp
    out = xp.empty(count, dtype=xp.uint32)
    if count:
        blocks = (first_word + count + 3) // 4 - first_word // 4
        grid, block = launch_geometry(blocks)
        raw_kernel("philox.cu", "forge_philox4x32")(
            grid, block, (np.uint64(seed), np.uint32(stream), np.uint64(first_word), np.int64(count), out))
    return out


def pinned_file(value: Any, problems: Problems, path: str, suffix: str, optional: set[str]) -> dict | None:
    """An input file named by `path` inside the organization's input area (`problems.input_area`),
    pinned by the sha256 of its bytes.

    The normalized document holds the absolute path and the digest; a digest given by
    the user (or by an earlier normalization) must match, so a file that changed since
    admission is refused instead of silently computed. A name outside the area is refused
    (`forge_pipeline.intake.inputs`), as is any name when no area is given.
    """
    if problems.mapping(value, path, {"path"}, {"sha256"} | optional) is None:
        return None
    name = problems.string(value.get("path"), join(path, "path"), max_length=MAX_PATH_CHARS) \
        if "path" in value else None
    if name is None:
        return None
    if problems.input_area is None:
        problems.add(join(path, "path"), "input files are read only from an organization's input area")
        return None
    try:
        resolved = confined_input(name, problems.input_area)
    except ValueError as refused:
        problems.add(join(path, "path"), str(refused))
        return None
    if resolved.suffix != suffix:
        problems.add(join(path, "path"), f"must name a {suffix} file")
        return None
    try:
        if resolved.stat().st_size > MAX_FILE_BYTES:
            problems.add(join(path, "path"), f"larger than {MAX_FILE_BYTES} bytes")
            return None
        file_digest = file_sha256(str(resolved))
    except OSError as error:
        problems.add(join(path, "path"), f"cannot be read: {error.strerror or error}")
        return None
    if "sha256" in value and value["sha256"] != file_digest:
        shown = str(value["sha256"])[:80] if isinstance(value["sha256"], str) else type(value["sha256"]).__name__
        problems.add(join(path, "sha256"), f"the file's sha256 is {file_digest}, not {shown!r}: "
                                           "it changed since it was pinned, or it is another file")
        return None
    return {"path": str(resolved), "sha256": file_digest}


def require_unchanged(source: dict, path: str) -> None:
    """Refuse to compute on a pinned file whose bytes changed since admission (RequestInvalid, a workload fault)."""
    actual = file_sha256(source["path"])
    if actual != source["sha256"]:
        message = f"{source['path']} changed since admission: sha256 {actual} != {source['sha256']}"
        raise RequestInvalid([Problem(join(path, "sha256"), message)])


def file_sha256(path: str) -> str:
    """sha256 of a file's bytes, cached per (path, size, mtime, inode) so shards do not rehash an unchanged file."""
    status = os.stat(path)
    return _file_sha256(path, status.st_size, status.st_mtime_ns, status.st_ino)


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int, inode: int) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            hasher.update(block)
    return hasher.hexdigest()


def smallest_keys(xp: Any, keys: Any, count: int) -> Any:
    """Each row's `count` smallest keys, ascending. Keys in a row are distinct, so the answer is unique."""
    if count < keys.shape[1]:
        keys = xp.partition(keys, count - 1, axis=1)[:, :count]
    return xp.sort(keys, axis=1)


def ranked_pairs(top: Any, keep: int, low_id: int, high_id: int, low_score: int, high_score: int) -> bool:
    """`keep` [id, score] integer pairs, ids distinct in [low_id, high_id), scores in [low_score, high_score],
    strictly ordered by score descending then id ascending: the shape every ranked list here has."""
    if not isinstance(top, list) or len(top) != keep:
        return False
    previous = None
    for pair in top:
        if not (isinstance(pair, list) and len(pair) == 2 and all(type(value) is int for value in pair)):
            return False
        identifier, score = pair
        if not (low_id <= identifier < high_id and low_score <= score <= high_score):
            return False
        if previous is not None and (-previous[1], previous[0]) >= (-score, identifier):
            return False
        previous = pair
    return True


def sorted_distinct(xp: Any, values: Any) -> Any:
    """The ascending distinct values of a 1-D integer array: sort, then keep each value unlike its predecessor.

    Equal to xp.unique, and several times faster than NumPy 2.4's unique on 64-bit keys;
    on CuPy the sort is a radix sort. Integer comparisons only, so the result is exact.
    """
    ordered = xp.sort(values)
    keep = xp.ones(ordered.size, dtype=bool)
    keep[1:] = ordered[1:] != ordered[:-1]
    return ordered[keep]


def spot_indices(start: int, stop: int, samples: int = SPOT_SAMPLES) -> list[int]:
    """min(samples, stop - start) distinct, evenly spaced item indices of [start, stop), starting at `start`."""
    count = stop - start
    taken = min(samples, count)
    return [start + (j * count) // taken for j in range(taken)]
