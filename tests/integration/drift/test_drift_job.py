"""The scheduled drift job against the emulator: the same baselines, versions and gzip'd logs as
`mlops drift`'s tests, read by the deployed handler's use case; metrics in CloudWatch, reports in
S3, and each model's outcome in the summary."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest

from lambdas.common import InvalidInputError
from lambdas.drift_job import domain
from lambdas.drift_job.domain import DriftJob, DriftJobError, JobRequest, JobSettings
from lambdas.drift_job.handler import handler, job
from localaws.emulator import Emulator
from tests.helpers import lambda_context
from tests.integration.drift.world import (
    FEATURES,
    LOGS,
    MODEL,
    PREFIX,
    Platform,
    SampleSplit,
    records,
    write_window,
)

pytestmark = pytest.mark.integration
REPORTS, NAMESPACE = "reports", "Test/Drift"
END = datetime(2026, 11, 22, tzinfo=UTC)  # the window: 2026-11-20 and 2026-11-21, whole


def _job(emulator: Emulator, models: str = MODEL) -> DriftJob:
    s3 = emulator.client("s3")
    if REPORTS not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(
            Bucket=REPORTS, CreateBucketConfiguration={"LocationConstraint": emulator.region}
        )
    settings = JobSettings(
        log_bucket=LOGS, report_bucket=REPORTS, champion_prefix=PREFIX, models=models,
        metrics_namespace=NAMESPACE, window_hours=48, aws_region=emulator.region,
    )  # fmt: skip
    return job(settings)


def _metrics(emulator: Emulator) -> dict[tuple[str, str], float]:
    """(metric, feature or "") -> the single value the job put."""
    cloudwatch, found = emulator.client("cloudwatch"), {}
    for metric in cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"]:
        dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
        stats = cloudwatch.get_metric_statistics(
            Namespace=NAMESPACE, MetricName=metric["MetricName"], Dimensions=metric["Dimensions"],
            StartTime=datetime.now(UTC) - timedelta(hours=1),
            EndTime=datetime.now(UTC) + timedelta(hours=1), Period=3600, Statistics=["Maximum"],
        )["Datapoints"]  # fmt: skip
        assert len(stats) == 1, metric
        assert dims["Model"] == MODEL
        found[metric["MetricName"], dims.get("Feature", "")] = stats[0]["Maximum"]
    return found


class _Svgs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.svgs = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.svgs += tag == "svg"


def test_a_reading_publishes_metrics_and_writes_the_report(
    emulator: Emulator, platform: Platform, split: SampleSplit
) -> None:
    served = records(split.served[:800])
    write_window(platform, served)
    summary = _job(emulator).run(JobRequest(end=END))
    (result,) = summary["models"]
    assert summary["window"] == {"start": "2026-11-20T00:00:00+00:00",
                                 "end": "2026-11-22T00:00:00+00:00"}  # fmt: skip
    assert result["status"] in ("ok", "warn") and result["version"] == 3
    assert result["records"] == 800
    key = "drift-reports/credit-risk/dt=2026-11-22/report"
    assert result["report"] == f"s3://{REPORTS}/{key}.html"
    metrics = _metrics(emulator)
    psis = {f: v for (name, f), v in metrics.items() if name == "PSI"}
    assert sorted(psis) == sorted([*FEATURES, "score"])
    assert metrics["MaxPSI", ""] == pytest.approx(max(psis.values())) == result["max_psi"]
    assert (metrics["Records", ""], metrics["DataProblems", ""]) == (800.0, 0.0)
    s3 = emulator.client("s3")
    report = json.loads(s3.get_object(Bucket=REPORTS, Key=f"{key}.json")["Body"].read())
    assert report["package_arn"] == platform.arns[3]
    assert {n: c["psi"] for n, c in report["features"].items()} == {
        f: pytest.approx(psis[f]) for f in FEATURES
    }
    page = s3.get_object(Bucket=REPORTS, Key=f"{key}.html")
    assert page["ContentType"] == "text/html; charset=utf-8"
    parser = _Svgs()
    parser.feed(page["Body"].read().decode())
    assert parser.svgs == len(FEATURES) + 1


def test_a_shift_is_act_and_a_rolling_window_keeps_only_its_records(
    emulator: Emulator, platform: Platform, split: SampleSplit
) -> None:
    shifted = split.served[:800].copy()
    shifted[:, 0] += split.age_sd
    write_window(platform, records(shifted))
    # 24 hours ending two minutes into the 21st: the 20th from 00:02 on, and two minutes of the
    # 21st (`log` stamps the n-th record of a day at second n).
    end = datetime(2026, 11, 21, 0, 2, tzinfo=UTC)
    summary = _job(emulator).run(JobRequest(end=end, hours=24))
    (result,) = summary["models"]
    assert result["status"] == "act" and result["max_psi"] >= 0.25
    kept = 2 * (200 - 120) + 2 * 120  # two objects per day of 200 records each
    assert result["records"] == kept
    assert _metrics(emulator)["MaxPSI", ""] >= 0.25


def test_models_without_a_reading_are_results_and_errors_do_not_stop_the_others(
    emulator: Emulator, platform: Platform, split: SampleSplit, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_window(platform, records(split.served[:400]))
    outcome = _job(emulator, f"{MODEL},fraud").run(JobRequest(end=END))
    assert [r["status"] for r in outcome["models"]][1] == "no_champion"
    platform.crown(2)  # version 2's evaluation report object does not exist
    (unreadable,) = _job(emulator).run(JobRequest(end=END))["models"]
    assert unreadable["status"] == "unreadable" and "does not exist" in unreadable["reason"]
    platform.crown(3)

    def broken(cloudwatch: Any, namespace: str, report: Any, at: datetime) -> int:
        raise RuntimeError("throttled")

    monkeypatch.setattr(domain, "publish", broken)
    with pytest.raises(DriftJobError, match=r"failed for \['credit-risk'\]") as raised:
        _job(emulator, f"{MODEL},fraud").run(JobRequest(end=END))
    assert '"status": "no_champion"' in str(raised.value)  # the other model was still read


def test_bad_events_and_settings_are_refused_before_reading(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InvalidInputError, match="hours"):
        handler({"hours": 0}, lambda_context("drift"))
    with pytest.raises(InvalidInputError, match="window"):
        handler({"window": 3}, lambda_context("drift"))
    settings = JobSettings(log_bucket=LOGS, report_bucket=REPORTS, champion_prefix=PREFIX,
                           models=MODEL, aws_region=emulator.region)  # fmt: skip
    with pytest.raises(ValueError, match=r"models \['fraud'\] are not watched here"):
        job(settings).run(JobRequest(models=["fraud"]))
