"""Resources are the seams (STYLE): database, artifact store, Agent pool, compute backend.

Each has one real implementation; tests swap URLs and paths, not behaviour. An empty
setting means "from the environment" (FORGE_DATABASE_URL, FORGE_HOME, FORGE_POOL_FILE,
FORGE_DEVICE), read when the resource is used, so one `defs` serves every deployment.
"""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from sqlalchemy import Engine

from forge_pipeline.assign.pool import Pool, load_pool
from forge_pipeline.execute.backend import cuda_device_visible, select_backend
from forge_pipeline.storage.database import forge_home, open_engine


class ForgeDatabaseResource(ConfigurableResource):
    url: str = ""

    def engine(self) -> Engine:
        return open_engine(self.url or None)


class ArtifactStoreResource(ConfigurableResource):
    root: str = ""

    def path(self) -> Path:
        return Path(self.root) if self.root else forge_home() / "artifacts"


class AgentPoolResource(ConfigurableResource):
    pool_file: str = ""

    def pool(self) -> Pool:
        return load_pool(self.pool_file or None)


class ComputeBackendResource(ConfigurableResource):
    device: str = ""

    def gpu_visible(self) -> bool:
        """GPU Agents get work only where a device is visible and the setting allows it."""
        return select_backend(self.device or None).name == "cupy" and cuda_device_visible()
