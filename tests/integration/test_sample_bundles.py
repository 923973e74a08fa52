"""Each sample bundle run the way the SageMaker jobs run it: scripts in subprocesses, paths and
hyperparameters from argv and `SM_*` variables, the model dir tarred between training and
evaluation. Then the artifacts are checked against what the gate and serving rely on."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
import yaml

from pipelines import sample_data as sd
from pipelines.sample_model import SAMPLES, hyperparameter_argv, pack_model, run_script

pytestmark = pytest.mark.integration

BUNDLES = ["credit_risk", "credit_risk_sklearn"]


@dataclass(frozen=True)
class BundleRun:
    manifest: dict[str, Any]
    root: Path
    training_log: str
    evaluation: dict[str, Any]


@pytest.fixture(scope="module")
def frame_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The training frame the feature store would return, as the preprocessing input."""
    out = tmp_path_factory.mktemp("frame")
    frame = sd.training_frame(sd.generate(n_customers=2_000, seed=7))
    sd.write_frame(frame, out / "part-0.parquet")
    return out


@pytest.fixture(scope="module", params=BUNDLES)
def bundle_run(
    request: pytest.FixtureRequest, frame_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> BundleRun:
    name: str = request.param
    root = tmp_path_factory.mktemp(name)
    code = shutil.copytree(SAMPLES / name, root / "code")
    manifest = yaml.safe_load((code / "manifest.yaml").read_text(encoding="utf-8"))
    entry = manifest["entry_points"]
    failure = {"SM_OUTPUT_FAILURE": str(root / "output" / "failure")}
    split = root / "processing" / "output"
    run_script(
        code,
        entry["preprocessing"],
        ["--input-dir", str(frame_dir), "--output-dir", str(split)],
        failure,
    )
    hyperparameters = manifest["hyperparameters"]
    training_env = {
        **failure,
        "SM_CHANNEL_TRAIN": str(split / "train"),
        "SM_CHANNEL_VALIDATION": str(split / "validation"),
        "SM_MODEL_DIR": str(root / "model"),
        "SM_HPS": json.dumps(hyperparameters),
    }
    log = run_script(code, entry["training"], hyperparameter_argv(hyperparameters), training_env)
    artifact = pack_model(root / "model", root / "artifact" / "model.tar.gz").parent
    report_dir = root / "processing" / "evaluation"
    evaluation_argv = ["--model-dir", str(artifact), "--test-dir", str(split / "test")]
    evaluation_argv += ["--train-dir", str(split / "train"), "--output-dir", str(report_dir)]
    run_script(code, entry["evaluation"], evaluation_argv, failure)
    report = json.loads((report_dir / "evaluation.json").read_text(encoding="utf-8"))
    assert not (root / "output" / "failure").exists()
    return BundleRun(manifest, root, log, report)


def test_preprocessing_splits_by_time(bundle_run: BundleRun) -> None:
    split = bundle_run.root / "processing" / "output"
    parts = {
        s: pd.read_parquet(split / s / "part-0.parquet") for s in ("train", "validation", "test")
    }
    assert parts["train"][sd.TIMESTAMP].max() < parts["validation"][sd.TIMESTAMP].min()
    assert parts["validation"][sd.TIMESTAMP].max() < parts["test"][sd.TIMESTAMP].min()
    assert list(parts["test"].columns) == [sd.ENTITY, sd.TIMESTAMP, *sd.FEATURES, sd.LABEL]
    test_days = parts["test"][sd.TIMESTAMP].dt.floor("D").nunique()
    assert test_days == 12, "the out-of-time slice is the latest 20 % of 60 days"
    assert parts["train"]["income_monthly"].isna().any(), "missing values are kept, not imputed"


def test_model_onnx_scores_rows_with_the_signed_inputs(bundle_run: BundleRun) -> None:
    model_dir = bundle_run.root / "model"
    sig = json.loads((model_dir / "signature.json").read_text(encoding="utf-8"))
    assert [f["name"] for f in sig["features"]] == list(sd.FEATURES)
    assert {f["type"] for f in sig["features"]} == {"float32"}
    assert sig["inputs"] == [{"name": "input", "type": "tensor(float)", "shape": [None, 14]}]
    assert [o["name"] for o in sig["outputs"]] == ["label", "probabilities"]
    assert sig["onnx"]["opset"] <= 15
    opsets = {
        o.domain or "ai.onnx": o.version for o in onnx.load(model_dir / "model.onnx").opset_import
    }
    assert opsets.get("ai.onnx", 0) <= 15, opsets
    session = ort.InferenceSession(
        str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    assert [i.name for i in session.get_inputs()] == ["input"]
    test = pd.read_parquet(bundle_run.root / "processing" / "output" / "test")
    with_gaps = test[test["income_monthly"].isna()].head(8)
    rows = pd.concat([test.head(56), with_gaps])[list(sd.FEATURES)].to_numpy(dtype=np.float32)
    assert len(with_gaps) == 8 and np.isnan(rows[56:]).any()
    label, probabilities = session.run(["label", "probabilities"], {"input": rows})
    assert probabilities.shape == (64, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert ((probabilities >= 0) & (probabilities <= 1)).all(), "NaN inputs must still score"
    assert set(np.unique(label)) <= {0, 1}
    assert probabilities[:, 1].std() > 0.01, "a model that scores everyone alike learned nothing"


def test_metric_definitions_parse_the_training_log(bundle_run: BundleRun) -> None:
    values = {}
    for definition in bundle_run.manifest["metric_definitions"]:
        found = re.findall(definition["regex"], bundle_run.training_log)
        assert found, f"{definition['name']} not in the training log"
        values[definition["name"]] = float(found[-1])
    assert 0.6 < values["validation:auc"] <= values["train:auc"] < 1.0
    assert 0.0 < values["validation:logloss"] < 0.6


def test_out_of_time_auc_clears_the_manifest_threshold(bundle_run: BundleRun) -> None:
    gate = bundle_run.manifest["evaluation"]
    assert (gate["metric"], gate["direction"]) == ("auc", "max")
    metrics = bundle_run.evaluation["metrics"]
    assert metrics[gate["metric"]] > gate["threshold"]
    assert 0.3 < metrics["ks"] < 0.8
    assert 0.0 < metrics["brier"] < metrics["positive_rate"]
    assert 0.03 < metrics["positive_rate"] < 0.2
    assert bundle_run.evaluation["schema_version"] == 1
    assert bundle_run.evaluation["rows"] == bundle_run.evaluation["parity"]["rows"] > 500


def test_onnx_matches_the_native_model(bundle_run: BundleRun) -> None:
    parity = bundle_run.evaluation["parity"]
    assert parity["passed"] is True
    assert parity["tolerance"] == pytest.approx(1e-4)
    assert parity["max_abs_diff"] < 1e-4


def test_baselines_have_fixed_bins_for_every_feature_and_the_score(bundle_run: BundleRun) -> None:
    baselines = bundle_run.evaluation["baselines"]
    assert (baselines["bins"], baselines["source"]) == (10, "train")
    assert list(baselines["features"]) == list(sd.FEATURES)
    for name, entry in [*baselines["features"].items(), ("score", baselines["score"])]:
        assert len(entry["edges"]) == 9, name
        assert entry["edges"] == sorted(entry["edges"]), name
        assert len(entry["proportions"]) == 11, name
        assert sum(entry["proportions"]) == pytest.approx(1.0), name
    income_nan = baselines["features"]["income_monthly"]["proportions"][-1]
    assert 0.01 < income_nan < 0.08
    assert baselines["features"]["age"]["proportions"][-1] == 0.0
    assert set(bundle_run.evaluation["drift"]["psi"]) == {*sd.FEATURES, "score"}


def test_preprocessing_fails_with_a_readable_reason(frame_dir: Path, tmp_path: Path) -> None:
    broken = pd.read_parquet(frame_dir).drop(columns=["late_payments_12m"])
    sd.write_frame(broken, tmp_path / "input" / "part-0.parquet")
    failure = tmp_path / "output" / "failure"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    done = subprocess.run(
        [sys.executable, str(SAMPLES / "credit_risk" / "preprocessing.py")]
        + ["--input-dir", str(tmp_path / "input"), "--output-dir", str(tmp_path / "out")],
        env={**clean, "SM_OUTPUT_FAILURE": str(failure)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert failure.read_text(encoding="utf-8") == (
        "preprocessing: training frame is missing required columns: late_payments_12m"
    )
    assert not (tmp_path / "out").exists(), "a failed run must not leave splits behind"


def test_a_mistyped_hyperparameter_fails_training_with_a_readable_reason(tmp_path: Path) -> None:
    """SageMaker passes hyperparameters as argv; a typo must not train with a default."""
    failure = tmp_path / "failure"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    done = subprocess.run(
        [sys.executable, str(SAMPLES / "credit_risk" / "train.py"), "--max_dept", "3"],
        env={**clean, "SM_OUTPUT_FAILURE": str(failure), "SM_MODEL_DIR": str(tmp_path / "m")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert failure.read_text(encoding="utf-8") == "training: unrecognized arguments: --max_dept 3"
    assert not (tmp_path / "m").exists()


def test_shared_scripts_are_identical_in_both_bundles() -> None:
    for script in ("preprocessing.py", "evaluation.py"):
        first = (SAMPLES / BUNDLES[0] / script).read_bytes()
        assert first == (SAMPLES / BUNDLES[1] / script).read_bytes(), script
