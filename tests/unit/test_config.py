from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from pydantic import ValidationError

from mlops.config import (
    ConfigError,
    InterfaceEndpoint,
    load_platform_config,
    read_cdk_context,
    select_environment,
)
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit


@pytest.fixture
def raw() -> dict[str, Any]:
    return copy.deepcopy(read_cdk_context(REPO_ROOT / "cdk.json")["platform"])


def test_committed_configuration_is_valid_for_every_environment(raw: dict[str, Any]) -> None:
    config = load_platform_config(raw)
    assert config.project == "mlops"
    assert select_environment(config, "prod").removal_policy == "retain"
    assert select_environment(config, "prod").termination_protection is True
    assert select_environment(config, "dev").removal_policy == "destroy"
    assert len(select_environment(config, "prod").network.availability_zones) == 3
    assert select_environment(config, "local").network.interface_endpoints == ()
    assert set(select_environment(config, "dev").network.interface_endpoints) == set(
        InterfaceEndpoint
    )
    assert select_environment(config, "local").lambda_dependencies == "provided"
    assert select_environment(config, "dev").lambda_dependencies == "vendored"


def test_configuration_is_frozen(raw: dict[str, Any]) -> None:
    env = select_environment(load_platform_config(raw), "dev")
    with pytest.raises(ValidationError, match="frozen"):
        env.region = "us-east-1"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda r: r["environments"]["dev"]["network"].update(nat_gatways=1),
            r"platform\.environments\.dev\.network\.nat_gatways: Extra inputs are not permitted",
        ),
        (
            lambda r: r["environments"]["prod"]["network"].update(nat_gateways=-1),
            r"platform\.environments\.prod\.network\.nat_gateways: .*greater than or equal to 0",
        ),
        (
            lambda r: r["environments"]["dev"].update(region="seoul"),
            r"platform\.environments\.dev\.region: .*'seoul' is not an AWS region name",
        ),
        (
            lambda r: r["environments"]["dev"].update(account="12345"),
            r"platform\.environments\.dev\.account: .*should match pattern",
        ),
        (
            lambda r: r["environments"]["dev"].update(log_retention_days=10),
            r"platform\.environments\.dev\.log_retention_days: .*10 is not a CloudWatch Logs",
        ),
        (
            lambda r: r["environments"]["dev"]["network"].update(availability_zones=["us-east-1a"]),
            r"platform\.environments\.dev: .*\['us-east-1a'\] are not in region ap-northeast-2",
        ),
        (
            lambda r: r["environments"]["dev"]["network"].update(cidr="10.0.0.0/8"),
            r"platform\.environments\.dev\.network\.cidr: .*between /16 and /24",
        ),
        (
            lambda r: r["environments"]["dev"]["network"].update(interface_endpoints=["ftp"]),
            r"platform\.environments\.dev\.network\.interface_endpoints\.0: Input should be",
        ),
        (
            lambda r: r["environments"].pop("local"),
            r"platform\.environments: .*missing environment\(s\): local",
        ),
        (
            lambda r: r["environments"]["dev"].update(lambda_python="2.7"),
            r"platform\.environments\.dev\.lambda_python: Input should be '3\.12', '3\.13'",
        ),
        (lambda r: r.update(project="Bad Name"), r"platform\.project: .*should match pattern"),
    ],
)
def test_invalid_configuration_names_the_bad_key(
    raw: dict[str, Any], mutate: Any, expected: str
) -> None:
    mutate(raw)
    with pytest.raises(ConfigError, match=expected):
        load_platform_config(raw)


def test_every_error_is_reported_at_once(raw: dict[str, Any]) -> None:
    raw["environments"]["dev"]["region"] = "nowhere"
    raw["environments"]["prod"]["tags"] = "not-a-map"
    with pytest.raises(ConfigError) as info:
        load_platform_config(raw)
    message = str(info.value)
    assert "platform.environments.dev.region" in message
    assert "platform.environments.prod.tags" in message


def test_missing_context_and_unknown_environment_are_clear(raw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="no context key 'platform'"):
        load_platform_config(None)
    with pytest.raises(ConfigError, match=r"unknown environment 'staging'.*local, dev, prod"):
        select_environment(load_platform_config(raw), "staging")


def test_app_rejects_bad_configuration_before_synthesis(raw: dict[str, Any], tmp_path: Any) -> None:
    """app.py, run as the CDK CLI runs it, exits 2 naming the key and writes no template."""
    raw["environments"]["dev"]["network"]["max_azs"] = 2
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps({"platform": raw, "env": "dev"}),
        "CDK_OUTDIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "app.py")],
        env=env, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "platform.environments.dev.network.max_azs: Extra inputs are not permitted" in (
        result.stderr
    )
    assert not list(tmp_path.glob("*.template.json"))
