"""CodeDeploy Lambda deployments in the engine: traffic shifting, alarms, rollback, stop, events,
the contract, and the CDK's CodeDeploy resources deployed through the engine's handlers."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localaws import codedeploy, s3_secure_transport
from localaws.deploy import deploy_assembly
from localaws.emulator import ACCOUNT_ID, Emulator
from localaws.patching import MotoContractError
from tests.integration.localaws.test_deploy_templates import write_assembly

pytestmark = pytest.mark.integration
CANARY = "CodeDeployDefault.LambdaCanary10Percent5Minutes"
ALL_AT_ONCE = "CodeDeployDefault.LambdaAllAtOnce"
ROLLBACK_EVENTS = ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"]
ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/codedeploy"


@dataclass(frozen=True)
class Rollout:
    """A function with versions `current` and `target`, alias `live` on `current`, an alarm, a
    CodeDeploy application and group, and (optionally) a queue receiving CodeDeploy's events."""

    emulator: Emulator
    function: str
    current: str
    target: str
    alarm: str
    application: str
    group: str
    queue_url: str = ""

    def client(self, service: str) -> Any:
        return self.emulator.client(service)

    def deploy(self, **properties: str) -> str:
        props = {"Name": self.function, "Alias": "live", "CurrentVersion": self.current,
                 "TargetVersion": self.target} | properties  # fmt: skip
        resource = {"Type": "AWS::Lambda::Function", "Properties": props}
        return self.deploy_content(json.dumps({"version": 0.0, "Resources": [{"fn": resource}]}))

    def deploy_content(self, content: str, **request: Any) -> str:
        revision = {"revisionType": "AppSpecContent", "appSpecContent": {"content": content}}
        created = self.client("codedeploy").create_deployment(
            applicationName=self.application, deploymentGroupName=self.group, revision=revision,
            description="model v2", **request,
        )  # fmt: skip
        return str(created["deploymentId"])

    def deployment(self, deployment_id: str) -> dict[str, Any]:
        info = self.client("codedeploy").get_deployment(deploymentId=deployment_id)
        return dict(info["deploymentInfo"])

    def alias(self) -> dict[str, Any]:
        return dict(self.client("lambda").get_alias(FunctionName=self.function, Name="live"))

    def states(self) -> list[tuple[str, str]]:
        """(deploymentId, state) of the events delivered since the last call."""
        sqs = self.client("sqs")
        reply = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
        events = [json.loads(message["Body"]) for message in reply.get("Messages", [])]
        return [(event["detail"]["deploymentId"], event["detail"]["state"]) for event in events]


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", source)
    return buffer.getvalue()


def _new_version(emulator: Emulator, function: str) -> str:
    lambda_ = emulator.client("lambda")
    lambda_.update_function_code(FunctionName=function, ZipFile=_zip("def handler(e, c):\n  2\n"))
    return str(lambda_.publish_version(FunctionName=function)["Version"])


def _until(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.005)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def deploying(emulator: Emulator) -> Iterator[Emulator]:
    codedeploy.install()
    scale = codedeploy.seconds_per_minute()
    try:
        yield emulator
    finally:
        codedeploy.uninstall()
        codedeploy.set_time_scale(scale)


@pytest.fixture
def rollout(deploying: Emulator) -> Callable[[str], Rollout]:
    def make(config: str) -> Rollout:
        lambda_ = deploying.client("lambda")
        role = deploying.client("iam").create_role(RoleName="fn", AssumeRolePolicyDocument="{}")
        lambda_.create_function(
            FunctionName="serving", Runtime="python3.12", Role=role["Role"]["Arn"],
            Handler="index.handler", Code={"ZipFile": _zip("def handler(e, c):\n  1\n")},
        )  # fmt: skip
        current = lambda_.publish_version(FunctionName="serving")["Version"]
        lambda_.create_alias(FunctionName="serving", Name="live", FunctionVersion=current)
        deploying.client("cloudwatch").put_metric_alarm(
            AlarmName="serving-errors", Namespace="AWS/Lambda", MetricName="Errors", Period=60,
            ComparisonOperator="GreaterThanThreshold", EvaluationPeriods=1, Threshold=0,
            Statistic="Sum",
        )  # fmt: skip
        client = deploying.client("codedeploy")
        client.create_application(applicationName="serving", computePlatform="Lambda")
        client.create_deployment_group(
            applicationName="serving", deploymentGroupName="live", serviceRoleArn=ROLE,
            deploymentConfigName=config,
            alarmConfiguration={"enabled": True, "alarms": [{"name": "serving-errors"}]},
            autoRollbackConfiguration={"enabled": True, "events": ROLLBACK_EVENTS},
        )  # fmt: skip
        sqs, events = deploying.client("sqs"), deploying.client("events")
        queue = sqs.create_queue(QueueName="codedeploy-events")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
        events.put_rule(Name="cd", EventPattern=json.dumps({"source": ["aws.codedeploy"]}))
        events.put_targets(Rule="cd", Targets=[{"Id": "q", "Arn": arn["QueueArn"]}])
        return Rollout(deploying, "serving", current, _new_version(deploying, "serving"),
                       "serving-errors", "serving", "live", queue)  # fmt: skip

    return make


