"""Approval → deployment on the local engine: the deployed rule, hook, CodeDeploy group, alias,
ledger and pointer, with the serving app following along.

Versions are registered with the register task's own request (`package_request`) around a real
trained model, so the hook checks and serving loads a real ONNX model. Approvals go through
UpdateModelPackage: the engine's SageMaker emits the event and EventBridge delivers it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from lambdas.register_model.domain import GateSummary, Provenance, package_request
from localaws import codedeploy
from localaws.engine import LocalEngine
from mlops.deployments import ChampionPointer, Ledger, LedgerEntry, Outcome
from serving.runtime import ServingRuntime, build_runtime
from serving.settings import ServingSettings

pytestmark = pytest.mark.e2e
MODEL = "credit-risk"
PINS = "MLOPS_SERVING_PINNED_MODELS"


class Platform:
    """The deployed engine's names, and the few moves the tests make."""

    def __init__(self, engine: LocalEngine, archive: bytes) -> None:
        assert engine.deployment is not None
        self.engine = engine
        self.registry = engine.deployment[f"{engine.project}-local-registry"].outputs
        self.serving = engine.deployment[f"{engine.project}-local-serving"].outputs
        self.ledger = Ledger(str(self.registry["LedgerTableName"]))
        self.pointer = ChampionPointer(str(self.registry["ChampionParameterPrefix"]))
        self.function = str(self.serving["ServingFunctionName"])
        self.archive = archive
        self.sagemaker = boto3.client("sagemaker")
        self.awslambda = boto3.client("lambda")

    def register(self, run: str) -> str:
        bucket = self.engine.training.artifacts_bucket
        key = f"runs/{run}/output/model.tar.gz"
        boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=self.archive)
        source = Provenance(run, MODEL, "code", f"bundles/{MODEL}/bundle.tar.gz", code_version="7")
        gate = GateSummary("auc", "auc 0.8100 passes", None, None, {"auc": 0.81, "ks": 0.4})
        request = package_request(
            MODEL, source, gate, image="local", model_data_url=f"s3://{bucket}/{key}",
            report_uri=f"s3://{bucket}/runs/{run}/evaluation.json",
        )  # fmt: skip
        return str(self.sagemaker.create_model_package(**request)["ModelPackageArn"])

    def decide(self, arn: str, status: str, note: str) -> LedgerEntry:
        """Change the status in the registry; the hook's final ledger entry for it (the states
        it passed through on the way are in `self.states`)."""
        seen = self.ledger.keys_of(MODEL, arn)
        self.states: list[Outcome] = []
        self.sagemaker.update_model_package(
            ModelPackageArn=arn, ModelApprovalStatus=status, ApprovalDescription=note
        )
        entry = self.ledger.wait_for(
            MODEL, arn, status, seen=seen, timeout=60, poll=0.02,
            on_progress=lambda e: self.states.append(e.outcome),
        )  # fmt: skip
        assert entry is not None and entry.outcome.final, entry
        return entry

    def live_pins(self) -> dict[str, str]:
        config = self.awslambda.get_function_configuration(
            FunctionName=self.function, Qualifier="live"
        )
        return dict(json.loads(config["Environment"]["Variables"].get(PINS, "{}")))

    def runtime(self, cache: Path) -> ServingRuntime:
        """The app as the EKS pods run it: unpinned, following the champion pointer."""
        variables = self.awslambda.get_function_configuration(FunctionName=self.function)[
            "Environment"
        ]["Variables"]
        settings = ServingSettings(
            spec=variables["MLOPS_SERVING_SPEC"], redis_url=self.engine.redis_url,
            model_source="champion", champion_prefix=variables["MLOPS_SERVING_CHAMPION_PREFIX"],
            model_cache_dir=str(cache), refresh_seconds=0,
        )  # fmt: skip
        return build_runtime(settings)


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, sample_model_archive: bytes
) -> Iterator[Platform]:
    with LocalEngine(workdir=tmp_path_factory.mktemp("approval")) as engine:
        engine.deploy()
        yield Platform(engine, sample_model_archive)


