"""The serving app's Kubernetes manifests (serving/k8s.py) and its image (serving/Dockerfile)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from mlops.config_serving import EksServing
from serving import k8s
from serving.k8s import render_yaml, serving_manifests

pytestmark = pytest.mark.unit
REPO_ROOT = Path(__file__).resolve().parents[2]
ROLE_ARN = "arn:aws:iam::123456789012:role/serving-pods"
CONFIG = EksServing(
    mode="existing", cluster_name="shared", kubectl_role_arn="arn:aws:iam::123456789012:role/k",
    oidc_provider_arn="arn:aws:iam::123456789012:oidc-provider/oidc.eks.example/id/X",
    namespace="serving-dev", image="123456789012.dkr.ecr.ap-northeast-2.amazonaws.com/proxy:v7",
    min_replicas=3, max_replicas=7, target_cpu_percent=60, cpu="500m", memory="768Mi", workers=2,
)  # fmt: skip
ENV = {
    "MLOPS_SERVING_REGION": "ap-northeast-2",
    "MLOPS_SERVING_REDIS_HOST": "redis.internal",
    "MLOPS_SERVING_MAX_BATCH_SIZE": "100",
}


def _by_kind(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["kind"]: m for m in manifests}


@pytest.fixture(scope="module")
def objects() -> dict[str, dict[str, Any]]:
    return _by_kind(serving_manifests(CONFIG, env=ENV, role_arn=ROLE_ARN))


def _pod(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = objects["Deployment"]["spec"]["template"]["spec"]
    return spec


def _container(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (container,) = _pod(objects)["containers"]
    return container  # type: ignore[no-any-return]


def test_objects_in_apply_order_with_identity_and_namespace() -> None:
    manifests = serving_manifests(CONFIG, env=ENV, role_arn=ROLE_ARN)
    assert [(m["apiVersion"], m["kind"]) for m in manifests] == [
        ("v1", "Namespace"), ("v1", "ServiceAccount"), ("apps/v1", "Deployment"),
        ("v1", "Service"), ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("policy/v1", "PodDisruptionBudget"),
    ]  # fmt: skip
    assert manifests[0]["metadata"]["name"] == "serving-dev"
    for manifest in manifests[1:]:
        assert manifest["metadata"]["name"] == "model-proxy"
        assert manifest["metadata"]["namespace"] == "serving-dev"
        assert manifest["metadata"]["labels"]["app.kubernetes.io/name"] == "model-proxy"


def test_namespace_enforces_the_restricted_pod_security_standard(
    objects: dict[str, dict[str, Any]],
) -> None:
    labels = objects["Namespace"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_probes_point_at_ready_and_health_on_the_app_port(
    objects: dict[str, dict[str, Any]],
) -> None:
    container = _container(objects)
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    probes = {kind: container[kind]["httpGet"] for kind in
              ("readinessProbe", "livenessProbe", "startupProbe")}  # fmt: skip
    assert probes["readinessProbe"] == {"path": "/ready", "port": 8080, "scheme": "HTTP"}
    assert probes["livenessProbe"] == {"path": "/health", "port": 8080, "scheme": "HTTP"}
    assert probes["startupProbe"] == {"path": "/health", "port": 8080, "scheme": "HTTP"}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # model download


def test_command_runs_the_uvicorn_factory_with_the_configured_workers(
    objects: dict[str, dict[str, Any]],
) -> None:
    container = _container(objects)
    assert container["image"] == CONFIG.image
    assert container["command"] == [
        "uvicorn", "--factory", "serving.app:app_from_env", "--host", "0.0.0.0",
        "--port", "8080", "--workers", "2",
    ]  # fmt: skip


def test_resources_requests_equal_limits_equal_config(objects: dict[str, dict[str, Any]]) -> None:
    resources = _container(objects)["resources"]
    assert resources == {
        "requests": {"cpu": "500m", "memory": "768Mi"},
        "limits": {"cpu": "500m", "memory": "768Mi"},
    }


def test_hpa_scales_the_deployment_on_cpu(objects: dict[str, dict[str, Any]]) -> None:
    spec = objects["HorizontalPodAutoscaler"]["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "model-proxy"
    }  # fmt: skip
    assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 7)
    assert spec["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}]  # fmt: skip
    assert "replicas" not in objects["Deployment"]["spec"]  # the HPA owns the count


@pytest.mark.parametrize("min_replicas", [1, 2, 5])
def test_pdb_allows_one_disruption_at_a_time_for_any_replica_count(min_replicas: int) -> None:
    config = CONFIG.model_copy(update={"min_replicas": min_replicas})
    pdb = _by_kind(serving_manifests(config, env=ENV, role_arn=ROLE_ARN))["PodDisruptionBudget"]
    assert pdb["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in pdb["spec"]  # minAvailable 1 with one replica blocks drains
    assert pdb["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "model-proxy"}}
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_pod_and_container_security_context(objects: dict[str, dict[str, Any]]) -> None:
    pod = _pod(objects)["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == pod["runAsGroup"] == k8s.RUN_AS
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    container = _container(objects)["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["readOnlyRootFilesystem"] is True
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["seccompProfile"] == {"type": "RuntimeDefault"}


def test_writable_paths_are_empty_dirs_at_tmp_and_the_model_cache(
    objects: dict[str, dict[str, Any]],
) -> None:
    volumes = {v["name"]: v for v in _pod(objects)["volumes"]}
    assert all("emptyDir" in volume for volume in volumes.values())
    mounts = {m["mountPath"]: m["name"] for m in _container(objects)["volumeMounts"]}
    assert mounts == {"/tmp": "tmp", "/var/cache/mlops-models": "model-cache"}
    assert set(mounts.values()) == set(volumes)


def test_a_model_cache_inside_tmp_is_mounted_after_tmp() -> None:
    env = {**ENV, "MLOPS_SERVING_MODEL_CACHE_DIR": "/tmp/models"}
    container = _container(_by_kind(serving_manifests(CONFIG, env=env, role_arn=ROLE_ARN)))
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/tmp", "/tmp/models"]
    assert {"name": "MLOPS_SERVING_MODEL_CACHE_DIR", "value": "/tmp/models"} in container["env"]


def test_rolling_update_spread_and_graceful_shutdown(objects: dict[str, dict[str, Any]]) -> None:
    strategy = objects["Deployment"]["spec"]["strategy"]
    assert strategy["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    pod = _pod(objects)
    zone = pod["topologySpreadConstraints"][0]
    assert zone["topologyKey"] == "topology.kubernetes.io/zone"
    assert zone["labelSelector"] == {"matchLabels": {"app.kubernetes.io/name": "model-proxy"}}
    pre_stop = _container(objects)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + 20


def test_service_account_carries_the_role_and_the_pods_use_it(
    objects: dict[str, dict[str, Any]],
) -> None:
    annotations = objects["ServiceAccount"]["metadata"]["annotations"]
    assert annotations["eks.amazonaws.com/role-arn"] == ROLE_ARN
    assert _pod(objects)["serviceAccountName"] == objects["ServiceAccount"]["metadata"]["name"]


def test_service_maps_port_80_to_the_app_on_the_pods_labels(
    objects: dict[str, dict[str, Any]],
) -> None:
    spec = objects["Service"]["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["ports"] == [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]
    pod_labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"].items() <= pod_labels.items()
    assert objects["Deployment"]["spec"]["selector"]["matchLabels"] == spec["selector"]


def test_env_is_a_sorted_name_value_list_with_the_cache_dir(
    objects: dict[str, dict[str, Any]],
) -> None:
    assert _container(objects)["env"] == [
        {"name": "MLOPS_SERVING_MAX_BATCH_SIZE", "value": "100"},
        {"name": "MLOPS_SERVING_MODEL_CACHE_DIR", "value": "/var/cache/mlops-models"},
        {"name": "MLOPS_SERVING_REDIS_HOST", "value": "redis.internal"},
        {"name": "MLOPS_SERVING_REGION", "value": "ap-northeast-2"},
    ]


def test_rejects_env_names_that_are_not_variables() -> None:
    with pytest.raises(ValueError, match="MLOPS-SERVING-X"):
        serving_manifests(CONFIG, env={"MLOPS-SERVING-X": "1"}, role_arn=ROLE_ARN)


def test_needs_an_image() -> None:
    with pytest.raises(ValueError, match="image is required"):
        serving_manifests(EksServing(), env=ENV, role_arn=ROLE_ARN)


def test_yaml_is_multi_document_and_round_trips() -> None:
    manifests = serving_manifests(CONFIG, env=ENV, role_arn=ROLE_ARN)
    text = render_yaml(manifests)
    assert text.count("\n---\n") == len(manifests) - 1
    assert "&id" not in text and "*id" not in text  # no YAML aliases for shared label dicts
    assert list(yaml.safe_load_all(text)) == manifests
    assert "value: '100'" in text  # numbers in env values stay strings


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mode": "create"}, "image is required"),
        ({"mode": "existing", "image": "i", "cluster_name": "c"}, "kubectl_role_arn"),
        ({"mode": "create", "image": "i", "min_replicas": 4, "max_replicas": 3}, "below"),
        ({"workers": 0}, "greater than or equal to 1"),
        ({"target_cpu_percent": 5}, "greater than or equal to 10"),
        ({"namespace": "Serving_NS"}, "should match pattern"),
        ({"replicas": 2}, "Extra inputs are not permitted"),
    ],
)
def test_config_rejects_invalid_combinations(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        EksServing.model_validate(fields)


def test_cli_renders_an_environment_from_cdk_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = k8s.main([
        "--env", "dev", "--cdk-json", str(REPO_ROOT / "cdk.json"), "--image", "repo/proxy:1",
        "--role-arn", ROLE_ARN, "--set", "MLOPS_SERVING_REDIS_HOST=r.internal",
    ])  # fmt: skip
    assert code == 0
    objects = _by_kind(list(yaml.safe_load_all(capsys.readouterr().out)))
    container = _container(objects)
    env = {item["name"]: item["value"] for item in container["env"]}
    assert container["image"] == "repo/proxy:1"
    assert env["MLOPS_SERVING_REGION"] == "ap-northeast-2"
    assert env["MLOPS_SERVING_REDIS_HOST"] == "r.internal"
    assert env["MLOPS_SERVING_MODEL_SOURCE"] == "champion"  # as the stack sets it
    assert env["MLOPS_SERVING_CHAMPION_PREFIX"] == "/mlops/dev/champions/"


def test_cli_without_an_image_says_what_to_set() -> None:
    with pytest.raises(SystemExit, match="pass --image"):
        k8s.main(["--env", "dev", "--cdk-json", str(REPO_ROOT / "cdk.json")])


# serving/Dockerfile cannot be built here (no Docker engine); these keep it consistent.
DOCKERFILE = REPO_ROOT / "serving" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_copies_only_files_that_exist_and_the_context_admits() -> None:
    sources = []
    for keyword, rest in _instructions():
        if keyword == "COPY":
            parts = [p for p in rest.split() if not p.startswith("--")]
            sources += parts[:-1]
    assert "serving/" in sources and "features/redis_plan.py" in sources
    allowed = [line[1:] for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")]  # fmt: skip
    for source in sources:
        assert (REPO_ROOT / source).exists(), source
        assert any(source.startswith(prefix) for prefix in allowed), source


def test_dockerfile_runs_the_factory_as_the_manifests_user() -> None:
    instructions = dict(_instructions())
    assert json.loads(instructions["CMD"])[:3] == ["uvicorn", "--factory", k8s.APP_FACTORY]
    assert instructions["USER"] == f"{k8s.RUN_AS}:{k8s.RUN_AS}"
    assert instructions["EXPOSE"] == str(k8s.CONTAINER_PORT)
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.12\.\d+-slim-\w+", instructions["ARG"])


def test_dockerfile_pins_equal_the_lock() -> None:
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    locked = {package["name"]: package["version"] for package in lock["package"]}
    pins = dict(re.findall(r"\b([a-z0-9_-]+)==([0-9][^\s\\]*)", DOCKERFILE.read_text()))
    assert set(pins) == {"uvicorn", "uvloop", "httptools", "boto3"}
    assert pins == {name: locked[name] for name in pins}
