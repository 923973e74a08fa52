"""The `local` environment's serving stack deployed into the engine, and a prediction-log batch
delivered through it to S3 as on AWS."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest

from localaws import firehose_delivery, s3_secure_transport
from localaws.deploy import Deployment, deploy_assembly
from localaws.emulator import Emulator, running_emulator
from localaws.resources import DEFAULT_REDIS_URL
from tests.conftest import SynthesizedEnvironment

pytestmark = pytest.mark.integration
SERVING = "mlops-local-serving"


@pytest.fixture(scope="module")
def deployed(
    synthesized: Callable[[str], SynthesizedEnvironment],
) -> Iterator[tuple[Emulator, Deployment]]:
    """The serving stack and what it depends on, deployed once for this module."""
    assembly = synthesized("local").outdir
    with running_emulator() as emulator:
        firehose_delivery.install()
        try:
            yield emulator, deploy_assembly(assembly, emulator=emulator, stacks=[SERVING])
        finally:
            firehose_delivery.uninstall()
            s3_secure_transport.uninstall()


def test_the_function_alias_url_and_stream_exist(deployed: tuple[Emulator, Deployment]) -> None:
    emulator, deployment = deployed
    outputs = deployment[SERVING].outputs
    lambda_ = emulator.client("lambda")
    config = lambda_.get_function(FunctionName=outputs["ServingFunctionName"])["Configuration"]
    assert config["Handler"] == "serving.lambda_handler.handler"
    assert config["Runtime"] == "python3.14"
    variables = config["Environment"]["Variables"]
    assert variables["MLOPS_SERVING_REDIS_HOST"] == urlsplit(DEFAULT_REDIS_URL).hostname
    assert variables["MLOPS_SERVING_PREDICTION_LOG_STREAM"] == outputs["PredictionLogStream"]
    assert json.loads(variables["MLOPS_SERVING_SPEC"])["models"].keys() == {"credit-risk"}
    assert len(config["VpcConfig"]["SubnetIds"]) == 2
    alias = lambda_.get_alias(FunctionName=outputs["ServingFunctionName"], Name="live")
    assert alias["AliasArn"] == outputs["ServingAliasArn"]
    (version,) = deployment[SERVING].of_type("AWS::Lambda::Version")
    assert version.physical_id == f"{config['FunctionArn']}:{alias['FunctionVersion']}"
    versions = lambda_.list_versions_by_function(FunctionName=outputs["ServingFunctionName"])
    assert alias["FunctionVersion"] in {v["Version"] for v in versions["Versions"]} - {"$LATEST"}
    url = lambda_.get_function_url_config(FunctionName=outputs["ServingFunctionName"])
    assert (url["AuthType"], url["FunctionUrl"]) == ("AWS_IAM", outputs["ServingUrl"])
    stream = emulator.client("firehose").describe_delivery_stream(
        DeliveryStreamName=outputs["PredictionLogStream"]
    )["DeliveryStreamDescription"]
    assert stream["DeliveryStreamStatus"] == "ACTIVE"
    (destination,) = stream["Destinations"]
    s3 = destination["ExtendedS3DestinationDescription"]
    assert s3["BucketARN"] == f"arn:aws:s3:::{outputs['PredictionLogBucket']}"
    assert s3["CompressionFormat"] == "GZIP"
    alarms = emulator.client("cloudwatch").describe_alarms()["MetricAlarms"]
    names = {a["AlarmName"] for a in alarms if a["AlarmName"].startswith(SERVING)}
    assert len(names) == 4  # error rate, p99, throttles, delivery staleness


def test_a_record_batch_lands_in_the_log_bucket(deployed: tuple[Emulator, Deployment]) -> None:
    emulator, deployment = deployed
    outputs = deployment[SERVING].outputs
    records = [
        {"model": "credit-risk", "version": "1", "request_id": f"r{n}", "ts": 1763700000.0 + n,
         "latency_ms": 3.2, "features": {"age": 41, "income_monthly": None}, "score": 0.25 * n}
        for n in range(3)
    ]  # fmt: skip
    reply = emulator.client("firehose").put_record_batch(
        DeliveryStreamName=outputs["PredictionLogStream"],
        Records=[{"Data": json.dumps(r).encode() + b"\n"} for r in records],
    )
    assert reply["FailedPutCount"] == 0
    bucket = outputs["PredictionLogBucket"]
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    s3 = emulator.client("s3")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"predictions/dt={today}/")
    (key,) = [item["Key"] for item in listed["Contents"]]
    assert key.endswith(".gz")
    obj = s3.get_object(Bucket=bucket, Key=key)
    lines = gzip.decompress(obj["Body"].read()).decode().splitlines()
    assert [json.loads(line) for line in lines] == records
    data_key = deployment["mlops-local-security"].resources
    key_ids = {r.physical_id for r in data_key.values() if r.resource_type == "AWS::KMS::Key"}
    assert obj["ServerSideEncryption"] == "aws:kms"
    assert obj["SSEKMSKeyId"].rpartition("/")[2] in key_ids
