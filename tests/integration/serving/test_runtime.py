"""What starting the runtime does to the process, beyond loading the models."""

from __future__ import annotations

import gc
import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.local import MODEL, LocalServing
from serving.runtime import build_runtime
from serving.spec import ModelSpec, ServingSpec

pytestmark = pytest.mark.integration


def test_a_started_runtime_keeps_its_startup_objects_out_of_the_collector(
    client: TestClient,
) -> None:
    """Without gc.freeze every full collection walks the framework's and the models' objects:
    31-39 ms pauses about twice a second under load (docs/benchmarks.md)."""
    assert client.get("/health").status_code == 200
    assert gc.get_freeze_count() > 10_000


def test_one_process_serves_several_models_each_at_its_own_version(
    local_serving: LocalServing, tmp_path: Path
) -> None:
    """Two models over the same feature service: each answers with its own artifact, and an
    unknown name still lists both."""
    spec = ServingSpec.from_json(local_serving.spec_file.read_text(encoding="utf-8"))
    base = spec.models[MODEL]
    twin = ModelSpec("credit-risk-shadow", base.feature_service, base.entity, (), base.plan)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(
        ServingSpec(spec.project, {MODEL: base, twin.name: twin}).to_json(), encoding="utf-8"
    )
    root = tmp_path / "models"
    shutil.copytree(local_serving.model_root / MODEL, root / MODEL)
    shutil.copytree(local_serving.model_root / MODEL, root / twin.name)
    signature = json.loads((root / twin.name / "signature.json").read_text(encoding="utf-8"))
    signature["note"] = "same weights, another version"
    (root / twin.name / "signature.json").write_text(json.dumps(signature), encoding="utf-8")
    settings = local_serving.settings(spec_file=str(spec_file), model_dir=str(root))
    body = {"entity_id": local_serving.entity_ids[0]}
    with TestClient(create_app(build_runtime(settings))) as client:
        first = client.post(f"/v1/models/{MODEL}/predict", json=body).json()
        second = client.post(f"/v1/models/{twin.name}/predict", json=body).json()
        listed = client.get("/v1/models").json()
        unknown = client.post("/v1/models/nope/predict", json=body)
    assert first["model"] == MODEL and second["model"] == twin.name
    assert first["version"] != second["version"]
    assert first["score"] == second["score"]  # same weights, same features
    assert sorted(m["name"] for m in listed["models"]) == [MODEL, twin.name]
    assert unknown.status_code == 404 and twin.name in unknown.json()["detail"]
