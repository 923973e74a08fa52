"""Training step (a SageMaker training job, script mode): XGBoost probability of default.

Contract (the SageMaker training toolkit's): hyperparameters arrive as `--name value` arguments,
channels as directories in `SM_CHANNEL_TRAIN` / `SM_CHANNEL_VALIDATION`, and everything written
to `SM_MODEL_DIR` becomes `model.tar.gz`. The input columns are preprocessing's output: id,
timestamp, the features in model input order, the label.

The model dir receives:
- `model.onnx`: what serving runs (onnxmltools; `target_opset` <= 15, the converter's limit);
- `signature.json`: ordered feature names and types, the input tensor, the outputs, versions;
- `model.ubj`: the native booster, so evaluation can check ONNX-vs-native parity.

Metric lines such as `validation-auc=0.8123;` are for the MetricDefinitions in manifest.yaml;
the last line carries the final model's values.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import onnx
import pandas as pd
import xgboost as xgb
from onnxmltools import convert_xgboost
from onnxmltools.convert.common.data_types import FloatTensorType
from sklearn.metrics import log_loss, roc_auc_score

logger = logging.getLogger("train")

ENTITY = "customer_id"
TIMESTAMP = "event_timestamp"
LABEL = "defaulted_90d"
INPUT_NAME = "input"
ONNX_OPSET = 15
METRIC_LOG_EVERY = 50


class UsageError(Exception):
    """Bad arguments: argparse would exit without leaving a reason SageMaker can show."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def default_failure_file() -> Path:
    return Path(os.environ.get("SM_OUTPUT_FAILURE", "/opt/ml/output/failure"))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Hyperparameters keep XGBoost's names; unknown or abbreviated ones are errors, not ignored."""
    env = os.environ.get
    parser = Parser(description="Train the credit-risk XGBoost model.", allow_abbrev=False)
    parser.add_argument("--max_depth", type=int, default=4)
    parser.add_argument("--eta", type=float, default=0.1)
    parser.add_argument("--num_round", type=int, default=200)
    parser.add_argument("--min_child_weight", type=float, default=1.0)
    parser.add_argument("--subsample", type=float, default=1.0)
    parser.add_argument("--colsample_bytree", type=float, default=1.0)
    parser.add_argument("--early_stopping_rounds", type=int, default=0, help="0 turns it off")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--train", type=Path, default=Path(env("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    )
    parser.add_argument(
        "--validation",
        type=Path,
        default=Path(env("SM_CHANNEL_VALIDATION", "/opt/ml/input/data/validation")),
    )
    parser.add_argument(
        "--model-dir", type=Path, default=Path(env("SM_MODEL_DIR", "/opt/ml/model"))
    )
    parser.add_argument("--failure-file", type=Path, default=default_failure_file())
    return parser.parse_args(argv)


def load_channel(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """The channel's rows and its feature columns, in file order."""
    files = sorted(path.rglob("*.parquet"))
    if not files:
        raise ValueError(f"no Parquet files in channel {path}")
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    features = [c for c in frame.columns if c not in (ENTITY, TIMESTAMP, LABEL)]
    return frame, features


def train(args: argparse.Namespace, dtrain: xgb.DMatrix, dvalid: xgb.DMatrix) -> xgb.Booster:
    params = {
        "objective": "binary:logistic",
        "eval_metric": ["logloss", "auc"],
        "max_depth": args.max_depth,
        "eta": args.eta,
        "min_child_weight": args.min_child_weight,
        "subsample": args.subsample,
        "colsample_bytree": args.colsample_bytree,
        "seed": args.seed,
        "nthread": os.cpu_count() or 1,
    }
    history: dict[str, Any] = {}
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=args.num_round,
        evals=[(dtrain, "train"), (dvalid, "validation")],
        early_stopping_rounds=args.early_stopping_rounds or None,
        evals_result=history,
        verbose_eval=False,
    )
    rounds = len(history["validation"]["auc"])
    for i in range(METRIC_LOG_EVERY - 1, rounds, METRIC_LOG_EVERY):
        logger.info(
            "[round %d] train-auc=%.6f; validation-auc=%.6f;",
            i + 1,
            history["train"]["auc"][i],
            history["validation"]["auc"][i],
        )
    if args.early_stopping_rounds:
        # Serving converts every tree; keep only those early stopping chose.
        booster = booster[: booster.best_iteration + 1]
    return booster


