"""`make demo` is the README's main command: it must keep working end to end."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from mlops.demo import FEATURE_STEP, NOT_BUILT, SERVE_STEP, WORKFLOW_STEP, run_demo
from mlops.demo_drift import CALM_STEP, SECOND_READING, STILL_STEP
from mlops.runs import RunStatus

pytestmark = pytest.mark.e2e


def test_demo_runs_the_lifecycle_and_says_what_is_not_built(tmp_path: Path) -> None:
    """`make demo-drift` runs the lifecycle of `make demo`, then goes on: one run checks both."""
    output = io.StringIO()
    result = run_demo(console=Console(file=output, width=200), workdir=tmp_path / "work",
                      drift=True, report_dir=tmp_path / "reports")  # fmt: skip
    text = output.getvalue()
    assert result["run"].status is RunStatus.SUCCEEDED
    assert result["package"]["ModelApprovalStatus"] == "PendingManualApproval"
    assert float(result["package"]["CustomerMetadataProperties"]["metric.auc"]) > 0.70
    assert WORKFLOW_STEP in result["timings"]
    assert "BuildTrainingSet" in text  # the per-state timings of the execution
    for what, _owner in NOT_BUILT:
        assert what in text
    if shutil.which("redis-server"):
        assert result["features"]["materialized"] > 0
        assert result["features"]["record"].status == "SUCCEEDED"
        assert FEATURE_STEP in result["timings"]
        assert "run record s3://" in text
        assert result["features"]["row"]["customer_id"] is not None
        assert "online features of customer" in text
        assert result["approved"]["ModelApprovalStatus"] == "Approved"
        ledger = result["approved"]["ledger"]  # deployed through the approval hook
        assert (ledger.action, ledger.outcome, ledger.version) == ("promote", "deployed", 1)
        assert ledger.deployment_id and ledger.lambda_version
        assert f"CodeDeploy {ledger.deployment_id}" in text  # the canary that moved the alias
        single, batch = result["serving"]["single"], result["serving"]["batch"]
        assert single["version"] == str(result["package"]["ModelPackageVersion"])
        assert 0.0 < single["score"] < 1.0
        assert single["entity_id"] == result["features"]["customers"][0]
        scored = [item for item in batch["responses"] if "score" in item]
        assert scored[0]["score"] == single["score"]  # same customer, same model, same features
        assert batch["responses"][-1]["error"]["code"] == "entity_not_found"  # customer 42
        assert result["serving"]["logged"], "prediction log records reached S3"
        assert SERVE_STEP in result["timings"]
        _check_drift(result["drift"], text)
    else:
        assert "skipped: feature store (no redis-server on PATH)" in text


def _check_drift(drift: dict[str, Any], text: str) -> None:
    """Calm traffic reads calm; shifted traffic is `act`, the alarm fires and exactly one
    retraining run goes through the trigger and the workflow; the report renders."""
    assert drift["calm_scored"] == 3000 and drift["shifted_scored"] == 6000
    calm, shifted = drift["calm"], drift["shifted"]
    assert calm["status"] == "ok" and calm["max_psi"] < 0.1 and calm["records"] == 3004
    assert shifted["status"] == "act" and shifted["max_psi"] >= 0.25
    assert shifted["records"] == 9004  # calm and shifted traffic, all in the window
    assert sorted(drift["alarm"].values()) == ["ALARM", "ALARM"]  # warn and act
    run = drift["retrained"]
    assert run.key.startswith("continuous-training/credit-risk/credit-risk-drift-")
    assert run.execution_arn and run.status.terminal
    assert run.status.value in ("SUCCEEDED", "GATED_OUT"), run.reason
    assert drift["retraining_runs"] == 1  # the later reading, still drifted, started none
    assert drift["retraining_executions"] == [run.execution_arn]
    assert sorted(drift["later_alarm"].values()) == ["ALARM", "ALARM"]
    assert drift["later"]["status"] == "act"
    page = drift["report_file"].read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 15  # 14 features + score
    assert "income_monthly" in page and "act" in page
    for step in (CALM_STEP, SECOND_READING, STILL_STEP):
        assert step.split(":")[0] in text
