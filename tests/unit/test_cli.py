"""The `mlops` command as a user runs it: the root app with its sub-commands."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mlops.cli import app
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit
runner = CliRunner(env={"COLUMNS": "200"})


def test_every_command_group_is_registered() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("config", "demo", "bench", "bundle", "features", "local", "runs", "models",
                    "deployments", "rollback", "drift"):  # fmt: skip
        assert f"│ {command} " in result.output, command


def test_bundle_validate_through_the_root_command() -> None:
    sample = REPO_ROOT / "pipelines" / "samples" / "credit_risk"
    result = runner.invoke(app, ["bundle", "validate", str(sample)])
    assert result.exit_code == 0, result.output
    assert "credit-risk (xgboost" in result.output


def test_config_summarises_every_environment() -> None:
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == ["local", "dev", "prod"]
    assert "removal=retain" in lines[2] and "endpoints=11" in lines[2]


def test_config_rejects_a_broken_file(tmp_path: object) -> None:
    from pathlib import Path

    broken = Path(str(tmp_path)) / "cdk.json"
    broken.write_text('{"context": {"platform": {"project": "x"}}}')
    result = runner.invoke(app, ["config", "--cdk-json", str(broken)])
    assert result.exit_code == 2
    assert "platform.environments" in result.output


def test_unknown_benchmark_suite_is_refused() -> None:
    result = runner.invoke(app, ["bench", "--suite", "nope"])
    assert result.exit_code == 2
    assert "unknown suite 'nope'" in result.output
