"""Scaffolding the primitive tests share: validate or refuse a document, run it shard by shard, read the
Philox contract word by word, and check a kernel source for floating point. NumPy-only imports, like
tests/conftest.py: these tests must run on a GPU machine without Dagster, Polars or SQLAlchemy."""

import copy
import re
import shutil
import subprocess

import pytest

from forge_pipeline.execute.backend import NUMPY_BACKEND, kernels_directory
from forge_pipeline.execute.philox import philox4x32_10
from forge_pipeline.execute.primitives.base import Primitive
from forge_pipeline.intake.problems import Problems

FLOATING_POINT_SOURCE = re.compile(r"\b(float|double|half|__half|__nv_bfloat16)\b")
FLOATING_POINT_PTX = re.compile(r"\.f(16|32|64)\b")


def scaffolding(primitive: Primitive):
    """(normalized, refusals, run) bound to one primitive."""

    def normalized(document, input_area=None):
        """The canonical document (input files named inside `input_area`); fails the test on any problem."""
        problems = Problems(input_area=input_area)
        arguments = primitive.normalize_arguments(copy.deepcopy(document), problems)
        assert not problems.found, problems.found
        return arguments

    def refusals(document, input_area=None):
        """{field path: message} of a document validation must refuse."""
        problems = Problems(input_area=input_area)
        assert primitive.normalize_arguments(document, problems) is None
        return {problem.path: problem.message for problem in problems.found}

    def run(arguments, shard_size, backend=NUMPY_BACKEND):
        """Every shard of `shard_size` items executed, each passing check_shard, then merged in shard order."""
        count = primitive.item_count(arguments)
        shards = [primitive.execute_shard(arguments, 1, start, min(count, start + shard_size), backend)
                  for start in range(0, count, shard_size)]
        for index, shard in enumerate(shards):
            assert primitive.check_shard(arguments, shard["start"], shard["stop"], shard) == [], index
        return primitive.merge(arguments, shards)

    return normalized, refusals, run


def contract_word(seed, stream, index):
    """DESIGN §3.3 read literally: word `index` of `stream` is lane index mod 4 of its own Philox block."""
    block = index // 4
    return philox4x32_10((block % 2**32, block >> 32, stream, 0), (seed % 2**32, seed >> 32))[index % 4]


def json_native(value, leaf_types=(int,)):
    """Only dicts with string keys, lists and leaves of exactly `leaf_types` (no floats, no NumPy scalars)."""
    if isinstance(value, dict):
        return all(isinstance(key, str) and json_native(item, leaf_types) for key, item in value.items())
    if isinstance(value, list):
        return all(json_native(item, leaf_types) for item in value)
    return type(value) in leaf_types


def assert_benchmark_sized(primitive: Primitive, normalized, units):
    """benchmark_arguments(units) validates and bills within one item's cost of the request."""
    arguments = normalized(primitive.benchmark_arguments(units))
    per_item = primitive.work_units(arguments, 0, 1)
    total = primitive.work_units(arguments, 0, primitive.item_count(arguments))
    assert total <= max(units, per_item) and total > units - per_item


def assert_integer_only_kernel(source_name, entries, tmp_path):
    """The kernel and its includes name no floating-point type; with nvcc, its PTX (FMA contraction off)
    defines every entry in `entries` and holds no .f16/.f32/.f64 instruction.

    tests/kernels/test_philox.py compiles every kernels/*.cu; this adds the per-kernel entry names, the
    half-precision types and the PTX-level check."""
    directory = kernels_directory()
    text = (directory / source_name).read_text()
    for include in re.findall(r'#include\s+"([^"]+)"', text):
        text += (directory / include).read_text()
    source = re.sub(r"//[^\n]*|/\*.*?\*/", "", text, flags=re.DOTALL)
    assert not FLOATING_POINT_SOURCE.search(source)
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc not installed: the PTX compile is not checked here")
    ptx = tmp_path / "out.ptx"
    subprocess.run(["nvcc", "-ptx", "--fmad=false", f"-I{directory}", "-o", str(ptx), str(directory / source_name)],
                   check=True, capture_output=True)
    code = ptx.read_text()
    assert all(f".entry {entry}(" in code for entry in entries), entries
    assert not FLOATING_POINT_PTX.search(code)
