"""Deploying a synthesized CDK app (and hand-written assemblies) into the emulator."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localaws import s3_secure_transport
from localaws.cfn_assembly import zip_directory
from localaws.deploy import Deployment, StackExistsError, UnsupportedTemplateError, deploy_assembly
from localaws.emulator import ACCOUNT_ID, Emulator

pytestmark = pytest.mark.integration

DATA, WORKFLOW = "CdkAppData", "CdkAppWorkflow"
log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test app synthesized once per module (importing aws_cdk costs ~10 s)."""
    from tests.integration.localaws.cdkapp.app import build_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    build_app(outdir)
    return outdir


@pytest.fixture
def fresh(emulator: Emulator) -> Iterator[Emulator]:
    yield emulator
    s3_secure_transport.uninstall()


def _copy(assembly: Path, destination: Path) -> Path:
    return Path(shutil.copytree(assembly, destination / "cdk.out"))


def _edit_template(assembly: Path, stack: str, edit: Any) -> None:
    path = assembly / f"{stack}.template.json"
    template = json.loads(path.read_text())
    edit(template)
    path.write_text(json.dumps(template))


def test_deploys_the_cdk_app_with_resolved_references(assembly: Path, fresh: Emulator) -> None:
    started = time.perf_counter()
    deployment = deploy_assembly(assembly, emulator=fresh)
    log.info("deploying the test app took %.2f s", time.perf_counter() - started)
    assert list(deployment.stacks) == [DATA, WORKFLOW]
    _assert_bucket(fresh, deployment)
    _assert_lambda_is_the_asset(fresh, deployment, assembly)
    _assert_state_machine(fresh, deployment)
    _assert_platform_services(fresh, deployment)
    _assert_outputs(fresh, deployment)


def _assert_bucket(emulator: Emulator, deployment: Deployment) -> None:
    from moto.backends import get_backend

    s3 = emulator.client("s3")
    bucket = deployment.output(DATA, "BucketName")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    key_arn = deployment.output(DATA, "ExportsOutputFnGetAttDataKey17AFBB84ArnCE2A1BC6")
    assert rule["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": key_arn,
    }
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # The enforce-SSL Deny must not block the (secure-by-stand-in) emulator.
    s3.put_object(Bucket=bucket, Key="probe.txt", Body=b"ok")
    assert s3.get_object(Bucket=bucket, Key="probe.txt")["Body"].read() == b"ok"
    # moto's GetBucketNotificationConfiguration omits an empty EventBridgeConfiguration.
    notifications = (
        get_backend("s3")[ACCOUNT_ID]["aws"].get_bucket(bucket).notification_configuration
    )
    assert notifications is not None and notifications.event_bridge is not None


def _assert_lambda_is_the_asset(emulator: Emulator, deployment: Deployment, cdk_out: Path) -> None:
    name = deployment.output(WORKFLOW, "FunctionName")
    function = emulator.client("lambda").get_function(FunctionName=name)
    config = function["Configuration"]
    assert config["Handler"] == "pkg.handler.handler"
    assert config["Runtime"] == "python3.12"
    assert config["Environment"]["Variables"] == {
        "DATA_BUCKET": deployment.output(DATA, "BucketName")
    }
    (asset_dir,) = [p for p in cdk_out.glob("asset.*") if p.is_dir()]
    expected = base64.b64encode(hashlib.sha256(zip_directory(asset_dir)).digest()).decode()
    assert config["CodeSha256"] == expected
    bootstrap_bucket = f"cdk-hnb659fds-assets-{ACCOUNT_ID}-{emulator.region}"
    key = f"{asset_dir.name.removeprefix('asset.')}.zip"
    uploaded = emulator.client("s3").get_object(Bucket=bootstrap_bucket, Key=key)["Body"].read()
    assert uploaded == zip_directory(asset_dir)
    assert b"cdkapp-trigger-v1" in _unzip(uploaded, "pkg/handler.py")


def _unzip(archive: bytes, member: str) -> bytes:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        return opened.read(member)


