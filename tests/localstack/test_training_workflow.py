"""The deployed training workflow executes on LocalStack's own Step Functions interpreter.

Each test case of the mock configuration (mlops.localstack.mocks) answers every task, so the
definition's control flow -- choices, result selectors and paths, catches, the gate, the
failure recording -- runs on a second, independent interpreter besides the local engine's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from lambdas.training_trigger.execution import (
    ExecutionPlan,
    FeatureStoreSettings,
    build_execution_input,
)
from mlops.bundle.manifest import normalise
from mlops.localstack.deploy import REPO_ROOT
from tests.localstack.conftest import Deployed

pytestmark = pytest.mark.localstack

SAMPLE = REPO_ROOT / "pipelines" / "samples" / "credit_risk" / "manifest.yaml"
STEPS = ["FromFeatureStore?", "BuildTrainingSet", "Preprocess", "Train", "Evaluate", "Gate",
         "PassedGate?"]  # fmt: skip


def _execution_input(region: str) -> dict[str, Any]:
    manifest = normalise(yaml.safe_load(Path(SAMPLE).read_text()))
    store = FeatureStoreSettings(
        offline_store="file", project="credit_risk", data_lake_bucket="lake",
        offline_prefix="offline/", database=None, workgroup=None, athena_results=None,
    )  # fmt: skip
    bundle = {"bucket": "code", "key": "credit-risk/bundle.tar.gz", "version_id": "v1",
              "git_commit": "0" * 40, "uploaded_by": "tests", "sha256": "0" * 64}  # fmt: skip
    plan = ExecutionPlan(
        run_id="run-localstack", manifest=manifest, bundle=bundle,
        artifacts_bucket="artifacts", region=region, feature_store=store,
    )  # fmt: skip
    return build_execution_input(plan)


def run_case(deployed: Deployed, case: str) -> tuple[dict[str, Any], list[str]]:
    sfn = deployed.client("stepfunctions")
    arn = deployed.outputs("mlops-local-training")["StateMachineArn"]
    execution = sfn.start_execution(
        stateMachineArn=f"{arn}#{case}", input=json.dumps(_execution_input(deployed.target.region))
    )["executionArn"]
    deadline = time.monotonic() + 60
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{case} still running after 60 s"
        time.sleep(0.25)
    events = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
    ]
    return described, entered


def test_a_passing_run_is_registered(localstack: Deployed) -> None:
    described, entered = run_case(localstack, "HappyPath")
    assert described["status"] == "SUCCEEDED", described
    assert entered == [*STEPS, "Register", "RecordSucceeded", "Registered"]
    output = json.loads(described["output"])
    assert output["steps"]["train"] == {
        "job_name": "mock-train",
        "model_data_url": "s3://mock-artifacts/mock-train/model.tar.gz",
    }
    assert output["registered"]["model_package_arn"].endswith("/mock-model/1")
    assert output["gate"]["passed"] is True


def test_a_gated_out_run_fails_with_the_gate_reason(localstack: Deployed) -> None:
    described, entered = run_case(localstack, "GatedOut")
    assert described["status"] == "FAILED"
    assert (described["error"], described["cause"]) == ("GatedOut", "auc 0.61 < threshold 0.7")
    assert entered == [*STEPS, "RecordGatedOut", "GatedOut"]


def test_a_failed_training_job_is_recorded_as_the_failed_step(localstack: Deployed) -> None:
    described, entered = run_case(localstack, "TrainingFails")
    assert described["status"] == "FAILED"
    assert described["error"] == "TrainingRunFailed"
    assert entered == [*STEPS[:4], "TrainFailed", "RecordFailed", "RunFailed"]
