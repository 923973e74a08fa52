"""`make demo` is the README's main command: it must keep working end to end."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from mlops.demo import FEATURE_STEP, NOT_BUILT, SERVE_STEP, WORKFLOW_STEP, run_demo
from mlops.runs import RunStatus

pytestmark = pytest.mark.e2e


def test_demo_runs_the_lifecycle_and_says_what_is_not_built(tmp_path: Path) -> None:
    output = io.StringIO()
    result = run_demo(console=Console(file=output, width=200), workdir=tmp_path)
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
    else:
        assert "skipped: feature store (no redis-server on PATH)" in text
