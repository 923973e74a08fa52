"""The compose file agrees with the deploy command: the pins, the token, the mock file, Redis."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.localstack.deploy import DEFAULT_MOCK_FILE, REPO_ROOT

pytestmark = pytest.mark.unit
COMPOSE = REPO_ROOT / "localstack" / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def test_images_are_pinned_to_exact_versions(compose: dict[str, Any]) -> None:
    images = {name: service["image"] for name, service in compose["services"].items()}
    assert re.fullmatch(r"localstack/localstack:\d{4}\.\d{2}\.\d+", images["localstack"])
    assert re.fullmatch(r"redis:\d+\.\d+\.\d+-alpine", images["redis"])


def test_the_auth_token_comes_from_the_environment_and_is_required(
    compose: dict[str, Any],
) -> None:
    token = compose["services"]["localstack"]["environment"]["LOCALSTACK_AUTH_TOKEN"]
    assert token.startswith("${LOCALSTACK_AUTH_TOKEN:?")  # compose refuses to start without it


def test_the_mock_file_the_deploy_writes_is_the_one_localstack_reads(
    compose: dict[str, Any],
) -> None:
    service = compose["services"]["localstack"]
    mounts = dict(
        volume.rsplit(":", 2)[:2] for volume in service["volumes"] if volume.count(":") == 2
    )
    container_dir = mounts["./mocks"]
    assert service["environment"]["SFN_MOCK_CONFIG"] == f"{container_dir}/{DEFAULT_MOCK_FILE.name}"
    assert (COMPOSE.parent / "mocks").resolve() == DEFAULT_MOCK_FILE.parent
    assert Path(DEFAULT_MOCK_FILE).parent.is_dir()


def test_lambda_containers_reach_the_redis_that_replaces_elasticache(
    compose: dict[str, Any],
) -> None:
    network = compose["networks"]["mlops"]["name"]
    localstack, redis = compose["services"]["localstack"], compose["services"]["redis"]
    assert localstack["environment"]["LAMBDA_DOCKER_NETWORK"] == network
    assert "mlops" in localstack["networks"] and "mlops" in redis["networks"]
    from mlops.localstack.adapt import Options
    from mlops.localstack.tiers import Tier

    assert Options(tier=Tier.HOBBY).redis_url.startswith("redis://redis:6379")
    assert "/var/run/docker.sock:/var/run/docker.sock" in localstack["volumes"]
