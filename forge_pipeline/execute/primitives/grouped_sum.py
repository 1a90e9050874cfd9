"""aggregation/grouped_sum@1: exact int64 sums (and row counts) per key, sorted by key.

Rows of (key, value) come from Philox words (row r: key = (word_r of stream 0 * keys) >> 32,
value = (word_r of stream 1 * (value_max + 1)) >> 32), from inline `[key, value]` pairs or
from two integer columns of a Parquet file pinned by its sha256. Items are rows with
global indices; a shard returns its per-key sums and counts, which merge by plain integer
addition. Validation bounds rows x max|value| by 2^63 - 1, so no partial sum of any
shard layout can overflow, and the GPU's wrapping 64-bit atomic adds are exact.
docs/primitives/grouped_sum.md is the full contract.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from forge_pipeline.execute.backend import NUMPY_BACKEND, Backend, launch_geometry, raw_kernel
from forge_pipeline.execute.primitives.base import Primitive
from forge_pipeline.execute.primitives.common import (
    one_source, philox_words_on, pinned_file, require_unchanged, sorted_distinct, spot_indices,
)
from forge_pipeline.intake.problems import INT64_MAX, Problems, join

INT64_MIN = -(1 << 63)
UINT64_MAX = (1 << 64) - 1
UINT32_MAX = (1 << 32) - 1
MAX_ROWS = 10**10  # Philox words per stream stay far inside 2^66
MAX_GROUPS = 100_000  # distinct keys: every shard result and the output list each group
MAX_INLINE_ROWS = 100_000  # pairs written inline in a request (requests are at most 8 MiB)
KEY_STREAM = 0
VALUE_STREAM = 1
# Rows per chunk: bounds the host and device buffers; also keeps every per-chunk count below 2^31.
CHUNK_ROWS = 1 << 22
SUMMARY_GROUPS = 20  # groups shown in the UI table


class GroupedSum(Primitive):
    family = "aggregation"
    name = "grouped_sum"
    version = 1
    work_unit = "row"
    item = "row"
    default_shard_size = 4_000_000
    contract = "docs/primitives/grouped_sum.md"

    def normalize_arguments(self, arguments: Any, problems: Problems, path: str = "arguments") -> dict | None:
        readers = {"generate": self._generate, "rows": self._rows, "parquet": self._parquet}
        return one_source(arguments, problems, path, readers)

    @staticmethod
    def _generate(value: Any, problems: Problems, path: str) -> dict | None:
        if problems.mapping(value, path, {"rows", "keys", "value_max", "seed"}, set()) is None:
            return None
        rows = problems.integer(value.get("rows"), join(path, "rows"), 1, MAX_ROWS) if "rows" in value else None
        keys = problems.integer(value.get("keys"), join(path, "keys"), 1, MAX_GROUPS) if "keys" in value else None
        value_max = problems.integer(value.get("value_max"), join(path, "value_max"), 0, UINT32_MAX) \
            if "value_max" in value else None
        seed = problems.integer(value.get("seed"), join(path, "seed"), 0, UINT64_MAX) if "seed" in value else None
        if None in (rows, keys, value_max, seed):
            return None
        if rows * value_max > INT64_MAX:
            problems.add(join(path, "value_max"), f"rows x value_max = {rows * value_max} overflows a 64-bit sum")
            return None
        return {"rows": rows, "keys": keys, "value_max": value_max, "seed": seed}

    @staticmethod
    def _rows(value: Any, problems: Problems, path: str) -> list[list[int]] | None:
        items = problems.list(value, path, 1, MAX_INLINE_ROWS)
        if items is None:
            return None
        normalized = []
        for index, pair in enumerate(items):
            item_path = join(path, index)
            if not isinstance(pair, list) or len(pair) != 2:
                problems.add(item_path, "must be a [key, value] pair")
                continue
            key = problems.integer(pair[0], join(item_path, 0), INT64_MIN, INT64_MAX)
            number = problems.integer(pair[1], join(item_path, 1), -INT64_MAX, INT64_MAX)
            if key is not None and number is not None:
                normalized.append([key, number])
        if len(normalized) != len(items):
            return None
        if len({key for key, _ in normalized}) > MAX_GROUPS:
            problems.add(path, f"more than {MAX_GROUPS} distinct keys")
            return None
        value_bound = max(abs(number) for _, number in normalized)
        if len(normalized) * value_bound > INT64_MAX:
            problems.add(path, f"rows x max |value| = {len(normalized) * value_bound} overflows a 64-bit sum")
            return None
        return normalized

    @staticmethod
    def _parquet(value: Any, problems: Problems, path: str) -> dict | None:
        source = pinned_file(value, problems, path, ".parquet", {"key_column", "value_column", "rows"})
        if source is None:
            return None
        columns = {}
        for field, default in (("key_column", "key"), ("value_column", "value")):
            columns[field] = problems.string(value.get(field, default), join(path, field))
        if None in columns.values():
            return None
        if columns["key_column"] == columns["value_column"]:
            problems.add(join(path, "value_column"), f"must differ from key_column ({columns['key_column']!r})")
            return None
        facts = parquet_facts(source["path"], columns["key_column"], columns["value_column"], problems, path)
        if facts is None:
            return None
        if "rows" in value and value["rows"] != facts["rows"]:
            problems.add(join(path, "rows"), f"the file holds {facts['rows']} rows, not {value['rows']!r}")
            return None
        return {**source, **columns, "rows": facts["rows"]}

    def item_count(self, arguments: dict) -> int:
        if "generate" in arguments:
            return arguments["generate"]["rows"]
        if "rows" in arguments:
            return len(arguments["rows"])
        return arguments["parquet"]["rows"]

    def work_units(self, arguments: dict, start: int, stop: int) -> int:
        return stop - start

    def execute_shard(self, arguments: dict, seed: int, start: int, stop: int, backend: Backend) -> dict:
        """`seed` (the workload's replay seed) is unused: the rows depend on the arguments alone."""
        xp = backend.xp
        if "generate" in arguments and backend.name == "numba":
            from forge_pipeline.execute import compiled  # numba is imported only where this backend was chosen

            generate = arguments["generate"]
            sums, counts = compiled.grouped_generated(generate["seed"], generate["keys"], generate["value_max"],
                                                      start, stop)
            present = np.nonzero(counts)[0]
            keys, sums, counts = present, sums[present], counts[present]
        elif "generate" in arguments:
            # Generated keys are already dense indices in [0, keys): accumulate without sorting.
            groups = arguments["generate"]["keys"]
            sums, counts = xp.zeros(groups, dtype=xp.int64), xp.zeros(groups, dtype=xp.int64)
            for first in range(start, stop, CHUNK_ROWS):
                keys, values = generated_rows(arguments["generate"], first, min(stop, first + CHUNK_ROWS), backend)
                scatter_add(backend, sums, keys, values)
                counts += xp.bincount(keys, minlength=groups)
            present = xp.nonzero(counts)[0]
            keys, sums, counts = present, sums[present], counts[present]
        else:
            partials = [group_rows(backend, *table_rows(arguments, first, min(stop, first + CHUNK_ROWS), backend))
                        for first in range(start, stop, CHUNK_ROWS)]
            keys, sums, counts = group_rows(backend, *(xp.concatenate(parts) for parts in zip(*partials)))
        sums_list = [int(total) for total in backend.to_host(sums)]
        return {"start": start, "stop": stop, "rows": stop - start,
                "keys": [int(key) for key in backend.to_host(keys)], "sums": sums_list,
                "counts": [int(count) for count in backend.to_host(counts)], "total": sum(sums_list)}

    def plausible_result(self, arguments: dict, start: int, stop: int) -> dict:
        return {"start": start, "stop": stop, "rows": stop - start, "keys": [0], "sums": [0],
                "counts": [stop - start], "total": 0}

    def merge(self, arguments: dict, shard_results: list[dict]) -> dict:
        keys, sums, counts = group_rows(NUMPY_BACKEND, *(
            np.array([number for result in shard_results for number in result[field]], dtype=np.int64)
            for field in ("keys", "sums", "counts")))
        sums_list = [int(total) for total in sums]
        return {
            "rows": sum(result["rows"] for result in shard_results),
            "groups": len(sums_list),
            "total": sum(sums_list),
            "keys": [int(key) for key in keys],
            "sums": sums_list,
            "counts": [int(count) for count in counts],
        }

    def check_shard(self, arguments: dict, start: int, stop: int, result: dict) -> list[str]:
        problems = []
        count = stop - start
        if result.get("rows") != count:
            problems.append(f"rows {result.get('rows')} != shard size {count}")
        lists = [result.get(field) for field in ("keys", "sums", "counts")]
        if not all(isinstance(column, list) and all(type(number) is int for number in column) for column in lists):
            return problems + ["keys, sums and counts must be lists of integers"]
        keys, sums, counts = lists
        if not len(keys) == len(sums) == len(counts) or not 1 <= len(keys) <= min(count, MAX_GROUPS):
            problems.append("keys, sums and counts must have one entry per group, between 1 and the shard's rows")
        if any(left >= right for left, right in zip(keys, keys[1:])):
            problems.append("keys are not strictly ascending")
        if any(rows < 1 for rows in counts) or sum(counts) != count:
            problems.append("group counts are not positive or do not sum to the shard's rows")
        if result.get("total") != sum(sums):
            problems.append("total is not the sum of the group sums")
        if "generate" in arguments:
            generate = arguments["generate"]
            if keys and not 0 <= keys[0] <= keys[-1] < generate["keys"]:
                problems.append(f"keys outside [0, {generate['keys']})")
            if any(not 0 <= total <= rows * generate["value_max"] for total, rows in zip(sums, counts)):
                problems.append("a group sum is outside [0, rows x value_max]")
        elif "rows" in arguments and not set(keys) <= {key for key, _ in arguments["rows"][start:stop]}:
            problems.append("keys that the shard's rows do not hold")
        if "parquet" not in arguments:  # sampled rows cost a Philox word or a list lookup each
            group_keys = set(keys)
            sampled = [int(table_rows(arguments, index, index + 1, NUMPY_BACKEND)[0][0]) if "rows" in arguments
                       else int(generated_rows(arguments["generate"], index, index + 1, NUMPY_BACKEND)[0][0])
                       for index in spot_indices(start, stop)]
            if not group_keys.issuperset(sampled):
                problems.append("keys of rows recomputed at sampled indices are missing from the result")
        return problems

    def benchmark_arguments(self, work_units: int) -> dict:
        return {"generate": {"rows": max(1, min(MAX_ROWS, work_units)), "keys": 1_000, "value_max": 1_000_000,
                             "seed": 20261125}}

    def output_summary(self, output: dict) -> dict[str, Any]:
        rows = ["| key | rows | sum |", "|---:|---:|---:|"]
        shown = list(zip(output["keys"], output["counts"], output["sums"]))[:SUMMARY_GROUPS]
        rows += [f"| {key} | {count} | {total} |" for key, count, total in shown]
        if output["groups"] > SUMMARY_GROUPS:
            rows.append(f"| ... {output['groups'] - SUMMARY_GROUPS} more | | |")
        return {"rows": output["rows"], "groups": output["groups"], "total": output["total"],
                "table_markdown": "\n".join(rows)}


def generated_rows(generate: dict, first: int, last: int, backend: Backend) -> tuple[Any, Any]:
    """Rows [first, last) as int64 (keys, values) on the backend: multiply-shift maps a word onto a range."""
    xp = backend.xp
    shift = np.uint64(32)
    key_words = philox_words_on(backend, generate["seed"], KEY_STREAM, first, last - first).astype(xp.uint64)
    value_words = philox_words_on(backend, generate["seed"], VALUE_STREAM, first, last - first).astype(xp.uint64)
    keys = ((key_words * np.uint64(generate["keys"])) >> shift).astype(xp.int64)
    values = ((value_words * np.uint64(generate["value_max"] + 1)) >> shift).astype(xp.int64)
    return keys, values


def table_rows(arguments: dict, first: int, last: int, backend: Backend) -> tuple[Any, Any, Any]:
    """Inline or Parquet rows [first, last) as int64 (keys, values, ones) on the backend."""
    xp = backend.xp
    if "rows" in arguments:
        pairs = np.array(arguments["rows"][first:last], dtype=np.int64).reshape(last - first, 2)
        keys, values = pairs[:, 0], pairs[:, 1]
    else:
        keys, values = parquet_rows(arguments["parquet"], first, last)
    return xp.asarray(keys), xp.asarray(values), xp.ones(last - first, dtype=xp.int64)


def group_rows(backend: Backend, keys: Any, values: Any, weights: Any) -> tuple[Any, Any, Any]:
    """(sorted distinct keys, sum of values per key, sum of weights per key), int64, on the backend."""
    xp = backend.xp
    distinct = sorted_distinct(xp, keys)
    inverse = xp.searchsorted(distinct, keys)  # each row's dense group index
    sums, counts = xp.zeros(distinct.size, dtype=xp.int64), xp.zeros(distinct.size, dtype=xp.int64)
    scatter_add(backend, sums, inverse, values)
    scatter_add(backend, counts, inverse, weights)
    return distinct, sums, counts


def scatter_add(backend: Backend, target: Any, index: Any, values: Any) -> None:
    """target[index[i]] += values[i] for every i, exactly (int64; validation rules out overflow)."""
    if backend.name != "cupy":
        np.add.at(target, index, values)
        return
    if index.size:
        kernel = raw_kernel("grouped_sum.cu", "forge_grouped_sum_scatter")
        grid, block = launch_geometry(index.size)
        kernel(grid, block, (backend.xp.ascontiguousarray(index, dtype=backend.xp.int64),
                             backend.xp.ascontiguousarray(values, dtype=backend.xp.int64),
                             np.int64(index.size), target))


def parquet_facts(file_path: str, key_column: str, value_column: str, problems: Problems, path: str) -> dict | None:
    """Row count and value bounds of a Parquet source; problems name the columns that cannot be summed."""
    import polars  # only Parquet sources need Polars; the kernel paths run with NumPy alone

    try:
        frame = polars.scan_parquet(file_path)
        schema = frame.collect_schema()
    except (OSError, polars.exceptions.PolarsError) as error:
        problems.add(join(path, "path"), f"not a readable Parquet file ({error})")
        return None
    found_before = len(problems.found)
    for field, column in (("key_column", key_column), ("value_column", value_column)):
        if column not in schema:
            problems.add(join(path, field), f"no column {column!r} (columns: {', '.join(schema.names())})")
        elif not schema[column].is_integer():
            problems.add(join(path, field), f"column {column!r} is {schema[column]}, not an integer type")
    if len(problems.found) > found_before:
        return None
    key, number = polars.col(key_column), polars.col(value_column)
    try:  # reads every page of both columns: a file whose footer is sound but whose data is not is refused here
        facts = frame.select(
            polars.len().alias("rows"), key.null_count().alias("key_nulls"), number.null_count().alias("value_nulls"),
            key.n_unique().alias("groups"), key.min().alias("key_min"), key.max().alias("key_max"),
            number.min().alias("value_min"), number.max().alias("value_max"),
        ).collect().row(0, named=True)
    except (OSError, polars.exceptions.PolarsError) as error:
        problems.add(join(path, "path"), f"its data pages cannot be read ({str(error).splitlines()[0]})")
        return None
    rows = facts["rows"]
    if not 1 <= rows <= MAX_ROWS:
        problems.add(join(path, "path"), f"must hold between 1 and {MAX_ROWS} rows, holds {rows}")
        return None
    if facts["key_nulls"] or facts["value_nulls"]:
        problems.add(join(path, "path"), f"{facts['key_nulls']} null keys and {facts['value_nulls']} null values: "
                                         "every row needs both")
        return None
    if facts["key_min"] < INT64_MIN or facts["key_max"] > INT64_MAX:
        problems.add(join(path, "key_column"), "keys must fit a signed 64-bit integer")
    if facts["groups"] > MAX_GROUPS:
        problems.add(join(path, "key_column"), f"{facts['groups']} distinct keys; at most {MAX_GROUPS}")
    value_bound = max(abs(facts["value_min"]), abs(facts["value_max"]))
    if rows * value_bound > INT64_MAX:
        problems.add(join(path, "value_column"), f"rows x max |value| = {rows * value_bound} overflows a 64-bit sum")
    return None if len(problems.found) > found_before else {"rows": rows}


def parquet_rows(source: dict, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows [first, last) of a pinned Parquet source, in file order, as int64 arrays."""
    import polars

    require_unchanged(source, "arguments.parquet")
    frame = polars.scan_parquet(source["path"]).select(
        polars.col(source["key_column"]).cast(polars.Int64), polars.col(source["value_column"]).cast(polars.Int64),
    ).slice(first, last - first).collect()
    return (frame.get_column(source["key_column"]).to_numpy(), frame.get_column(source["value_column"]).to_numpy())
