"""The serving app's requirement pins (Lambda bundle, container image) are uv.lock's."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement

from stacks.constructs import materialization_assets as assets

REQUIREMENTS = Path(__file__).resolve().parents[2] / "serving" / "requirements.txt"


def _lines() -> list[str]:
    text = REQUIREMENTS.read_text(encoding="utf-8").splitlines()
    return [line.split("#", 1)[0].strip() for line in text if line.split("#", 1)[0].strip()]


@pytest.mark.parametrize("python", ["3.11", "3.12", "3.13"])
def test_serving_requirements_pin_the_locked_versions(python: str) -> None:
    locked = dict(pin.split("==") for pin in assets.lock_constraints(python))
    applying = assets.for_target(tuple(_lines()), assets.marker_environment(python))
    names = {Requirement(line).name.lower() for line in applying}
    assert {"fastapi", "onnxruntime", "redis", "hiredis", "numpy", "mangum"} <= names
    assert not names & {"feast", "pandas", "pyarrow"}, "the serving package stays Feast-free"
    for line in applying:
        requirement = Requirement(line)
        (pin,) = requirement.specifier
        assert pin.operator == "==", line
        assert locked[requirement.name.lower()] == pin.version, (python, line)
