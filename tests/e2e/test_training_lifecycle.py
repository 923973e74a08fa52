"""The training lifecycle on the local engine: the synthesized `local` app, real compute."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest

from localaws.engine import LocalEngine
from mlops.demo import SAMPLE_BUNDLE, data_lake_bucket, load_sample_data, wait_for_run
from mlops.runs import RunsRepository, RunStatus
from pipelines import sample_data as sd

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEngine]:
    with LocalEngine(workdir=tmp_path_factory.mktemp("localaws")) as running:
        running.deploy()
        load_sample_data(
            running.training.artifacts_bucket, data_lake_bucket(running), n_customers=2000
        )
        yield running


def _upload(engine: LocalEngine, bundle: Path) -> Any:
    from mlops.bundle.upload import upload_bundle

    return upload_bundle(
        bundle, model="credit-risk", bucket=engine.training.code_bucket, progress=False
    )


def _finished_run(engine: LocalEngine, key: str) -> Any:
    runs = RunsRepository(engine.training.runs_table)
    return wait_for_run(runs, "credit-risk", key, terminal=True, timeout=300)


def _packages() -> list[dict[str, Any]]:
    response = boto3.client("sagemaker").list_model_packages(ModelPackageGroupName="credit-risk")
    return list(response["ModelPackageSummaryList"])


def test_upload_trains_evaluates_and_registers_a_version(engine: LocalEngine) -> None:
    uploaded = _upload(engine, SAMPLE_BUNDLE)
    record = _finished_run(engine, uploaded.key)
    assert record.status is RunStatus.SUCCEEDED, record.reason
    sagemaker = boto3.client("sagemaker")
    package = sagemaker.describe_model_package(ModelPackageName=record.model_package_arn)
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    metadata = package["CustomerMetadataProperties"]
    assert metadata["run_id"] == record.run_id
    assert float(metadata["metric.auc"]) > 0.70
    report_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    report = json.loads(_read_s3(report_uri))
    assert report["parity"]["passed"] is True
    model_uri = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    with tarfile.open(fileobj=io.BytesIO(_read_s3(model_uri)), mode="r:gz") as archive:
        assert {"model.onnx", "signature.json"} <= set(archive.getnames())
    # The sample names a feature service: its training set was built by Feast, point in
    # time, from the data lake's partitions, and is what preprocessing read.
    assert metadata["data_snapshot"].endswith(f"runs/{record.run_id}/data/training_set/")
    training_set = pd.read_parquet(
        io.BytesIO(_read_s3(metadata["data_snapshot"] + "part-0.parquet"))
    )
    labels = sd.generate(n_customers=2000, start=date(2026, 1, 1), days=90, seed=7).labels
    assert len(training_set) == len(labels)
    assert list(training_set.columns[:2]) == [sd.ENTITY, sd.TIMESTAMP]
    assert set(training_set.columns) == {sd.ENTITY, sd.TIMESTAMP, sd.LABEL, *sd.FEATURES}


def test_failing_training_script_fails_the_run_with_its_reason(
    engine: LocalEngine, tmp_path: Path
) -> None:
    before = len(_packages())
    bundle = tmp_path / "broken"
    shutil.copytree(SAMPLE_BUNDLE, bundle)
    (bundle / "train.py").write_text(
        "import os, sys\n"
        "path = os.environ.get('SM_OUTPUT_FAILURE', '/opt/ml/output/failure')\n"
        "open(path, 'w').write('label column defaulted_90d is constant: nothing to learn')\n"
        "sys.exit(1)\n"
    )
    uploaded = _upload(engine, bundle)
    record = _finished_run(engine, uploaded.key)
    assert record.status is RunStatus.FAILED
    assert "train" in str(record.reason)
    assert "label column defaulted_90d is constant" in str(record.reason)
    assert len(_packages()) == before, "nothing may be registered for a failed run"
    execution = boto3.client("stepfunctions").describe_execution(executionArn=record.execution_arn)
    assert execution["status"] == "FAILED"


def test_a_model_not_beating_the_approved_champion_is_gated_out(
    engine: LocalEngine, tmp_path: Path
) -> None:
    champion = next(p for p in _packages() if p["ModelApprovalStatus"] == "PendingManualApproval")
    boto3.client("sagemaker").update_model_package(
        ModelPackageArn=champion["ModelPackageArn"], ModelApprovalStatus="Approved"
    )
    before = len(_packages())
    bundle = tmp_path / "not-better-enough"
    shutil.copytree(SAMPLE_BUNDLE, bundle)
    manifest = (bundle / "manifest.yaml").read_text()
    # The same model again, required to beat the champion by 0.2 AUC: it passes the absolute
    # threshold, so only the champion comparison can reject it.
    demanding = manifest.replace("min_improvement: 0.005", "min_improvement: 0.2")
    assert demanding != manifest
    (bundle / "manifest.yaml").write_text(demanding)
    uploaded = _upload(engine, bundle)
    record = _finished_run(engine, uploaded.key)
    assert record.status is RunStatus.GATED_OUT, record.reason
    reason = str(record.reason)
    assert "does not beat the champion credit-risk/1" in reason, reason
    assert "by the required 0.2000" in reason, reason
    assert len(_packages()) == before


def _read_s3(uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bytes(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def test_runs_cli_lists_and_shows_the_recorded_runs(engine: LocalEngine) -> None:
    from typer.testing import CliRunner

    from mlops.cli import app

    runner = CliRunner(env={"COLUMNS": "250"})
    listing = runner.invoke(app, ["runs", "list", "--env", "local", "--model", "credit-risk"])
    assert listing.exit_code == 0, listing.output
    records = RunsRepository(engine.training.runs_table).list("credit-risk")
    assert records and all(r.run_id in listing.output for r in records)
    shown = runner.invoke(app, ["runs", "show", records[0].run_id, "--env", "local"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["run_id"] == records[0].run_id
    missing = runner.invoke(app, ["runs", "show", "no-such-run", "--env", "local"])
    assert missing.exit_code == 1
    # Same size and seed as the fixture: reloading leaves the dataset byte-identical.
    loaded = runner.invoke(app, ["local", "sample-data", "--customers", "2000"])
    assert loaded.exit_code == 0, loaded.output
    assert "labelled rows -> s3://" in loaded.output
    absent = runner.invoke(app, ["runs", "list", "--env", "prod"])
    assert absent.exit_code == 2
    assert "cannot read stack mlops-prod-training" in absent.output


def test_the_scikit_learn_bundle_trains_through_the_same_pipeline(engine: LocalEngine) -> None:
    from mlops.bundle.upload import upload_bundle

    bundle = SAMPLE_BUNDLE.parent / "credit_risk_sklearn"
    uploaded = upload_bundle(
        bundle, model="credit-risk-sklearn", bucket=engine.training.code_bucket, progress=False
    )
    runs = RunsRepository(engine.training.runs_table)
    record = wait_for_run(runs, "credit-risk-sklearn", uploaded.key, terminal=True, timeout=300)
    assert record.status is RunStatus.SUCCEEDED, record.reason
    package = boto3.client("sagemaker").describe_model_package(
        ModelPackageName=record.model_package_arn
    )
    assert float(package["CustomerMetadataProperties"]["metric.auc"]) > 0.70
    assert "sagemaker-scikit-learn" in package["InferenceSpecification"]["Containers"][0]["Image"]
