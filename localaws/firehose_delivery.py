"""Firehose S3 delivery as AWS does it: evaluated prefixes, compression, object names, SSE-KMS.

moto 5.2.5 writes each PutRecord(Batch) to S3 at once (no buffering, which suits tests), but
under `<Prefix>/YYYY/MM/DD/HH/` with the prefix taken literally: a prefix with expressions
(`predictions/dt=!{timestamp:yyyy-MM-dd}/`) becomes a key with `!{...}` in it, and
`CompressionFormat` and the destination's KMS key are ignored. Consumers of the delivered data
(drift monitoring) would then read a layout AWS never produces. This extension replaces
`FirehoseBackend.put_s3_records` so that, per batch, one object is written:

- key `<prefix><stream>-<version>-<YYYY-MM-DD-HH-MM-SS>-<uuid><extension>`; a prefix with
  expressions is evaluated (`!{timestamp:<pattern>}` in UTC, `!{firehose:random-string}`), one
  without expressions gets AWS's default `YYYY/MM/DD/HH/` after it;
- body the concatenated records, gzip-compressed for `GZIP` (extension `.gz`, or the
  configured `FileExtension`);
- encrypted with the destination's `KMSEncryptionConfig` key when one is configured.

What is not emulated, and rejected when a stream is created (`check_destination`) rather than
silently ignored: dynamic partitioning, record processors (Lambda, metadata extraction),
format conversion, compression other than GZIP, non-UTC time zones. Buffering is not
emulated: records are in S3 when PutRecordBatch returns.

`install()` is idempotent, `uninstall()` restores moto; `check_contract()` fails loudly if the
patched internal changes.
"""

from __future__ import annotations

import gzip
import inspect
import re
import secrets
import string
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from localaws.patching import MethodPatch, MotoContractError

SUPPORTED_COMPRESSION = frozenset({"UNCOMPRESSED", "GZIP"})
_EXPRESSION = re.compile(r"!\{([A-Za-z]+):([^}]*)\}")
_TIMESTAMP_FIELDS = {"yyyy": "%Y", "yy": "%y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M",
                     "ss": "%S"}  # fmt: skip
_TIMESTAMP_TOKEN = re.compile(r"[A-Za-z]+|[-_/.=: ]|\d")
_PARAMETERS = ["self", "delivery_stream_name", "version_id", "s3_destination", "records"]


class UnsupportedDeliveryError(ValueError):
    """A destination setting the local engine cannot deliver as AWS would."""


def check_contract() -> None:

    target = _PATCH.original
    params = list(inspect.signature(target).parameters)
    if params != _PARAMETERS:
        raise MotoContractError(
            f"moto.firehose.models.FirehoseBackend.put_s3_records signature changed to {params}; "
            "localaws.firehose_delivery must be adapted"
        )


def _owner() -> type:
    from moto.firehose.models import FirehoseBackend

    return FirehoseBackend


def check_destination(destination: Mapping[str, Any]) -> None:
    """Raise `UnsupportedDeliveryError` for S3 destination settings not emulated here."""
    problems = []
    if destination.get("DynamicPartitioningConfiguration", {}).get("Enabled"):
        problems.append("dynamic partitioning")
    if destination.get("ProcessingConfiguration", {}).get("Enabled"):
        problems.append("record processors (ProcessingConfiguration)")
    if destination.get("DataFormatConversionConfiguration", {}).get("Enabled", False):
        problems.append("record format conversion")
    compression = destination.get("CompressionFormat", "UNCOMPRESSED")
    if compression not in SUPPORTED_COMPRESSION:
        problems.append(f"CompressionFormat {compression}")
    if destination.get("CustomTimeZone", "UTC") != "UTC":
        problems.append(f"CustomTimeZone {destination['CustomTimeZone']}")
    for key, error_type in (("Prefix", None), ("ErrorOutputPrefix", "processing-failed")):
        try:
            evaluate_prefix(str(destination.get(key, "")), datetime.now(UTC), error_type)
        except UnsupportedDeliveryError as error:
            problems.append(f"{key}: {error}")
    if _EXPRESSION.search(str(destination.get("Prefix", ""))) and not destination.get(
        "ErrorOutputPrefix"
    ):
        problems.append("a Prefix with expressions needs an ErrorOutputPrefix (AWS rejects it)")
    if problems:
        raise UnsupportedDeliveryError(
            "the local engine cannot deliver this Firehose destination: " + "; ".join(problems)
        )


def evaluate_prefix(prefix: str, arrival: datetime, error_type: str | None = None) -> str:
    """The S3 prefix AWS would write records that arrived at `arrival` (UTC) under."""

    def replace(match: re.Match[str]) -> str:
        namespace, argument = match.group(1), match.group(2)
        if namespace == "timestamp":
            return arrival.strftime(_strftime_pattern(argument))
        if namespace == "firehose" and argument == "random-string":
            alphabet = string.ascii_lowercase + string.digits
            return "".join(secrets.choice(alphabet) for _ in range(11))
        if namespace == "firehose" and argument == "error-output-type" and error_type:
            return error_type
        raise UnsupportedDeliveryError(f"the expression !{{{namespace}:{argument}}}")

    if not _EXPRESSION.search(prefix):
        return f"{prefix}{arrival:%Y/%m/%d/%H}/"
    return _EXPRESSION.sub(replace, prefix)


def _strftime_pattern(pattern: str) -> str:
    """A Java DateTimeFormatter pattern (the subset Firehose prefixes use) as strftime."""
    tokens = _TIMESTAMP_TOKEN.findall(pattern)
    if "".join(tokens) != pattern:
        raise UnsupportedDeliveryError(f"the timestamp pattern {pattern!r}")
    out = []
    for token in tokens:
        if token[0].isalpha():
            if token not in _TIMESTAMP_FIELDS:
                raise UnsupportedDeliveryError(f"the timestamp field {token!r} in {pattern!r}")
            out.append(_TIMESTAMP_FIELDS[token])
        else:
            out.append(token)
    return "".join(out)


def object_key(stream: str, version: str, destination: Mapping[str, Any], arrival: datetime) -> str:
    prefix = evaluate_prefix(str(destination.get("Prefix", "")), arrival)
    compression = destination.get("CompressionFormat", "UNCOMPRESSED")
    extension = destination.get("FileExtension") or (".gz" if compression == "GZIP" else "")
    return f"{prefix}{stream}-{version}-{arrival:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}{extension}"


def _put_s3_records(
    backend: Any,
    delivery_stream_name: str,
    version_id: str,
    s3_destination: dict[str, Any],
    records: list[dict[str, bytes]],
) -> list[dict[str, str]]:
    from moto.s3.models import s3_backends

    arrival = datetime.now(UTC)
    body = b"".join(record["Data"] for record in records)
    if s3_destination.get("CompressionFormat") == "GZIP":
        body = gzip.compress(body)
    kms = s3_destination.get("EncryptionConfiguration", {}).get("KMSEncryptionConfig", {})
    s3_backends[backend.account_id][backend.partition].put_object(
        s3_destination["BucketARN"].split(":")[-1],
        object_key(delivery_stream_name, version_id, s3_destination, arrival),
        body,
        encryption="aws:kms" if kms else None,
        kms_key_id=kms.get("AWSKMSKeyARN"),
    )
    return [{"RecordId": uuid.uuid4().hex} for _ in records]


_PATCH = MethodPatch(_owner, "put_s3_records", _put_s3_records, check_contract)
install, uninstall, installed = _PATCH.install, _PATCH.uninstall, _PATCH.installed