def test_all_at_once_moves_the_alias_and_announces_start_and_success(
    rollout: Callable[[str], Rollout],
) -> None:
    env = rollout(ALL_AT_ONCE)
    deployment_id = env.deploy()
    assert codedeploy.wait_idle(5)
    info = env.deployment(deployment_id)
    assert (info["status"], info["deploymentConfigName"]) == ("Succeeded", ALL_AT_ONCE)
    assert info["errorInformation"] == {} and info["rollbackInfo"] == {}
    assert set(info["revision"]["appSpecContent"]) == {"sha256"}  # as AWS: no content back
    alias = env.alias()
    assert alias["FunctionVersion"] == env.target and "RoutingConfig" not in alias
    messages = env.client("sqs").receive_message(QueueUrl=env.queue_url, MaxNumberOfMessages=10)
    events = [json.loads(message["Body"]) for message in messages["Messages"]]
    group = env.client("codedeploy").get_deployment_group(
        applicationName="serving", deploymentGroupName="live")["deploymentGroupInfo"]  # fmt: skip
    assert [event["detail"]["state"] for event in events] == ["START", "SUCCESS"]
    assert {(e["source"], e["detail-type"]) for e in events} == {
        ("aws.codedeploy", "CodeDeploy Deployment State-change Notification")}  # fmt: skip
    assert events[1]["detail"] == {
        "account": ACCOUNT_ID, "region": env.emulator.region, "application": "serving",
        "deploymentGroup": "live", "deploymentId": deployment_id, "state": "SUCCESS",
        "instanceGroupId": group["deploymentGroupId"],
    }  # fmt: skip


def test_a_canary_weights_the_alias_for_its_interval_then_completes(
    rollout: Callable[[str], Rollout],
) -> None:
    codedeploy.set_time_scale(0.1)  # the canary's 5 minutes last 0.5 s
    env = rollout(CANARY)
    deployment_id = env.deploy()
    weighted = _until(lambda: alias if "RoutingConfig" in (alias := env.alias()) else None)
    assert weighted["FunctionVersion"] == env.current
    assert weighted["RoutingConfig"] == {"AdditionalVersionWeights": {env.target: 0.1}}
    assert env.deployment(deployment_id)["status"] == "InProgress"
    assert codedeploy.wait_idle(5)
    info = env.deployment(deployment_id)
    assert (info["status"], info["deploymentConfigName"]) == ("Succeeded", CANARY)
    assert (info["completeTime"] - info["startTime"]).total_seconds() >= 0.45
    alias = env.alias()
    assert alias["FunctionVersion"] == env.target and "RoutingConfig" not in alias