def served(runtime: ServingRuntime) -> str | None:
    runtime.manager.refresh()
    return runtime.manager.versions().get(MODEL)


def test_approve_serve_canary_alarm_and_rollback(platform: Platform, tmp_path: Path) -> None:
    runtime = platform.runtime(tmp_path / "models")
    runtime.start()
    try:
        _lifecycle(platform, runtime)
    finally:
        asyncio.new_event_loop().run_until_complete(runtime.stop())


def _lifecycle(platform: Platform, runtime: ServingRuntime) -> None:
    v1, v2, v3 = (platform.register(f"e2e-{n}") for n in (1, 2, 3))
    assert served(runtime) is None  # nothing approved: nothing serves

    first = platform.decide(v1, "Approved", "first version, metrics reviewed")
    assert (first.action, first.outcome) == ("promote", Outcome.DEPLOYED), first.reason
    assert first.description == "first version, metrics reviewed"
    assert platform.live_pins() == {MODEL: v1}
    assert served(runtime) == "1"  # the pods' hot swap

    second = platform.decide(v2, "Approved", "AUC +0.01")
    assert second.outcome is Outcome.DEPLOYED, second.reason
    assert second.previous_champion is not None and second.previous_champion.version == 1
    assert set(platform.states) == {Outcome.IN_PROGRESS}  # seen shifting before it ended
    client = boto3.client("codedeploy")
    info = client.get_deployment(deploymentId=str(second.deployment_id))["deploymentInfo"]
    assert info["status"] == "Succeeded"
    config = client.get_deployment_config(deploymentConfigName=info["deploymentConfigName"])
    routing = config["deploymentConfigInfo"]["trafficRoutingConfig"]
    canary = {"canaryPercentage": 10, "canaryInterval": 5}  # the local config's rollout
    assert routing == {"type": "TimeBasedCanary", "timeBasedCanary": canary}
    assert platform.live_pins() == {MODEL: v2}
    assert served(runtime) == "2"

    back = platform.decide(v2, "Rejected", "approval rate fell in production")
    assert (back.action, back.outcome) == ("rollback", Outcome.DEPLOYED), back.reason
    assert back.target is not None and back.target.version == 1
    assert platform.live_pins() == {MODEL: v1}
    assert served(runtime) == "1"

    _canary_stopped_by_an_alarm(platform, v3, v1)
    assert served(runtime) == "1"
    history = platform.ledger.history(MODEL)
    assert [(e.version, e.action.value, e.outcome.value) for e in history] == [
        (3, "promote", "failed"),
        (2, "rollback", "deployed"),
        (2, "promote", "deployed"),
        (1, "promote", "deployed"),
    ]


def _canary_stopped_by_an_alarm(platform: Platform, v3: str, v1: str) -> None:
    """A serving alarm fires during v3's canary: CodeDeploy rolls back, the hook records it."""
    cloudwatch = boto3.client("cloudwatch")
    alarms = [a["AlarmName"] for a in cloudwatch.describe_alarms()["MetricAlarms"]
              if "ErrorRate" in a["AlarmName"] and "serving" in a["AlarmName"]]  # fmt: skip
    assert len(alarms) == 1, alarms
    cloudwatch.set_alarm_state(AlarmName=alarms[0], StateValue="ALARM", StateReason="test")
    try:
        failed = platform.decide(v3, "Approved", "challenger")
    finally:
        cloudwatch.set_alarm_state(AlarmName=alarms[0], StateValue="OK", StateReason="test")
    assert failed.outcome is Outcome.FAILED, failed.reason
    assert "traffic shift ended STOP" in failed.reason and alarms[0] in failed.reason
    assert codedeploy.wait_idle(30)  # CodeDeploy's own rollback deployment
    assert platform.live_pins() == {MODEL: v1}
    pointer = platform.pointer.get(MODEL)
    assert pointer is not None and pointer.version == 1


