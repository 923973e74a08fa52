"""Fixtures shared by the local engine's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localaws.emulator import Emulator, running_emulator


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh, empty moto server per test, with this process's AWS environment pointed at it."""
    with running_emulator() as emu:
        yield emu
