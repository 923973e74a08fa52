"""Firehose S3 delivery in the engine: prefixes, compression, object names, KMS; the contract."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from localaws import firehose_delivery
from localaws.emulator import Emulator
from localaws.firehose_delivery import UnsupportedDeliveryError, check_destination, evaluate_prefix

pytestmark = pytest.mark.integration
ARRIVAL = datetime(2026, 11, 21, 7, 5, 9, tzinfo=UTC)
PREFIX = "predictions/dt=!{timestamp:yyyy-MM-dd}/"
ERRORS = "errors/!{firehose:error-output-type}/"


@pytest.fixture
def delivering(emulator: Emulator) -> Iterator[Emulator]:
    firehose_delivery.install()
    yield emulator
    firehose_delivery.uninstall()


def _stream(emulator: Emulator, **destination: Any) -> tuple[str, str]:
    """A bucket and a Direct PUT stream delivering to it; returns (stream, bucket)."""
    emulator.client("s3").create_bucket(
        Bucket="logs", CreateBucketConfiguration={"LocationConstraint": emulator.region}
    )
    emulator.client("firehose").create_delivery_stream(
        DeliveryStreamName="predictions",
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "BucketARN": "arn:aws:s3:::logs",
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            **destination,
        },
    )
    return "predictions", "logs"


def _put(emulator: Emulator, stream: str, lines: list[bytes]) -> None:
    reply = emulator.client("firehose").put_record_batch(
        DeliveryStreamName=stream, Records=[{"Data": line} for line in lines]
    )
    assert reply["FailedPutCount"] == 0


def _objects(emulator: Emulator, bucket: str) -> list[str]:
    listed = emulator.client("s3").list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in listed.get("Contents", [])]


def test_a_batch_is_one_gzipped_kms_encrypted_object_under_the_evaluated_prefix(
    delivering: Emulator,
) -> None:
    key_arn = delivering.client("kms").create_key()["KeyMetadata"]["Arn"]
    stream, bucket = _stream(
        delivering, Prefix=PREFIX, ErrorOutputPrefix=ERRORS, CompressionFormat="GZIP",
        EncryptionConfiguration={"KMSEncryptionConfig": {"AWSKMSKeyARN": key_arn}},
    )  # fmt: skip
    lines = [b'{"model":"credit-risk","score":0.1}\n', b'{"model":"credit-risk","score":0.7}\n']
    _put(delivering, stream, lines)
    (key,) = _objects(delivering, bucket)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert re.fullmatch(
        rf"predictions/dt={today}/predictions-1-{today}-\d\d-\d\d-\d\d-[0-9a-f-]{{36}}\.gz", key
    ), key
    s3 = delivering.client("s3")
    obj = s3.get_object(Bucket=bucket, Key=key)
    assert gzip.decompress(obj["Body"].read()) == b"".join(lines)
    assert (obj["ServerSideEncryption"], obj["SSEKMSKeyId"]) == ("aws:kms", key_arn)


def test_a_prefix_without_expressions_gets_the_default_hour_folders(delivering: Emulator) -> None:
    stream, bucket = _stream(delivering, Prefix="raw/")
    _put(delivering, stream, [b"a\n"])
    (key,) = _objects(delivering, bucket)
    assert re.fullmatch(r"raw/\d{4}/\d\d/\d\d/\d\d/predictions-1-[-\d]+-[0-9a-f-]{36}", key), key
    body = delivering.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body == b"a\n"


def test_uninstalled_moto_writes_the_prefix_literally(emulator: Emulator) -> None:
    """Why the extension exists; when a moto upgrade evaluates prefixes, this fails."""
    assert not firehose_delivery.installed()
    stream, bucket = _stream(emulator, Prefix=PREFIX, ErrorOutputPrefix=ERRORS)
    _put(emulator, stream, [b"a\n"])
    (key,) = _objects(emulator, bucket)
    assert key.startswith("predictions/dt=!{timestamp:yyyy-MM-dd}/")


def test_the_patched_moto_internal_still_has_the_expected_shape() -> None:
    firehose_delivery.check_contract()


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        (PREFIX, "predictions/dt=2026-11-21/"),
        ("p/!{timestamp:yyyy}/!{timestamp:MM}/!{timestamp:dd}/!{timestamp:HH}/",
         "p/2026/11/21/07/"),
        ("p/y=!{timestamp:yy}/t=!{timestamp:HH-mm-ss}/", "p/y=26/t=07-05-09/"),
        ("static/", "static/2026/11/21/07/"),
        ("", "2026/11/21/07/"),
    ],
)  # fmt: skip
def test_prefixes_evaluate_as_firehose_documents(prefix: str, expected: str) -> None:
    assert evaluate_prefix(prefix, ARRIVAL) == expected


def test_random_strings_and_error_types_are_filled_in() -> None:
    random = evaluate_prefix("r/!{firehose:random-string}/", ARRIVAL)
    assert re.fullmatch(r"r/[a-z0-9]{11}/", random)
    assert evaluate_prefix(ERRORS, ARRIVAL, "processing-failed") == "errors/processing-failed/"


@pytest.mark.parametrize(
    ("destination", "problem"),
    [
        ({"DynamicPartitioningConfiguration": {"Enabled": True}}, "dynamic partitioning"),
        ({"ProcessingConfiguration": {"Enabled": True}}, "record processors"),
        ({"CompressionFormat": "Snappy"}, "CompressionFormat Snappy"),
        ({"CustomTimeZone": "Asia/Seoul"}, "CustomTimeZone Asia/Seoul"),
        ({"Prefix": "p/!{partitionKeyFromQuery:model}/", "ErrorOutputPrefix": "e/"},
         "!{partitionKeyFromQuery:model}"),
        ({"Prefix": "p/!{timestamp:EEE}/", "ErrorOutputPrefix": "e/"}, "timestamp field 'EEE'"),
        ({"Prefix": PREFIX}, "needs an ErrorOutputPrefix"),
    ],
)  # fmt: skip
def test_settings_the_engine_would_ignore_are_rejected(
    destination: dict[str, Any], problem: str
) -> None:
    with pytest.raises(UnsupportedDeliveryError, match=re.escape(problem)):
        check_destination({"BucketARN": "arn:aws:s3:::logs", **destination})


def test_the_platform_destination_is_accepted() -> None:
    check_destination(
        {"Prefix": PREFIX, "ErrorOutputPrefix": ERRORS, "CompressionFormat": "GZIP",
         "BufferingHints": {"IntervalInSeconds": 60, "SizeInMBs": 5}}
    )  # fmt: skip
