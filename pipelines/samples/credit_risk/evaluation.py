"""Evaluation step (a SageMaker Processing job): judge the exported model on out-of-time data.

Inputs: `--model-dir` holds training's `model.tar.gz` (or its extracted files), `--test-dir` the
out-of-time slice, `--train-dir` the training split (for drift baselines). The model is scored
through ONNX Runtime -- the artifact serving will run -- and the native model is loaded only to
prove the export is faithful. The script needs nothing framework-specific beyond reading the
native model, chosen by `signature.json`'s `framework.name`.

`--output-dir/evaluation.json` (schema_version 1):
- `metrics`: `auc`, `ks`, `logloss`, `brier`, `positive_rate`, `mean_score` on the test slice;
- `parity`: `max_abs_diff` of ONNX vs native probabilities on the test rows, `tolerance`,
  `passed`, `rows`;
- `baselines`: quantile bins fixed on the TRAINING data for every input feature and the score.
  Each entry has 9 `edges` and 11 `proportions`: bin i holds edges[i-1] < x <= edges[i] (with
  -inf/+inf beyond the ends), the 11th is NaN. Edges repeat where a feature is discrete; those
  bins are empty by construction, so a PSI consumer must floor proportions (e.g. at 1e-6);
- `drift`: PSI of the test slice against those baselines (the first reading a monitor would take);
- `rows`: test rows; `model`: the signature's framework and export facts.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import onnxruntime as ort
import pandas as pd
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score, roc_curve

logger = logging.getLogger("evaluation")

LABEL = "defaulted_90d"
SCHEMA_VERSION = 1
PSI_FLOOR = 1e-6


class UsageError(Exception):
    """Bad arguments: argparse would exit without leaving a reason SageMaker can show."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def default_failure_file() -> Path:
    return Path(os.environ.get("SM_OUTPUT_FAILURE", "/opt/ml/output/failure"))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = Parser(description="Evaluate the exported model out of time.", allow_abbrev=False)
    parser.add_argument("--model-dir", type=Path, default=Path("/opt/ml/processing/model"))
    parser.add_argument("--test-dir", type=Path, default=Path("/opt/ml/processing/test"))
    parser.add_argument("--train-dir", type=Path, default=Path("/opt/ml/processing/train"))
    parser.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/evaluation"))
    parser.add_argument("--failure-file", type=Path, default=default_failure_file())
    parser.add_argument("--parity-tolerance", type=float, default=1e-4)
    parser.add_argument("--bins", type=int, default=10)
    return parser.parse_args(argv)


def model_files(model_dir: Path, scratch: Path) -> Path:
    """The directory holding model.onnx: `model.tar.gz` is extracted, a plain dir used as is."""
    archive = model_dir / "model.tar.gz"
    if archive.is_file():
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")
        return scratch
    if (model_dir / "model.onnx").is_file():
        return model_dir
    raise FileNotFoundError(f"neither model.tar.gz nor model.onnx in {model_dir}")


