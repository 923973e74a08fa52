"""`mlops`: the platform's command line (data scientists, approvers, operators)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlops.bundle.cli import bundle_app
from mlops.config import (
    ENVIRONMENT_NAMES,
    ConfigError,
    load_platform_config,
    read_cdk_context,
)
from mlops.drift_cli import drift_command
from mlops.features_cli import features_app
from mlops.models_cli import deployments_command, models_app, rollback_command
from mlops.runs import RunsRepository

app = typer.Typer(
    help="MLOps platform CLI: configuration, the local engine, bundles, models.",
    no_args_is_help=True,
    add_completion=False,
)
REPO_ROOT = Path(__file__).resolve().parents[1]


@app.command("config")
def config_command(
    cdk_json: Annotated[Path, typer.Option(help="cdk.json holding the config.")] = REPO_ROOT
    / "cdk.json",
) -> None:
    """Validate the platform configuration and print a summary per environment."""
    try:
        config = load_platform_config(read_cdk_context(cdk_json).get("platform"))
    except (ConfigError, OSError, ValueError, KeyError) as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from None
    for name in ENVIRONMENT_NAMES:
        env = config.environments[name]  # type: ignore[index]
        net = env.network
        typer.echo(
            f"{name:6} region={env.region} account={env.account or '(from credentials)'} "
            f"azs={len(net.availability_zones)} nat={net.nat_gateways} "
            f"endpoints={len(net.interface_endpoints)} removal={env.removal_policy} "
            f"lambda=python{env.lambda_python}/{env.lambda_dependencies}"
        )


@app.command()
def demo(
    drift: Annotated[
        bool, typer.Option("--drift", help="Go on: shifted traffic, drift alarm, retraining.")
    ] = False,
    report_dir: Annotated[
        Path | None,
        typer.Option(help="Where --drift writes the drift report (default .localaws/reports)."),
    ] = None,
) -> None:
    """Run the lifecycle on the local engine: deploy, upload, train, evaluate, register,
    approve, serve; with --drift, also drift detection and continuous training."""
    from mlops.demo import REPO_ROOT, DemoError, run_demo

    try:
        run_demo(drift=drift, report_dir=report_dir or REPO_ROOT / ".localaws" / "reports")
    except DemoError as error:
        typer.secho(f"demo failed: {error}", fg="red", err=True)
        raise typer.Exit(1) from None


@app.command()
def bench(
    runs: Annotated[int, typer.Option(min=1, max=20, help="Lifecycle repetitions.")] = 3,
    suite: Annotated[str, typer.Option(help="all, lifecycle or features.")] = "all",
) -> None:
    """Run the benchmarks (results and machine belong in docs/benchmarks.md)."""
    import runpy
    import sys

    modules: dict[str, list[tuple[str, list[str]]]] = {
        "lifecycle": [("benchmarks.lifecycle", ["--runs", str(runs)])],
        "features": [("benchmarks.features.materialize", []),
                     ("benchmarks.features.online_read", [])],
    }  # fmt: skip
    if suite not in (*modules, "all"):
        typer.secho(f"unknown suite {suite!r}: all, lifecycle or features", fg="red", err=True)
        raise typer.Exit(2)
    chosen = [m for name, group in modules.items() if suite in (name, "all") for m in group]
    for module, args in chosen:
        typer.secho(f"== {module}", bold=True)
        sys.argv = [module, *args]
        runpy.run_module(module, run_name="__main__")


app.add_typer(bundle_app, name="bundle", help="Model bundles: validate and upload.")
app.add_typer(features_app, name="features")
app.add_typer(models_app, name="models")
app.command("deployments")(deployments_command)
app.command("rollback")(rollback_command)
app.command("drift")(drift_command)
local_app = typer.Typer(help="The local engine: the `local` app in an in-process emulator.",
                        no_args_is_help=True)  # fmt: skip
app.add_typer(local_app, name="local")


@local_app.command("up")
def local_up(
    port: Annotated[int, typer.Option(help="Emulator port (0 picks a free one).")] = 4599,
) -> None:
    """Deploy the `local` app into the emulator and keep it running until Ctrl-C.

    Other shells reach it by exporting the printed variables, then use the CLI as against
    AWS, e.g. `mlops bundle upload ... --bucket <CodeBucketName>` or
    `mlops runs list --env local`.
    """
    import time

    from localaws.emulator import Emulator
    from localaws.engine import LocalEngine

    with LocalEngine(emulator=Emulator(port=port)) as engine:
        deployment = engine.deploy()
        for name, stack in deployment.stacks.items():
            for key, value in sorted(stack.outputs.items()):
                typer.echo(f"{name}.{key} = {value}")
        typer.echo("\n# in another shell:")
        for key, value in engine.emulator.environ().items():
            if key != "MOTO_PORT":
                typer.echo(f"export {key}={value}")
        typer.echo(f"export MLOPS_CODE_BUCKET={engine.training.code_bucket}")
        typer.secho("local engine running; Ctrl-C stops it", fg="green")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            typer.echo("stopping")


@local_app.command("sample-data")
def local_sample_data(
    customers: Annotated[int, typer.Option(min=100, max=200_000)] = 3000,
    env: Annotated[str, typer.Option("--env")] = "local",
) -> None:
    """Generate the sample warehouse data and load it where the samples read it: the data
    lake's offline/ partitions (feature views and the credit_labels table) and the prepared
    training frame under datasets/credit-risk/training_frame/."""
    from mlops.demo import DATASET_KEY, OFFLINE_PREFIX, load_sample_data
    from mlops.stack_outputs import StackOutputError, stack_output

    bucket = _training_output(env, "ArtifactsBucketName")
    try:
        lake = stack_output(f"mlops-{env}-feature-store", "DataLakeBucketName")
    except StackOutputError as error:
        typer.secho(str(error), fg="red", err=True)
        raise typer.Exit(2) from None
    loaded = load_sample_data(bucket, lake, n_customers=customers)
    typer.echo(f"{loaded.partitions} partitions -> s3://{lake}/{OFFLINE_PREFIX}")
    typer.echo(f"{loaded.frame_rows} labelled rows -> s3://{bucket}/{DATASET_KEY}")


runs_app = typer.Typer(help="Training runs: one per uploaded bundle version.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
EnvOption = Annotated[str, typer.Option("--env", help="Environment whose stacks to read.")]


def _runs(env: str) -> RunsRepository:
    return RunsRepository(_training_output(env, "RunsTableName"))


def _training_output(env: str, key: str) -> str:
    """An output of the environment's training stack, or exit 2 saying where it looked."""
    from mlops.stack_outputs import StackOutputError, stack_output

    try:
        return stack_output(f"mlops-{env}-training", key)
    except StackOutputError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from None


@runs_app.command("list")
def runs_list(
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    env: EnvOption = "dev",
) -> None:
    """Newest runs first: status and reason per upload."""
    from rich.console import Console
    from rich.table import Table

    table = Table("run", "model", "status", "received", "reason")
    for record in _runs(env).list(model, limit=limit):
        table.add_row(record.run_id, record.model_name, str(record.status),
                      record.received_at, (record.reason or "")[:80])  # fmt: skip
    Console().print(table)


@runs_app.command("show")
def runs_show(run_id: str, env: EnvOption = "dev") -> None:
    """Everything recorded about one run."""
    import json

    record = _runs(env).get(run_id)
    if record is None:
        typer.secho(f"no run {run_id!r}", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(record.to_dict(), indent=2, default=str))


def main() -> None:
    app(prog_name="mlops")


if __name__ == "__main__":
    main()
