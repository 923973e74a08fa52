"""Upload -> trigger -> workflow -> registry approval -> ledger, on a LocalStack with Docker.

These need Lambda execution (the hobby tier: LocalStack runs functions in containers) and,
for the approval hook, which re-reads the registry, SageMaker (ultimate). On the in-process
core they skip with the tier they need. SageMaker tasks are answered by the mock
configuration on every tier (the trigger starts its executions on test case HappyPath).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from lambdas.register_model.domain import GateSummary, Provenance, package_request
from mlops.bundle.upload import upload_bundle
from mlops.demo import wait_for_run
from mlops.deployments import Ledger
from mlops.localstack.deploy import REPO_ROOT
from mlops.localstack.tiers import Tier
from mlops.runs import RunsRepository, RunStatus
from tests.localstack.conftest import Deployed, require

pytestmark = pytest.mark.localstack
MODEL = "credit-risk"
SAMPLE = REPO_ROOT / "pipelines" / "samples" / "credit_risk"


@pytest.fixture
def aws_env(localstack: Deployed, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point this process's SDK clients (the platform's own helpers) at LocalStack."""
    for name, value in localstack.target.environ().items():
        monkeypatch.setenv(name, value)
    yield


def _wait(what: str, probe: Any, timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    while (found := probe()) is None:
        assert time.monotonic() < deadline, f"no {what} after {timeout:.0f} s"
        time.sleep(1)
    return found


def test_an_upload_starts_a_workflow_that_registers(localstack: Deployed, aws_env: None) -> None:
    require(localstack, Tier.HOBBY, "the trigger runs as a Lambda function")
    training = localstack.outputs("mlops-local-training")
    uploaded = upload_bundle(
        SAMPLE, model=MODEL, bucket=training["CodeBucketName"], git_commit="0" * 40,
        progress=False, endpoint_url=localstack.target.endpoint,
    )  # fmt: skip
    runs = RunsRepository(training["RunsTableName"], endpoint_url=localstack.target.endpoint)
    run = wait_for_run(runs, MODEL, uploaded.key, terminal=False, timeout=180)
    assert run.status is RunStatus.RUNNING and run.execution_arn
    sfn = localstack.client("stepfunctions")

    def finished() -> Any:
        described = sfn.describe_execution(executionArn=run.execution_arn)
        return None if described["status"] == "RUNNING" else described

    described = _wait("end of the execution", finished, timeout=120)
    assert described["status"] == "SUCCEEDED", described


def test_an_approval_is_handled_by_the_hook_and_recorded(
    localstack: Deployed, aws_env: None
) -> None:
    require(localstack, Tier.ULTIMATE, "the approval hook re-reads the SageMaker registry")
    registry = localstack.outputs("mlops-local-registry")
    artifacts = localstack.outputs("mlops-local-training")["ArtifactsBucketName"]
    source = Provenance("run-ls", MODEL, "code", f"bundles/{MODEL}/bundle.tar.gz", code_version="1")
    gate = GateSummary("auc", "auc 0.8100 passes", None, None, {"auc": 0.81})
    request = package_request(
        MODEL, source, gate, image="local",
        model_data_url=f"s3://{artifacts}/runs/run-ls/output/model.tar.gz",
        report_uri=f"s3://{artifacts}/runs/run-ls/evaluation.json",
    )  # fmt: skip
    sagemaker = localstack.client("sagemaker")
    arn = sagemaker.create_model_package(**request)["ModelPackageArn"]
    ledger = Ledger(registry["LedgerTableName"])
    seen = ledger.keys_of(MODEL, arn)
    sagemaker.update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Rejected", ApprovalDescription="localstack"
    )
    entry = ledger.wait_for(MODEL, arn, "Rejected", seen=seen, timeout=120)
    assert entry is not None, "no ledger entry: the registry's state-change event never arrived"
    assert entry.outcome.final and entry.description == "localstack"
