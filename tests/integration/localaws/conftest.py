"""Fixtures shared by the local engine's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from localaws.emulator import Emulator, running_emulator


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh moto server per test, with this process's AWS environment pointed at it."""
    with running_emulator() as emu:
        # moto's backends are process-global and outlive a server; start each test clean.
        requests.post(f"{emu.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()
        yield emu
