from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from moto import mock_aws

from mlops.runs import RunRecord, RunsRepository, RunStatus, run_id_for
from tests.helpers import create_runs_table

pytestmark = pytest.mark.unit


@pytest.fixture
def repo(monkeypatch: pytest.MonkeyPatch) -> Iterator[RunsRepository]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-northeast-2")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        create_runs_table()
        yield RunsRepository("runs")


def test_run_id_is_a_function_of_the_object_version_only() -> None:
    key = "bundles/credit-risk/x.tar.gz"
    a = run_id_for("credit-risk", "b", key, "v1")
    assert a == run_id_for("credit-risk", "b", key, "v1")
    assert a != run_id_for("credit-risk", "b", key, "v2")
    assert a != run_id_for("credit-risk", "other", key, "v1")
    assert re.fullmatch(r"credit-risk-[0-9a-f]{16}", a)
    long = run_id_for("m" * 80 + "_x", "b", "k", "v")
    assert len(long) + len("-train") <= 63
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", long)  # SageMaker job-name pattern


def test_create_is_idempotent_and_updates_are_recorded(repo: RunsRepository) -> None:
    record = RunRecord(run_id="r1", model_name="credit-risk", bucket="b", key="k", version_id="v")
    assert repo.create(record) is True
    assert repo.create(record) is False
    details = {"auc": 0.69, "steps": [{"name": "train", "seconds": 1.5}]}
    repo.update_status("r1", RunStatus.GATED_OUT, reason="auc 0.69 < 0.70", details=details)
    stored = repo.get("r1")
    assert stored is not None
    assert stored.status is RunStatus.GATED_OUT and stored.status.terminal
    assert stored.reason == "auc 0.69 < 0.70"
    assert stored.details == {"auc": 0.69, "steps": [{"name": "train", "seconds": 1.5}]}


def test_list_is_newest_first_and_filters_by_model(repo: RunsRepository) -> None:
    for i, model in enumerate(["a", "b", "a"]):
        repo.create(RunRecord(run_id=f"r{i}", model_name=model, bucket="b", key="k",
                              version_id="v", received_at=f"2026-11-2{i}T00:00:00Z"))  # fmt: skip
    assert [r.run_id for r in repo.list()] == ["r2", "r1", "r0"]
    assert [r.run_id for r in repo.list("a")] == ["r2", "r0"]
    assert repo.get("missing") is None
