"""Training step (a SageMaker training job, script mode): a scorecard-style logistic regression.

The same contract as the XGBoost bundle -- hyperparameters as `--name value` arguments, channels
in `SM_CHANNEL_TRAIN` / `SM_CHANNEL_VALIDATION`, artifacts in `SM_MODEL_DIR` -- with a
scikit-learn Pipeline (median imputation -> standardisation -> logistic regression), which is
how many credit scorecards start. The platform does not care which framework trained the model:
it needs `model.onnx` and `signature.json`.

The model dir receives:
- `model.onnx`: skl2onnx export, ZipMap off so the outputs are plain tensors (`label`,
  `probabilities`) like the XGBoost bundle's, `target_opset` 15;
- `signature.json`: ordered feature names and types, the input tensor, the outputs, versions;
- `model.joblib`: the fitted Pipeline, so evaluation can check ONNX-vs-native parity.

Metric lines such as `validation-auc=0.8123;` are for the MetricDefinitions in manifest.yaml.
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

import joblib
import numpy as np
import onnx
import pandas as pd
import sklearn
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

logger = logging.getLogger("train")

ENTITY = "customer_id"
TIMESTAMP = "event_timestamp"
LABEL = "defaulted_90d"
INPUT_NAME = "input"
ONNX_OPSET = 15


class UsageError(Exception):
    """Bad arguments: argparse would exit without leaving a reason SageMaker can show."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def default_failure_file() -> Path:
    return Path(os.environ.get("SM_OUTPUT_FAILURE", "/opt/ml/output/failure"))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Hyperparameters keep scikit-learn's names; unknown or abbreviated ones are errors."""
    env = os.environ.get
    parser = Parser(description="Train the credit-risk scorecard model.", allow_abbrev=False)
    # The SageMaker training toolkit passes one-letter hyperparameters with a single dash.
    parser.add_argument(
        "-C", "--C", dest="C", type=float, default=1.0, help="inverse regularisation strength"
    )
    parser.add_argument("--max_iter", type=int, default=1000)
    parser.add_argument("--class_weight", choices=["none", "balanced"], default="none")
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


def build_model(args: argparse.Namespace) -> Pipeline:
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
            (
                "model",
                LogisticRegression(
                    C=args.C,
                    max_iter=args.max_iter,
                    class_weight=None if args.class_weight == "none" else args.class_weight,
                ),
            ),
        ]
    )


def export_onnx(model: Pipeline, n_features: int) -> onnx.ModelProto:
    exported: onnx.ModelProto = convert_sklearn(
        model,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        target_opset=ONNX_OPSET,
        options={id(model): {"zipmap": False}},
    )
    return exported


def signature(
    model: onnx.ModelProto, features: list[str], dtypes: pd.Series, extra: dict[str, Any]
) -> dict[str, Any]:
    def tensor_type(value: onnx.ValueInfoProto) -> str:
        name = onnx.TensorProto.DataType.Name(value.type.tensor_type.elem_type)
        return f"tensor({name.lower()})"

    return {
        "schema_version": 1,
        "framework": {"name": "scikit-learn", "version": sklearn.__version__},
        "onnx": {
            "file": "model.onnx",
            "converter": "skl2onnx",
            "converter_version": version("skl2onnx"),
            "opset": ONNX_OPSET,
        },
        "native_model": {"file": "model.joblib", "format": "joblib"},
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


def metrics(model: Pipeline, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    scores = model.predict_proba(x)[:, 1]
    return {"auc": float(roc_auc_score(y, scores)), "logloss": float(log_loss(y, scores))}


def run(args: argparse.Namespace) -> None:
    train_frame, features = load_channel(args.train)
    valid_frame, valid_features = load_channel(args.validation)
    if valid_features != features:
        raise ValueError(f"validation features {valid_features} differ from train {features}")
    x_train = train_frame[features].to_numpy(dtype=np.float32)
    x_valid = valid_frame[features].to_numpy(dtype=np.float32)
    y_train, y_valid = train_frame[LABEL].to_numpy(), valid_frame[LABEL].to_numpy()
    model = build_model(args).fit(x_train, y_train)
    scores = {
        "train": metrics(model, x_train, y_train),
        "validation": metrics(model, x_valid, y_valid),
    }
    args.model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, args.model_dir / "model.joblib")
    exported = export_onnx(model, len(features))
    (args.model_dir / "model.onnx").write_bytes(exported.SerializeToString())
    extra = {
        "training": {
            "rows": {"train": len(train_frame), "validation": len(valid_frame)},
            "hyperparameters": {k: v for k, v in vars(args).items() if not isinstance(v, Path)},
            "metrics": scores,
        }
    }
    sig = signature(exported, features, train_frame.dtypes, extra)
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
