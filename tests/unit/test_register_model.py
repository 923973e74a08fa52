from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.common import InvalidInputError
from lambdas.gate.handler import handler as gate_handler
from lambdas.register_model.domain import (
    MAX_ENTRIES,
    GateSummary,
    Provenance,
    clean,
    client_token,
    customer_metadata,
    format_metric,
    package_request,
)
from lambdas.register_model.handler import handler
from tests.helpers import lambda_context

pytestmark = pytest.mark.unit

GROUP = "credit-risk"
RUN = "credit-risk-20261121151629-1a2b3c4d"
REPORT = f"s3://artifacts/runs/{RUN}/evaluation/evaluation.json"
CHAMPION = "arn:aws:sagemaker:ap-northeast-2:123456789012:model-package/credit-risk/3"
METADATA_TEXT = re.compile(r"^[\w\s.:/=+\-@]{1,256}$")

SOURCE = Provenance(
    run_id=RUN, model_name="credit-risk", bundle_bucket="code",
    bundle_key="bundles/credit-risk/x.tar.gz", code_version="3HL4kqtJlcpXroDTDmJ",
    git_commit="abc123", uploaded_by="alice <alice@example.com>", bundle_sha256="f" * 64,
    data_snapshot="s3://artifacts/datasets/credit-risk/training_frame/",
    training_job_name=f"{RUN}-train",
)  # fmt: skip
GATE = GateSummary(
    metric="auc",
    reason="auc 0.8120 passes the threshold 0.7000 and beats champion credit-risk/3 (0.7700) "
    "by 0.0420 (required 0.0050)",
    champion_arn=CHAMPION,
    improvement=0.042,
    metrics={"auc": 0.8123456789012345, "ks": 0.5, "rows": 3000, "note": "text", "bad": None},
)


def test_metadata_carries_provenance_metrics_and_comparison() -> None:
    metadata = customer_metadata(SOURCE, GATE)
    assert metadata == {
        "run_id": RUN,
        "model_name": "credit-risk",
        "git_commit": "abc123",
        "code_version": "3HL4kqtJlcpXroDTDmJ",
        "bundle_key": "bundles/credit-risk/x.tar.gz",
        "bundle_sha256": "f" * 64,
        "uploaded_by": "alice _alice@example.com_",
        "trigger": "upload",
        "data_snapshot": "s3://artifacts/datasets/credit-risk/training_frame/",
        "training_job_name": f"{RUN}-train",
        "gate_metric": "auc",
        "champion_arn": CHAMPION,
        "improvement": "0.042",
        "metric.auc": "0.8123456789012345",
        "metric.ks": "0.5",
        "metric.rows": "3000",
    }
    assert float(metadata["metric.auc"]) == 0.8123456789012345  # round-trips exactly


def test_metadata_stays_within_sagemaker_limits() -> None:
    many = {f"m{i:03d}": i / 7 for i in range(80)} | {"auc": 0.8, "x" * 200: 1.0}
    gate = GateSummary("auc", "r", None, None, many)
    source = Provenance(run_id=RUN, model_name="m", bundle_bucket="b", bundle_key="k" * 400,
                        uploaded_by="!!!", git_commit="")  # fmt: skip
    metadata = customer_metadata(source, gate)
    assert len(metadata) == MAX_ENTRIES
    assert "metric.auc" in metadata  # the gate's metric is never the one dropped
    assert "champion_arn" not in metadata and "improvement" not in metadata
    assert "git_commit" not in metadata  # empty values are left out
    assert metadata["uploaded_by"] == "___"
    assert metadata["bundle_key"] == "k" * 256
    for key, value in metadata.items():
        assert 1 <= len(key) <= 128 and METADATA_TEXT.match(key), key
        assert METADATA_TEXT.match(value), (key, value)
    assert clean("a\nb\u00e9\u00a0c", 10) == "a_b\u00e9\u00a0c"


def test_metric_formatting_keeps_precision_and_skips_non_numbers() -> None:
    assert format_metric(0.1 + 0.2) == "0.30000000000000004"
    assert format_metric(3000) == "3000"
    assert format_metric(1e-07) == "1e-07"
    for value in (math.nan, math.inf, True, None, "0.8"):
        assert format_metric(value) is None


