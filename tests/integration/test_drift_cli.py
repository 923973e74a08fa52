"""`mlops drift` against the emulator: baselines the sample bundle's evaluation script fixed on
sample warehouse data, stored as a registered version's evaluation report; the champion pointer
naming that version; gzip'd prediction logs under `predictions/dt=.../` as Firehose writes them."""

from __future__ import annotations

import gzip
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from lambdas.register_model.domain import GateSummary, Provenance, package_request
from localaws.emulator import Emulator, running_emulator
from mlops import drift_cli
from mlops.cli import app
from mlops.deployments import Champion, ChampionPointer
from mlops.stack_outputs import StackOutputError
from pipelines import sample_data as sd
from tests.helpers import load_sample_evaluation

pytestmark = pytest.mark.integration
runner = CliRunner(env={"COLUMNS": "200"})
MODEL, PREFIX, LOGS, ARTIFACTS = "credit-risk", "/mlops/dev/champions/", "pred-logs", "artifacts"
FEATURES = list(sd.FEATURES)
IN_WINDOW, OUTSIDE = ("2026-11-20", "2026-11-21"), ("2026-11-19", "2026-11-22")
WINDOW = ["--days", "2", "--end", "2026-11-21"]


def _score(x: np.ndarray) -> np.ndarray:
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


@pytest.fixture(scope="module")
def split() -> SampleSplit:
    evaluation = load_sample_evaluation()
    data = sd.generate(n_customers=400, start=date(2024, 1, 1), days=15, seed=7)
    rows = data.profiles.merge(data.transactions, on=[sd.ENTITY, sd.TIMESTAMP])[FEATURES]
    x = rows.to_numpy(np.float64)[np.random.default_rng(3).permutation(len(rows))]
    train, served = x[:3_000], x[3_000:]
    columns = {f: train[:, i] for i, f in enumerate(FEATURES)} | {"score": _score(train)}
    tested = {f: served[:, i] for i, f in enumerate(FEATURES)} | {"score": _score(served)}
    baselines, drift = evaluation.baselines_and_drift(columns, tested, 10, len(train))
    report = {"schema_version": 1, "baselines": baselines, "drift": drift}
    return SampleSplit(json.loads(json.dumps(report)), served, float(np.nanstd(train[:, 0])))


def records(x: np.ndarray, version: int = 3, model: str = MODEL) -> list[dict[str, Any]]:
    """Rows as serving logs them: NaN as null, the score next to the features."""
    return [
        {"model": model, "version": str(version), "request_id": f"q{i}", "ts": 1.79e9 + i,
         "features": {f: None if v != v else v for f, v in zip(FEATURES, row, strict=True)},
         "score": float(s)}
        for i, (row, s) in enumerate(zip(x.tolist(), _score(x), strict=True))
    ]  # fmt: skip


def outputs(stack: str, key: str) -> str:
    known = {("mlops-dev-serving", "PredictionLogBucket"): LOGS,
             ("mlops-dev-registry", "ChampionParameterPrefix"): PREFIX}  # fmt: skip
    if (stack, key) not in known:
        raise StackOutputError(f"cannot read stack {stack}: it does not exist")
    return known[stack, key]


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with running_emulator() as emu:
        yield emu


@dataclass
class Platform:
    s3: Any
    sagemaker: Any
    pointer: ChampionPointer
    arns: dict[int, str]

    def log(self, day: str, name: str, items: list[Any]) -> None:
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


def drift(*args: str) -> Any:
    return runner.invoke(app, ["drift", MODEL, *WINDOW, *args])


def row(output: str, column: str) -> list[str]:
    found = [line for line in output.splitlines() if f"│ {column} " in line]
    assert len(found) == 1, output
    return [cell.strip() for cell in found[0].strip("│ ").split("│")]


def write_window(platform: Platform, served: list[dict[str, Any]]) -> None:
    """Two objects in each of the window's two partitions."""
    quarter = len(served) // 4
    for part, day in enumerate(IN_WINDOW * 2):
        chunk = served[part * quarter : (part + 1) * quarter if part < 3 else None]
        platform.log(day, f"stream-1-{day}-0{part}-abc", chunk)


