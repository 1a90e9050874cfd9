"""Resources are the seams (STYLE): database, artifact store, Agent pool, compute backend.

Each has one real implementation; tests swap URLs and paths, not behaviour. An empty
setting means "from the environment" (FORGE_DATABASE_URL, FORGE_HOME, FORGE_POOL_FILE,
FORGE_DEVICE, FORGE_GPU_BATCHES), read when the resource is used, so one `defs` serves every deployment.
"""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from sqlalchemy import Engine

from forge_pipeline.assign.assignment import gpu_batches_assignable
from forge_pipeline.assign.pool import Pool, load_pool
from forge_pipeline.execute.backend import BackendUnavailable, cuda_device_visible, select_backend
from forge_pipeline.storage.database import artifacts_root, open_engine


class ForgeDatabaseResource(ConfigurableResource):
    url: str = ""

    def engine(self) -> Engine:
        return open_engine(self.url or None)


class ArtifactStoreResource(ConfigurableResource):
    root: str = ""

    def path(self) -> Path:
        return Path(self.root) if self.root else artifacts_root()


class AgentPoolResource(ConfigurableResource):
    pool_file: str = ""

    def pool(self) -> Pool:
        return load_pool(self.pool_file or None)


class ComputeBackendResource(ConfigurableResource):
    device: str = ""
    gpu_batches: str = ""  # local | dedicated (assign.assignment.GPU_BATCH_PLACEMENTS)

    def unusable_reason(self) -> str | None:
        """Why this process cannot compute at all (FORGE_DEVICE=gpu without a device), or None."""
        try:
            select_backend(self.device or None)
        except BackendUnavailable as error:
            return str(error)
        return None

    def gpu_visible(self) -> bool:
        """This process may compute on a GPU: a device is visible and FORGE_DEVICE allows it."""
        return select_backend(self.device or None).name == "cupy" and cuda_device_visible()

    def gpu_assignable(self) -> bool:
        """Planning may give batches to GPU Agents (FORGE_GPU_BATCHES=dedicated, or a GPU here)."""
        return gpu_batches_assignable(self.gpu_visible(), self.gpu_batches or None)
