"""The CUDA path of every registered primitive version against both CPU backends, bit for bit.

Marked `gpu`: skipped with the reason where no CUDA device is visible. NumPy and CuPy imports only
(numba, where installed, is what `cpu_backend()` gives), so this runs on a GPU machine without it.
"""

import pytest

from forge_pipeline.execute.backend import NUMPY_BACKEND, cpu_backend, select_backend
from forge_pipeline.execute.primitives import PRIMITIVES
from tests.kernels.primitive_helpers import scaffolding


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_every_primitive_cupy_equals_the_cpu_backends(name):
    """CuPy, the CPU default (numba where installed) and NumPy give the same shard result bit for bit, on a shard
    with many thread blocks that starts off any boundary and ends on a ragged tail."""
    primitive = PRIMITIVES[name]
    normalized, _, _ = scaffolding(primitive)
    arguments = normalized(primitive.benchmark_arguments(5_000_000))
    count = primitive.item_count(arguments)
    start = min(3, count - 1)
    gpu = primitive.execute_shard(arguments, 9, start, count, select_backend("gpu"))
    assert gpu == primitive.execute_shard(arguments, 9, start, count, NUMPY_BACKEND)
    assert gpu == primitive.execute_shard(arguments, 9, start, count, cpu_backend())