def export_onnx(booster: xgb.Booster, n_features: int) -> onnx.ModelProto:
    """The converter only understands `f<i>` feature names, so convert an anonymous copy."""
    anonymous = booster.copy()
    anonymous.feature_names = None
    anonymous.feature_types = None
    model: onnx.ModelProto = convert_xgboost(
        anonymous,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        target_opset=ONNX_OPSET,
    )
    return model


def signature(
    model: onnx.ModelProto, features: list[str], dtypes: pd.Series, extra: dict[str, Any]
) -> dict[str, Any]:
    def tensor_type(value: onnx.ValueInfoProto) -> str:
        name = onnx.TensorProto.DataType.Name(value.type.tensor_type.elem_type)
        return f"tensor({name.lower()})"

    return {
        "schema_version": 1,
        "framework": {"name": "xgboost", "version": xgb.__version__},
        "onnx": {
            "file": "model.onnx",
            "converter": "onnxmltools",
            "converter_version": version("onnxmltools"),
            "opset": ONNX_OPSET,
        },
        "native_model": {"file": "model.ubj", "format": "xgboost-ubj"},
        "inputs": [
            {"name": i.name, "type": tensor_type(i), "shape": [None, len(features)]}
            for i in model.graph.input
        ],
        "features": [
            {"name": f, "type": "float32", "source_dtype": str(dtypes[f])} for f in features
        ],
        "outputs": [{"name": o.name, "type": tensor_type(o)} for o in model.graph.output],
        "score": {"output": "probabilities", "column": 1, "meaning": f"P({LABEL} = 1)"},
        "label": LABEL,
        **extra,
    }


def metrics(booster: xgb.Booster, data: xgb.DMatrix) -> dict[str, float]:
    labels = data.get_label()
    scores = booster.predict(data)
    return {"auc": float(roc_auc_score(labels, scores)), "logloss": float(log_loss(labels, scores))}


def run(args: argparse.Namespace) -> None:
    train_frame, features = load_channel(args.train)
    valid_frame, valid_features = load_channel(args.validation)
    if valid_features != features:
        raise ValueError(f"validation features {valid_features} differ from train {features}")

    def matrix(frame: pd.DataFrame) -> xgb.DMatrix:
        values = frame[features].to_numpy(dtype=np.float32)
        return xgb.DMatrix(values, label=frame[LABEL], feature_names=features, missing=np.nan)

    dtrain, dvalid = matrix(train_frame), matrix(valid_frame)
    booster = train(args, dtrain, dvalid)
    scores = {"train": metrics(booster, dtrain), "validation": metrics(booster, dvalid)}
    args.model_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(args.model_dir / "model.ubj")
    model = export_onnx(booster, len(features))
    (args.model_dir / "model.onnx").write_bytes(model.SerializeToString())
    extra = {
        "training": {
            "rows": {"train": len(train_frame), "validation": len(valid_frame)},
            "trees": booster.num_boosted_rounds(),
            "hyperparameters": {k: v for k, v in vars(args).items() if not isinstance(v, Path)},
            "metrics": scores,
        }
    }
    sig = signature(model, features, train_frame.dtypes, extra)
    (args.model_dir / "signature.json").write_text(json.dumps(sig, indent=2), encoding="utf-8")
    logger.info(
        "train-auc=%.6f; train-logloss=%.6f; validation-auc=%.6f; validation-logloss=%.6f;",
        scores["train"]["auc"],
        scores["train"]["logloss"],
        scores["validation"]["auc"],
        scores["validation"]["logloss"],
    )


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
        write_failure(default_failure_file(), f"training: {exc}")
        return 2
    try:
        run(args)
    except Exception as exc:
        write_failure(args.failure_file, f"training: {type(exc).__name__}: {exc}")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