def test_a_custom_linear_config_shifts_in_steps_and_yaml_appspecs_work(
    rollout: Callable[[str], Rollout],
) -> None:
    codedeploy.set_time_scale(0.3)
    env = rollout(CANARY)
    client = env.client("codedeploy")
    linear = {"linearPercentage": 40, "linearInterval": 1}
    routing = {"type": "TimeBasedLinear", "timeBasedLinear": linear}
    client.create_deployment_config(
        deploymentConfigName="linear-40", computePlatform="Lambda", trafficRoutingConfig=routing
    )
    stored = client.get_deployment_config(deploymentConfigName="linear-40")["deploymentConfigInfo"]
    assert (stored["computePlatform"], stored["trafficRoutingConfig"]) == ("Lambda", routing)
    assert "linear-40" in client.list_deployment_configs()["deploymentConfigsList"]
    appspec = "\n".join([
        "version: 0.0", "Resources:", "  - fn:", "      Type: AWS::Lambda::Function",
        "      Properties: {Name: serving, Alias: live, "
        f"CurrentVersion: {env.current}, TargetVersion: {env.target}}}",
    ])  # fmt: skip
    deployment_id = env.deploy_content(appspec, deploymentConfigName="linear-40")
    weights: list[float] = []
    while env.deployment(deployment_id)["status"] == "InProgress":
        weight = env.alias().get("RoutingConfig", {}).get("AdditionalVersionWeights", {})
        if weight and weight[env.target] not in weights:
            weights.append(weight[env.target])
        time.sleep(0.005)
    assert weights == [0.4, 0.8]
    assert env.deployment(deployment_id)["status"] == "Succeeded"
    assert env.alias()["FunctionVersion"] == env.target


@pytest.mark.parametrize(
    ("trigger", "code", "message"),
    [("alarm", "ALARM_ACTIVE", "Activated alarms: serving-errors"),
     ("stop", "MANUAL_STOP", "The deployment was stopped by StopDeployment.")],
)  # fmt: skip
def test_an_alarm_or_a_stop_during_a_canary_rolls_the_alias_back(
    rollout: Callable[[str], Rollout], trigger: str, code: str, message: str
) -> None:
    codedeploy.set_time_scale(0.2)
    env = rollout(CANARY)
    deployment_id, client = env.deploy(), env.client("codedeploy")
    _until(lambda: "RoutingConfig" in env.alias())
    if trigger == "alarm":
        env.client("cloudwatch").set_alarm_state(
            AlarmName=env.alarm, StateValue="ALARM", StateReason="errors on the new version"
        )
    else:
        stopping = client.stop_deployment(deploymentId=deployment_id, autoRollbackEnabled=True)
        assert stopping["status"] == "Pending"
    assert codedeploy.wait_idle(5)
    info = env.deployment(deployment_id)
    assert (info["status"], info["errorInformation"]["code"]) == ("Stopped", code)
    assert info["errorInformation"]["message"].endswith(message)
    rollback_id = info["rollbackInfo"]["rollbackDeploymentId"]
    listed = client.batch_get_deployments(deploymentIds=[rollback_id])["deploymentsInfo"]
    (rollback,) = listed
    assert (rollback["status"], rollback["creator"]) == ("Succeeded", "codeDeployRollback")
    assert rollback["rollbackInfo"] == {"rollbackTriggeringDeploymentId": deployment_id}
    alias = env.alias()
    assert alias["FunctionVersion"] == env.current and "RoutingConfig" not in alias
    assert env.states() == [(deployment_id, "START"), (deployment_id, "STOP"),
                            (rollback_id, "START"), (rollback_id, "SUCCESS")]  # fmt: skip
    with pytest.raises(client.exceptions.DeploymentAlreadyCompletedException):
        client.stop_deployment(deploymentId=deployment_id, autoRollbackEnabled=True)


def test_a_bad_appspec_fails_the_deployment_clearly(rollout: Callable[[str], Rollout]) -> None:
    env = rollout(ALL_AT_ONCE)
    cases = [
        (lambda: env.deploy_content('{"version": 0.0, "Resources": ['),
         "INVALID_REVISION", "The AppSpec is not valid JSON or YAML"),
        (lambda: env.deploy(TargetVersion=""),
         "INVALID_REVISION", "The AppSpec resource fn lacks Properties: TargetVersion"),
        (lambda: env.deploy(TargetVersion="9"),
         "INVALID_LAMBDA_CONFIGURATION", "Version 9 of the Lambda function serving does not"),
        (lambda: env.deploy(CurrentVersion=env.target),
         "INVALID_LAMBDA_CONFIGURATION", f"The alias live points to version {env.current}, not"),
        (lambda: env.deploy(Name="gone"),
         "INVALID_LAMBDA_FUNCTION", "The Lambda function gone does not exist."),
    ]  # fmt: skip
    for deploy, code, message in cases:
        deployment_id = deploy()
        assert codedeploy.wait_idle(5)
        info = env.deployment(deployment_id)
        assert (info["status"], info["errorInformation"]["code"]) == ("Failed", code), message
        assert info["errorInformation"]["message"].startswith(message)
        assert info["rollbackInfo"] == {}  # nothing moved, nothing to roll back
        assert env.alias()["FunctionVersion"] == env.current
        assert env.states() == [(deployment_id, "START"), (deployment_id, "FAILURE")]


