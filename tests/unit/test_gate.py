from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.common import InvalidInputError
from lambdas.gate.domain import (
    Champion,
    Criteria,
    Direction,
    EvaluationReportError,
    champion_value,
    decide,
    fmt,
    json_safe,
    metric_of,
    report_metrics,
)
from lambdas.gate.handler import find_champion, handler
from tests.helpers import lambda_context

pytestmark = pytest.mark.unit

GROUP = "credit-risk"
BUCKET = "artifacts"
REPORT_KEY = "runs/r1/evaluation/evaluation.json"
AUC = Criteria("auc", Direction.MAX, threshold=0.70, min_improvement=0.005)
LOGLOSS = Criteria("logloss", Direction.MIN, threshold=0.30, min_improvement=0.01)


def champ(value: float | None, version: int = 3) -> Champion:
    arn = f"arn:aws:sagemaker:ap-northeast-2:123456789012:model-package/{GROUP}/{version}"
    return Champion(arn=arn, version=version, label=f"{GROUP}/{version}", value=value)


# criteria, candidate value, champion, passed, improvement, reason
DECISIONS: list[tuple[str, Criteria, Any, Champion | None, bool, float | None, str]] = [
    ("first-version-pass", AUC, 0.8120, None, True, None,
     "auc 0.8120 passes the threshold 0.7000; no approved version to compare with yet "
     "(first version)"),
    ("first-version-fail", AUC, 0.6900, None, False, None,
     "auc 0.6900 is below the threshold 0.7000"),
    ("below-threshold-beats-champion", AUC, 0.6900, champ(0.5), False, None,
     "auc 0.6900 is below the threshold 0.7000"),
    ("exactly-at-threshold", AUC, 0.70, None, True, None,
     "auc 0.7000 passes the threshold 0.7000; no approved version to compare with yet "
     "(first version)"),
    ("beats-champion", AUC, 0.8120, champ(0.77), True, 0.042,
     "auc 0.8120 passes the threshold 0.7000 and beats champion credit-risk/3 (0.7700) by "
     "0.0420 (required 0.0050)"),
    ("exactly-at-margin", AUC, 0.775, champ(0.77), True, 0.005,
     "auc 0.7750 passes the threshold 0.7000 and beats champion credit-risk/3 (0.7700) by "
     "0.0050 (required 0.0050)"),
    ("at-margin-despite-float-noise", AUC, 0.813, champ(0.808), True, 0.005,
     "auc 0.8130 passes the threshold 0.7000 and beats champion credit-risk/3 (0.8080) by "
     "0.0050 (required 0.0050)"),
    ("just-under-margin", AUC, 0.7749, champ(0.77), False, 0.0049,
     "auc 0.7749 does not beat the champion credit-risk/3 (0.7700) by the required 0.0050 "
     "(improvement 0.0049)"),
    ("worse-than-champion", AUC, 0.7650, champ(0.77), False, -0.005,
     "auc 0.7650 does not beat the champion credit-risk/3 (0.7700) by the required 0.0050 "
     "(improvement -0.0050)"),
    ("champion-without-metric", AUC, 0.75, champ(None), True, None,
     "auc 0.7500 passes the threshold 0.7000; champion credit-risk/3 has no recorded auc "
     "(metadata metric.auc), so it was compared by threshold only"),
    ("min-first-version-pass", LOGLOSS, 0.25, None, True, None,
     "logloss 0.2500 passes the threshold 0.3000; no approved version to compare with yet "
     "(first version)"),
    ("min-above-threshold", LOGLOSS, 0.31, None, False, None,
     "logloss 0.3100 is above the threshold 0.3000 (lower is better)"),
    ("min-exactly-at-threshold", LOGLOSS, 0.30, None, True, None,
     "logloss 0.3000 passes the threshold 0.3000; no approved version to compare with yet "
     "(first version)"),
    ("min-beats-champion", LOGLOSS, 0.20, champ(0.24), True, 0.04,
     "logloss 0.2000 passes the threshold 0.3000 and beats champion credit-risk/3 (0.2400) by "
     "0.0400 (required 0.0100)"),
    ("min-exactly-at-margin", LOGLOSS, 0.23, champ(0.24), True, 0.01,
     "logloss 0.2300 passes the threshold 0.3000 and beats champion credit-risk/3 (0.2400) by "
     "0.0100 (required 0.0100)"),
    ("min-worse-than-champion", LOGLOSS, 0.25, champ(0.24), False, -0.01,
     "logloss 0.2500 does not beat the champion credit-risk/3 (0.2400) by the required 0.0100 "
     "(improvement -0.0100)"),
    ("nan", AUC, math.nan, champ(0.77), False, None,
     "auc is nan in the evaluation report, so it cannot pass"),
    ("infinite", LOGLOSS, math.inf, None, False, None,
     "logloss is inf in the evaluation report, so it cannot pass"),
    ("string", AUC, "0.81", None, False, None,
     "auc is '0.81' (str), not a number, so it cannot pass"),
    ("null", AUC, None, None, False, None,
     "auc is None (NoneType), not a number, so it cannot pass"),
    ("boolean", AUC, True, None, False, None,
     "auc is True (bool), not a number, so it cannot pass"),
    ("integer", AUC, 1, champ(0.77), True, 0.23,
     "auc 1.0000 passes the threshold 0.7000 and beats champion credit-risk/3 (0.7700) by "
     "0.2300 (required 0.0050)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("criteria", "value", "champion", "passed", "improvement", "reason"),
    [pytest.param(*row[1:], id=row[0]) for row in DECISIONS],
)
def test_decide(
    criteria: Criteria,
    value: Any,
    champion: Champion | None,
    passed: bool,
    improvement: float | None,
    reason: str,
) -> None:
    decision = decide(criteria, value, champion)
    assert decision.passed is passed
    assert decision.reason == reason
    if improvement is None:
        assert decision.improvement is None
    else:
        assert decision.improvement == pytest.approx(improvement, abs=1e-12)
    number_in = isinstance(value, int | float) and not isinstance(value, bool)
    expected_value = float(value) if number_in and math.isfinite(value) else None
    assert decision.value == expected_value


def test_zero_margin_accepts_a_tie_and_tiny_gaps_stay_visible() -> None:
    tie = Criteria("auc", Direction.MAX, threshold=0.7, min_improvement=0.0)
    assert decide(tie, 0.77, champ(0.77)).passed is True
    worse = decide(tie, 0.76999, champ(0.77))
    assert worse.passed is False
    assert "(improvement -1e-05)" in worse.reason
    assert fmt(0.0) == "0.0000" and fmt(-0.00001) == "-1e-05"


def test_report_parsing_names_what_is_wrong() -> None:
    text = json.dumps({"schema_version": 1, "metrics": {"auc": 0.8, "ks": 0.5}})
    metrics = report_metrics(text, "s3://b/e.json")
    assert metric_of(metrics, "auc", "s3://b/e.json") == 0.8
    with pytest.raises(EvaluationReportError, match=r"'gini' is not in s3://b/e.json; "
                       r"available metrics: auc, ks"):  # fmt: skip
        metric_of(metrics, "gini", "s3://b/e.json")
    with pytest.raises(EvaluationReportError, match="not valid JSON"):
        report_metrics(b"{", "s3://b/e.json")
    with pytest.raises(EvaluationReportError, match="has no 'metrics' object"):
        report_metrics(json.dumps({"metrics": [1]}), "s3://b/e.json")
    assert report_metrics('{"metrics": {"auc": NaN}}', "x")["auc"] != 0.0  # NaN is parsed


def test_champion_value_and_json_safe_metrics() -> None:
    assert champion_value({"metric.auc": "0.7712345678"}, "auc") == 0.7712345678
    assert champion_value({"metric.auc": "n/a"}, "auc") is None
    assert champion_value({"metric.auc": "nan"}, "auc") is None
    assert champion_value({"metric.ks": "0.5"}, "auc") is None
    assert champion_value(None, "auc") is None
    assert json_safe({"auc": math.nan, "ks": 0.5, "note": "x"}) == {
        "auc": None, "ks": 0.5, "note": "x"}  # fmt: skip


class _Pages:
    """A paginator whose first page is empty but has more pages (allowed by the API)."""

    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = pages
        self.kwargs: dict[str, Any] = {}

    def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.kwargs = kwargs
        return iter(self.pages)


class _FakeSageMaker:
    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.paginator = _Pages(pages)

    def get_paginator(self, name: str) -> _Pages:
        assert name == "list_model_packages"
        return self.paginator

    def describe_model_package(self, ModelPackageName: str) -> dict[str, Any]:  # noqa: N803
        return {"ModelPackageArn": ModelPackageName, "ModelPackageVersion": 7,
                "CustomerMetadataProperties": {"metric.auc": "0.81"}}  # fmt: skip


def test_champion_search_reads_past_empty_pages() -> None:
    arn = "arn:aws:sagemaker:ap-northeast-2:123456789012:model-package/credit-risk/7"
    fake = _FakeSageMaker([
        {"ModelPackageSummaryList": [], "NextToken": "t"},
        {"ModelPackageSummaryList": [{"ModelPackageArn": arn, "ModelApprovalStatus": "Approved"}]},
    ])  # fmt: skip
    champion = find_champion(fake, GROUP, "auc")
    assert champion == Champion(arn=arn, version=7, label="credit-risk/7", value=0.81)
    assert fake.paginator.kwargs == {
        "ModelPackageGroupName": GROUP, "ModelApprovalStatus": "Approved",
        "SortBy": "CreationTime", "SortOrder": "Descending"}  # fmt: skip


# --- handler against moto ------------------------------------------------------------------


CONTEXT = lambda_context("gate")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-northeast-2")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-2"}
        )
        yield {"s3": s3, "sagemaker": boto3.client("sagemaker")}


