"""One real serving setup shared by the package: Redis, materialized sample features, a model.

`local_serving` is `serving.local.prepare` run once (sample features materialized into a Redis
started here on a free port, or `REDIS_URL` when set; the sample model trained by the bundle's
own scripts). `app`/`client` serve it in-process. Tests that change the model files, Redis or
the prediction log build their own runtime from `local_serving.settings(...)` instead of
touching the shared one.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from serving.app import create_app
from serving.local import MODEL, LocalServing, prepare
from serving.runtime import ServingRuntime, build_runtime
from tests.integration.serving.support import feast_vectors

with warnings.catch_warnings():  # starlette nags about httpx on import; the client is fine
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

CUSTOMERS = 500
NUM_ROUND = 20
# The shared app reads Redis with a generous timeout so a loaded CI machine does not turn
# value tests into 503s; the fault tests use the default (20 ms) on their own runtimes.
SHARED_TIMEOUT_MS = 250
SAMPLED = 40


@pytest.fixture(scope="package")
def local_serving(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> LocalServing:
    workdir: Path = tmp_path_factory.mktemp("serving")
    return prepare(workdir, redis_url, customers=CUSTOMERS, num_round=NUM_ROUND)


@pytest.fixture(scope="package")
def runtime(local_serving: LocalServing) -> ServingRuntime:
    return build_runtime(local_serving.settings(redis_timeout_ms=SHARED_TIMEOUT_MS))


@pytest.fixture(scope="package")
def app(runtime: ServingRuntime) -> FastAPI:
    return create_app(runtime)


@pytest.fixture(scope="package")
def client(app: FastAPI) -> Iterator[TestClient]:
    """The shared app with its lifespan running (one event loop for the whole package)."""
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="package")
def feature_vectors(local_serving: LocalServing) -> dict[int, list[float]]:
    """Feast's online features of the first `SAMPLED` customers, in the signature's order."""
    return feast_vectors(local_serving, local_serving.entity_ids[:SAMPLED])


@pytest.fixture(scope="package")
def model_dir(local_serving: LocalServing) -> Path:
    return local_serving.model_root / MODEL
