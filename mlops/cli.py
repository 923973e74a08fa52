"""`mlops`: the platform's command line (data scientists, approvers, operators)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlops.config import (
    ENVIRONMENT_NAMES,
    ConfigError,
    load_platform_config,
    read_cdk_context,
)

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


def _not_built(what: str, issue: str) -> None:
    typer.secho(f"{what} is not built yet ({issue}); nothing was run.", fg="yellow", err=True)
    raise typer.Exit(3)


@app.command()
def demo() -> None:
    """Run the whole lifecycle on the local engine."""
    _not_built("The local-engine demo", "the local engine is in progress")


@app.command()
def bench() -> None:
    """Run the benchmarks."""
    _not_built("The benchmark suite", "benchmarks arrive with the serving and feature work")


def main() -> None:
    app(prog_name="mlops")


if __name__ == "__main__":
    main()
