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
