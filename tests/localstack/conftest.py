"""LocalStack tests run only when a LocalStack endpoint answers; otherwise they skip."""

from __future__ import annotations

import os
import urllib.request

import pytest

ENDPOINT = os.environ.get("LOCALSTACK_ENDPOINT", "http://localhost:4566")


def _localstack_answers() -> bool:
    try:
        with urllib.request.urlopen(f"{ENDPOINT}/_localstack/health", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    localstack_items = [i for i in items if "tests/localstack" in str(i.fspath)]
    if localstack_items and not _localstack_answers():
        skip = pytest.mark.skip(reason=f"no LocalStack endpoint answers at {ENDPOINT}")
        for item in localstack_items:
            item.add_marker(skip)
