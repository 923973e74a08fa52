"""Replacing the model under load fails no request; a broken new version never replaces one.

The app serves `model_source=directory` from a temporary copy of the model root over real HTTP;
client threads score sampled customers while the files are replaced by a second model (trained
by the bundle's own scripts with other hyperparameters) and `manager.refresh()` runs. Every
response must carry one version's score for its customer -- model A's or model B's, never a mix.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from pipelines.sample_model import train_sample_model
from serving.app import create_app
from serving.local import MODEL, LocalServing
from serving.runtime import ServingRuntime, build_runtime
from tests.integration.serving.support import PREDICT, ServerThread, onnx_scores

pytestmark = pytest.mark.integration
logger = logging.getLogger(__name__)

CLIENTS = 4
FILES = ("model.onnx", "signature.json")


@dataclass(frozen=True)
class Answer:
    entity: int
    status: int
    version: str
    score: float | None
    sent: float
    received: float


def version_of(model_dir: Path) -> str:
    content = (model_dir / "model.onnx").read_bytes() + b"\0"
    content += (model_dir / "signature.json").read_bytes()
    return "sha256-" + hashlib.sha256(content).hexdigest()[:12]


@pytest.fixture(scope="module")
def model_b(local_serving: LocalServing, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second model of the same bundle and features, trained with other hyperparameters."""
    workdir = tmp_path_factory.mktemp("model-b")
    params = {"num_round": 60, "max_depth": 5, "eta": 0.3}
    return train_sample_model("credit_risk", local_serving.workdir / "frame", workdir,
                              hyperparameters=params)  # fmt: skip


def install(source: Path, root: Path, signature: Path | None = None) -> None:
    """Each file replaced atomically (rename over it), as a deployment tool would."""
    target = root / MODEL
    target.mkdir(parents=True, exist_ok=True)
    origins = {"model.onnx": source / "model.onnx"}
    origins["signature.json"] = signature or source / "signature.json"
    for name in FILES:
        staged = target / f".{name}.new"
        shutil.copyfile(origins[name], staged)
        staged.replace(target / name)


def serving_from(local: LocalServing, root: Path) -> ServingRuntime:
    return build_runtime(local.settings(model_dir=str(root), redis_timeout_ms=250))


def hammer(base: str, ids: list[int], stop: threading.Event, out: list[Answer]) -> None:
    with httpx.Client(base_url=base, timeout=10) as http:
        index = 0
        while not stop.is_set():
            entity = ids[index % len(ids)]
            index += 1
            sent = time.perf_counter()
            response = http.post(PREDICT, json={"entity_id": entity})
            body = response.json() if response.status_code == 200 else {}
            out.append(Answer(entity, response.status_code,
                              response.headers.get("x-model-version", ""), body.get("score"),
                              sent, time.perf_counter()))  # fmt: skip


def test_swap_under_load_fails_nothing_and_never_mixes(
    local_serving: LocalServing,
    model_dir: Path,
    model_b: Path,
    feature_vectors: dict[int, list[float]],
    tmp_path: Path,
) -> None:
    ids = list(feature_vectors)
    matrix = np.array([feature_vectors[i] for i in ids])
    a, b = version_of(model_dir), version_of(model_b)
    expected = {
        a: dict(zip(ids, onnx_scores(model_dir, matrix), strict=True)),
        b: dict(zip(ids, onnx_scores(model_b, matrix), strict=True)),
    }
    assert a != b
    assert any(abs(expected[a][i] - expected[b][i]) > 1e-4 for i in ids), "B must score apart"
    install(model_dir, tmp_path)
    runtime = serving_from(local_serving, tmp_path)
    answers: list[Answer] = []
    stop = threading.Event()
    with ServerThread(create_app(runtime)) as base:
        threads = [threading.Thread(target=hammer, args=(base, ids[k::CLIENTS], stop, answers))
                   for k in range(CLIENTS)]  # fmt: skip
        for thread in threads:
            thread.start()
        time.sleep(0.7)
        install(model_b, tmp_path)
        swap_started = time.perf_counter()
        result = runtime.manager.refresh()
        swapped = time.perf_counter()
        time.sleep(0.7)
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert result.loaded == {MODEL: b}
    assert [x for x in answers if x.status != 200] == []
    assert {x.version for x in answers} == {a, b}
    for x in answers:
        assert x.score == pytest.approx(expected[x.version][x.entity], rel=1e-5), x
    assert all(x.version == a for x in answers if x.received < swap_started)
    assert all(x.version == b for x in answers if x.sent > swapped)
    logger.info("%d requests across the swap, all 200; refresh took %.0f ms",
                len(answers), (swapped - swap_started) * 1000)  # fmt: skip


def test_a_broken_version_is_rejected_and_the_old_one_keeps_serving(
    local_serving: LocalServing, model_dir: Path, model_b: Path, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    install(model_dir, root)
    runtime = serving_from(local_serving, root)
    runtime.manager.refresh()
    a = version_of(model_dir)
    unknown = json.loads((model_b / "signature.json").read_text(encoding="utf-8"))
    unknown["features"][0]["name"] = "shoe_size"
    bad_signature = tmp_path / "signature.json"
    bad_signature.write_text(json.dumps(unknown), encoding="utf-8")
    (root / MODEL / "model.onnx").write_bytes(b"not an onnx model")
    garbage = runtime.manager.refresh()
    assert "ONNX Runtime cannot load model.onnx" in garbage.failed[MODEL]
    install(model_b, root, signature=bad_signature)
    renamed = runtime.manager.refresh()
    assert (
        "signature features ['shoe_size'] are neither in feature service" in renamed.failed[MODEL]
    )
    from fastapi.testclient import TestClient

    with TestClient(create_app(runtime)) as client:
        response = client.post(PREDICT, json={"entity_id": local_serving.entity_ids[0]})
        assert (response.status_code, response.json()["version"]) == (200, a)
        ready = client.get("/ready").json()
        assert (ready["ready"], ready["models"]) == (True, {MODEL: a})
        listed = client.get("/v1/models").json()
        assert [m["version"] for m in listed["models"]] == [a]
        assert listed["models"][0]["champion_rejected"] == renamed.failed[MODEL]
        assert listed["unavailable"] == {}
        info = client.get(f"/v1/models/{MODEL}").json()
        assert (info["version"], info["champion_rejected"]) == (a, renamed.failed[MODEL])
        assert runtime.manager.refresh().failed[MODEL] == renamed.failed[MODEL], "not retried"
        install(model_dir, root)
        assert runtime.manager.refresh().unchanged == [MODEL]
        assert client.get(f"/v1/models/{MODEL}").json()["champion_rejected"] is None
