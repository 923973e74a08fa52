"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stacks.assembly import SynthesizedEnvironment
from stacks.assembly import synthesize_environment as _synthesize

REPO_ROOT = Path(__file__).resolve().parents[1]
__all__ = ["REPO_ROOT", "SynthesizedEnvironment", "synthesize_environment"]


def synthesize_environment(
    name: str, outdir: Path, *, bundling: bool = False, overrides: dict[str, Any] | None = None
) -> SynthesizedEnvironment:
    """The real app for one environment; bundling skipped unless asked for (speed)."""
    return _synthesize(name, outdir, bundling=bundling, overrides=overrides)


@pytest.fixture(scope="session")
def synthesized(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str], SynthesizedEnvironment]:
    """Synthesize each environment at most once per test session."""
    cache: dict[str, SynthesizedEnvironment] = {}

    def get(name: str) -> SynthesizedEnvironment:
        if name not in cache:
            cache[name] = synthesize_environment(name, tmp_path_factory.mktemp(f"cdk-{name}"))
        return cache[name]

    return get


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis for the tests: `REDIS_URL` when set, else a private redis-server on a free port.

    Tests never flush it; each writes under its own Feast project, so keys never collide."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    from features.local_redis import LocalRedis

    with LocalRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture(scope="session")
def sample_model_archive(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """model.tar.gz of the sample bundle as a training job uploads it: real ONNX and signature,
    trained by the bundle's own scripts on a small generated frame (a few seconds)."""
    from datetime import date

    from pipelines import sample_data as sd
    from pipelines.sample_model import pack_model, train_sample_model

    work = tmp_path_factory.mktemp("sample-model")
    data = sd.generate(400, date(2026, 1, 1), 30, seed=5)
    sd.write_frame(sd.training_frame(data), work / "frame" / "part-0.parquet")
    model_dir = train_sample_model(
        "credit_risk", work / "frame", work / "train", hyperparameters={"num_round": 5}
    )
    return pack_model(model_dir, work / "model.tar.gz").read_bytes()