def test_the_api_refuses_what_aws_refuses_synchronously(rollout: Callable[[str], Rollout]) -> None:
    codedeploy.set_time_scale(0.2)
    env = rollout(CANARY)
    client = env.client("codedeploy")
    with pytest.raises(client.exceptions.DeploymentConfigDoesNotExistException):
        env.deploy_content("{}", deploymentConfigName="CodeDeployDefault.NoSuchConfig")
    with pytest.raises(client.exceptions.InvalidDeploymentConfigNameException):
        env.deploy_content("{}", deploymentConfigName="CodeDeployDefault.OneAtATime")
    running = env.deploy()
    with pytest.raises(client.exceptions.DeploymentLimitExceededException, match=running):
        env.deploy()
    with pytest.raises(client.exceptions.InvalidAlarmConfigException):
        client.create_deployment_group(applicationName="serving", deploymentGroupName="other",
            serviceRoleArn=ROLE, alarmConfiguration={"enabled": True, "alarms": []})  # fmt: skip
    client.create_deployment_group(applicationName="serving", deploymentGroupName="default",
                                   serviceRoleArn=ROLE)  # fmt: skip
    group = client.get_deployment_group(applicationName="serving", deploymentGroupName="default")
    assert group["deploymentGroupInfo"]["deploymentConfigName"] == ALL_AT_ONCE


def test_the_contract_check_fails_loudly_when_moto_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.codedeploy.models import CodeDeployBackend

    moto_create = CodeDeployBackend.create_deployment
    codedeploy.install()
    codedeploy.check_contract()  # also once installed: it checks moto's originals
    codedeploy.uninstall()
    assert CodeDeployBackend.create_deployment is moto_create
    assert not hasattr(CodeDeployBackend, "stop_deployment")
    monkeypatch.delattr(CodeDeployBackend, "create_deployment")
    with pytest.raises(MotoContractError, match="create_deployment is missing"):
        codedeploy.install()
    assert not codedeploy.installed()
    monkeypatch.undo()
    monkeypatch.setattr(CodeDeployBackend, "stop_deployment", lambda *_: {}, raising=False)
    with pytest.raises(MotoContractError, match="stop_deployment now exists in moto"):
        codedeploy.install()
    assert not codedeploy.installed()


def _role(service: str, policy: str, *depends_on: str) -> dict[str, Any]:
    statement = {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": service}}
    arn = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":iam::aws:policy/{policy}"]]}
    role = {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": {"Statement": [statement], "Version": "2012-10-17"},
        "ManagedPolicyArns": [arn]}}  # fmt: skip
    return role | ({"DependsOn": list(depends_on)} if depends_on else {})


