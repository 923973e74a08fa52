"""`make demo`: the platform's lifecycle on the local engine, step by step, with timings.

Every step runs the project's real code against the emulator: the synthesized `local`
app is deployed, the sample bundle is uploaded exactly as `mlops bundle upload` does, the
trigger Lambda validates it and starts the Step Functions workflow, the SageMaker jobs
run the bundle's scripts, and the gate and register Lambdas put a version with metrics
in the model registry. Steps that later work will deliver are listed as not built yet.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from rich.console import Console
from rich.table import Table

from localaws.engine import LocalEngine
from mlops.demo_serving import approve, serve
from mlops.runs import RunRecord, RunsRepository, RunStatus

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_BUNDLE = REPO_ROOT / "pipelines" / "samples" / "credit_risk"
DATASET_KEY = "datasets/credit-risk/training_frame/part-0.parquet"
OFFLINE_PREFIX = "offline/"
FEATURE_STEP = (
    "feature store: today's batch → data lake → materialization job (the scheduled one's "
    "code) → Redis → read"
)
WORKFLOW_STEP = (
    "Step Functions: training set (Feast, point in time) → preprocessing → training → "
    "evaluation → gate → register"
)
NOT_BUILT = (
    (
        "materialization started by its schedule on the local engine (Scheduler → Step "
        "Functions → processing job); the job's code ran above",
        "feature-store work",
    ),
)
APPROVE_STEP = (
    "approve the version (`mlops models approve`) → EventBridge → approval hook: artifact "
    "check, pinned Lambda version, CodeDeploy canary on the `live` alias, ledger, champion"
)
SERVE_STEP = (
    "model proxy (the deployed function's settings, Mangum, Function URL event): online "
    "features → ONNX Runtime → score; prediction log → Firehose → S3"
)


class DemoError(RuntimeError):
    """A lifecycle step did not reach the state it should have."""


@dataclass
class Steps:
    """Prints each step with its duration and keeps them for the summary."""

    console: Console
    done: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.console.print(f"[bold cyan]▶ {title}[/]")
        started = time.perf_counter()
        yield
        seconds = time.perf_counter() - started
        self.done[title] = seconds
        self.console.print(f"  [green]✓[/] {seconds:.1f} s")


@dataclass(frozen=True)
class SampleLoad:
    labels: int  # credit decisions in the label table
    partitions: int  # Parquet files under the data lake's offline/ prefix
    frame_rows: int  # rows of the prepared training frame under datasets/


def load_sample_data(
    artifacts_bucket: str, data_lake_bucket: str, n_customers: int = 3000
) -> SampleLoad:
    """Generate the warehouse sample (90 days) and load it where the platform reads it: the
    views' and the label table's `dt=` partitions under the data lake's `offline/` prefix (what
    the feature store and feature-service training read) and, for bundles with a dataset
    input, the prepared training frame under `datasets/`."""
    from pipelines.sample_data import generate, training_frame, write_frame, write_parquet

    data = generate(n_customers=n_customers, start=date(2026, 1, 1), days=90, seed=7)
    frame = training_frame(data)
    s3 = boto3.client("s3")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "part-0.parquet"
        write_frame(frame, path)
        s3.upload_file(str(path), artifacts_bucket, DATASET_KEY)
        written = write_parquet(data, Path(tmp) / "lake")
        files = [file for paths in written.values() for file in paths]
        for file in files:
            key = OFFLINE_PREFIX + file.relative_to(Path(tmp) / "lake").as_posix()
            s3.upload_file(str(file), data_lake_bucket, key)
    return SampleLoad(labels=len(data.labels), partitions=len(files), frame_rows=len(frame))


def data_lake_bucket(engine: LocalEngine) -> str:
    """The feature-store stack's data-lake bucket in the running engine."""
    assert engine.deployment is not None, "deploy first"
    outputs = engine.deployment[f"{engine.project}-local-feature-store"].outputs
    return str(outputs["DataLakeBucketName"])


