"""Gate task of the training workflow (`lambda:invoke`): judge evaluation.json.

Input (docs/training-pipeline.md, "Lambda contracts"):
`{"run_id", "model_package_group", "evaluation": {"metric", "direction", "threshold",
"min_improvement", "report_uri"}}`.
Output: `{"passed", "reason", "metric": {"name", "value"}, "champion": {"arn", "version",
"value"} | null, "improvement", "metrics"}`. A failed gate is a normal result
(`passed: false`); exceptions mean the gate could not judge at all:

- `EvaluationReportError`: the report is missing, unreadable, or lacks the metric;
- `InvalidInputError`: the event does not match the contract.

The champion is the newest Approved package of the group; its metric comes from the
`metric.<name>` customer metadata the register task writes.
"""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from lambdas.common import parse_event, split_s3_uri
from lambdas.gate.domain import (
    Champion,
    Criteria,
    Decision,
    Direction,
    EvaluationReportError,
    champion_value,
    decide,
    json_safe,
    metric_of,
    report_metrics,
)

logger = Logger(service="training-gate")


class EvaluationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: str = Field(min_length=1)
    direction: Direction
    threshold: float = Field(allow_inf_nan=False)
    min_improvement: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    report_uri: str = Field(pattern=r"^s3://[^/]+/.+")


class GateInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(min_length=1)
    model_package_group: str = Field(min_length=1)
    evaluation: EvaluationSpec


def read_metrics(s3: Any, report_uri: str) -> dict[str, Any]:
    bucket, key = split_s3_uri(report_uri)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise EvaluationReportError(f"cannot read {report_uri}: {code}") from None
    return report_metrics(body, report_uri)


def _group_missing(error: ClientError) -> bool:
    message = str(error.response.get("Error", {}).get("Message", "")).lower()
    return "does not exist" in message or "not found" in message


def find_champion(sagemaker: Any, group: str, metric: str) -> Champion | None:
    """The newest Approved package of `group`, or None (also when the group does not exist)."""
    pages = sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=group,
        ModelApprovalStatus="Approved",
        SortBy="CreationTime",
        SortOrder="Descending",
    )
    try:
        summary = next(
            (
                s
                for page in pages
                for s in page.get("ModelPackageSummaryList", [])
                if s.get("ModelApprovalStatus") == "Approved"
            ),
            None,
        )
    except ClientError as exc:
        if not _group_missing(exc):
            raise
        logger.info("model package group does not exist yet", extra={"group": group})
        return None
    if summary is None:
        return None
    arn = summary["ModelPackageArn"]
    described = sagemaker.describe_model_package(ModelPackageName=arn)
    version = described.get("ModelPackageVersion")
    return Champion(
        arn=arn,
        version=version,
        label=f"{group}/{version}" if version is not None else arn,
        value=champion_value(described.get("CustomerMetadataProperties"), metric),
    )


def shape(
    criteria: Criteria,
    decision: Decision,
    champion: Champion | None,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    return {
        "passed": decision.passed,
        "reason": decision.reason,
        "metric": {"name": criteria.metric, "value": decision.value},
        "champion": None
        if champion is None
        else {"arn": champion.arn, "version": champion.version, "value": champion.value},
        "improvement": decision.improvement,
        "metrics": json_safe(metrics),
    }


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001
    request = parse_event(GateInput, event)
    spec = request.evaluation
    logger.append_keys(run_id=request.run_id)
    criteria = Criteria(spec.metric, spec.direction, spec.threshold, spec.min_improvement)
    metrics = read_metrics(boto3.client("s3"), spec.report_uri)
    value = metric_of(metrics, spec.metric, spec.report_uri)
    champion = find_champion(boto3.client("sagemaker"), request.model_package_group, spec.metric)
    decision = decide(criteria, value, champion)
    logger.info(
        "gate decision",
        extra={"passed": decision.passed, "reason": decision.reason,
               "champion": champion.arn if champion else None},
    )  # fmt: skip
    return shape(criteria, decision, champion, metrics)
