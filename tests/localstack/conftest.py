"""The platform deployed on LocalStack, once per test session.

* A LocalStack answering at ``LOCALSTACK_ENDPOINT`` (default http://localhost:4566; the compose
  file in localstack/) gets the `local` environment deployed for ``LOCALSTACK_TIER`` (default
  hobby) with `python -m mlops.localstack deploy`'s code.
* Otherwise the open-source core runs in-process (tier ``core``) when a Python 3.13 is found.
* Otherwise every test here is skipped, with that reason.

Tests needing more than the deployed tier skip with the tier they need (:func:`require`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlops.localstack.adapt import Report
from mlops.localstack.deploy import (
    DEFAULT_ENDPOINT,
    DEFAULT_MOCK_FILE,
    REPO_ROOT,
    LocalStackError,
    Target,
    deploy,
    health,
    local_region,
)
from mlops.localstack.tiers import Tier, parse_tier

TIER_ORDER = list(Tier)


@dataclass
class Deployed:
    target: Target
    report: Report
    mock_file: Path

    def client(self, service: str) -> Any:
        return self.target.client(service)

    def outputs(self, stack: str) -> dict[str, str]:
        described = self.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
        return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def require(deployed: Deployed, tier: Tier, why: str) -> None:
    """Skip unless the deployment's tier is at least `tier`."""
    if TIER_ORDER.index(deployed.target.tier) < TIER_ORDER.index(tier):
        have = deployed.target.tier.value
        pytest.skip(f"needs LocalStack tier {tier.value} ({why}); this run is {have}")


@pytest.fixture(scope="session")
def localstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    endpoint = os.environ.get("LOCALSTACK_ENDPOINT", DEFAULT_ENDPOINT)
    region = local_region()
    redis_url = os.environ.get("LOCALSTACK_REDIS_URL", "redis://redis:6379/0")
    try:
        health(endpoint)
    except LocalStackError:
        pass
    else:
        tier = parse_tier(os.environ.get("LOCALSTACK_TIER", "hobby"))
        target = Target(endpoint=endpoint, tier=tier, region=region)
        mock_file = Path(os.environ.get("LOCALSTACK_SFN_MOCKS", DEFAULT_MOCK_FILE))
        report = deploy(target, workdir=REPO_ROOT / "cdk.out.localstack", mock_file=mock_file,
                        redis_url=redis_url)  # fmt: skip
        yield Deployed(target=target, report=report, mock_file=mock_file)
        return
    from mlops.localstack import core

    python = core.find_python()
    if python is None:
        pytest.skip(
            f"no LocalStack endpoint answers at {endpoint}, and no Python 3.13 to run the "
            "open-source core in-process (set LOCALSTACK_CORE_PYTHON)"
        )
    work = tmp_path_factory.mktemp("localstack-core")
    mock_file = work / "sfn-mocks.json"
    process = core.start(core.ensure_venv(python), work, mock_file)
    try:
        target = Target(endpoint=process.endpoint, tier=Tier.CORE, region=region)
        report = deploy(target, workdir=work / "cdk.out", mock_file=mock_file, redis_url=redis_url)
        yield Deployed(target=target, report=report, mock_file=mock_file)
    finally:
        process.stop()
