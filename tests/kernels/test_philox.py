import random
import shutil
import subprocess

import numpy as np
import pytest

from forge_pipeline.execute.backend import kernels_directory, raw_kernel, select_backend
from forge_pipeline.execute.philox import CHUNK_BLOCKS, philox4x32_10, philox_words

KERNELS = kernels_directory()


def reference_word(seed: int, stream: int, word: int) -> int:
    block = word // 4
    return philox4x32_10((block & 0xFFFFFFFF, block >> 32, stream, 0), (seed & 0xFFFFFFFF, seed >> 32))[word % 4]


def test_philox_matches_random123_known_answers():
    """Philox4x32-10 reproduces the Random123 known-answer vectors from DESIGN §3.3."""
    assert philox4x32_10((0, 0, 0, 0), (0, 0)) == (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)
    assert philox4x32_10((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0)) == (
        0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)


def test_array_path_is_block_counter_zero_key_zero_at_word_zero():
    """Words 0..3 of stream 0 under seed 0 are the first known-answer block, in lane order."""
    assert [int(w) for w in philox_words(0, 0, 0, 4)] == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]


def test_array_path_matches_reference_at_random_offsets():
    """Vectorized words equal the one-block reference for random seeds, streams, offsets and ragged lengths."""
    rng = random.Random(7)
    for _ in range(200):
        seed, stream = rng.getrandbits(64), rng.getrandbits(32)
        first, count = rng.getrandbits(rng.choice([3, 20, 40, 62])), rng.randrange(0, 11)
        expected = [reference_word(seed, stream, word) for word in range(first, first + count)]
        assert [int(w) for w in philox_words(seed, stream, first, count)] == expected


def test_array_path_is_seamless_across_chunks():
    """A range spanning chunk boundaries equals its pieces: no word is lost or repeated at a seam."""
    seed, first = 0xDEADBEEF12345678, 4 * CHUNK_BLOCKS - 5
    whole = philox_words(seed, 3, first, 4 * CHUNK_BLOCKS + 17)
    pieces = np.concatenate([philox_words(seed, 3, first, 9), philox_words(seed, 3, first + 9, whole.size - 9)])
    np.testing.assert_array_equal(whole, pieces)
    assert int(whole[-1]) == reference_word(seed, 3, first + whole.size - 1)


def test_seed_outside_uint64_is_refused():
    """A seed that is not a uint64 cannot silently wrap into another stream."""
    with pytest.raises(ValueError, match="uint64"):
        philox_words(1 << 64, 0, 0, 4)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed: CUDA sources not compiled here")
@pytest.mark.parametrize("source", sorted(path.name for path in KERNELS.glob("*.cu")))
def test_cuda_sources_compile_without_fma_and_without_floats(source, tmp_path):
    """Every kernel compiles to PTX with FMA contraction off, and declares no float or double."""
    text = (KERNELS / source).read_text() + (KERNELS / "philox.cuh").read_text()
    code = "\n".join(line.split("//")[0] for line in text.splitlines())
    assert " float" not in code and "double" not in code
    subprocess.run(["nvcc", "-ptx", "--fmad=false", f"-I{KERNELS}", "-o", str(tmp_path / "out.ptx"),
                    str(KERNELS / source)], check=True, capture_output=True)
    assert ".entry forge_" in (tmp_path / "out.ptx").read_text()


@pytest.mark.gpu
@pytest.mark.parametrize("first, count", [(0, 4), (3, 1_000_003), (2**40 + 1, 777_777)])
def test_cupy_philox_matches_numpy_bit_for_bit(first, count):
    """The CUDA generator writes the same words as the NumPy path, ragged ends included."""
    backend = select_backend("gpu")
    xp = backend.xp
    out = xp.zeros(count, dtype=xp.uint32)
    kernel = raw_kernel("philox.cu", "forge_philox4x32")
    kernel((512,), (256,), (np.uint64(0x0123456789ABCDEF), np.uint32(5), np.uint64(first), np.int64(count), out))
    np.testing.assert_array_equal(backend.to_host(out), philox_words(0x0123456789ABCDEF, 5, first, count))


def test_the_kernel_path_imports_no_orchestration_or_database_code():
    """The kernels and their GPU tests run on a machine with NumPy and CuPy only: nothing on that
    path may import Dagster, Polars, SQLAlchemy or PyYAML."""
    import sys
    code = ("import sys, forge_pipeline.execute.primitives, forge_pipeline.execute.backend, forge_pipeline.canonical\n"
            "print(sorted(m for m in ('dagster', 'polars', 'sqlalchemy', 'yaml') if m in sys.modules))")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


def test_cpu_work_falls_back_to_numpy_where_numba_is_missing():
    """With numba absent (hidden from imports), a CPU Agent's backend is the NumPy reference and a shard still runs."""
    import sys
    code = ("import sys\nsys.modules['numba'] = None\n"
            "from forge_pipeline.execute.backend import select_backend\n"
            "from forge_pipeline.execute.primitives import get_primitive\n"
            "backend = select_backend('cpu')\n"
            "primitive = get_primitive('probabilistic_simulation/portfolio_loss@2')\n"
            "arguments = {'scenarios': 10, 'obligors': [{'exposure': 3, 'pd': '1'}], 'bins': 2, 'quantiles': ['0.5']}\n"
            "print(backend.name, primitive.execute_shard(arguments, 1, 0, 10, backend)['loss_total'])")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.split() == ["numpy", "30"]
