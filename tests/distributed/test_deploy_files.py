"""The deployment files (deploy/) say what the code does: the same queues, tags, executor names,
Celery settings and instance storage, and only keys Dagster's Helm chart accepts."""

import json
from pathlib import Path

import pytest
import yaml

from forge_pipeline.assign.assignment import gpu_batch_placement
from forge_pipeline.deploy import settings
from forge_pipeline.deploy.kubernetes import GPU_RESOURCE, K8S_CONFIG_TAG, NODE_POOL_LABEL, step_k8s_config
from forge_pipeline.orchestration.workload_assets import HARDWARE_CLASSES, QUEUE_TAG

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
VALUES = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())

# Property names of the chart objects these values set, from the chart's values.schema.json
# (dagster-io/dagster, helm/dagster/values.schema.json). The objects marked closed have
# `additionalProperties: false` there: helm refuses any other key in them.
CHART_KEYS = {
    "top": {"dagsterWebserver", "dagster-user-deployments", "postgresql", "generatePostgresqlPasswordSecret",
            "generateCeleryConfigSecret", "rabbitmq", "redis", "flower", "ingress", "imagePullSecrets",
            "computeLogManager", "scheduler", "runLauncher", "pythonLogs", "dagsterDaemon", "busybox", "migrate",
            "telemetry", "serviceAccount", "global", "retention", "additionalInstanceConfig"},
    "user_deployment": {"name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns",
                        "deploymentNamespace", "port", "env", "envConfigMaps", "envSecrets", "annotations",
                        "nodeSelector", "affinity", "tolerations", "podSecurityContext", "securityContext",
                        "resources", "livenessProbe", "readinessProbe", "startupProbe", "labels", "volumeMounts",
                        "volumes", "schedulerName", "initContainers", "sidecarContainers"},
    "postgresql": {"image", "enabled", "postgresqlHost", "postgresqlUsername", "postgresqlPassword",
                   "postgresqlDatabase", "postgresqlParams", "postgresqlScheme", "service"},
    "run_launcher": {"type", "config"},  # closed
    "celery_k8s_run_launcher": {"image", "imagePullPolicy", "nameOverride", "configSource", "workerQueues", "env",
                                "envConfigMaps", "envSecrets", "annotations", "nodeSelector", "affinity",
                                "tolerations", "podSecurityContext", "securityContext", "resources",
                                "livenessProbe", "volumeMounts", "volumes", "labels", "failPodOnRunFailure",
                                "schedulerName", "jobNamespace"},  # closed
    "worker_queue": {"replicaCount", "name", "labels", "nodeSelector", "configSource", "additionalCeleryArgs"},  # closed
}
RUN_LAUNCHER_TYPES = {"CeleryK8sRunLauncher", "K8sRunLauncher", "CustomRunLauncher"}


def celery_k8s_run_launcher() -> dict:
    return VALUES["runLauncher"]["config"]["celeryK8sRunLauncher"]


def user_deployment() -> dict:
    [deployment] = VALUES["dagster-user-deployments"]["deployments"]
    return deployment


def batch_nodes() -> dict:
    """{hardware class: the lifecycle job's batch node of that class}."""
    from forge_pipeline.definitions import defs

    graph = defs.resolve_job_def("workload_lifecycle").graph.node_named("shard_executions").definition
    return {hardware: graph.node_named(f"execute_{hardware}_batch") for hardware in HARDWARE_CLASSES}


def test_instance_template_is_the_instance_the_pool_writes():
    """deploy/dagster.yaml is exactly the instance configuration `pool up` writes: PostgreSQL storage from the env."""
    assert yaml.safe_load((DEPLOY / "dagster.yaml").read_text()) == settings.instance_config()


def test_worker_template_agrees_with_the_executor_and_dagster_celery_accepts_it(monkeypatch):
    """deploy/worker.yaml has the executor's backend and Celery settings, its broker from FORGE_CELERY_BROKER,
    and passes dagster-celery's own validation of a worker config."""
    from dagster_celery.cli import get_validated_config

    monkeypatch.setenv("FORGE_CELERY_BROKER", "amqp://guest:guest@broker.internal:5672//")
    monkeypatch.delenv("FORGE_CELERY_BACKEND", raising=False)
    monkeypatch.delenv("FORGE_CELERY_TRANSPORT_OPTIONS", raising=False)
    template = yaml.safe_load((DEPLOY / "worker.yaml").read_text())["execution"]["config"]
    expected = settings.celery_config()
    assert template["broker"] == {"env": "FORGE_CELERY_BROKER"}
    assert {key: template[key] for key in ("backend", "config_source")} == \
        {key: expected[key] for key in ("backend", "config_source")}
    validated = get_validated_config(str(DEPLOY / "worker.yaml"))
    assert validated["broker"] == "amqp://guest:guest@broker.internal:5672//"