# `cdk synth` (aws-cdk-lib 2.231.0; logical ids shortened) of a Function, its Alias "live" on
# `current_version`, an Alarm on `alias.metric_errors()`, a LambdaDeploymentConfig with
# TimeBasedCanaryTrafficRouting(2 minutes, 20 %) and a LambdaDeploymentGroup with that alarm and
# auto_rollback=AutoRollbackConfig(deployment_in_alarm=True).
# fmt: off
CDK_ROLLOUT = {"Resources": {
    "FnRole": _role("lambda.amazonaws.com", "service-role/AWSLambdaBasicExecutionRole"),
    "Fn": {"Type": "AWS::Lambda::Function", "DependsOn": ["FnRole"], "Properties": {
        "Code": {"ZipFile": "def handler(e, c):\n  1\n"}, "Handler": "index.handler",
        "Role": {"Fn::GetAtt": ["FnRole", "Arn"]}, "Runtime": "python3.12"}},
    "FnVersion": {"Type": "AWS::Lambda::Version", "Properties": {"FunctionName": {"Ref": "Fn"}},
                  "Metadata": {"aws:cdk:do-not-refactor": True}},
    "Live": {"Type": "AWS::Lambda::Alias", "Properties": {
        "FunctionName": {"Ref": "Fn"}, "FunctionVersion": {"Fn::GetAtt": ["FnVersion", "Version"]},
        "Name": "live"}, "UpdatePolicy": {"CodeDeployLambdaAliasUpdate": {
            "ApplicationName": {"Ref": "App"}, "DeploymentGroupName": {"Ref": "Group"}}}},
    "Errors": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "ComparisonOperator": "GreaterThanOrEqualToThreshold", "Dimensions": [
            {"Name": "FunctionName", "Value": {"Ref": "Fn"}},
            {"Name": "Resource", "Value": {"Fn::Join": ["", [{"Ref": "Fn"}, ":live"]]}}],
        "EvaluationPeriods": 1, "MetricName": "Errors", "Namespace": "AWS/Lambda",
        "Period": 300, "Statistic": "Sum", "Threshold": 1}},
    "Canary": {"Type": "AWS::CodeDeploy::DeploymentConfig", "Properties": {
        "ComputePlatform": "Lambda", "TrafficRoutingConfig": {"Type": "TimeBasedCanary",
            "TimeBasedCanary": {"CanaryInterval": 2, "CanaryPercentage": 20}}}},
    "GroupRole": _role("codedeploy.amazonaws.com",
                       "service-role/AWSCodeDeployRoleForLambdaLimited", "Canary"),
    "App": {"Type": "AWS::CodeDeploy::Application", "Properties": {"ComputePlatform": "Lambda"},
            "DependsOn": ["Canary"]},
    "Group": {"Type": "AWS::CodeDeploy::DeploymentGroup", "DependsOn": ["Canary"], "Properties": {
        "AlarmConfiguration": {"Alarms": [{"Name": {"Ref": "Errors"}}], "Enabled": True},
        "ApplicationName": {"Ref": "App"},
        "AutoRollbackConfiguration": {"Enabled": True, "Events": ROLLBACK_EVENTS},
        "DeploymentConfigName": {"Ref": "Canary"},
        "DeploymentStyle": {"DeploymentOption": "WITH_TRAFFIC_CONTROL",
                            "DeploymentType": "BLUE_GREEN"},
        "ServiceRoleArn": {"Fn::GetAtt": ["GroupRole", "Arn"]}}},
}}
# fmt: on


def test_cdk_codedeploy_resources_deploy_and_their_group_rolls_back_on_alarm(
    deploying: Emulator, tmp_path: Path
) -> None:
    assembly = write_assembly(tmp_path, {"Rollout": CDK_ROLLOUT})
    try:
        stack = deploy_assembly(assembly, emulator=deploying)["Rollout"]
    finally:
        s3_secure_transport.uninstall()
    app, group, fn = (stack.physical_id(name) for name in ("App", "Group", "Fn"))
    client = deploying.client("codedeploy")
    info = client.get_deployment_group(applicationName=app, deploymentGroupName=group)[
        "deploymentGroupInfo"]  # fmt: skip
    assert (info["computePlatform"], info["deploymentConfigName"]) == (
        "Lambda", stack.physical_id("Canary"))  # fmt: skip
    alarm = stack.physical_id("Errors")
    assert info["alarmConfiguration"] == {"enabled": True, "alarms": [{"name": alarm}]}
    assert info["autoRollbackConfiguration"] == {"enabled": True, "events": ROLLBACK_EVENTS}
    assert info["deploymentStyle"] == {"deploymentType": "BLUE_GREEN",
                                       "deploymentOption": "WITH_TRAFFIC_CONTROL"}  # fmt: skip
    codedeploy.set_time_scale(0.2)
    current = deploying.client("lambda").get_alias(FunctionName=fn, Name="live")["FunctionVersion"]
    env = Rollout(deploying, fn, current, _new_version(deploying, fn), alarm, app, group)
    deployment_id = env.deploy()
    weighted = _until(lambda: env.alias().get("RoutingConfig"))
    assert weighted == {"AdditionalVersionWeights": {env.target: 0.2}}
    deploying.client("cloudwatch").set_alarm_state(
        AlarmName=alarm, StateValue="ALARM", StateReason="errors on the new version"
    )
    assert codedeploy.wait_idle(5)
    assert env.deployment(deployment_id)["errorInformation"]["code"] == "ALARM_ACTIVE"
    assert env.alias()["FunctionVersion"] == env.current