def wait_for_run(
    runs: RunsRepository, model: str, key: str, *, terminal: bool, timeout: float = 120.0
) -> RunRecord:
    """The run of the upload `key`, once it has started (or finished, if `terminal`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = next((r for r in runs.list(model, limit=20) if r.key == key), None)
        if record is not None and (
            record.status.terminal or (not terminal and record.status is RunStatus.RUNNING)
        ):
            return record
        time.sleep(0.2)
    state = "finished" if terminal else "started"
    raise DemoError(f"the upload {key} has no {state} run after {timeout:.0f} s")


def step_durations(execution_arn: str) -> list[tuple[str, float]]:
    """Seconds per state of an execution, from its history."""
    history = boto3.client("stepfunctions").get_execution_history(
        executionArn=execution_arn, maxResults=1000
    )["events"]
    entered: dict[str, Any] = {}
    durations = []
    for event in history:
        if event["type"].endswith("StateEntered"):
            entered[event["stateEnteredEventDetails"]["name"]] = event["timestamp"]
        elif event["type"].endswith("StateExited"):
            name = event["stateExitedEventDetails"]["name"]
            if name in entered:
                durations.append((name, (event["timestamp"] - entered[name]).total_seconds()))
    return durations


def registered_version(package_arn: str) -> dict[str, Any]:
    return dict(boto3.client("sagemaker").describe_model_package(ModelPackageName=package_arn))


def run_demo(
    console: Console | None = None,
    workdir: Path | None = None,
    *,
    drift: bool = False,
    report_dir: Path | None = None,
) -> dict[str, Any]:
    """Run the lifecycle; return what a test or a caller may want to check. `drift` goes on
    to drift detection and continuous training (`mlops.demo_drift`), writing the last drift
    report to `report_dir` (default: the work directory)."""
    console = console or Console()
    steps = Steps(console)
    with ExitStack() as stack:
        scratch = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        redis_url = _throwaway_redis(stack, scratch)
        engine = LocalEngine(workdir=scratch / "engine")
        if redis_url:
            engine.redis_url = redis_url  # the feature-store stack's ElastiCache stands here
        stack.enter_context(engine)
        result = _lifecycle(engine, steps, console)
        if redis_url:
            with steps.step(FEATURE_STEP):
                result["features"] = _feature_store(engine, scratch / "features", console)
            with steps.step(APPROVE_STEP):
                result["approved"] = approve(engine, str(result["run"].model_package_arn), console)
            with steps.step(SERVE_STEP):
                customers = result["features"]["customers"]
                result["serving"] = serve(engine, customers, scratch / "serving", console)
            if drift:
                from mlops.demo_drift import run_drift

                # A gated-out retraining run ends its execution in a Fail state, which the
                # emulator logs as an error; the demo reports the run's outcome itself.
                stepfunctions = logging.getLogger("moto.stepfunctions.parser")
                stack.callback(stepfunctions.setLevel, stepfunctions.level)
                stepfunctions.setLevel(logging.CRITICAL)
                result["drift"] = run_drift(engine, result, steps, scratch / "drift", console,
                                            report_dir or scratch)  # fmt: skip
        else:
            console.print("[yellow]○ skipped: feature store (no redis-server on PATH)[/]")
    for what, owner in NOT_BUILT:
        console.print(f"[yellow]○ not built yet ({owner}):[/] {what}")
    _summary(steps, console)
    return result


def _throwaway_redis(stack: ExitStack, scratch: Path) -> str | None:
    """A private redis-server for the demo (never the machine's shared one)."""
    from features.local_redis import LocalRedis

    if shutil.which("redis-server") is None:
        return None
    server = stack.enter_context(LocalRedis(scratch / "redis"))
    return server.url


def materialization(engine: LocalEngine) -> tuple[Any, Any, dict[str, Any]]:
    """(Target, RunRecords, feature-store outputs) of the deployed feature store: what the
    scheduled materialization job is configured with, Redis being the engine's."""
    from features.job_report import RunRecords
    from features.job_run import LakeOffline, RedisUrl, Target
    from features.repo import VIEWS
    from mlops.config import load_platform_config, read_cdk_context

    assert engine.deployment is not None
    outputs = dict(engine.deployment[f"{engine.project}-local-feature-store"].outputs)
    redis_url = f"redis://{outputs['RedisEndpointAddress']}:{outputs['RedisEndpointPort']}/0"
    config = load_platform_config(read_cdk_context(REPO_ROOT / "cdk.json")["platform"])
    store_config = config.environments["local"].feature_store
    target = Target(
        store_config.feast_project, RedisUrl(redis_url),
        LakeOffline(str(outputs["DataLakeBucketName"]), OFFLINE_PREFIX,
                    config.environments["local"].region),
        timedelta(days=store_config.materialization_lookback_days), VIEWS,
    )  # fmt: skip
    records = RunRecords(str(outputs["MaterializationRunsUri"]), boto3.client("s3"))
    return target, records, outputs | {"redis_url": redis_url}


def materialize(engine: LocalEngine, **window: Any) -> Any:
    """One run of the scheduled job's code (features.job_run.run); DemoError unless it
    SUCCEEDED. `window` may set `start`/`end`."""
    from features.job_report import AwsReporter
    from features.job_run import run

    target, records, _ = materialization(engine)
    record = run(target, reporter=AwsReporter(records, boto3.client("cloudwatch")), **window)
    if record.status != "SUCCEEDED":
        raise DemoError(f"materialization run {record.run_id} {record.status}: {record.error}")
    return record


def _feature_store(engine: LocalEngine, root: Path, console: Console) -> dict[str, Any]:
    """Today's warehouse batch into the data lake, then the scheduled materialization job's
    own run (features.job_run.run, what the processing job executes) from the lake into Redis
    (found through the feature-store stack's outputs), then one entity read back."""
    from features.job_run import open_job_store
    from features.online import OnlineFeatureReader
    from features.repo import VIEWS
    from pipelines.sample_data import generate, write_parquet

    target, _, outputs = materialization(engine)
    redis_url, lake = str(outputs["redis_url"]), str(outputs["DataLakeBucketName"])
    first_day = datetime.now(UTC).date() - timedelta(days=29)
    data = generate(n_customers=3000, start=first_day, days=30, seed=7)
    written = write_parquet(data, root / "batch")
    s3 = boto3.client("s3")
    for view in VIEWS:
        for file in written[view]:
            key = OFFLINE_PREFIX + file.relative_to(root / "batch").as_posix()
            s3.upload_file(str(file), lake, key)
    record = materialize(engine)
    for name, view_run in record.views.items():
        console.print(
            f"  {name:<22} {view_run.start:%Y-%m-%d %H:%M} → {view_run.end:%Y-%m-%d %H:%M} UTC: "
            f"{view_run.rows_written} entity rows"
        )
    console.print(f"  run record {outputs['MaterializationRunsUri']}{record.run_id}.json")
    store = open_job_store(target, redis_url, root / "reader")
    every = [int(c) for c in data.profiles["customer_id"].unique()]
    customers = every[:3]
    customer = customers[0]
    row = OnlineFeatureReader(store, redis_url=redis_url).get("credit_risk_v1", [customer])[0]
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in list(row.items())[:6])  # fmt: skip
    console.print(f"  online features of customer {customer}: {shown}, …")
    written_rows = sum(view.rows_written for view in record.views.values())
    return {"materialized": written_rows, "row": row, "record": record, "customers": customers,
            "all_customers": every, "profiles": data.profiles}  # fmt: skip