def test_every_batch_step_carries_its_queue_and_kubernetes_placement():
    """Each hardware class's batch step is tagged with its own queue and its `dagster-k8s/config`; a gpu batch
    requests one GPU on the gpu node pool, and no other step names a queue (they all go to `dagster`)."""
    from forge_pipeline.definitions import defs

    for hardware, node in batch_nodes().items():
        assert node.tags[QUEUE_TAG] == hardware
        assert json.loads(node.tags[K8S_CONFIG_TAG]) == step_k8s_config(hardware)
        assert step_k8s_config(hardware)["pod_spec_config"]["node_selector"] == {NODE_POOL_LABEL: hardware}
    gpu = step_k8s_config("gpu")["container_config"]["resources"]
    assert gpu["requests"][GPU_RESOURCE] == gpu["limits"][GPU_RESOURCE] == "1"
    assert GPU_RESOURCE not in json.dumps(step_k8s_config("cpu"))
    graph = defs.resolve_job_def("workload_lifecycle").graph
    tagged = {node.name for node in graph.node_named("shard_executions").definition.nodes if QUEUE_TAG in node.tags}
    assert tagged == {f"execute_{hardware}_batch" for hardware in HARDWARE_CLASSES}
    assert not any(QUEUE_TAG in node.tags for node in graph.nodes if node.name != "shard_executions")


def test_unknown_hardware_class_has_no_kubernetes_placement():
    """Asking for the placement of a hardware class nobody defined is refused, not defaulted."""
    with pytest.raises(ValueError, match="tpu"):
        step_k8s_config("tpu")


def test_helm_worker_queues_are_the_queues_steps_are_sent_to():
    """The chart starts workers for exactly the default queue and one queue per hardware class."""
    queues = [queue["name"] for queue in celery_k8s_run_launcher()["workerQueues"]]
    assert sorted(queues) == sorted(settings.WORKER_QUEUES) == sorted({settings.DEFAULT_QUEUE, *HARDWARE_CLASSES})


def test_helm_values_name_settings_the_code_reads():
    """Executor, Celery settings, storage scheme, code location module and shared paths in the values are the
    ones the code understands."""
    import importlib

    deployment, launcher = user_deployment(), celery_k8s_run_launcher()
    for env in (deployment["env"], launcher["env"]):
        assert env["FORGE_EXECUTOR"] in settings.CLUSTER_EXECUTORS
        assert env["FORGE_EXECUTOR"] == "celery_k8s" and VALUES["runLauncher"]["type"] == "CeleryK8sRunLauncher"
        # planning runs on the general node pool: only `dedicated` lets it give GPU Agents their batches
        assert gpu_batch_placement(env["FORGE_GPU_BATCHES"]) == "dedicated"
    assert VALUES["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    module = deployment["dagsterApiGrpcArgs"][deployment["dagsterApiGrpcArgs"].index("-m") + 1]
    assert hasattr(importlib.import_module(module), "defs")
    for owner in (deployment, launcher):
        mounts = {mount["mountPath"] for mount in owner["volumeMounts"]}
        assert owner["env"]["FORGE_HOME"] in mounts
    storage = VALUES["additionalInstanceConfig"]["local_artifact_storage"]["config"]["base_dir"]
    assert storage.startswith(deployment["env"]["FORGE_HOME"] + "/")


def test_helm_celery_settings_are_the_executors(monkeypatch):
    """The chart's configSource (used by the step executor and every worker) holds the executor's
    acknowledgement settings, so a worker lost mid-step has its step requeued on Kubernetes too."""
    monkeypatch.setenv("FORGE_CELERY_BROKER", "amqp://broker.internal//")
    expected = settings.celery_config()["config_source"]
    config_source = celery_k8s_run_launcher()["configSource"]
    assert config_source == {key: expected[key] for key in config_source}
    assert config_source["task_acks_late"] and config_source["task_reject_on_worker_lost"]


def test_helm_values_use_only_keys_the_chart_schema_allows():
    """Every key set under the chart's objects is one its values schema names (closed objects refuse others)."""
    assert set(VALUES) <= CHART_KEYS["top"]
    assert set(user_deployment()) <= CHART_KEYS["user_deployment"]
    assert {"name", "image", "port"} <= set(user_deployment())
    assert set(VALUES["postgresql"]) <= CHART_KEYS["postgresql"]
    assert set(VALUES["runLauncher"]) <= CHART_KEYS["run_launcher"]
    assert VALUES["runLauncher"]["type"] in RUN_LAUNCHER_TYPES
    assert set(celery_k8s_run_launcher()) <= CHART_KEYS["celery_k8s_run_launcher"]
    for queue in celery_k8s_run_launcher()["workerQueues"]:
        assert set(queue) <= CHART_KEYS["worker_queue"] and {"name", "replicaCount"} <= set(queue)
        assert isinstance(queue["replicaCount"], int) and queue["replicaCount"] > 0
