"""The IO manager of the workload lifecycle's assets: one stored value per workload partition.

A lifecycle run carries a batch of workloads (a range of workload partitions), so each
asset returns its stage records keyed by workload id. Dagster's filesystem IO manager
refuses an output that spans several partitions; this one stores each workload's record
under its own partition and loads, for any later run, exactly the partitions that run
covers, again as {workload_id: record}. A workload that failed at a stage has no record
there (an older one is removed), so the stages after it skip that workload.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from dagster import ConfigurableIOManager, InputContext, OutputContext

from forge_pipeline.home import forge_home


class StageRecordsIOManager(ConfigurableIOManager):
    root: str = ""  # default FORGE_HOME/stage_records; one folder per asset, one file per workload

    def _folder(self, context: InputContext | OutputContext) -> Path:
        return (Path(self.root) if self.root else forge_home() / "stage_records").joinpath(*context.asset_key.path)

    def handle_output(self, context: OutputContext, obj: dict) -> None:
        folder = self._folder(context)
        folder.mkdir(parents=True, exist_ok=True)
        for workload_id in context.asset_partition_keys:
            path = folder / workload_id
            if workload_id not in obj:
                path.unlink(missing_ok=True)
                continue
            temporary = folder / f".{workload_id}.tmp"
            temporary.write_bytes(pickle.dumps(obj[workload_id], protocol=pickle.HIGHEST_PROTOCOL))
            temporary.replace(path)  # a reader never sees half a record

    def load_input(self, context: InputContext) -> dict:
        folder = self._folder(context)
        return {workload_id: pickle.loads(path.read_bytes()) for workload_id in context.asset_partition_keys
                if (path := folder / workload_id).exists()}