def _lifecycle(engine: LocalEngine, steps: Steps, console: Console) -> dict[str, Any]:
    from mlops.bundle.upload import upload_bundle

    with steps.step("deploy the synthesized `local` app into the emulator"):
        deployment = engine.deploy()
        counts = {name: len(stack.resources) for name, stack in deployment.stacks.items()}
        console.print(f"  stacks: {counts}")
    training = engine.training
    with steps.step("generate sample warehouse data → data lake (offline/ partitions)"):
        lake = data_lake_bucket(engine)
        loaded = load_sample_data(training.artifacts_bucket, lake)
        console.print(
            f"  {loaded.partitions} Parquet partitions ({loaded.labels} labelled decisions) → "
            f"s3://{lake}/{OFFLINE_PREFIX}"
        )
    with steps.step("upload the sample bundle as a data scientist would (mlops bundle upload)"):
        uploaded = upload_bundle(
            SAMPLE_BUNDLE, model="credit-risk", bucket=training.code_bucket, progress=False
        )
        console.print(f"  {uploaded.uri} (version {uploaded.version_id})")
    runs = RunsRepository(training.runs_table)
    with steps.step("S3 → EventBridge → trigger Lambda validates and starts the workflow"):
        started = wait_for_run(runs, "credit-risk", uploaded.key, terminal=False)
        console.print(f"  run {started.run_id} → execution {started.execution_arn}")
    with steps.step(WORKFLOW_STEP):
        finished = wait_for_run(runs, "credit-risk", uploaded.key, terminal=True, timeout=300)
        for name, seconds in step_durations(str(finished.execution_arn)):
            console.print(f"  {name:<18} {seconds:6.2f} s")
        if finished.status is not RunStatus.SUCCEEDED:
            raise DemoError(f"run ended {finished.status}: {finished.reason}")
    with steps.step("the registry holds a new version with its metrics"):
        package = registered_version(str(finished.model_package_arn))
        _print_package(package, console)
    return {"run": finished, "package": package, "timings": steps.done}


def _print_package(package: dict[str, Any], console: Console) -> None:
    console.print(
        f"  {package['ModelPackageArn']}\n"
        f"  status {package['ModelApprovalStatus']}, version {package['ModelPackageVersion']}"
    )
    metadata = package.get("CustomerMetadataProperties", {})
    metrics = {k.removeprefix("metric."): v for k, v in metadata.items() if k.startswith("metric.")}
    table = Table("metric", "value", title="evaluation (out-of-time slice)")
    for name, value in sorted(metrics.items()):
        table.add_row(name, f"{float(value):.4f}")
    console.print(table)


def _summary(steps: Steps, console: Console) -> None:
    table = Table("step", "seconds", title="local lifecycle")
    for title, seconds in steps.done.items():
        table.add_row(title, f"{seconds:.1f}")
    table.add_row("[bold]total[/]", f"[bold]{sum(steps.done.values()):.1f}[/]")
    console.print(table)
