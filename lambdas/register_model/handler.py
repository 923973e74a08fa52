"""Register task of the training workflow (`lambda:invoke`): create the model version.

Input (docs/training-pipeline.md, "Lambda contracts"): `{"run_id", "model_name",
"model_package_group", "bundle", "gate", "model_data_url", "training_job_name", "image",
"report_uri"}` plus the optional `data_snapshot` (the training frame's S3 URI). Output:
`{"model_package_arn", "version"}`.

Step Functions may retry this task after a package was created (timeouts, throttles), so a
run registers at most once: a package whose `run_id` metadata matches is returned instead of
creating another, and the request carries a `ClientToken` derived from the run id for the
service's own idempotency. A group that does not exist yet is created (and logged) so the
first run of a new model works before the registry declares its group.

Errors (Step Functions error names): `InvalidInputError` (event off-contract, or a gate
result that did not pass -- registering it would be a wiring bug).
"""

from __future__ import annotations

import os
from typing import Any, Literal

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from lambdas.common import InvalidInputError, parse_event
from lambdas.register_model.domain import GateSummary, Provenance, package_request

logger = Logger(service="training-register")

RECENT_PACKAGES = 20  # how far back a retried registration looks for its own package


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Bundle(_Strict):
    bucket: str
    key: str
    version_id: str | None = None
    git_commit: str | None = None
    uploaded_by: str | None = None
    sha256: str | None = None
    trigger: Literal["upload", "continuous-training"] = "upload"
    retrain_reason: str | None = None
    retrain_of: str | None = None


class GateMetric(_Strict):
    name: str
    value: float | None


class GateChampion(_Strict):
    arn: str
    version: int | None
    value: float | None


class GateResult(_Strict):
    passed: bool
    reason: str
    metric: GateMetric
    champion: GateChampion | None
    improvement: float | None
    metrics: dict[str, Any]


class RegisterInput(_Strict):
    run_id: str = Field(min_length=1)
    model_name: str = Field(min_length=1)
    model_package_group: str = Field(min_length=1)
    bundle: Bundle
    gate: GateResult
    model_data_url: str = Field(pattern=r"^s3://[^/]+/.+")
    training_job_name: str | None = None
    image: str = Field(min_length=1)
    report_uri: str = Field(pattern=r"^s3://[^/]+/.+")
    data_snapshot: str | None = None


def ensure_group(sagemaker: Any, group: str, model_name: str) -> None:
    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=group)
        return
    except ClientError as exc:
        if "does not exist" not in str(exc.response.get("Error", {}).get("Message", "")):
            raise
    logger.warning("model package group missing; creating it", extra={"group": group})
    try:
        sagemaker.create_model_package_group(
            ModelPackageGroupName=group,
            ModelPackageGroupDescription=f"Versions of the model {model_name}",
        )
    except ClientError as exc:
        if "already exists" not in str(exc.response.get("Error", {}).get("Message", "")):
            raise  # anything but losing a creation race to a concurrent run


def find_registered(sagemaker: Any, group: str, run_id: str) -> dict[str, Any] | None:
    """This run's package among the group's most recent ones (DescribeModelPackage output)."""
    pages = sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=group,
        SortBy="CreationTime",
        SortOrder="Descending",
        PaginationConfig={"MaxItems": RECENT_PACKAGES, "PageSize": RECENT_PACKAGES},
    )
    for page in pages:
        for summary in page.get("ModelPackageSummaryList", []):
            described_as = summary.get("ModelPackageDescription")
            if described_as is not None and run_id not in described_as:
                continue  # our descriptions name the run; skip the Describe call
            described: dict[str, Any] = sagemaker.describe_model_package(
                ModelPackageName=summary["ModelPackageArn"]
            )
            if (described.get("CustomerMetadataProperties") or {}).get("run_id") == run_id:
                return described
    return None


def register(sagemaker: Any, request: RegisterInput) -> dict[str, Any]:
    """Create (or find, on a retry) this run's package; DescribeModelPackage output."""
    group = request.model_package_group
    ensure_group(sagemaker, group, request.model_name)
    existing = find_registered(sagemaker, group, request.run_id)
    if existing is not None:
        logger.info("run already registered", extra={"arn": existing["ModelPackageArn"]})
        return _approve_if_due(sagemaker, request, existing)
    bundle, gate = request.bundle, request.gate
    source = Provenance(
        run_id=request.run_id,
        model_name=request.model_name,
        bundle_bucket=bundle.bucket,
        bundle_key=bundle.key,
        code_version=bundle.version_id,
        git_commit=bundle.git_commit,
        uploaded_by=bundle.uploaded_by,
        bundle_sha256=bundle.sha256,
        data_snapshot=request.data_snapshot,
        training_job_name=request.training_job_name,
        trigger=bundle.trigger,
        retrain_reason=bundle.retrain_reason,
    )
    summary = GateSummary(
        metric=gate.metric.name,
        reason=gate.reason,
        champion_arn=gate.champion.arn if gate.champion else None,
        improvement=gate.improvement,
        metrics=gate.metrics,
    )
    kwargs = package_request(
        group, source, summary,
        image=request.image, model_data_url=request.model_data_url,
        report_uri=request.report_uri,
    )  # fmt: skip
    arn = sagemaker.create_model_package(**kwargs)["ModelPackageArn"]
    logger.info("registered model package", extra={"arn": arn})
    described: dict[str, Any] = sagemaker.describe_model_package(ModelPackageName=arn)
    return _approve_if_due(sagemaker, request, described)


def _approve_if_due(
    sagemaker: Any, request: RegisterInput, package: dict[str, Any]
) -> dict[str, Any]:
    """Approve a pending continuous-training version when its model auto-approves (also on a
    retried registration that stopped between creating and approving)."""
    approval = auto_approval(request, auto_approve_models())
    if approval is None or package.get("ModelApprovalStatus") != "PendingManualApproval":
        return package
    arn = package["ModelPackageArn"]
    # A second call, not an Approved creation: the approval is its own change event, which the
    # approval hook deploys like any other; the registry records why.
    sagemaker.update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription=approval
    )
    logger.info("auto-approved a continuous-training version", extra={"arn": arn})
    approved: dict[str, Any] = sagemaker.describe_model_package(ModelPackageName=arn)
    return approved


def auto_approve_models() -> frozenset[str]:
    """AUTO_APPROVE_MODELS: models whose continuous-training versions need no person."""
    return frozenset(m for m in os.environ.get("AUTO_APPROVE_MODELS", "").split(",") if m)


def auto_approval(request: RegisterInput, models: frozenset[str]) -> str | None:
    """The approval description when this version is approved on registration, else None:
    only runs the retraining function started (their bundle key says so) of a model whose
    `monitoring.models.<model>.auto_approve` is set. Uploads by people always wait."""
    bundle = request.bundle
    if bundle.trigger != "continuous-training" or request.model_name not in models:
        return None
    why = f" ({bundle.retrain_reason})" if bundle.retrain_reason else ""
    return (f"auto-approved: continuous-training run {request.run_id}{why} passed the gate; "
            f"monitoring.models.{request.model_name}.auto_approve is set")[:1000]  # fmt: skip


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001
    request = parse_event(RegisterInput, event)
    logger.append_keys(run_id=request.run_id)
    if not request.gate.passed:
        raise InvalidInputError(
            f"the gate did not pass, refusing to register: {request.gate.reason}"
        )
    package = register(boto3.client("sagemaker"), request)
    return {
        "model_package_arn": package["ModelPackageArn"],
        "version": package.get("ModelPackageVersion"),
    }