def _event(platform: Platform, arn: str, **detail: Any) -> dict[str, Any]:
    described = platform.sagemaker.describe_model_package(ModelPackageName=arn)
    body = json.loads(json.dumps(described, default=str))
    body.pop("ResponseMetadata", None)
    body.update(detail)
    return {"version": "0", "id": "manual", "source": "aws.sagemaker", "account": "123456789012",
            "time": "2026-11-21T00:00:00Z", "region": "ap-northeast-2", "resources": [arn],
            "detail-type": "SageMaker Model Package State Change", "detail": body}  # fmt: skip


def _invoke_hook(platform: Platform, event: Any) -> dict[str, Any]:
    reply = platform.awslambda.invoke(
        FunctionName=str(platform.registry["ApprovalHookFunctionName"]),
        Payload=json.dumps(event).encode(),
    )
    assert "FunctionError" not in reply, reply["Payload"].read()
    return dict(json.loads(reply["Payload"].read()))


def _rule_matches(event: Any) -> bool:
    """Whether the deployed approval rule delivers `event`, matched as the engine's EventBridge
    routes it (moto has no TestEventPattern)."""
    from moto.events.models import EventPattern

    client = boto3.client("events")
    (rule,) = [r for r in client.list_rules()["Rules"] if "ApprovalDecided" in r["Name"]]
    return isinstance(event, dict) and EventPattern.load(rule["EventPattern"]).matches_event(event)


def _rollout_event(application: str, deployment: str, state: str) -> dict[str, Any]:
    return {"version": "0", "id": "cd", "source": "aws.codedeploy", "account": "123456789012",
            "time": "2026-11-21T00:00:00Z", "region": "ap-northeast-2", "resources": [],
            "detail-type": "CodeDeploy Deployment State-change Notification",
            "detail": {"application": application, "deploymentId": deployment, "state": state,
                       "deploymentGroup": "g", "instanceGroupId": "i"}}  # fmt: skip


def _deployments(platform: Platform) -> int:
    client = boto3.client("codedeploy")
    listed = client.list_deployments(
        applicationName=str(platform.serving["RolloutApplication"]),
        deploymentGroupName=str(platform.serving["RolloutDeploymentGroup"]),
    )
    return len(listed["deployments"])


def _published(platform: Platform) -> int:
    listed = platform.awslambda.list_versions_by_function(FunctionName=platform.function)
    return len(listed["Versions"])


