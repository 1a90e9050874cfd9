"""Production settings, read from the environment so one `defs` serves every deployment.

FORGE_EXECUTOR picks the executor: `celery` (workers on machines or VMs) or `celery_k8s`
(Kubernetes, forge_pipeline.deploy.kubernetes) beside the one-machine executors.
FORGE_EXECUTOR=celery sends every step to Celery workers through FORGE_CELERY_BROKER.
Steps tagged `dagster-celery/queue` (the Agent batches, per hardware class) go to that
queue; every other step goes to dagster-celery's default queue, `dagster`. So a pool
needs workers listening on `dagster` plus one queue per hardware class it has machines
for (WORKER_QUEUES). docs/deployment.md is the runbook; the files in the top-level
`deploy/` folder are what `instance_config()` and `worker_config()` write.
"""

from __future__ import annotations

import json
import os

from forge_pipeline.orchestration.workload_assets import HARDWARE_CLASSES

DEFAULT_QUEUE = "dagster"  # dagster_celery.defaults.task_default_queue
WORKER_QUEUES = (DEFAULT_QUEUE, *HARDWARE_CLASSES)
DEFAULT_BACKEND = "rpc://"
# dagster-celery's own transport defaults (dagster_celery.defaults), kept when we add ours.
# Redis hands an unacknowledged step to another worker only after `visibility_timeout`
# seconds; it must exceed the longest step, or a slow step runs twice (harmless for the
# money, since only the collect step records attempts, but wasted compute). RabbitMQ
# requeues at once when a worker's connection drops and ignores these options.
DEFAULT_TRANSPORT_OPTIONS = {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5,
                             "visibility_timeout": 3600}
DAGSTER_STORAGE_URL_VARIABLE = "FORGE_DAGSTER_STORAGE_URL"


class SettingInvalid(ValueError):
    """A production setting the chosen executor needs is missing or malformed."""


def celery_broker() -> str:
    broker = os.environ.get("FORGE_CELERY_BROKER", "")
    if not broker:
        raise SettingInvalid("FORGE_EXECUTOR=celery needs FORGE_CELERY_BROKER, e.g. redis://127.0.0.1:6379/0 "
                             "or amqp://guest:guest@127.0.0.1:5672//")
    return broker


def transport_options() -> dict:
    """DEFAULT_TRANSPORT_OPTIONS updated by the JSON object in FORGE_CELERY_TRANSPORT_OPTIONS."""
    text = os.environ.get("FORGE_CELERY_TRANSPORT_OPTIONS", "")
    try:
        overrides = json.loads(text) if text else {}
    except json.JSONDecodeError as error:
        raise SettingInvalid(f"FORGE_CELERY_TRANSPORT_OPTIONS is not JSON: {error}") from None
    if not isinstance(overrides, dict):
        raise SettingInvalid("FORGE_CELERY_TRANSPORT_OPTIONS must be a JSON object")
    return {**DEFAULT_TRANSPORT_OPTIONS, **overrides}


def celery_config() -> dict:
    """The celery executor's config, which is also the `execution.config` block of worker.yaml.

    Executor and workers must agree on broker, backend and these Celery settings: a step
    is acknowledged only once it has finished (`task_acks_late`), and a step whose worker
    process died is put back on its queue (`task_reject_on_worker_lost`), so a worker
    killed mid-batch costs a re-run of that batch on another worker, not the run.
    With the defaults (early acknowledgement) the killed step's message is gone and the
    run waits for its result forever.
    """
    return {
        "broker": celery_broker(),
        "backend": os.environ.get("FORGE_CELERY_BACKEND") or DEFAULT_BACKEND,
        "config_source": {
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 1,
            "broker_transport_options": transport_options(),
        },
    }


def worker_config() -> dict:
    """worker.yaml for `dagster-celery worker start -y`: the executor's own config."""
    return {"execution": {"config": celery_config()}}


def celery_executor():
    """dagster-celery's executor configured from the environment (imported only when chosen)."""
    from dagster_celery import celery_executor as dagster_celery_executor

    return dagster_celery_executor.configured(celery_config(), name="celery")


def celery_k8s_executor():
    """On Kubernetes: each step a Kubernetes Job, queued through Celery by hardware class.

    It takes broker, backend and Celery settings from the instance's CeleryK8sRunLauncher
    and its image from DAGSTER_CURRENT_IMAGE, both set by the Helm chart
    (deploy/helm/values.yaml), so it needs no configuration here.
    """
    from dagster_celery_k8s import celery_k8s_job_executor

    return celery_k8s_job_executor


CLUSTER_EXECUTORS = {"celery": celery_executor, "celery_k8s": celery_k8s_executor}


def instance_config() -> dict:
    """dagster.yaml of a production instance: run, event and schedule storage on PostgreSQL.

    The URL is read from the environment when the instance loads, so the file holds no
    password. Its scheme must name psycopg2 (`postgresql+psycopg2://`): SQLAlchemy 2.1
    reads a bare `postgresql://` as psycopg 3, which dagster-postgres does not install.
    """
    return {
        "telemetry": {"enabled": False},
        "storage": {"postgres": {"postgres_url": {"env": DAGSTER_STORAGE_URL_VARIABLE}}},
    }