def test_package_request_shape() -> None:
    request = package_request(GROUP, SOURCE, GATE, image="123.dkr.ecr/x:1",
                              model_data_url="s3://a/model.tar.gz", report_uri=REPORT)  # fmt: skip
    assert request["ModelPackageGroupName"] == GROUP
    assert request["ModelApprovalStatus"] == "PendingManualApproval"
    assert request["ModelPackageDescription"] == f"credit-risk run {RUN}: {GATE.reason}"
    assert request["InferenceSpecification"] == {
        "Containers": [{"Image": "123.dkr.ecr/x:1", "ModelDataUrl": "s3://a/model.tar.gz"}],
        "SupportedContentTypes": ["application/json"],
        "SupportedResponseMIMETypes": ["application/json"],
    }
    assert request["ModelMetrics"] == {
        "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": REPORT}}
    }
    assert request["MetadataProperties"] == {
        "CommitId": "abc123",
        "Repository": "s3://code/bundles/credit-risk/x.tar.gz",
        "GeneratedBy": f"{RUN}-train",
    }
    token = request["ClientToken"]
    assert token == client_token(RUN) and re.fullmatch(r"[a-f0-9]{32}", token)
    assert client_token(RUN + "x") != token


# --- handler against moto ------------------------------------------------------------------


CONTEXT = lambda_context("register")


@pytest.fixture
def sagemaker(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-northeast-2")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client("sagemaker")


def gate_output(passed: bool = True, auc: float = 0.812) -> dict[str, Any]:
    return {
        "passed": passed,
        "reason": f"auc {auc:.4f} passes the threshold 0.7000; no approved version to compare "
        "with yet (first version)",
        "metric": {"name": "auc", "value": auc},
        "champion": None,
        "improvement": None,
        "metrics": {"auc": auc, "ks": 0.51, "logloss": 0.24},
    }


def event(run_id: str = RUN, **changes: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "model_name": "credit-risk",
        "model_package_group": GROUP,
        "bundle": {"bucket": "code", "key": "bundles/credit-risk/x.tar.gz", "version_id": "v1",
                   "git_commit": "abc123", "uploaded_by": "alice", "sha256": "f" * 64},
        "gate": gate_output(),
        "model_data_url": f"s3://artifacts/runs/{run_id}/model/{run_id}-train/output/model.tar.gz",
        "training_job_name": f"{run_id}-train",
        "image": "123456789012.dkr.ecr.ap-northeast-2.amazonaws.com/inference:1",
        "report_uri": REPORT,
    } | changes  # fmt: skip


def packages(sagemaker: Any) -> list[dict[str, Any]]:
    listed = sagemaker.list_model_packages(ModelPackageGroupName=GROUP)
    return list(listed["ModelPackageSummaryList"])


def test_registers_a_pending_version_and_creates_the_missing_group(sagemaker: Any) -> None:
    result = handler(event(), CONTEXT)
    assert result["version"] == 1
    assert result["model_package_arn"].endswith(":model-package/credit-risk/1")
    assert sagemaker.describe_model_package_group(ModelPackageGroupName=GROUP)[
        "ModelPackageGroupDescription"] == "Versions of the model credit-risk"  # fmt: skip
    described = sagemaker.describe_model_package(ModelPackageName=result["model_package_arn"])
    assert described["ModelApprovalStatus"] == "PendingManualApproval"
    assert described["ModelMetrics"]["ModelQuality"]["Statistics"] == {
        "ContentType": "application/json", "S3Uri": REPORT}  # fmt: skip
    metadata = described["CustomerMetadataProperties"]
    assert metadata["run_id"] == RUN and metadata["code_version"] == "v1"
    assert metadata["git_commit"] == "abc123" and metadata["bundle_key"].endswith("x.tar.gz")
    assert (metadata["metric.auc"], metadata["metric.ks"]) == ("0.812", "0.51")
    container = described["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"].endswith(f"{RUN}-train/output/model.tar.gz")
    assert described["ModelPackageDescription"].startswith(f"credit-risk run {RUN}: auc 0.8120")


def test_a_retried_registration_returns_the_same_package(sagemaker: Any) -> None:
    first = handler(event(), CONTEXT)
    again = handler(event(), CONTEXT)
    assert again == first
    assert len(packages(sagemaker)) == 1
    other = handler(event("credit-risk-20261122000000-deadbeef"), CONTEXT)
    assert other["version"] == 2
    assert len(packages(sagemaker)) == 2
    assert handler(event(), CONTEXT) == first  # still found behind a newer package


def test_existing_group_is_kept(sagemaker: Any) -> None:
    sagemaker.create_model_package_group(
        ModelPackageGroupName=GROUP, ModelPackageGroupDescription="declared by the registry"
    )
    handler(event(), CONTEXT)
    group = sagemaker.describe_model_package_group(ModelPackageGroupName=GROUP)
    assert group["ModelPackageGroupDescription"] == "declared by the registry"


def test_refuses_a_failed_gate_and_off_contract_input(sagemaker: Any) -> None:
    with pytest.raises(InvalidInputError, match="the gate did not pass"):
        handler(event(gate=gate_output(passed=False)), CONTEXT)
    with pytest.raises(InvalidInputError, match=r"invalid RegisterInput: model_data_url"):
        handler(event(model_data_url="model.tar.gz"), CONTEXT)
    with pytest.raises(InvalidInputError, match=r"invalid RegisterInput: gate.extra"):
        handler(event(gate=gate_output() | {"extra": 1}), CONTEXT)
    assert packages(sagemaker) == []


def test_the_gate_reads_an_approved_registration_as_champion(sagemaker: Any) -> None:
    """Register writes `metric.<name>`; the next run's gate compares against it."""
    arn = handler(event(), CONTEXT)["model_package_arn"]
    # moto 5.2.5 replaces CustomerMetadataProperties with None when an update omits them
    # (AWS keeps them), so the approval here re-sends what the package already has.
    metadata = sagemaker.describe_model_package(ModelPackageName=arn)["CustomerMetadataProperties"]
    sagemaker.update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Approved", CustomerMetadataProperties=metadata
    )
    s3 = boto3.client("s3")
    s3.create_bucket(
        Bucket="artifacts", CreateBucketConfiguration={"LocationConstraint": "ap-northeast-2"}
    )
    key = REPORT.removeprefix("s3://artifacts/")
    s3.put_object(Bucket="artifacts", Key=key, Body=json.dumps({"metrics": {"auc": 0.815}}))
    gate_event = {"run_id": "next", "model_package_group": GROUP, "evaluation": {
        "metric": "auc", "direction": "max", "threshold": 0.7, "min_improvement": 0.005,
        "report_uri": REPORT}}  # fmt: skip
    result = gate_handler(gate_event, CONTEXT)
    assert result["champion"] == {"arn": arn, "version": 1, "value": 0.812}
    assert result["passed"] is False
    assert "does not beat the champion credit-risk/1 (0.8120)" in result["reason"]