def _assert_state_machine(emulator: Emulator, deployment: Deployment) -> None:
    arn = deployment.output(WORKFLOW, "StateMachineArn")
    described = emulator.client("stepfunctions").describe_state_machine(stateMachineArn=arn)
    definition = json.loads(described["definition"])
    function = deployment.output(WORKFLOW, "FunctionName")
    expected_arn = f"arn:aws:lambda:{emulator.region}:{ACCOUNT_ID}:function:{function}"
    assert definition["States"]["Invoke"]["Resource"] == expected_arn
    assert "Fn::" not in described["definition"] and "${" not in described["definition"]
    targets = emulator.client("events").list_targets_by_rule(
        Rule=deployment[WORKFLOW].physical_id("OnUpload071E41C7")
    )["Targets"]
    assert [t["Arn"] for t in targets] == [arn]


def _assert_platform_services(emulator: Emulator, deployment: Deployment) -> None:
    group = emulator.client("sagemaker").describe_model_package_group(
        ModelPackageGroupName="cdkapp-models"
    )
    assert group["ModelPackageGroupArn"] == deployment[DATA].physical_id("Models")
    table = emulator.client("glue").get_table(DatabaseName="cdkapp_features", Name="driver_stats")
    bucket = deployment.output(DATA, "BucketName")
    assert (
        table["Table"]["StorageDescriptor"]["Location"] == f"s3://{bucket}/features/driver_stats/"
    )
    workgroup = emulator.client("athena").get_work_group(WorkGroup="cdkapp-wg")["WorkGroup"]
    output = workgroup["Configuration"]["ResultConfiguration"]["OutputLocation"]
    assert output == f"s3://{bucket}/athena/"
    secret_arn = deployment[DATA].physical_id("RedisAuthAF1E8ACD")
    value = emulator.client("secretsmanager").get_secret_value(SecretId=secret_arn)
    assert len(value["SecretString"]) == 32 and value["SecretString"].isalnum()
    parameter = emulator.client("ssm").get_parameter(Name="/cdkapp/bucket")["Parameter"]
    assert parameter["Value"] == bucket


def _assert_outputs(emulator: Emulator, deployment: Deployment) -> None:
    outputs = deployment[DATA].outputs
    assert outputs["Tier"] == "dev"  # IsProd: region == us-east-1 is false here
    assert outputs["FirstAz"] == f"{emulator.region}a"
    assert outputs["KeyIdFromArn"] == deployment[DATA].physical_id("DataKey17AFBB84")
    cfn = emulator.client("cloudformation")
    stack = cfn.describe_stacks(StackName=WORKFLOW)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]} == (
        deployment[WORKFLOW].outputs
    )
    exports = {e["Name"]: e["Value"] for e in cfn.list_exports()["Exports"]}
    assert exports == deployment[DATA].exports
    resources = cfn.describe_stack_resources(StackName=DATA)["StackResources"]
    assert {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources} == {
        logical_id: r.physical_id for logical_id, r in deployment[DATA].resources.items()
    }


def test_redeploying_is_a_no_op_and_a_changed_template_is_refused(
    assembly: Path, fresh: Emulator, tmp_path: Path
) -> None:
    first = deploy_assembly(assembly, emulator=fresh, stacks=[DATA])
    again = deploy_assembly(assembly, emulator=fresh, stacks=[DATA])
    assert again[DATA] is first[DATA]
    assert len(fresh.client("dynamodb").list_tables()["TableNames"]) == 1
    changed = _copy(assembly, tmp_path)
    _edit_template(changed, DATA, lambda t: t["Outputs"].update(Extra={"Value": "x"}))
    with pytest.raises(StackExistsError, match="CdkAppData is already deployed with a different"):
        deploy_assembly(changed, emulator=fresh, stacks=[DATA])


def test_unknown_type_stops_before_anything_is_created(
    assembly: Path, fresh: Emulator, tmp_path: Path
) -> None:
    broken = _copy(assembly, tmp_path)
    fleet = {"Type": "AWS::GameLift::Fleet", "Properties": {"Name": "f"}}
    _edit_template(broken, WORKFLOW, lambda t: t["Resources"].update(Fleet=fleet))
    with pytest.raises(UnsupportedTemplateError) as raised:
        deploy_assembly(broken, emulator=fresh)
    assert raised.value.problems == {"AWS::GameLift::Fleet": ["CdkAppWorkflow/Fleet"]}
    assert "AWS::GameLift::Fleet: CdkAppWorkflow/Fleet" in str(raised.value)
    assert fresh.client("s3").list_buckets()["Buckets"] == []
    assert fresh.client("cloudformation").describe_stacks()["Stacks"] == []
    assert fresh.client("kms").list_keys()["Keys"] == []
