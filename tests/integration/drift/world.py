"""The drift tests' world on the emulator (for `mlops drift` and the drift job): baselines the
sample bundle's evaluation script fixed on sample warehouse data, stored as a registered
version's evaluation report; the champion pointer naming that version; gzip'd prediction logs
under `predictions/dt=.../` as Firehose writes them."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from lambdas.register_model.domain import GateSummary, Provenance, package_request
from mlops.deployments import Champion, ChampionPointer
from mlops.stack_outputs import StackOutputError
from pipelines import sample_data as sd

MODEL, PREFIX, LOGS, ARTIFACTS = "credit-risk", "/mlops/dev/champions/", "pred-logs", "artifacts"
FEATURES = list(sd.FEATURES)
IN_WINDOW, OUTSIDE = ("2026-11-20", "2026-11-21"), ("2026-11-19", "2026-11-22")
WINDOW = ["--days", "2", "--end", "2026-11-21"]


def score(x: np.ndarray) -> np.ndarray:
    """A fixed stand-in model: riskier with utilisation and late payments."""
    utilisation, late = (
        x[:, FEATURES.index("credit_utilization")],
        x[:, FEATURES.index("late_payments_12m")],
    )
    return np.asarray(1 / (1 + np.exp(-(4 * utilisation + late - 2))), dtype=np.float64)


@dataclass(frozen=True)
class SampleSplit:
    """Baselines fixed on training rows; other rows of the same population to log."""

    report: dict[str, Any]
    served: np.ndarray
    age_sd: float


def records(x: np.ndarray, version: int = 3, model: str = MODEL) -> list[dict[str, Any]]:
    """Rows as serving logs them: NaN as null, the score next to the features."""
    return [
        {"model": model, "version": str(version), "request_id": f"q{i}", "ts": 1.79e9 + i,
         "features": {f: None if v != v else v for f, v in zip(FEATURES, row, strict=True)},
         "score": float(s)}
        for i, (row, s) in enumerate(zip(x.tolist(), score(x), strict=True))
    ]  # fmt: skip


def outputs(stack: str, key: str) -> str:
    known = {("mlops-dev-serving", "PredictionLogBucket"): LOGS,
             ("mlops-dev-registry", "ChampionParameterPrefix"): PREFIX}  # fmt: skip
    if (stack, key) not in known:
        raise StackOutputError(f"cannot read stack {stack}: it does not exist")
    return known[stack, key]


@dataclass
class Platform:
    s3: Any
    sagemaker: Any
    pointer: ChampionPointer
    arns: dict[int, str]

    def log(self, day: str, name: str, items: list[Any]) -> None:
        """Firehose partitions by arrival day: each record is stamped within `day`."""
        start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
        items = [{**i, "ts": start + n} if isinstance(i, dict) else i for n, i in enumerate(items)]
        body = b"".join(json.dumps(i).encode() + b"\n" for i in items)
        self.s3.put_object(
            Bucket=LOGS, Key=f"predictions/dt={day}/{name}", Body=gzip.compress(body)
        )

    def register(self, version: int, report: dict[str, Any] | None) -> None:
        run = f"{MODEL}-2026110{version}-run{version}"
        uri = f"s3://{ARTIFACTS}/runs/{run}/evaluation/evaluation.json"
        if report is not None:
            self.s3.put_object(Bucket=ARTIFACTS, Key=uri.split("/", 3)[3], Body=json.dumps(report))
        source = Provenance(
            run_id=run, model_name=MODEL, bundle_bucket="code", bundle_key=f"b/v{version}.tgz",
            code_version=f"obj-v{version}", git_commit="abc123", uploaded_by="bob",
            training_job_name=f"{run}-train",
        )  # fmt: skip
        gate = GateSummary(metric="auc", reason="passes", champion_arn=None, improvement=None,
                           metrics={"auc": 0.8})  # fmt: skip
        request = package_request(
            MODEL, source, gate, image="123456789012.dkr.ecr.ap-northeast-2.amazonaws.com/x:1",
            model_data_url=f"s3://{ARTIFACTS}/runs/{run}/model.tar.gz", report_uri=uri,
        )  # fmt: skip
        arn = self.sagemaker.create_model_package(**request)["ModelPackageArn"]
        assert arn.endswith(f"/{version}")
        self.arns[version] = arn

    def crown(self, version: int) -> None:
        self.pointer.put(Champion(MODEL, version, self.arns[version], "s3://a/model.tar.gz",
                                  since="2026-11-02T09:00:00.000Z"))  # fmt: skip


def write_window(platform: Platform, served: list[Any]) -> None:
    """Two objects in each of the window's two partitions."""
    quarter = len(served) // 4
    for part, day in enumerate(IN_WINDOW * 2):
        chunk = served[part * quarter : (part + 1) * quarter if part < 3 else None]
        platform.log(day, f"stream-1-{day}-0{part}-abc", chunk)
