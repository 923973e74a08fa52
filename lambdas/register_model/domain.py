"""What a registered model version carries, free of AWS: the CreateModelPackage request.

Approvers judge a version in the Model Registry, so the package must answer "where does it
come from and how good is it?" on its own: the evaluation report as model-quality statistics,
and customer metadata with the run, the code (commit, object version, bundle key), the data,
every numeric metric (`metric.<name>`, which the gate reads back as the champion's value)
and the comparison with the champion.

SageMaker's limits shape the metadata: at most 50 entries; keys 1-128 and values 1-256
characters of letters, numbers, spaces and `_.:/=+-@`. Other characters become `_`, long
values are cut, empty values are left out, and metrics beyond the 50th entry are dropped
(the gate's metric always first), so a registration never fails on its own metadata.
"""

from __future__ import annotations

import hashlib
import math
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_KEY = 128
MAX_VALUE = 256
MAX_ENTRIES = 50
MAX_DESCRIPTION = 1024
METADATA_PREFIX = "metric."
_ALLOWED_PUNCTUATION = frozenset("_.:/=+-@")


@dataclass(frozen=True)
class Provenance:
    """Where a candidate comes from; every field is optional except the run."""

    run_id: str
    model_name: str
    bundle_bucket: str
    bundle_key: str
    code_version: str | None = None
    git_commit: str | None = None
    uploaded_by: str | None = None
    bundle_sha256: str | None = None
    data_snapshot: str | None = None
    training_job_name: str | None = None
    trigger: str = "upload"
    retrain_reason: str | None = None


@dataclass(frozen=True)
class GateSummary:
    """The parts of the gate's output a version records."""

    metric: str
    reason: str
    champion_arn: str | None
    improvement: float | None
    metrics: Mapping[str, Any]


def clean(text: str, limit: int) -> str:
    """`text` within SageMaker's metadata alphabet and length (may return "")."""
    allowed = (
        c if unicodedata.category(c)[0] in "LNZ" or c in _ALLOWED_PUNCTUATION else "_" for c in text
    )
    return "".join(allowed)[:limit].strip()


def format_metric(value: Any) -> str | None:
    """Round-trippable text for finite numbers (repr keeps every digit); None otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return repr(value) if isinstance(value, float) else str(value)


def _metric_entries(gate: GateSummary) -> list[tuple[str, str]]:
    names = sorted(gate.metrics, key=lambda n: (n != gate.metric, n))
    entries = []
    for name in names:
        text = format_metric(gate.metrics[name])
        if text is not None:
            entries.append((f"{METADATA_PREFIX}{name}", text))
    return entries


def customer_metadata(source: Provenance, gate: GateSummary) -> dict[str, str]:
    """CustomerMetadataProperties: provenance first, then metrics, all within limits."""
    improvement = format_metric(gate.improvement)
    candidates: list[tuple[str, str | None]] = [
        ("run_id", source.run_id),
        ("model_name", source.model_name),
        ("git_commit", source.git_commit),
        ("code_version", source.code_version),
        ("bundle_key", source.bundle_key),
        ("bundle_sha256", source.bundle_sha256),
        ("uploaded_by", source.uploaded_by),
        ("trigger", source.trigger),
        ("retrain_reason", source.retrain_reason),
        ("data_snapshot", source.data_snapshot),
        ("training_job_name", source.training_job_name),
        ("gate_metric", gate.metric),
        ("champion_arn", gate.champion_arn),
        ("improvement", improvement),
        *_metric_entries(gate),
    ]
    metadata: dict[str, str] = {}
    for raw_key, raw_value in candidates:
        key, value = clean(raw_key, MAX_KEY), clean(raw_value or "", MAX_VALUE)
        if key and value and key not in metadata and len(metadata) < MAX_ENTRIES:
            metadata[key] = value
    return metadata


def description(source: Provenance, gate: GateSummary) -> str:
    """What the registry list shows: the run first (the idempotency lookup relies on it)."""
    text = f"{source.model_name} run {source.run_id}: {gate.reason}"
    return text[:MAX_DESCRIPTION]


def client_token(run_id: str) -> str:
    """CreateModelPackage's idempotency token for a run (max 36 of [a-zA-Z0-9-])."""
    return hashlib.sha256(run_id.encode()).hexdigest()[:32]


def package_request(
    group: str,
    source: Provenance,
    gate: GateSummary,
    *,
    image: str,
    model_data_url: str,
    report_uri: str,
) -> dict[str, Any]:
    """Keyword arguments of `sagemaker.create_model_package` for this candidate."""
    request: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "ModelPackageDescription": description(source, gate),
        "InferenceSpecification": {
            "Containers": [{"Image": image, "ModelDataUrl": model_data_url}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        "ModelApprovalStatus": "PendingManualApproval",
        "ModelMetrics": {
            "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": report_uri}}
        },
        "CustomerMetadataProperties": customer_metadata(source, gate),
        "ClientToken": client_token(source.run_id),
    }
    properties = {
        "CommitId": source.git_commit,
        "Repository": f"s3://{source.bundle_bucket}/{source.bundle_key}",
        "GeneratedBy": source.training_job_name,
    }
    request["MetadataProperties"] = {k: v[:1024] for k, v in properties.items() if v}
    return request
