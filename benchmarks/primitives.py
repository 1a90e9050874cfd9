"""Work units per second of every registered primitive's shard kernel, NumPy and (where a device exists) CuPy."""

import time

from forge_pipeline.execute.backend import NUMPY_BACKEND, cuda_device_visible, select_backend
from forge_pipeline.execute.primitives import PRIMITIVES
from forge_pipeline.intake.problems import Problems


def bench_primitive(name: str, work_units: int) -> dict:
    primitive = PRIMITIVES[name]
    problems = Problems()
    arguments = primitive.normalize_arguments(primitive.benchmark_arguments(work_units), problems)
    problems.raise_if_any()
    items = primitive.item_count(arguments)
    units = primitive.work_units(arguments, 0, items)
    backends = [NUMPY_BACKEND] + ([select_backend("gpu")] if cuda_device_visible() else [])
    rates = {}
    for backend in backends:
        primitive.execute_shard(arguments, 1, 0, min(items, 1), backend)  # compile / warm up
        timings = []
        for _ in range(2):
            started = time.perf_counter()
            primitive.execute_shard(arguments, 1, 0, items, backend)
            timings.append(time.perf_counter() - started)
        rates[backend.name] = units / min(timings)
    return {"primitive": name, "work_unit": primitive.work_unit, "units": units, "rates": rates}
