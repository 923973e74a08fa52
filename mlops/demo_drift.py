"""`make demo-drift`: after the lifecycle, drift detected on shifted traffic and a retraining run.

Every step runs the deployed code on the local engine:

1. calm traffic: every customer scored once by the proxy (batches), logged through Firehose;
2. the drift job, run as its schedule runs it (Scheduler → Lambda): PSI per feature against the
   champion's training baselines, CloudWatch metrics, the HTML report in S3 -- calm;
3. the warehouse shifts: today's profile snapshot with incomes halved and credit utilisation
   up goes to the data lake, and the materialization job's code carries it into Redis;
4. shifted traffic: the same customers, twice;
5. the drift job again: `act`; the drift alarm fires (the engine evaluates CloudWatch alarms
   as metrics arrive), EventBridge hands the alarm to the retraining function, which copies the
   champion's bundle under continuous-training/ -- an upload: trigger, workflow;
6. the retrained version meets the same gate against the champion;
7. a later reading, still drifted: the alarm stays in ALARM and no second run starts.

The last reading's HTML report is copied from S3 to `report_dir` and its path printed, so it
can be opened in a browser.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import numpy as np
from rich.console import Console
from rich.table import Table

from lambdas.common import split_s3_uri
from localaws.engine import LocalEngine
from mlops.demo_serving import proxy
from mlops.runs import RunRecord, RunsRepository

MODEL = "credit-risk"
BATCH = 100
CALM_STEP = "calm traffic: every customer scored once (batches of 100) → prediction log"
FIRST_READING = (
    "drift job, run as its schedule runs it (Scheduler → Lambda): PSI vs the champion's "
    "baselines → metrics, alarms, HTML report"
)
SHIFT_STEP = (
    "the warehouse shifts: today's profiles with incomes halved and utilisation up → data "
    "lake → materialization → Redis"
)
SHIFTED_STEP = "shifted traffic: the same customers, twice"
SECOND_READING = (
    "drift job again → `act` → drift alarm → EventBridge → retraining function → bundle "
    "copy → trigger → workflow"
)
RETRAINED_STEP = "the retrained version meets the gate (against the champion, out of time)"
STILL_STEP = "a later reading, still drifted: the alarm stays in ALARM, so no second run starts"


def run_drift(engine: LocalEngine, result: dict[str, Any], steps: Any, scratch: Path,
              console: Console, report_dir: Path) -> dict[str, Any]:  # fmt: skip
    """The drift half of the demo; `result` is the lifecycle's (features, approved version).
    The last reading's HTML report is written to `report_dir`."""
    from mlops.demo import DemoError

    outputs = _outputs(engine)
    customers = list(result["features"]["all_customers"])
    found: dict[str, Any] = {}
    with steps.step(CALM_STEP):
        found["calm_scored"] = _traffic(engine, customers, scratch / "calm", console)
    with steps.step(FIRST_READING):
        found["calm"] = _reading(engine, outputs, console)
    with steps.step(SHIFT_STEP):
        _shift(engine, result["features"]["profiles"], scratch / "shift", console)
    with steps.step(SHIFTED_STEP):
        found["shifted_scored"] = _traffic(engine, customers * 2, scratch / "shifted", console)
    with steps.step(SECOND_READING):
        found["shifted"] = _reading(engine, outputs, console)
        found["alarm"] = _alarm_state(console)
        found["retraining"] = _wait_for_retraining(engine, console, terminal=False)
    with steps.step(RETRAINED_STEP):
        run = _wait_for_retraining(engine, console, terminal=True)
        found["retrained"] = run
        console.print(f"  run {run.run_id}: {run.status}; {run.reason or ''}".rstrip("; "))
        if run.model_package_arn:
            console.print(f"  registered {run.model_package_arn} (waits for approval unless "
                          "monitoring.models.credit-risk.auto_approve is set)")  # fmt: skip
    with steps.step(STILL_STEP):
        found["later"] = _reading(engine, outputs, console)
        found["later_alarm"] = _alarm_state(console)
        retraining = _retraining_runs(engine)
        executions = _retraining_executions(engine)
        console.print(f"  retraining runs of {MODEL}: {len(retraining)}; workflow executions "
                      f"started by continuous training: {len(executions)}")  # fmt: skip
        found["retraining_runs"], found["retraining_executions"] = len(retraining), executions
    found["report_file"] = _save_report(found["later"], report_dir, console)
    if found["shifted"]["status"] != "act":
        raise DemoError(f"the shifted traffic read as {found['shifted']['status']}, not act")
    return found


def _outputs(engine: LocalEngine) -> dict[str, Any]:
    assert engine.deployment is not None
    return dict(engine.deployment[f"{engine.project}-local-monitoring"].outputs)


def _traffic(engine: LocalEngine, customers: list[int], scratch: Path, console: Console) -> int:
    scored = 0
    with proxy(engine, scratch) as call:
        for start in range(0, len(customers), BATCH):
            chunk = customers[start : start + BATCH]
            reply = call(f"/v1/models/{MODEL}/predict",
                         {"requests": [{"entity_id": c} for c in chunk]})  # fmt: skip
            scored += sum(1 for item in reply["responses"] if "score" in item)
    console.print(f"  {scored} predictions logged ({len(customers)} requested)")
    return scored