def read_split(path: Path, features: list[str]) -> pd.DataFrame:
    files = sorted(path.rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet files under {path}")
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    missing = [c for c in [*features, LABEL] if c not in frame.columns]
    if missing:
        raise ValueError(f"{path} lacks columns the model needs: {', '.join(missing)}")
    return frame


def onnx_scorer(model_path: Path, sig: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    input_name = sig["inputs"][0]["name"]
    output, column = sig["score"]["output"], sig["score"]["column"]

    def score(x: np.ndarray) -> np.ndarray:
        (probabilities,) = session.run([output], {input_name: x})
        return np.asarray(probabilities, dtype=np.float64)[:, column]

    return score


def native_scores(files: Path, sig: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """P(label = 1) from the framework's own model file, for the parity check."""
    framework, native = sig["framework"]["name"], files / sig["native_model"]["file"]
    names = [f["name"] for f in sig["features"]]
    if framework == "xgboost":
        import xgboost as xgb

        booster = xgb.Booster(model_file=str(native))
        return np.asarray(booster.predict(xgb.DMatrix(x, feature_names=names, missing=np.nan)))
    if framework == "scikit-learn":
        import joblib

        return np.asarray(joblib.load(native).predict_proba(x)[:, 1])
    raise ValueError(f"no native loader for framework {framework!r}")


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    fpr, tpr, _ = roc_curve(y, p)
    return {
        "auc": float(roc_auc_score(y, p)),
        "ks": float(np.max(tpr - fpr)),
        "logloss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "positive_rate": float(np.mean(y)),
        "mean_score": float(np.mean(p)),
    }


def quantile_edges(values: np.ndarray, bins: int) -> list[float]:
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return [0.0] * (bins - 1)
    return [float(e) for e in np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])]


def proportions(values: np.ndarray, edges: list[float]) -> list[float]:
    """Share of rows per bin (right-closed, see the module docstring), NaN last."""
    nan = np.isnan(values)
    index = np.searchsorted(np.asarray(edges), values[~nan], side="left")
    counts = np.append(np.bincount(index, minlength=len(edges) + 1), nan.sum())
    return [float(c) for c in counts / max(values.size, 1)]


def psi(expected: list[float], actual: list[float]) -> float:
    e = np.maximum(np.asarray(expected), PSI_FLOOR)
    a = np.maximum(np.asarray(actual), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def baselines_and_drift(
    train: dict[str, np.ndarray], test: dict[str, np.ndarray], bins: int, rows: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Bins fixed on the training columns; PSI of the test columns against them."""
    fixed: dict[str, Any] = {}
    drift: dict[str, float] = {}
    for name, values in train.items():
        edges = quantile_edges(values, bins)
        fixed[name] = {"edges": edges, "proportions": proportions(values, edges)}
        drift[name] = psi(fixed[name]["proportions"], proportions(test[name], edges))
    score = fixed.pop("score")
    baselines = {
        "method": "quantile",
        "source": "train",
        "bins": bins,
        "rows": rows,
        "features": fixed,
        "score": score,
    }
    return baselines, {"psi": drift}


def evaluate(args: argparse.Namespace, files: Path) -> dict[str, Any]:
    sig = json.loads((files / "signature.json").read_text(encoding="utf-8"))
    features = [f["name"] for f in sig["features"]]
    test = read_split(args.test_dir, features)
    train = read_split(args.train_dir, features)
    x_test = test[features].to_numpy(dtype=np.float32)
    x_train = train[features].to_numpy(dtype=np.float32)
    y_test = test[LABEL].to_numpy(dtype=np.int64)
    score = onnx_scorer(files / sig["onnx"]["file"], sig)
    p_test, p_train = score(x_test), score(x_train)
    diff = float(np.max(np.abs(p_test - native_scores(files, sig, x_test))))
    parity = {
        "max_abs_diff": diff,
        "tolerance": args.parity_tolerance,
        "passed": bool(diff < args.parity_tolerance),
        "rows": len(test),
    }
    columns_train = {f: x_train[:, i].astype(np.float64) for i, f in enumerate(features)}
    columns_test = {f: x_test[:, i].astype(np.float64) for i, f in enumerate(features)}
    baselines, drift = baselines_and_drift(
        {**columns_train, "score": p_train},
        {**columns_test, "score": p_test},
        args.bins,
        len(train),
    )
    return {
        "schema_version": SCHEMA_VERSION,
        "metrics": classification_metrics(y_test, p_test),
        "parity": parity,
        "baselines": baselines,
        "drift": drift,
        "rows": len(test),
        "model": {"framework": sig["framework"], "onnx": sig["onnx"], "features": features},
    }


def write_failure(path: Path, reason: str) -> None:
    logger.error("failed: %s", reason)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(reason[:1024], encoding="utf-8")
    except OSError as exc:
        logger.error("could not write the failure reason to %s: %s", path, exc)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    try:
        args = parse_args(argv)
    except UsageError as exc:
        write_failure(default_failure_file(), f"evaluation: {exc}")
        return 2
    try:
        with tempfile.TemporaryDirectory() as scratch:
            report = evaluate(args, model_files(args.model_dir, Path(scratch)))
        args.output_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(report, indent=2, allow_nan=False)
        (args.output_dir / "evaluation.json").write_text(text, encoding="utf-8")
    except Exception as exc:
        write_failure(args.failure_file, f"evaluation: {type(exc).__name__}: {exc}")
        raise
    m, parity = report["metrics"], report["parity"]
    logger.info(
        "test-auc=%.6f; test-ks=%.6f; test-logloss=%.6f; test-brier=%.6f; rows=%d;",
        m["auc"],
        m["ks"],
        m["logloss"],
        m["brier"],
        report["rows"],
    )
    logger.info("parity max_abs_diff=%.3g passed=%s", parity["max_abs_diff"], parity["passed"])
    if not parity["passed"]:
        logger.warning("ONNX and native scores differ beyond %g", parity["tolerance"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