@pytest.fixture
def registry_fix() -> Iterator[None]:
    """moto erases a package's metadata on UpdateModelPackage; the engine's fix keeps it."""
    from localaws import sagemaker_registry

    sagemaker_registry.install()
    try:
        yield
    finally:
        sagemaker_registry.uninstall()


CT_BUNDLE = {"bucket": "code", "key": "continuous-training/credit-risk/credit-risk-drift-"
             "20261122T003107Z.tar.gz", "version_id": "v9", "uploaded_by": "continuous-training",
             "trigger": "continuous-training", "retrain_reason": "drift",
             "retrain_of": CHAMPION}  # fmt: skip


@pytest.mark.usefixtures("registry_fix")
def test_a_continuous_training_version_is_approved_only_where_configured(
    sagemaker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTO_APPROVE_MODELS", "credit-risk,fraud")
    retrained = handler(event(run_id="credit-risk-ct1", bundle=CT_BUNDLE), CONTEXT)
    described = sagemaker.describe_model_package(ModelPackageName=retrained["model_package_arn"])
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == (
        "auto-approved: continuous-training run credit-risk-ct1 (drift) passed the gate; "
        "monitoring.models.credit-risk.auto_approve is set"
    )
    metadata = described["CustomerMetadataProperties"]
    assert (metadata["trigger"], metadata["retrain_reason"]) == ("continuous-training", "drift")
    # An upload by a person waits, even for an auto-approving model...
    uploaded = handler(event(run_id="credit-risk-up1"), CONTEXT)
    assert sagemaker.describe_model_package(ModelPackageName=uploaded["model_package_arn"])[
        "ModelApprovalStatus"] == "PendingManualApproval"  # fmt: skip
    # ...and so does a retrained version of a model that does not auto-approve.
    monkeypatch.setenv("AUTO_APPROVE_MODELS", "fraud")
    waiting = handler(event(run_id="credit-risk-ct2", bundle=CT_BUNDLE), CONTEXT)
    assert sagemaker.describe_model_package(ModelPackageName=waiting["model_package_arn"])[
        "ModelApprovalStatus"] == "PendingManualApproval"  # fmt: skip


def test_a_retry_after_registering_still_approves(
    sagemaker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUTO_APPROVE_MODELS", raising=False)
    first = handler(event(run_id="credit-risk-ct3", bundle=CT_BUNDLE), CONTEXT)
    monkeypatch.setenv("AUTO_APPROVE_MODELS", "credit-risk")  # as if the approval call failed
    again = handler(event(run_id="credit-risk-ct3", bundle=CT_BUNDLE), CONTEXT)
    assert again["model_package_arn"] == first["model_package_arn"]
    assert len(packages(sagemaker)) == 1
    assert sagemaker.describe_model_package(ModelPackageName=again["model_package_arn"])[
        "ModelApprovalStatus"] == "Approved"  # fmt: skip
