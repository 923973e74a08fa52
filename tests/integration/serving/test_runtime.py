"""What starting the runtime does to the process, beyond loading the models."""

from __future__ import annotations

import gc

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration


def test_a_started_runtime_keeps_its_startup_objects_out_of_the_collector(
    client: TestClient,
) -> None:
    """Without gc.freeze every full collection walks the framework's and the models' objects:
    31-39 ms pauses about twice a second under load (docs/benchmarks.md)."""
    assert client.get("/health").status_code == 200
    assert gc.get_freeze_count() > 10_000
