"""The serving app's Kubernetes objects, as plain dicts: one definition for CDK and for kubectl.

`serving_manifests` is pure (no CDK, no Kubernetes client), so the construct that applies them
(stacks/constructs/serving_eks.py), the tests and `python -m serving.k8s` all see the same
objects. Choices a reviewer should know about:

- The Deployment has no `replicas`: the HorizontalPodAutoscaler owns the count, and a fixed
  value would reset the scale to it on every re-apply.
- The PodDisruptionBudget is `maxUnavailable: 1` whatever `min_replicas` is. `minAvailable: 1`
  deadlocks node drains when one replica runs, and lets a drain evict all but one pod of a
  scaled-out Deployment; `maxUnavailable: 1` never blocks a drain and takes one pod at a time.
- Shutdown: the preStop sleep keeps the pod serving while its endpoint is removed from every
  node's Service rules; then uvicorn gets SIGTERM and finishes in-flight requests within the
  rest of the grace period.
- The pod satisfies the "restricted" Pod Security Standard, which the namespace enforces.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # the image ships serving/ without mlops/; only the CLI needs the config
    from mlops.config_serving import EksServing

APP_FACTORY = "serving.app:app_from_env"
CONTAINER_PORT = 8080
SERVICE_PORT = 80
HEALTH_PATH = "/health"
READY_PATH = "/ready"
DEFAULT_NAME = "model-proxy"
MODEL_CACHE_ENV = "MLOPS_SERVING_MODEL_CACHE_DIR"
MODEL_CACHE_DIR = "/var/cache/mlops-models"
RUN_AS = (
    10001  # the image's numeric user (serving/Dockerfile); numeric so runAsNonRoot is checkable
)
PRE_STOP_SECONDS = 10
GRACE_SECONDS = 40
STARTUP_BUDGET_SECONDS = 600  # models are downloaded from the registry before /health answers
ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"

Manifest = dict[str, Any]
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def serving_manifests(
    config: EksServing, *, env: Mapping[str, str], role_arn: str, name: str = DEFAULT_NAME
) -> list[Manifest]:
    """Namespace, ServiceAccount (IRSA), Deployment, Service, HPA and PDB, in apply order.

    `env` is the app's runtime settings (`MLOPS_SERVING_*`, serving/settings.py); the model
    cache variable is added when absent and decides where the cache volume is mounted.
    Raises ValueError when the config has no image or an env name is not a variable name.
    """
    if config.image is None:
        raise ValueError("serving.eks.image is required to render the serving manifests")
    bad = sorted(key for key in env if not _ENV_NAME.match(key))
    if bad:
        raise ValueError(f"not environment variable names: {bad}")
    env = {MODEL_CACHE_ENV: MODEL_CACHE_DIR, **env}
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "mlops-platform"}
    ns = config.namespace

    def meta(**extra: Any) -> Manifest:
        return {"name": name, "namespace": ns, "labels": labels, **extra}

    return [
        _namespace(ns),
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": meta(annotations={ROLE_ARN_ANNOTATION: role_arn,
                                       "eks.amazonaws.com/sts-regional-endpoints": "true"})},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(),
         "spec": _deployment_spec(config, config.image, env, name, labels)},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta(),
         "spec": {"type": "ClusterIP", "selector": _selector(name),
                  "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": CONTAINER_PORT,
                             "protocol": "TCP"}]}},
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta(),
         "spec": _hpa_spec(config, name)},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(),
         "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _selector(name)},
                  "unhealthyPodEvictionPolicy": "AlwaysAllow"}},
    ]  # fmt: skip


class _PlainDumper(yaml.SafeDumper):
    """Writes a dict used twice (shared labels) out twice instead of as a YAML alias."""

    def ignore_aliases(self, data: Any) -> bool:  # noqa: ARG002 (PyYAML's signature)
        return True


def render_yaml(manifests: Sequence[Manifest]) -> str:
    """Multi-document YAML in the given order, keys as written (what `kubectl apply -f` reads)."""
    return yaml.dump_all(
        list(manifests), Dumper=_PlainDumper, sort_keys=False, default_flow_style=False
    )


def _namespace(namespace: str) -> Manifest:
    enforce = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn")}
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {"kubernetes.io/metadata.name": namespace,
                                                   **enforce}},
    }  # fmt: skip


def _selector(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name}


def _deployment_spec(
    config: EksServing, image: str, env: Mapping[str, str], name: str, labels: Mapping[str, str]
) -> Manifest:
    return {
        "selector": {"matchLabels": _selector(name)},
        "revisionHistoryLimit": 5,
        "strategy": {"type": "RollingUpdate",
                     "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {
            "metadata": {"labels": dict(labels)},
            "spec": {
                "serviceAccountName": name,
                "enableServiceLinks": False,
                "terminationGracePeriodSeconds": GRACE_SECONDS,
                "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS,
                                    "runAsGroup": RUN_AS, "fsGroup": RUN_AS,
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "topologySpreadConstraints": [
                    _spread(name, "topology.kubernetes.io/zone"),
                    _spread(name, "kubernetes.io/hostname"),
                ],
                "containers": [_container(config, image, env)],
                "volumes": [
                    {"name": "model-cache", "emptyDir": {"sizeLimit": "4Gi"}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": "512Mi"}},
                ],
            },
        },
    }  # fmt: skip


def _spread(name: str, topology_key: str) -> Manifest:
    """Best-effort spread: a zone without capacity must not stop the HPA from scaling out."""
    return {
        "maxSkew": 1,
        "topologyKey": topology_key,
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": _selector(name)},
        "matchLabelKeys": ["pod-template-hash"],
    }


def _container(config: EksServing, image: str, env: Mapping[str, str]) -> Manifest:
    resources = {"cpu": config.cpu, "memory": config.memory}
    return {
        "name": "app",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["uvicorn", "--factory", APP_FACTORY, "--host", "0.0.0.0",
                    "--port", str(CONTAINER_PORT), "--workers", str(config.workers)],
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "env": [{"name": key, "value": env[key]} for key in sorted(env)],
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "startupProbe": _probe(HEALTH_PATH, period=5, timeout=2,
                               failures=STARTUP_BUDGET_SECONDS // 5),
        "readinessProbe": _probe(READY_PATH, period=5, timeout=2, failures=2),
        "livenessProbe": _probe(HEALTH_PATH, period=10, timeout=3, failures=3),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRE_STOP_SECONDS)]}}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "volumeMounts": _mounts(env[MODEL_CACHE_ENV]),
    }  # fmt: skip


def _mounts(cache_dir: str) -> list[Manifest]:
    """/tmp and the model cache, outer paths first (the cache may sit inside /tmp)."""
    mounts = [{"name": "tmp", "mountPath": "/tmp"}, {"name": "model-cache", "mountPath": cache_dir}]
    return sorted(mounts, key=lambda mount: len(Path(mount["mountPath"]).parts))


def _probe(path: str, *, period: int, timeout: int, failures: int) -> Manifest:
    return {
        "httpGet": {"path": path, "port": CONTAINER_PORT, "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def _hpa_spec(config: EksServing, name: str) -> Manifest:
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "minReplicas": config.min_replicas,
        "maxReplicas": config.max_replicas,
        "metrics": [{"type": "Resource", "resource": {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": config.target_cpu_percent},
        }}],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300,
                                   "policies": [{"type": "Percent", "value": 50,
                                                 "periodSeconds": 60}]}},
    }  # fmt: skip


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m serving.k8s",
        description="Render the serving app's Kubernetes manifests from cdk.json.",
    )
    parser.add_argument("--env", required=True, help="environment in cdk.json (local|dev|prod)")
    parser.add_argument("--cdk-json", type=Path, default=Path("cdk.json"))
    parser.add_argument("--image", help="override serving.eks.image")
    parser.add_argument("--role-arn", default="<irsa-role-arn>", help="the pods' IAM role")
    parser.add_argument("--name", default=DEFAULT_NAME)
    parser.add_argument(
        "--set", dest="values", action="append", default=[], metavar="NAME=VALUE",
        help="an app setting to add or override, e.g. MLOPS_SERVING_REDIS_HOST=...",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the manifests of one environment; settings that exist only after deployment
    (Redis endpoint, secret ARN, the spec) are passed with --set."""
    from mlops.config import load_platform_config, read_cdk_context, select_environment
    from mlops.config_serving import EksServing
    from mlops.deployments import pointer_prefix

    args = _parse_args(argv)
    context = read_cdk_context(args.cdk_json)
    platform = load_platform_config(context.get("platform"))
    env_config = select_environment(platform, args.env)
    serving = env_config.serving
    eks = serving.eks
    if args.image:
        eks = EksServing.model_validate({**eks.model_dump(), "image": args.image})
    env = {
        "MLOPS_SERVING_MODEL_SOURCE": "champion",
        "MLOPS_SERVING_CHAMPION_PREFIX": pointer_prefix(platform.project, args.env),
        "MLOPS_SERVING_MAX_BATCH_SIZE": str(serving.max_batch_size),
        "MLOPS_SERVING_REDIS_TIMEOUT_MS": str(serving.redis_timeout_ms),
        "MLOPS_SERVING_REFRESH_SECONDS": str(serving.refresh_seconds),
        "MLOPS_SERVING_REGION": env_config.region,
    }
    for item in args.values:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected NAME=VALUE")
        env[key] = value
    try:
        manifests = serving_manifests(eks, env=env, role_arn=args.role_arn, name=args.name)
    except ValueError as error:
        raise SystemExit(f"{error} (set serving.eks in cdk.json or pass --image)") from None
    sys.stdout.write(render_yaml(manifests))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
