"""Fixtures of the drift tests: sample baselines, an emulator, the registered versions."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import date

import numpy as np
import pytest

from localaws.emulator import Emulator, running_emulator
from mlops.deployments import ChampionPointer
from pipelines import sample_data as sd
from tests.helpers import load_sample_evaluation
from tests.integration.drift.world import (
    ARTIFACTS,
    FEATURES,
    LOGS,
    MODEL,
    PREFIX,
    Platform,
    SampleSplit,
    outputs,
    score,
)


@pytest.fixture(scope="module")
def split() -> SampleSplit:
    evaluation = load_sample_evaluation()
    data = sd.generate(n_customers=400, start=date(2024, 1, 1), days=15, seed=7)
    rows = data.profiles.merge(data.transactions, on=[sd.ENTITY, sd.TIMESTAMP])[FEATURES]
    x = rows.to_numpy(np.float64)[np.random.default_rng(3).permutation(len(rows))]
    train, served = x[:3_000], x[3_000:]
    columns = {f: train[:, i] for i, f in enumerate(FEATURES)} | {"score": score(train)}
    tested = {f: served[:, i] for i, f in enumerate(FEATURES)} | {"score": score(served)}
    baselines, drift = evaluation.baselines_and_drift(columns, tested, 10, len(train))
    report = {"schema_version": 1, "baselines": baselines, "drift": drift}
    return SampleSplit(json.loads(json.dumps(report)), served, float(np.nanstd(train[:, 0])))


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with running_emulator() as emu:
        yield emu


@pytest.fixture
def platform(emulator: Emulator, split: SampleSplit, monkeypatch: pytest.MonkeyPatch) -> Platform:
    """Versions 1 (report without baselines), 2 (no report object), 3 (the champion)."""
    reset = urllib.request.Request(f"{emulator.endpoint_url}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=10).close()  # noqa: S310 - loopback
    monkeypatch.setattr("mlops.stack_outputs.stack_output", outputs)
    s3, sagemaker = emulator.client("s3"), emulator.client("sagemaker")
    for bucket in (LOGS, ARTIFACTS):
        s3.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": emulator.region}
        )
    sagemaker.create_model_package_group(ModelPackageGroupName=MODEL)
    found = Platform(s3, sagemaker, ChampionPointer(PREFIX, ssm=emulator.client("ssm")), {})
    found.register(1, {"schema_version": 1, "metrics": {"auc": 0.8}})
    found.register(2, None)
    found.register(3, split.report)
    found.crown(3)
    return found
