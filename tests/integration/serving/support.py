"""Helpers of the serving tests: independent scoring, a uvicorn server in a thread, timing.

Scores are recomputed here with a fresh ONNX Runtime session over feature vectors read through
Feast itself, so a value test compares the app against code paths it does not share.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import onnxruntime as ort
import uvicorn

from features.local_redis import free_port
from features.store import feature_store_config, open_store
from serving.local import MODEL, LocalServing
from serving.spec import ServingSpec

PREDICT = f"/v1/models/{MODEL}/predict"
INFER = f"/v1/models/{MODEL}/infer"


def signature_features(model_dir: Path) -> list[str]:
    import json

    signature = json.loads((model_dir / "signature.json").read_text(encoding="utf-8"))
    return [str(f["name"]) for f in signature["features"]]


def onnx_scores(model_dir: Path, matrix: np.ndarray) -> list[float]:
    """P(default) of each row by the model's own ONNX file (signature: `probabilities`[:, 1])."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # a fixed summation order: scores reproducible run to run
    session = ort.InferenceSession(
        (model_dir / "model.onnx").read_bytes(), options, providers=["CPUExecutionProvider"]
    )
    (probabilities,) = session.run(["probabilities"], {"input": matrix.astype(np.float32)})
    return [float(p) for p in np.asarray(probabilities)[:, 1]]


def feast_vectors(local: LocalServing, ids: Sequence[int]) -> dict[int, list[float]]:
    """Each entity's online features as Feast returns them, in the signature's order."""
    spec = ServingSpec.from_json(local.spec_file.read_text(encoding="utf-8")).models[MODEL]
    config = feature_store_config(
        "local",
        project=local.project,
        registry_path=str(local.workdir / "registry.db"),
        redis_url=local.redis_url,
    )
    store = open_store(config, local.workdir)
    columns = store.get_online_features(
        features=store.get_feature_service(spec.feature_service),
        entity_rows=[{spec.entity: i} for i in ids],
    ).to_dict()
    names = signature_features(local.model_root / MODEL)
    return {entity: [float(columns[name][row]) for name in names] for row, entity in enumerate(ids)}


class ServerThread:
    """`with ServerThread(app) as base_url:` -- uvicorn on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)


def timed(call: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """`call(*args, **kwargs)` and its wall time in milliseconds."""
    started = time.perf_counter()
    result = call(*args, **kwargs)
    return result, (time.perf_counter() - started) * 1000
