"""The backend selector: the only module that imports CuPy.

`select_backend("auto")` gives CuPy when it imports and a CUDA device is visible, the
CPU backend otherwise; `"gpu"` insists on a device, `"cpu"` never looks. The CPU backend
is `numba` (forge_pipeline.execute.compiled, every core) where numba is installed and
`numpy` (the reference, bit-identical) where it is not. Kernels are
compiled from the CUDA sources in `kernels/` with FMA contraction off, so no
floating-point contraction can ever change a bit (DESIGN §3.3).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:  # CuPy is an optional extra; importing it succeeds without a GPU.
    import cupy
except ImportError:  # pragma: no cover - depends on the machine
    cupy = None

# numba is a dependency, but the NumPy path stays the fallback wherever it cannot install. It is imported
# (with forge_pipeline.execute.compiled) only when a shard runs on it: importing it costs a fraction of a
# second and pulls optional modules (PyYAML) the kernel import path must not need.
NUMBA_INSTALLED = importlib.util.find_spec("numba") is not None

DEVICE_CHOICES = ("auto", "cpu", "gpu")
NVRTC_OPTIONS = ("--fmad=false", "--std=c++14")


class BackendUnavailable(RuntimeError):
    """A GPU was required (FORGE_DEVICE=gpu or a gpu Agent) but none is visible."""


@dataclass(frozen=True)
class Backend:
    name: str  # "numpy" | "numba" | "cupy": recorded on every shard attempt
    xp: Any
    device: str

    def to_host(self, array: Any) -> np.ndarray:
        return cupy.asnumpy(array) if self.name == "cupy" else np.asarray(array)


NUMPY_BACKEND = Backend(name="numpy", xp=np, device="cpu")
NUMBA_BACKEND = Backend(name="numba", xp=np, device="cpu")  # NumPy arrays; the shard loops compiled


def cpu_backend() -> Backend:
    """The compiled backend where numba is installed, the NumPy reference otherwise."""
    return NUMBA_BACKEND if NUMBA_INSTALLED else NUMPY_BACKEND


def cuda_device_visible() -> bool:
    if cupy is None:
        return False
    try:
        return bool(cupy.is_available())
    except Exception:  # a broken driver install counts as no device
        return False


def _cupy_backend() -> Backend:
    properties = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    return Backend(name="cupy", xp=cupy, device=properties["name"].decode())


def select_backend(device: str | None = None) -> Backend:
    requested = (device or os.environ.get("FORGE_DEVICE") or "auto").lower()
    if requested not in DEVICE_CHOICES:
        raise ValueError(f"FORGE_DEVICE must be one of {', '.join(DEVICE_CHOICES)}, got {requested!r}")
    if requested == "cpu":
        return cpu_backend()
    if cuda_device_visible():
        return _cupy_backend()
    if requested == "gpu":
        raise BackendUnavailable("FORGE_DEVICE=gpu but no CUDA device is visible (CuPy missing or no driver)")
    return cpu_backend()


def kernels_directory() -> Path:
    """kernels/ ships inside the wheel as forge_pipeline/kernels; a source checkout has it at the root."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "kernels", package.parent / "kernels"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("CUDA sources not found next to forge_pipeline (kernels/)")


@functools.lru_cache(maxsize=None)
def raw_kernel(source_file: str, function_name: str) -> Any:
    """Compile `kernels/<source_file>` once per process and return one of its kernels."""
    directory = kernels_directory()
    source = (directory / source_file).read_text()
    module = cupy.RawModule(code=source, options=(*NVRTC_OPTIONS, f"-I{directory}"))
    return module.get_function(function_name)


def launch_geometry(items: int, threads_per_block: int = 256) -> tuple[tuple[int], tuple[int]]:
    """Grid-stride launch: enough blocks to fill the device, capped so huge ranges loop."""
    blocks = max(1, min((items + threads_per_block - 1) // threads_per_block, 65535 * 4))
    return (blocks,), (threads_per_block,)
