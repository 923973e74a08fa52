"""`mlops drift` against the emulator: baselines the sample bundle's evaluation script fixed on
sample warehouse data, stored as a registered version's evaluation report; the champion pointer
naming that version; gzip'd prediction logs under `predictions/dt=.../` as Firehose writes them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mlops.cli import app
from monitoring import job as monitoring_job
from tests.integration.drift.world import (
    FEATURES,
    IN_WINDOW,
    LOGS,
    MODEL,
    OUTSIDE,
    WINDOW,
    Platform,
    SampleSplit,
    outputs,
    records,
    write_window,
)

pytestmark = pytest.mark.integration
runner = CliRunner(env={"COLUMNS": "200"})


def drift(*args: str) -> Any:
    return runner.invoke(app, ["drift", MODEL, *WINDOW, *args])


def row(output: str, column: str) -> list[str]:
    found = [line for line in output.splitlines() if f"│ {column} " in line]
    assert len(found) == 1, output
    return [cell.strip() for cell in found[0].strip("│ ").split("│")]


def test_a_calm_window_prints_every_column_ok_or_warn(
    platform: Platform, split: SampleSplit, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(monitoring_job, "PAGE_SIZE", 1)  # every listing takes several pages
    served = records(split.served)
    write_window(platform, [*served, "not a record", {"model": "fraud", "features": {}}])
    result = drift()
    assert result.exit_code == 0, result.output
    cells = {name: row(result.output, name) for name in [*FEATURES, "score (score)"]}
    assert {c[2] for c in cells.values()} <= {"ok", "warn"}
    assert all(c[3] == str(len(served)) for c in cells.values())
    psis = [float(cells[line.split("│")[1].strip()][1]) for line in result.output.splitlines()
            if line.count("│") == 6]  # fmt: skip
    assert psis == sorted(psis, reverse=True) and len(psis) == len(FEATURES) + 1
    assert cells["income_monthly"][4] not in ("0.0%", "-")
    *_, summary, latest = result.output.strip().splitlines()
    assert latest == "latest scheduled report: none yet"
    assert "credit-risk v3 · window 2026-11-20..2026-11-21 (2 day(s), 4 objects)" in summary
    assert f"records: {len(served)} used, 1 skipped, 1 malformed" in summary
    assert summary.endswith("status: ok") or summary.endswith("status: warn")


def test_a_one_sd_shift_of_one_feature_acts(platform: Platform, split: SampleSplit) -> None:
    shifted = split.served.copy()
    shifted[:, 0] += split.age_sd
    write_window(platform, records(shifted))
    result = drift()
    assert result.exit_code == 0, result.output  # drift is reported, not an error
    assert row(result.output, "age")[2] == "act" and float(row(result.output, "age")[1]) > 0.25
    assert row(result.output, "credit_limit")[2] in ("ok", "warn")
    lines = [line for line in result.output.splitlines() if line.count("│") == 6]
    assert "age" in lines[0]  # the worst first
    assert result.output.strip().splitlines()[-2].endswith("status: act")


def test_json_carries_the_psi_and_the_window(platform: Platform, split: SampleSplit) -> None:
    served = records(split.served)
    write_window(platform, served)
    table = drift()
    body = json.loads(drift("--json").output)
    assert (body["model"], body["version"], body["package_arn"]) == (MODEL, "3", platform.arns[3])
    assert body["window"]["records"] == len(served) and body["window"]["objects"] == 4
    assert body["window"]["partitions"] == [f"predictions/dt={d}/" for d in IN_WINDOW]
    assert body["thresholds"]["act"] == 0.25
    for name in ("age", "credit_utilization"):
        psi = body["features"][name]["psi"]
        assert 0 <= psi < 0.25 and row(table.output, name)[1] == f"{psi:.4f}"
    assert body["score"]["psi"] is not None and body["status"] in ("ok", "warn")


def test_only_the_windows_partitions_are_read(platform: Platform, split: SampleSplit) -> None:
    served = records(split.served[:500])
    platform.log(IN_WINDOW[0], "a", served[:300])
    platform.log(IN_WINDOW[1], "b", served[300:])
    for day in OUTSIDE:
        platform.log(day, "outside", records(split.served[500:600]))
    platform.log("2026-11-2", "prefix-of-a-partition", records(split.served[600:700]))
    body = json.loads(drift("--json").output)
    assert (body["window"]["records"], body["window"]["objects"]) == (500, 2)
    one_day = json.loads(drift("--json", "--days", "1").output)
    assert one_day["window"]["records"] == 200 and one_day["window"]["start"] == "2026-11-21"


def test_an_empty_window_is_reported_not_an_error(platform: Platform, split: SampleSplit) -> None:
    platform.log(OUTSIDE[0], "old", records(split.served[:200]))
    platform.log(IN_WINDOW[0], "other-version", records(split.served[:200], version=2))
    result = drift()
    assert result.exit_code == 0, result.output
    assert "no prediction records of credit-risk v3 in s3://pred-logs/predictions/dt=" \
           "2026-11-20..2026-11-21" in result.output  # fmt: skip
    assert "records: 0 used, 200 skipped" in result.output
    assert result.output.strip().splitlines()[-2].endswith("status: empty_window")
    body = json.loads(drift("--json").output)
    assert body["status"] == "empty_window" and body["window"]["objects"] == 1


def test_an_older_version_is_read_by_number(platform: Platform, split: SampleSplit) -> None:
    platform.register(4, split.report)
    platform.log(IN_WINDOW[0], "v4", records(split.served[:300], version=4))
    body = json.loads(drift("--json", "--version", "4").output)
    assert (body["version"], body["window"]["records"]) == ("4", 300)
    assert body["package_arn"] == platform.arns[4]


def test_errors_exit_2_with_their_message(platform: Platform) -> None:
    cases = [
        (["--version", "9"], "'credit-risk' has no version 9"),
        (["--version", "1"], "baselines: the evaluation report has no baselines entry"),
        (["--version", "2"], "evaluation report s3://artifacts/runs/credit-risk-20261102-run2/"
                             "evaluation/evaluation.json does not exist"),
        (["--end", "21-11-2026"], "--end must be a day as YYYY-MM-DD"),
        (["--warn", "0.3"], "need 0 < warn <= act"),
        (["--env", "prod"], "cannot read stack mlops-prod-serving"),
    ]  # fmt: skip
    for args, message in cases:
        result = drift(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "│" not in result.output, (args, result.output)
    unknown = runner.invoke(app, ["drift", "fraud", *WINDOW])
    assert unknown.exit_code == 2 and "no model 'fraud' in the registry" in unknown.output
    platform.sagemaker.create_model_package_group(ModelPackageGroupName="fraud")
    no_champion = runner.invoke(app, ["drift", "fraud", *WINDOW])
    assert no_champion.exit_code == 2, no_champion.output
    assert "'fraud' has no champion (/mlops/dev/champions/fraud is not set)" in no_champion.output
    bad_name = runner.invoke(app, ["drift", "no_such model"])
    assert bad_name.exit_code == 2 and "not a model (package group) name" in bad_name.output


def test_a_missing_log_bucket_is_an_aws_failure(platform: Platform) -> None:
    platform.s3.delete_bucket(Bucket=LOGS)
    result = drift()
    assert result.exit_code == 1, result.output
    assert "AWS refused the request" in result.output and "NoSuchBucket" in result.output


def test_html_report_and_the_latest_scheduled_one(
    platform: Platform, split: SampleSplit, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_window(platform, records(split.served))
    assert drift("--html", str(tmp_path)).exit_code == 2  # a directory, refused before reading
    reports = {("mlops-dev-monitoring", "DriftReportBucket"): "reports",
               ("mlops-dev-monitoring", "DriftReportPrefix"): "drift-reports/"}  # fmt: skip

    def with_monitoring(stack: str, key: str) -> str:
        return reports[stack, key] if (stack, key) in reports else outputs(stack, key)

    monkeypatch.setattr("mlops.stack_outputs.stack_output", with_monitoring)
    platform.s3.create_bucket(
        Bucket="reports", CreateBucketConfiguration={"LocationConstraint": "ap-northeast-2"}
    )
    for day in ("2026-11-20", "2026-11-21"):
        for name in ("report.html", "report.json"):
            key = f"drift-reports/{MODEL}/dt={day}/{name}"
            platform.s3.put_object(Bucket="reports", Key=key, Body=b"x")
    page = tmp_path / "drift.html"
    result = drift("--html", str(page))
    assert result.exit_code == 0, result.output
    *_, written, latest = result.output.strip().splitlines()
    assert written == f"report: {page}"
    assert latest == ("latest scheduled report: "
                      f"s3://reports/drift-reports/{MODEL}/dt=2026-11-21/report.html")  # fmt: skip
    html = page.read_text()
    assert html.count("<svg") == len(FEATURES) + 1 and "credit-risk v3" in html
    assert "Window</th><td>2026-11-20T00:00:00Z..2026-11-22T00:00:00Z" in html
