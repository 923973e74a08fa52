"""The approval hook against the emulator's APIs: registry, S3, DynamoDB, SSM and Lambda.

The hook object is the deployed handler's (`Hook`), with a real trained model in S3 and a real
Lambda function whose alias it moves. The rollout here is all at once (no deployment group);
traffic shifting through CodeDeploy runs in tests/e2e/test_approval_deployment.py.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from lambdas.approval_hook.handler import Hook, HookSettings
from lambdas.approval_hook.rollout import PINS_VARIABLE
from localaws import sagemaker_registry
from localaws.emulator import Emulator, running_emulator
from mlops.deployments import ChampionPointer, Ledger, Outcome

pytestmark = pytest.mark.integration
MODEL = "credit-risk"
BUCKET = "artifacts"
FUNCTION = "serving"
PREFIX = "/mlops/test/champions/"
_clock = [datetime(2026, 11, 21, 9, 0, tzinfo=UTC)]


@pytest.fixture(scope="module")
def spec() -> str:
    from mlops.config_serving import ServingConfig
    from serving.spec import build_spec_json

    return build_spec_json(ServingConfig(), "credit_risk")


@pytest.fixture
def world(sample_model_archive: bytes, spec: str) -> Iterator[tuple[Emulator, Hook]]:
    with running_emulator() as emulator:
        sagemaker_registry.install()  # the engine's fix: an update keeps the metadata
        _create_resources(emulator, sample_model_archive)
        settings = HookSettings(
            ledger_table="ledger", champion_prefix=PREFIX, models=MODEL,
            mlops_serving_spec=spec, serving_function=FUNCTION,
        )  # fmt: skip
        try:
            yield emulator, Hook(settings, boto3.session.Session())
        finally:
            sagemaker_registry.uninstall()


def _create_resources(emulator: Emulator, archive: bytes) -> None:
    s3 = emulator.client("s3")
    s3.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": emulator.region}
    )
    s3.put_object(Bucket=BUCKET, Key="runs/good/output/model.tar.gz", Body=archive)
    s3.put_object(
        Bucket=BUCKET, Key="runs/bad/output/model.tar.gz", Body=_tar({"model.onnx": b"x"})
    )
    emulator.client("dynamodb").create_table(
        TableName="ledger", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "model", "KeyType": "HASH"},
                   {"AttributeName": "entry", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "model", "AttributeType": "S"},
                              {"AttributeName": "entry", "AttributeType": "S"}],
    )  # fmt: skip
    role = emulator.client("iam").create_role(
        RoleName="fn",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    awslambda = emulator.client("lambda")
    awslambda.create_function(
        FunctionName=FUNCTION, Runtime="python3.12", Role=role, Handler="index.handler",
        Code={"ZipFile": _zip("def handler(event, context):\n    return event\n")},
        Environment={"Variables": {"MLOPS_SERVING_MODEL_SOURCE": "champion"}},
    )  # fmt: skip
    first = awslambda.publish_version(FunctionName=FUNCTION)["Version"]
    awslambda.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion=first)
    emulator.client("sagemaker").create_model_package_group(ModelPackageGroupName=MODEL)


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", source)
    return buffer.getvalue()


def _tar(files: dict[str, bytes]) -> bytes:
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def register(run: str = "good", metrics: bool = True) -> str:
    metadata = {"run_id": run, "gate_metric": "auc", "code_version": "3"}
    if metrics:
        metadata["metric.auc"] = "0.81"
    request: dict[str, Any] = {
        "ModelPackageGroupName": MODEL, "ModelApprovalStatus": "PendingManualApproval",
        "InferenceSpecification": {
            "Containers": [{"Image": "img", "ModelDataUrl": f"s3://{BUCKET}/runs/{run}/output/model.tar.gz"}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        "CustomerMetadataProperties": metadata,
    }  # fmt: skip
    if metrics:
        report = f"s3://{BUCKET}/runs/{run}/evaluation.json"
        statistics = {"ContentType": "application/json", "S3Uri": report}
        request["ModelMetrics"] = {"ModelQuality": {"Statistics": statistics}}
    return str(boto3.client("sagemaker").create_model_package(**request)["ModelPackageArn"])


def decide(arn: str, status: str, note: str = "reviewed") -> dict[str, Any]:
    """Change the status in the registry; return the event SageMaker would send for it."""
    sagemaker = boto3.client("sagemaker")
    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status,
                                   ApprovalDescription=note)  # fmt: skip
    return event_for(arn)


def event_for(arn: str, **override: Any) -> dict[str, Any]:
    detail = boto3.client("sagemaker").describe_model_package(ModelPackageName=arn)
    detail = json.loads(json.dumps(detail, default=str))
    detail.pop("ResponseMetadata", None)
    _clock[0] += timedelta(minutes=1)
    detail["LastModifiedTime"] = _clock[0].isoformat()
    detail.update(override)
    return {"id": f"evt-{_clock[0].timestamp()}", "source": "aws.sagemaker",
            "detail-type": "SageMaker Model Package State Change", "detail": detail}  # fmt: skip


def alias_pins() -> dict[str, str]:
    awslambda = boto3.client("lambda")
    version = awslambda.get_alias(FunctionName=FUNCTION, Name="live")["FunctionVersion"]
    config = awslambda.get_function_configuration(FunctionName=FUNCTION, Qualifier=version)
    return dict(json.loads(config["Environment"]["Variables"].get(PINS_VARIABLE, "{}")))


def test_approval_promotes_pins_and_moves_the_alias_then_rejection_rolls_back(
    world: tuple[Emulator, Hook],
) -> None:
    _, hook = world
    v1, v2 = register(), register()
    first = hook.handle(decide(v1, "Approved", "first version"))
    assert first["action"] == "promote" and first["outcome"] == "deployed", first
    assert alias_pins() == {MODEL: v1}
    pointer = ChampionPointer(PREFIX).get(MODEL)
    assert pointer is not None and (pointer.version, pointer.package_arn) == (1, v1)

    assert hook.handle(decide(v2, "Approved"))["outcome"] == "deployed"
    assert alias_pins() == {MODEL: v2}
    rolled = hook.handle(decide(v2, "Rejected", "AUC fell in production"))
    assert rolled["action"] == "rollback" and rolled["outcome"] == "deployed", rolled
    assert alias_pins() == {MODEL: v1}
    pointer = ChampionPointer(PREFIX).get(MODEL)
    assert pointer is not None and pointer.version == 1

    history = Ledger("ledger").history(MODEL)
    assert [(e.version, e.status, e.action.value, e.outcome.value) for e in history] == [
        (2, "Rejected", "rollback", "deployed"),
        (2, "Approved", "promote", "deployed"),
        (1, "Approved", "promote", "deployed"),
    ]
    rollback = history[0]
    assert rollback.previous_champion is not None and rollback.previous_champion.version == 2
    assert rollback.target is not None and rollback.target.version == 1
    assert rollback.description == "AUC fell in production"
    assert history[2].previous_champion is None and history[2].lambda_version is not None


def test_a_redelivered_event_deploys_once_and_an_older_approval_never_overrides(
    world: tuple[Emulator, Hook],
) -> None:
    _, hook = world
    v1, v2 = register(), register()
    approve_v1 = decide(v1, "Approved")
    approve_v2 = decide(v2, "Approved")
    versions_before = _published()
    assert hook.handle(approve_v2)["outcome"] == "deployed"
    assert hook.handle(approve_v2)["duplicate"]  # EventBridge delivered it twice
    late = hook.handle(approve_v1)  # the older approval arrives last
    assert late["action"] == "record" and late["outcome"] == "recorded"
    assert alias_pins() == {MODEL: v2}
    assert _published() == versions_before + 1
    entries = Ledger("ledger").history(MODEL)  # in the order the registry changed
    assert [(e.version, e.outcome) for e in entries] == [
        (2, Outcome.DEPLOYED),
        (1, Outcome.RECORDED),
    ]
    assert "older than v2" in entries[1].reason


def test_a_version_that_cannot_serve_is_never_rolled_out(world: tuple[Emulator, Hook]) -> None:
    _, hook = world
    good = register()
    hook.handle(decide(good, "Approved"))
    broken = register(run="bad")
    unmeasured = register(metrics=False)
    for arn, why in ((broken, "has no ['signature.json']"), (unmeasured, "no metrics recorded")):
        result = hook.handle(decide(arn, "Approved"))
        assert result["outcome"] == "failed", result
        entry = Ledger("ledger").history(MODEL, limit=1)[0]
        assert why in entry.reason, entry.reason
        assert alias_pins() == {MODEL: good}  # the previous champion keeps serving
    pointer = ChampionPointer(PREFIX).get(MODEL)
    assert pointer is not None and pointer.package_arn == good


def test_rejecting_the_only_version_keeps_it_serving_and_says_so(
    world: tuple[Emulator, Hook],
) -> None:
    _, hook = world
    only = register()
    hook.handle(decide(only, "Approved"))
    result = hook.handle(decide(only, "Rejected", "bad"))
    assert (result["action"], result["outcome"]) == ("rollback", "failed")
    entry = Ledger("ledger").history(MODEL, limit=1)[0]
    assert "no other version is approved" in entry.reason and entry.outcome is Outcome.FAILED
    assert alias_pins() == {MODEL: only}


def _published() -> int:
    versions = boto3.client("lambda").list_versions_by_function(FunctionName=FUNCTION)["Versions"]
    return len([v for v in versions if v["Version"] != "$LATEST"])


def test_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in {"LEDGER_TABLE": "t", "CHAMPION_PREFIX": "/p/", "MODELS": "a, b",
                        "MLOPS_SERVING_SPEC": "{}", "SERVING_FUNCTION": "fn"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    settings = HookSettings()  # type: ignore[call-arg]
    assert settings.groups == ["a", "b"] and settings.serving_alias == "live"


def test_a_redelivery_during_a_canary_waits_for_the_shift_to_end(
    world: tuple[Emulator, Hook], spec: str
) -> None:
    """The approval event arrives again while CodeDeploy still shifts traffic: nothing is
    redone, and the shift's end event alone finishes the entry and moves the pointer."""
    from localaws import codedeploy

    emulator, _ = world
    codedeploy.install()
    scale = codedeploy.seconds_per_minute()
    codedeploy.set_time_scale(0.2)  # the canary's 5 minutes last a second
    client = emulator.client("codedeploy")
    client.create_application(applicationName="serving", computePlatform="Lambda")
    client.create_deployment_group(
        applicationName="serving", deploymentGroupName="live",
        serviceRoleArn="arn:aws:iam::123456789012:role/cd",
        deploymentConfigName="CodeDeployDefault.LambdaCanary10Percent5Minutes",
    )  # fmt: skip
    hook = Hook(HookSettings(
        ledger_table="ledger", champion_prefix=PREFIX, models=MODEL, mlops_serving_spec=spec,
        serving_function=FUNCTION, rollout_application="serving", rollout_group="live",
    ), boto3.session.Session())  # fmt: skip
    try:
        v1, v2 = register(), register()
        first = Ledger("ledger").get(MODEL, hook.handle(decide(v1, "Approved"))["entry"])
        assert first is not None and first.deployment_id
        assert codedeploy.wait_idle(10) and alias_pins() == {MODEL: v1}
        hook.handle(_ended(first.deployment_id, "SUCCESS"))
        approval = decide(v2, "Approved")
        started = hook.handle(approval)
        assert started["outcome"] == "in_progress", started
        assert hook.handle(approval)["duplicate"] == started["entry"]
        entry = Ledger("ledger").get(MODEL, started["entry"])
        assert entry is not None and entry.outcome is Outcome.IN_PROGRESS and entry.deployment_id
        weights = boto3.client("lambda").get_alias(FunctionName=FUNCTION, Name="live")
        assert list(weights["RoutingConfig"]["AdditionalVersionWeights"].values()) == [0.1]
        assert codedeploy.wait_idle(10)
        finished = hook.handle(_ended(entry.deployment_id, "SUCCESS"))
        assert finished["outcome"] == "deployed", finished
        assert hook.handle(_ended(entry.deployment_id, "SUCCESS"))["ignored"]  # delivered twice
        pointer = ChampionPointer(PREFIX).get(MODEL)
        assert pointer is not None and pointer.package_arn == v2
        assert alias_pins() == {MODEL: v2}
    finally:
        codedeploy.uninstall()
        codedeploy.set_time_scale(scale)


def _ended(deployment: str, state: str) -> dict[str, Any]:
    """CodeDeploy's end event for a deployment of the serving group."""
    detail = {"application": "serving", "deploymentGroup": "live", "deploymentId": deployment,
              "state": state, "instanceGroupId": "g"}  # fmt: skip
    return {"source": "aws.codedeploy", "detail": detail,
            "detail-type": "CodeDeploy Deployment State-change Notification"}  # fmt: skip