def _reading(engine: LocalEngine, outputs: dict[str, Any], console: Console) -> dict[str, Any]:
    # The window ends at the scheduled time, in whole seconds: fire in the next second, as a
    # real schedule fires after the traffic it reads.
    time.sleep(1.01 - time.time() % 1.0)
    summary = engine.run_schedule(str(outputs["DriftScheduleName"]))
    (reading,) = [m for m in summary["models"] if m["model"] == MODEL]
    if "report" not in reading:
        from mlops.demo import DemoError

        raise DemoError(f"the drift job could not read {MODEL}: {reading}")
    s3 = boto3.client("s3")
    bucket, key = split_s3_uri(reading["report"])
    body = s3.get_object(Bucket=bucket, Key=key.removesuffix(".html") + ".json")["Body"].read()
    report = json.loads(body)
    columns = [*report["features"].values(), report["score"]]
    table = Table("column", "PSI", "status", title=f"{MODEL} v{reading['version']}: "
                  f"{reading['records']} records, status {reading['status']}")  # fmt: skip
    worst = sorted(columns, key=lambda c: -1.0 if c["psi"] is None else c["psi"], reverse=True)
    for column in worst[:5]:
        psi = "-" if column["psi"] is None else f"{column['psi']:.4f}"
        table.add_row(column["name"], psi, column["status"])
    console.print(table)
    console.print(f"  report {reading['report']}")
    return dict(reading)


def _shift(engine: LocalEngine, profiles: Any, root: Path, console: Console) -> None:
    """Today's snapshot, shifted, as a second file of today's partition; then materialization
    over the minute it is stamped in (the scheduled job's code, as in the lifecycle)."""
    from mlops.demo import OFFLINE_PREFIX, materialization, materialize
    from pipelines.sample_data import PROFILE_VIEW, TIMESTAMP, write_frame

    latest = profiles[profiles[TIMESTAMP] == profiles[TIMESTAMP].max()].copy()
    stamp = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    latest[TIMESTAMP] = stamp
    latest["income_monthly"] = latest["income_monthly"] * 0.5
    latest["credit_utilization"] = np.clip(latest["credit_utilization"] * 1.6 + 0.1, 0.0, 1.0)
    path = write_frame(latest, root / f"dt={stamp:%Y-%m-%d}" / "part-shifted.parquet")
    _, _, outputs = materialization(engine)
    key = f"{OFFLINE_PREFIX}{PROFILE_VIEW}/dt={stamp:%Y-%m-%d}/part-shifted.parquet"
    boto3.client("s3").upload_file(str(path), str(outputs["DataLakeBucketName"]), key)
    record = materialize(engine, start=stamp - timedelta(seconds=1), end=datetime.now(UTC))
    rows = sum(view.rows_written for view in record.views.values())
    console.print(f"  {len(latest)} shifted profiles → s3://{outputs['DataLakeBucketName']}/"
                  f"{key} → {rows} entity rows in Redis")  # fmt: skip


def _alarm_state(console: Console) -> dict[str, str]:
    cloudwatch = boto3.client("cloudwatch")
    alarms = cloudwatch.describe_alarms()
    states = {a["AlarmName"]: a["StateValue"] for a in alarms["MetricAlarms"]
              if a.get("MetricName") == "MaxPSI"}  # fmt: skip
    for name, state in sorted(states.items()):
        console.print(f"  alarm {name}: {state}")
    return states


def _wait_for_retraining(engine: LocalEngine, console: Console, *, terminal: bool,
                         timeout: float = 300) -> RunRecord:  # fmt: skip
    from mlops.demo import DemoError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        retraining = _retraining_runs(engine)
        if retraining and (not terminal or retraining[0].status.terminal):
            run = retraining[0]
            if not terminal:
                console.print(f"  {len(retraining)} retraining run: {run.run_id} from "
                              f"s3://{run.bucket}/{run.key} → {run.execution_arn}")  # fmt: skip
            return run
        time.sleep(0.5)
    raise DemoError(f"no {'finished ' if terminal else ''}retraining run of {MODEL} within "
                    f"{timeout:.0f} s")  # fmt: skip


def _retraining_runs(engine: LocalEngine) -> list[RunRecord]:
    runs = RunsRepository(engine.training.runs_table).list(MODEL)
    return [r for r in runs if r.key.startswith("continuous-training/")]


def _retraining_executions(engine: LocalEngine) -> list[str]:
    """Executions of the training workflow whose input says continuous training started them."""
    sfn = boto3.client("stepfunctions")
    machine = engine.training.state_machine_arn
    listed = sfn.list_executions(stateMachineArn=machine)["executions"]
    inputs = {e["executionArn"]: sfn.describe_execution(executionArn=e["executionArn"])["input"]
              for e in listed}  # fmt: skip
    started = [arn for arn, text in inputs.items()
               if json.loads(text)["bundle"].get("trigger") == "continuous-training"]  # fmt: skip
    return sorted(started)


def _save_report(reading: dict[str, Any], where: Path, console: Console) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"drift-report-{MODEL}.html"
    bucket, key = split_s3_uri(reading["report"])
    path.write_bytes(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    console.print(f"  the last reading's report, to open in a browser: {path}")
    return path
