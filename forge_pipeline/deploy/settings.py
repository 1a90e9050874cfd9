"""Production settings, read from the environment so one `defs` serves every deployment.

FORGE_EXECUTOR=celery sends every step to Celery workers through FORGE_CELERY_BROKER.
Steps tagged `dagster-celery/queue` (the Agent batches, per hardware class) go to that
queue; every other step goes to dagster-celery's default queue, `dagster`. So a pool
needs workers listening on `dagster` plus one queue per hardware class it has machines
for (WORKER_QUEUES). docs/deployment.md is the runbook.
"""

from __future__ import annotations

import os

from forge_pipeline.orchestration.workload_assets import HARDWARE_CLASSES

DEFAULT_QUEUE = "dagster"  # dagster_celery.defaults.task_default_queue
WORKER_QUEUES = (DEFAULT_QUEUE, *HARDWARE_CLASSES)
DEFAULT_BACKEND = "rpc://"
# Redis hands an unacknowledged step to another worker only after this long; it must exceed
# the longest step, or a slow step is run twice (harmless for the money: attempts are
# recorded by the collect step alone, but wasted compute).
DEFAULT_VISIBILITY_TIMEOUT_S = 3600
# dagster-celery's own transport defaults (dagster_celery.defaults), kept when we add ours.
BROKER_TRANSPORT_OPTIONS = {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


class SettingMissing(ValueError):
    """A production setting the chosen executor needs is not in the environment."""


def celery_broker() -> str:
    broker = os.environ.get("FORGE_CELERY_BROKER", "")
    if not broker:
        raise SettingMissing("FORGE_EXECUTOR=celery needs FORGE_CELERY_BROKER, e.g. redis://127.0.0.1:6379/0 "
                             "or amqp://guest:guest@127.0.0.1:5672//")
    return broker


def celery_config() -> dict:
    """The celery executor's config, also the `execution.config` block of a worker's worker.yaml.

    Executor and workers must agree on broker, backend and these Celery settings: a step
    is acknowledged only when it has finished (`task_acks_late`), and a step whose worker
    process died is put back on its queue (`task_reject_on_worker_lost`), so a worker
    killed mid-batch costs a re-run of that batch on another worker, not the run.
    """
    visibility_timeout_s = int(os.environ.get("FORGE_CELERY_VISIBILITY_TIMEOUT_S", DEFAULT_VISIBILITY_TIMEOUT_S))
    return {
        "broker": celery_broker(),
        "backend": os.environ.get("FORGE_CELERY_BACKEND") or DEFAULT_BACKEND,
        "config_source": {
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 1,
            "broker_transport_options": {**BROKER_TRANSPORT_OPTIONS, "visibility_timeout": visibility_timeout_s},
        },
    }


def celery_executor():
    """dagster-celery's executor configured from the environment (imported only when chosen)."""
    from dagster_celery import celery_executor as dagster_celery_executor

    return dagster_celery_executor.configured(celery_config(), name="celery")
