"""The app as the stacks configure it (`model_source=champion`): it serves the version the
champion pointer names, a pinned process serves its pinned package, and a pin that is no longer
approved leaves the model unavailable with the reason. Real model and features; SSM, the
registry and S3 are the emulator's."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localaws.emulator import Emulator, running_emulator
from mlops.deployments import Champion, ChampionPointer, now_iso
from pipelines.sample_model import pack_model
from serving.app import create_app
from serving.local import MODEL, LocalServing
from serving.runtime import build_runtime
from tests.integration.serving.support import PREDICT

with warnings.catch_warnings():  # starlette nags about httpx on import; the client is fine
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration
PREFIX = "/mlops/local/champions/"
BUCKET = "artifacts"


@pytest.fixture(scope="module")
def packages(
    local_serving: LocalServing, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Emulator, list[tuple[str, str]]]]:
    """Two approved versions of the sample model (same weights, distinct archives) in the
    emulator's registry: [(package ARN, ModelDataUrl), ...] in version order."""
    workdir = tmp_path_factory.mktemp("champion-pointer")
    with running_emulator() as emulator:
        s3, sagemaker = emulator.client("s3"), emulator.client("sagemaker")
        s3.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": emulator.region}
        )
        sagemaker.create_model_package_group(ModelPackageGroupName=MODEL)
        registered = []
        for number in (1, 2):
            files = workdir / f"v{number}"
            files.mkdir()
            for name in ("model.onnx", "signature.json"):
                (files / name).write_bytes((local_serving.model_root / MODEL / name).read_bytes())
            archive = pack_model(files, workdir / f"v{number}.tar.gz")
            s3.upload_file(str(archive), BUCKET, f"runs/v{number}/model.tar.gz")
            url = f"s3://{BUCKET}/runs/v{number}/model.tar.gz"
            arn = sagemaker.create_model_package(
                ModelPackageGroupName=MODEL, ModelApprovalStatus="Approved",
                InferenceSpecification={"Containers": [{"Image": "xgboost", "ModelDataUrl": url}],
                                        "SupportedContentTypes": ["application/json"],
                                        "SupportedResponseMIMETypes": ["application/json"]},
            )["ModelPackageArn"]  # fmt: skip
            registered.append((str(arn), url))
        yield emulator, registered


def _predict(local: LocalServing, emulator: Emulator, cache: Path, **settings: Any) -> Any:
    values = {"model_source": "champion", "champion_prefix": PREFIX, "region": emulator.region,
              "endpoint_url": emulator.endpoint_url, "model_cache_dir": str(cache),
              "redis_timeout_ms": 250, **settings}  # fmt: skip
    with TestClient(create_app(build_runtime(local.settings(**values)))) as client:
        return client.post(PREDICT, json={"entity_id": local.entity_ids[0]})


def test_the_pointer_names_the_served_version_and_a_pin_overrides_it(
    local_serving: LocalServing,
    packages: tuple[Emulator, list[tuple[str, str]]],
    tmp_path: Path,
) -> None:
    emulator, ((arn_1, url_1), (arn_2, _)) = packages
    pointer = ChampionPointer(PREFIX, ssm=emulator.client("ssm"))
    pointer.put(Champion(MODEL, 1, arn_1, url_1, since=now_iso()))
    following = _predict(local_serving, emulator, tmp_path / "cache")
    assert following.status_code == 200, following.text
    assert following.json()["version"] == "1"  # version 2 is approved too, but not champion
    pinned = _predict(local_serving, emulator, tmp_path / "cache", pinned_models={MODEL: arn_2})
    assert pinned.status_code == 200, pinned.text
    assert pinned.json()["version"] == "2"
    assert pinned.json()["score"] == following.json()["score"]  # same weights, same features


def test_a_pin_rejected_since_serves_nothing_and_says_why(
    local_serving: LocalServing,
    packages: tuple[Emulator, list[tuple[str, str]]],
    tmp_path: Path,
) -> None:
    emulator, (_, (arn_2, _)) = packages
    sagemaker = emulator.client("sagemaker")
    sagemaker.update_model_package(ModelPackageArn=arn_2, ModelApprovalStatus="Rejected")
    try:
        answer = _predict(local_serving, emulator, tmp_path / "cache", pinned_models={MODEL: arn_2})
    finally:
        sagemaker.update_model_package(ModelPackageArn=arn_2, ModelApprovalStatus="Approved")
    assert answer.status_code == 503
    assert answer.json()["code"] == "model_unavailable"
    assert f"pinned package {arn_2} is Rejected, not Approved" in answer.json()["detail"]
