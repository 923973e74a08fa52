"""Fixtures shared by the local engine's tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from localaws.emulator import Emulator, running_emulator
from tests.integration.localaws.test_lambda_runtime import ROLE_POLICY


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh, empty moto server per test, with this process's AWS environment pointed at it."""
    with running_emulator() as emu:
        yield emu


@pytest.fixture
def role(engine: Emulator) -> str:
    """An execution role for the test's functions (`engine`: each module's emulator with the
    extensions it needs; IAM is not enforced, the role only has to exist)."""
    arn: str = engine.client("iam").create_role(
        RoleName=f"role-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument=ROLE_POLICY
    )["Role"]["Arn"]
    return arn