def test_a_calm_window_prints_every_column_ok_or_warn(
    platform: Platform, split: SampleSplit, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(drift_cli, "PAGE_SIZE", 1)  # every listing takes several pages
    served = records(split.served)
    write_window(platform, [*served, "not a record", {"model": "fraud", "features": {}}])
    result = drift()
    assert result.exit_code == 0, result.output
    cells = {name: row(result.output, name) for name in [*FEATURES, "score (score)"]}
    assert {c[2] for c in cells.values()} <= {"ok", "warn"}
    assert all(c[3] == str(len(served)) for c in cells.values())
    psis = [float(cells[line.split("│")[1].strip()][1]) for line in result.output.splitlines()
            if line.count("│") == 6]  # fmt: skip
    assert psis == sorted(psis, reverse=True) and len(psis) == len(FEATURES) + 1
    assert cells["income_monthly"][4] not in ("0.0%", "-")
    summary = result.output.strip().splitlines()[-1]
    assert "credit-risk v3 · window 2026-11-20..2026-11-21 (2 day(s), 4 objects)" in summary
    assert f"records: {len(served)} used, 1 skipped, 1 malformed" in summary
    assert summary.endswith("status: ok") or summary.endswith("status: warn")


def test_a_one_sd_shift_of_one_feature_acts(platform: Platform, split: SampleSplit) -> None:
    shifted = split.served.copy()
    shifted[:, 0] += split.age_sd
    write_window(platform, records(shifted))
    result = drift()
    assert result.exit_code == 0, result.output  # drift is reported, not an error
    assert row(result.output, "age")[2] == "act" and float(row(result.output, "age")[1]) > 0.25
    assert row(result.output, "credit_limit")[2] in ("ok", "warn")
    lines = [line for line in result.output.splitlines() if line.count("│") == 6]
    assert "age" in lines[0]  # the worst first
    assert result.output.strip().endswith("status: act")


def test_json_carries_the_psi_and_the_window(platform: Platform, split: SampleSplit) -> None:
    served = records(split.served)
    write_window(platform, served)
    table = drift()
    body = json.loads(drift("--json").output)
    assert (body["model"], body["version"], body["package_arn"]) == (MODEL, "3", platform.arns[3])
    assert body["window"]["records"] == len(served) and body["window"]["objects"] == 4
    assert body["window"]["partitions"] == [f"predictions/dt={d}/" for d in IN_WINDOW]
    assert body["thresholds"]["act"] == 0.25
    for name in ("age", "credit_utilization"):
        psi = body["features"][name]["psi"]
        assert 0 <= psi < 0.25 and row(table.output, name)[1] == f"{psi:.4f}"
    assert body["score"]["psi"] is not None and body["status"] in ("ok", "warn")


def test_only_the_windows_partitions_are_read(platform: Platform, split: SampleSplit) -> None:
    served = records(split.served[:500])
    platform.log(IN_WINDOW[0], "a", served[:300])
    platform.log(IN_WINDOW[1], "b", served[300:])
    for day in OUTSIDE:
        platform.log(day, "outside", records(split.served[500:600]))
    platform.log("2026-11-2", "prefix-of-a-partition", records(split.served[600:700]))
    body = json.loads(drift("--json").output)
    assert (body["window"]["records"], body["window"]["objects"]) == (500, 2)
    one_day = json.loads(drift("--json", "--days", "1").output)
    assert one_day["window"]["records"] == 200 and one_day["window"]["start"] == "2026-11-21"


def test_an_empty_window_is_reported_not_an_error(platform: Platform, split: SampleSplit) -> None:
    platform.log(OUTSIDE[0], "old", records(split.served[:200]))
    platform.log(IN_WINDOW[0], "other-version", records(split.served[:200], version=2))
    result = drift()
    assert result.exit_code == 0, result.output
    assert "no prediction records of credit-risk v3 in s3://pred-logs/predictions/dt=" \
           "2026-11-20..2026-11-21" in result.output  # fmt: skip
    assert "records: 0 used, 200 skipped" in result.output
    assert result.output.strip().endswith("status: empty_window")
    body = json.loads(drift("--json").output)
    assert body["status"] == "empty_window" and body["window"]["objects"] == 1


def test_an_older_version_is_read_by_number(platform: Platform, split: SampleSplit) -> None:
    platform.register(4, split.report)
    platform.log(IN_WINDOW[0], "v4", records(split.served[:300], version=4))
    body = json.loads(drift("--json", "--version", "4").output)
    assert (body["version"], body["window"]["records"]) == ("4", 300)
    assert body["package_arn"] == platform.arns[4]


def test_errors_exit_2_with_their_message(platform: Platform) -> None:
    cases = [
        (["--version", "9"], "'credit-risk' has no version 9"),
        (["--version", "1"], "baselines: the evaluation report has no baselines entry"),
        (["--version", "2"], "evaluation report s3://artifacts/runs/credit-risk-20261102-run2/"
                             "evaluation/evaluation.json does not exist"),
        (["--end", "21-11-2026"], "--end must be a day as YYYY-MM-DD"),
        (["--warn", "0.3"], "need 0 < warn <= act"),
        (["--env", "prod"], "cannot read stack mlops-prod-serving"),
    ]  # fmt: skip
    for args, message in cases:
        result = drift(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "│" not in result.output, (args, result.output)
    unknown = runner.invoke(app, ["drift", "fraud", *WINDOW])
    assert unknown.exit_code == 2 and "no model 'fraud' in the registry" in unknown.output
    platform.sagemaker.create_model_package_group(ModelPackageGroupName="fraud")
    no_champion = runner.invoke(app, ["drift", "fraud", *WINDOW])
    assert no_champion.exit_code == 2, no_champion.output
    assert "'fraud' has no champion (/mlops/dev/champions/fraud is not set)" in no_champion.output
    bad_name = runner.invoke(app, ["drift", "no_such model"])
    assert bad_name.exit_code == 2 and "not a model (package group) name" in bad_name.output


def test_a_missing_log_bucket_is_an_aws_failure(platform: Platform) -> None:
    platform.s3.delete_bucket(Bucket=LOGS)
    result = drift()
    assert result.exit_code == 1, result.output
    assert "AWS refused the request" in result.output and "NoSuchBucket" in result.output
