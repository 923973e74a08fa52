"""The in-process Lambda environment: applied and undone, and safe to read from other threads."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest

from localaws.lambda_sandbox import SnapshotEnviron, function_environment, snapshot_views


@pytest.fixture
def views() -> Iterator[None]:
    snapshot_views(True)
    try:
        yield
    finally:
        snapshot_views(False)


def test_views_are_snapshots_of_the_same_data(views: None) -> None:
    assert isinstance(os.environ, SnapshotEnviron)
    os.environ["MLOPS_VIEW_PROBE"] = "1"
    try:
        items = os.environ.items()
        os.environ.pop("MLOPS_VIEW_PROBE")
        assert ("MLOPS_VIEW_PROBE", "1") in items  # taken before the removal
        assert "MLOPS_VIEW_PROBE" not in os.environ.keys()
        assert os.environ.copy() == {k: os.environ[k] for k in os.environ.keys()}
        assert isinstance(os.environ.copy(), dict)
    finally:
        os.environ.pop("MLOPS_VIEW_PROBE", None)


def test_switching_off_gives_the_standard_class_back(views: None) -> None:
    snapshot_views(False)
    assert type(os.environ) is os._Environ
    snapshot_views(True)
    snapshot_views(True)
    assert type(os.environ) is SnapshotEnviron


def test_function_environment_applies_and_undoes_every_change(views: None) -> None:
    os.environ["MLOPS_KEPT"] = "before"
    try:
        with function_environment({"AWS_LAMBDA_FUNCTION_NAME": "f", "MLOPS_KEPT": "inside"}):
            assert os.environ["AWS_LAMBDA_FUNCTION_NAME"] == "f"
            assert os.environ["MLOPS_KEPT"] == "inside"
            os.environ["MLOPS_ADDED_BY_HANDLER"] = "x"
        assert "AWS_LAMBDA_FUNCTION_NAME" not in os.environ
        assert "MLOPS_ADDED_BY_HANDLER" not in os.environ
        assert os.environ["MLOPS_KEPT"] == "before"
    finally:
        os.environ.pop("MLOPS_KEPT", None)


def test_readers_iterate_while_invocations_come_and_go(views: None) -> None:
    """What botocore does on every client creation (``os.environ.items()``), racing the
    removal of an invocation's variables, must never raise."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        while not stop.is_set():
            try:
                for _key, _value in os.environ.items():
                    pass
                dict(os.environ.copy())
            except BaseException as error:  # noqa: BLE001 - any failure is the finding
                errors.append(error)
                return

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for n in range(3000):
            with function_environment({f"MLOPS_RACE_{i}": str(n) for i in range(20)}):
                pass
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert errors == []
    assert not any(key.startswith("MLOPS_RACE_") for key in os.environ.keys())
