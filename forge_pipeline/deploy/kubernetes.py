"""Where a batch step runs on Kubernetes: the `dagster-k8s/config` tag of each hardware class.

On Kubernetes (deploy/helm/values.yaml) the run launcher is the CeleryK8sRunLauncher and
FORGE_EXECUTOR=celery_k8s: a step is queued on its `dagster-celery/queue` (as on the local
pool) and the Celery worker that takes it launches a Kubernetes Job for it. That Job's pod
is the run launcher's defaults (image, env, volumes) merged with the step's
`dagster-k8s/config` tag: `container_config` becomes the step container's fields and
`pod_spec_config` the pod spec's (snake_case names of the Kubernetes API objects). So a
gpu batch asks for one `nvidia.com/gpu`, which only a node exposing NVIDIA's device plugin
can satisfy, and selects the node pool labelled `forge.pool/hardware=gpu`, tolerating the
taint that keeps other pods off GPU nodes. Every other step carries no tag and runs with
the run launcher's defaults on the general node pool.

This module imports nothing from the orchestration, so the op definitions can import it.
"""

from __future__ import annotations

K8S_CONFIG_TAG = "dagster-k8s/config"
GPU_RESOURCE = "nvidia.com/gpu"
NODE_POOL_LABEL = "forge.pool/hardware"  # the cluster admin labels each node pool with its hardware class
# One Agent batch per pod. Memory is limited as well as requested, so a batch that outgrows
# its node is killed (and retried by its op's RetryPolicy) instead of starving its neighbours.
STEP_RESOURCES = {
    "gpu": {"requests": {"cpu": "4", "memory": "16Gi", GPU_RESOURCE: "1"},
            "limits": {"memory": "16Gi", GPU_RESOURCE: "1"}},
    "cpu": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "4Gi"}},
}
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


def step_k8s_config(hardware: str) -> dict:
    """The `dagster-k8s/config` tag value for the batch steps of one hardware class."""
    if hardware not in STEP_RESOURCES:
        raise ValueError(f"no Kubernetes placement for hardware class {hardware!r}; known: {', '.join(STEP_RESOURCES)}")
    pod_spec_config: dict = {"node_selector": {NODE_POOL_LABEL: hardware}}
    if hardware == "gpu":
        pod_spec_config["tolerations"] = [GPU_TOLERATION]
    return {"container_config": {"resources": STEP_RESOURCES[hardware]}, "pod_spec_config": pod_spec_config}