def put_report(s3: Any, metrics: dict[str, Any]) -> None:
    body = json.dumps({"schema_version": 1, "metrics": metrics, "rows": 3000})
    s3.put_object(Bucket=BUCKET, Key=REPORT_KEY, Body=body.encode())


def add_package(sagemaker: Any, status: str, metadata: dict[str, str] | None) -> str:
    kwargs: dict[str, Any] = {
        "ModelPackageGroupName": GROUP,
        "ModelApprovalStatus": status,
        "InferenceSpecification": {
            "Containers": [{"Image": "img", "ModelDataUrl": "s3://a/model.tar.gz"}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    }
    if metadata:
        kwargs["CustomerMetadataProperties"] = metadata
    arn: str = sagemaker.create_model_package(**kwargs)["ModelPackageArn"]
    return arn


def event(**evaluation: Any) -> dict[str, Any]:
    spec = {"metric": "auc", "direction": "max", "threshold": 0.70, "min_improvement": 0.005,
            "report_uri": f"s3://{BUCKET}/{REPORT_KEY}"} | evaluation  # fmt: skip
    return {"run_id": "r1", "model_package_group": GROUP, "evaluation": spec}


def test_first_version_when_the_group_does_not_exist(aws: dict[str, Any]) -> None:
    put_report(aws["s3"], {"auc": 0.812, "ks": 0.5, "logloss": 0.24})
    result = handler(event(), CONTEXT)
    assert result == {
        "passed": True,
        "reason": "auc 0.8120 passes the threshold 0.7000; no approved version to compare "
        "with yet (first version)",
        "metric": {"name": "auc", "value": 0.812},
        "champion": None,
        "improvement": None,
        "metrics": {"auc": 0.812, "ks": 0.5, "logloss": 0.24},
    }
    assert json.loads(json.dumps(result, allow_nan=False)) == result


def test_champion_is_the_newest_approved_package(aws: dict[str, Any]) -> None:
    sm = aws["sagemaker"]
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    add_package(sm, "Approved", {"metric.auc": "0.70"})
    champion_arn = add_package(sm, "Approved", {"metric.auc": "0.77", "run_id": "old"})
    add_package(sm, "Rejected", {"metric.auc": "0.95"})
    add_package(sm, "PendingManualApproval", {"metric.auc": "0.99"})
    put_report(aws["s3"], {"auc": 0.812})
    result = handler(event(), CONTEXT)
    assert result["passed"] is True
    assert result["champion"] == {"arn": champion_arn, "version": 2, "value": 0.77}
    assert result["improvement"] == pytest.approx(0.042)
    assert "beats champion credit-risk/2 (0.7700) by 0.0420" in result["reason"]

    put_report(aws["s3"], {"auc": 0.765})
    failed = handler(event(), CONTEXT)
    assert failed["passed"] is False
    assert failed["reason"] == (
        "auc 0.7650 does not beat the champion credit-risk/2 (0.7700) by the required 0.0050 "
        "(improvement -0.0050)"
    )


def test_champion_without_the_metric_is_compared_by_threshold_only(
    aws: dict[str, Any],
) -> None:
    sm = aws["sagemaker"]
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    arn = add_package(sm, "Approved", {"metric.ks": "0.4"})
    put_report(aws["s3"], {"auc": 0.72})
    result = handler(event(), CONTEXT)
    assert result["passed"] is True
    assert result["champion"] == {"arn": arn, "version": 1, "value": None}
    assert "champion credit-risk/1 has no recorded auc" in result["reason"]


def test_nan_metric_fails_and_output_stays_valid_json(aws: dict[str, Any]) -> None:
    aws["s3"].put_object(Bucket=BUCKET, Key=REPORT_KEY,
                         Body=b'{"metrics": {"auc": NaN, "ks": 0.4}}')  # fmt: skip
    result = handler(event(), CONTEXT)
    assert result["passed"] is False
    assert result["reason"] == "auc is nan in the evaluation report, so it cannot pass"
    assert result["metric"] == {"name": "auc", "value": None}
    assert result["metrics"] == {"auc": None, "ks": 0.4}
    json.dumps(result, allow_nan=False)


def test_min_direction_reads_the_lower_is_better_metric(aws: dict[str, Any]) -> None:
    put_report(aws["s3"], {"auc": 0.9, "logloss": 0.35})
    result = handler(event(metric="logloss", direction="min", threshold=0.3), CONTEXT)
    assert result["passed"] is False
    assert result["reason"] == "logloss 0.3500 is above the threshold 0.3000 (lower is better)"


def test_report_errors_are_typed(aws: dict[str, Any]) -> None:
    with pytest.raises(EvaluationReportError, match=rf"cannot read s3://{BUCKET}/{REPORT_KEY}"):
        handler(event(), CONTEXT)
    put_report(aws["s3"], {"ks": 0.5, "logloss": 0.2})
    with pytest.raises(EvaluationReportError) as info:
        handler(event(), CONTEXT)
    assert str(info.value) == (
        f"metric 'auc' is not in s3://{BUCKET}/{REPORT_KEY}; available metrics: ks, logloss"
    )
    assert type(info.value).__name__ == "EvaluationReportError"  # the Step Functions error


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"direction": "up"}, "evaluation.direction"),
        ({"report_uri": "https://x/y"}, "evaluation.report_uri"),
        ({"min_improvement": -0.1}, "evaluation.min_improvement"),
        ({"surprise": 1}, "evaluation.surprise"),
    ],
)
def test_invalid_input_is_rejected_before_any_call(
    aws: dict[str, Any], bad: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInputError, match=rf"invalid GateInput: {field}"):
        handler(event(**bad), CONTEXT)
