"""A loaded model: its ONNX Runtime session, its signature, and where its inputs come from.

`load_model` reads a model directory (`model.onnx` + `signature.json`, as the bundle contract's
training step writes them), checks the signature against the model's serving spec -- every
input feature must be a feature of the service or a declared request-time feature, the session's
input must take them as one float tensor, the score output must exist -- and only then returns a
`LoadedModel`. A model that fails any check is never served (`ModelLoadError` says why).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from serving.spec import ModelSpec

ONNX_FILE = "model.onnx"
SIGNATURE_FILE = "signature.json"


class ModelLoadError(RuntimeError):
    """A model artifact cannot be served; the message names the artifact and the reason."""


@dataclass(frozen=True)
class Signature:
    features: tuple[str, ...]
    input_name: str
    score_output: str
    score_column: int | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def parse(cls, data: Any, where: str) -> Signature:
        try:
            features = tuple(str(f["name"]) for f in data["features"])
            inputs = data["inputs"]
            score = data.get("score") or {}
            output = str(score.get("output") or data["outputs"][0]["name"])
            column = score.get("column")
            signature = cls(
                features=features,
                input_name=str(inputs[0]["name"]),
                score_output=output,
                score_column=None if column is None else int(column),
                raw=data,
            )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"{where}: malformed signature ({exc!r})") from exc
        if len(inputs) != 1 or not features or len(set(features)) != len(features):
            raise ModelLoadError(
                f"{where}: the signature must have one input tensor and unique feature names"
            )
        return signature


def session_options() -> ort.SessionOptions:
    """One intra-op thread: tree ensembles and linear models score a row in microseconds, so
    parallelism comes from concurrent requests and workers, not from splitting one run."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


@dataclass(frozen=True)
class LoadedModel:
    """Immutable once loaded: a hot swap replaces the whole object, never mutates one."""

    name: str
    version: str
    package_arn: str | None
    source: str
    signature: Signature
    session: ort.InferenceSession = field(repr=False)
    stored_columns: np.ndarray = field(repr=False)  # plan output index per signature feature
    request_columns: tuple[tuple[int, str], ...]  # (signature index, request feature)
    loaded_at: datetime
    load_seconds: float

    @property
    def features(self) -> tuple[str, ...]:
        return self.signature.features

    def assemble(
        self, stored: list[list[Any]], request_features: list[dict[str, float] | None]
    ) -> np.ndarray:
        """The float32 input matrix from plan-ordered stored values (None -> NaN) and each
        row's request-time values."""
        values = np.array(stored, dtype=np.float64).reshape(len(stored), -1)
        matrix = np.full((len(stored), len(self.features)), np.nan, dtype=np.float32)
        stored_at = self.stored_columns >= 0
        matrix[:, stored_at] = values[:, self.stored_columns[stored_at]]
        for index, name in self.request_columns:
            matrix[:, index] = [row[name] if row else np.nan for row in request_features]
        return matrix

    def score(self, matrix: np.ndarray) -> np.ndarray:
        """Scores, one per row (float64)."""
        output = self.session.run(
            [self.signature.score_output], {self.signature.input_name: matrix}
        )
        result = np.asarray(output[0])
        if self.signature.score_column is not None:
            result = result[:, self.signature.score_column]
        return result.reshape(len(matrix)).astype(np.float64)


def load_model(
    directory: Path, spec: ModelSpec, *, version: str, package_arn: str | None, source: str
) -> LoadedModel:
    """Load and check `directory`'s artifact for `spec` (see the module doc)."""
    started = time.perf_counter()
    where = f"{spec.name} {version} ({source})"
    try:
        raw = json.loads((directory / SIGNATURE_FILE).read_text(encoding="utf-8"))
        model_bytes = (directory / ONNX_FILE).read_bytes()
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{where}: cannot read {SIGNATURE_FILE}/{ONNX_FILE}: {exc}") from exc
    signature = Signature.parse(raw, where)
    unknown = [f for f in signature.features if f not in spec.inputs]
    if unknown:
        raise ModelLoadError(
            f"{where}: signature features {unknown} are neither in feature service "
            f"{spec.feature_service!r} nor request features {list(spec.request_features)}"
        )
    try:
        session = ort.InferenceSession(
            model_bytes, sess_options=session_options(), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
        raise ModelLoadError(f"{where}: ONNX Runtime cannot load {ONNX_FILE}: {exc}") from exc
    _check_session(session, signature, where)
    outputs = spec.plan.outputs
    stored_columns = np.array(
        [outputs.index(f) if f in outputs else -1 for f in signature.features], dtype=np.intp
    )
    request_columns = tuple(
        (i, f) for i, f in enumerate(signature.features) if f in spec.request_features
    )
    model = LoadedModel(
        name=spec.name,
        version=version,
        package_arn=package_arn,
        source=source,
        signature=signature,
        session=session,
        stored_columns=stored_columns,
        request_columns=request_columns,
        loaded_at=datetime.now(UTC),
        load_seconds=time.perf_counter() - started,
    )
    model.score(model.assemble([[None] * len(outputs)], [_zeros(request_columns)]))  # warm-up
    return model


def _zeros(request_columns: tuple[tuple[int, str], ...]) -> dict[str, float]:
    return {name: 0.0 for _, name in request_columns}


def _check_session(session: ort.InferenceSession, signature: Signature, where: str) -> None:
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].name != signature.input_name:
        raise ModelLoadError(
            f"{where}: the ONNX inputs {[i.name for i in inputs]} are not the signature's "
            f"{signature.input_name!r}"
        )
    if inputs[0].type != "tensor(float)":
        raise ModelLoadError(f"{where}: input {inputs[0].name!r} is {inputs[0].type}, not float")
    width = inputs[0].shape[-1] if inputs[0].shape else None
    if isinstance(width, int) and width != len(signature.features):
        raise ModelLoadError(
            f"{where}: the ONNX input takes {width} features, the signature lists "
            f"{len(signature.features)}"
        )
    names = [o.name for o in session.get_outputs()]
    if signature.score_output not in names:
        raise ModelLoadError(f"{where}: score output {signature.score_output!r} not in {names}")