def test_foreign_duplicate_out_of_order_and_malformed_events(platform: Platform) -> None:
    """Only the two real approvals deploy, once each; the table's events deploy nothing."""
    never = platform.register("e2e-never")  # rejected before anything else happens
    assert platform.decide(never, "Rejected", "never good enough").outcome is Outcome.RECORDED
    before = (_deployments(platform), _published(platform), len(platform.ledger.history(MODEL)))
    v4, v5 = platform.register("e2e-4"), platform.register("e2e-5")
    approved_v4 = platform.decide(v4, "Approved", "challenger four")
    approved_v5 = platform.decide(v5, "Approved", "challenger five")
    assert (approved_v4.outcome, approved_v5.outcome) == (Outcome.DEPLOYED, Outcome.DEPLOYED)
    earlier = "2026-01-01T00:00:00Z"
    foreign = _event(platform, v5, ModelPackageGroupName="fraud-check",
                     ModelPackageArn=v5.replace(MODEL, "fraud-check"))  # fmt: skip
    application = str(platform.serving["RolloutApplication"])
    table: list[tuple[str, Any, bool, str]] = [
        ("foreign group", foreign, False, "foreign group"),
        ("pending", _event(platform, v5, ModelApprovalStatus="PendingManualApproval"), False,
         "asks for no deployment decision"),
        ("no ARN", _event(platform, v5, ModelPackageArn=None), True, "lacks ModelPackageArn"),
        ("version as text", _event(platform, v5, ModelPackageVersion="5"), True,
         "not a positive integer"),
        ("other detail type", {**_event(platform, v5), "detail-type": "SageMaker Endpoint"},
         False, "not a model package change"),
        ("not an object", ["Approved"], False, "not an event object"),
        ("v4 approval again", _event(platform, v4, LastModifiedTime=approved_v4.occurred_at),
         True, "duplicate"),
        ("v5 approval again", _event(platform, v5, LastModifiedTime=approved_v5.occurred_at),
         True, "duplicate"),
        ("older v4 approval", _event(platform, v4, LastModifiedTime=earlier), True,
         f"older than v{approved_v5.version}"),
        ("stale v5 rejection", _event(platform, v5, ModelApprovalStatus="Rejected"), True,
         "stale"),
        ("stale approval", _event(platform, never, ModelApprovalStatus="Approved"), True,
         "stale"),
        ("foreign deployment", _rollout_event("other-app", "d-1", "SUCCESS"), False,
         "another application"),
        ("v5's shift ended again", _rollout_event(application, str(approved_v5.deployment_id),
                                                  "SUCCESS"), False, "already finished"),
    ]  # fmt: skip
    for name, event, delivered, expected in table:
        assert _rule_matches(event) is delivered, name
        result = _invoke_hook(platform, event)
        if "ignored" in result:
            assert expected in result["ignored"], (name, result)
        elif "duplicate" in result:
            assert expected == "duplicate", (name, result)
        else:
            assert result["action"] == "record" and result["outcome"] == "recorded", (name, result)
            entry = platform.ledger.get(MODEL, result["entry"])
            assert entry is not None and expected in entry.reason, (name, entry)
    after = (_deployments(platform), _published(platform), len(platform.ledger.history(MODEL)))
    assert after[0] - before[0] == 2  # one traffic shift per real approval
    assert after[1] - before[1] == 2  # one pinned serving version per real approval
    assert after[2] - before[2] == 2 + 3  # two deployments, three recorded-only decisions
    assert platform.live_pins() == {MODEL: v5}
    pointer = platform.pointer.get(MODEL)
    assert pointer is not None and pointer.package_arn == v5


def test_the_approvers_cli_against_the_deployed_hook(platform: Platform) -> None:
    """`mlops models approve` waits for the real hook's outcome; `mlops rollback` rolls back."""
    from typer.testing import CliRunner

    from mlops.cli import app

    runner = CliRunner(env={"COLUMNS": "200"})
    base, challenger = platform.register("cli-base"), platform.register("cli-challenger")
    assert platform.decide(base, "Approved", "base").outcome is Outcome.DEPLOYED
    before = platform.pointer.get(MODEL)
    assert before is not None and before.package_arn == base
    reason = "beats the base on the out-of-time slice"
    command = ["models", "approve", challenger, "--reason", reason, "--env", "local"]
    approved = runner.invoke(app, [*command, "--timeout", "60"])
    assert approved.exit_code == 0, approved.output
    assert "outcome: promote deployed" in approved.output
    assert platform.live_pins() == {MODEL: challenger}
    listed = runner.invoke(app, ["models", "list", MODEL, "--env", "local", "--chart"])
    assert listed.exit_code == 0, listed.output
    assert f"v{before.version + 1} ★" in listed.output, listed.output
    rolled = runner.invoke(app, ["rollback", MODEL, "--reason", "complaints", "--env", "local"])
    assert rolled.exit_code == 0, rolled.output
    assert f"v{before.version} should serve afterwards" in rolled.output
    assert platform.live_pins() == {MODEL: base}
    ledger = runner.invoke(app, ["deployments", MODEL, "--env", "local", "--limit", "3"])
    assert ledger.exit_code == 0 and "rollback" in ledger.output, ledger.output
