"""`mlops models ...`, `mlops deployments`, `mlops rollback`: the approvers' commands.

A model is a SageMaker model package group; its versions are the packages in it. Approving or
rejecting a version is one UpdateModelPackage call; SageMaker's state-change event then reaches
the approval hook, which deploys (or rolls back), writes the deployment ledger and moves the
champion pointer (`mlops/deployments.py`). These commands read the registry, the ledger and the
pointer (found through the `mlops-<env>-registry` stack's outputs) and, with `--wait`, follow the
ledger until the hook records a final outcome for the change just made.

Exit codes: 0 done (or nothing to do), 1 the outcome failed / the wait timed out / AWS refused,
2 bad input -- reported before anything is changed.
"""

from __future__ import annotations

from typing import Annotated, Any

import boto3
import typer
from botocore.exceptions import ClientError
from rich.console import Console

from mlops.cli_errors import aws_errors as _aws_errors
from mlops.cli_errors import failure as _failed
from mlops.cli_errors import usage_error as _usage
from mlops.deployments import ChampionPointer, Ledger, Outcome
from mlops.models_view import (
    ModelVersion,
    PackageArn,
    check_description,
    check_model_name,
    ledger_table,
    metric_chart,
    progress,
    version_details,
    versions_table,
)

POLL_SECONDS = 0.5
PAGE_SIZE = 100  # ListModelPackages MaxResults at most
HISTORY_WINDOW = 100  # ledger entries read per poll: the change just made is among the newest
APPROVED, REJECTED = "Approved", "Rejected"

models_app = typer.Typer(
    help="Model versions in the registry: compare, inspect, approve, reject.",
    no_args_is_help=True,
)
ModelArgument = Annotated[
    str, typer.Argument(metavar="MODEL", help="The model (its package group), e.g. credit-risk.")
]
ArnArgument = Annotated[
    str, typer.Argument(metavar="ARN", help="A version's model package ARN (`models list`).")
]
EnvOption = Annotated[str, typer.Option("--env", help="Environment whose registry to use.")]
LimitOption = Annotated[int, typer.Option(min=1, max=500, help="At most this many rows.")]
ReasonOption = Annotated[
    str, typer.Option("--reason", help="Why; recorded as the approval description (≤ 1024).")
]
WaitOption = Annotated[
    bool, typer.Option("--wait/--no-wait", help="Follow the ledger until the outcome is final.")
]
TimeoutOption = Annotated[float, typer.Option(min=0, help="Seconds --wait waits at most.")]


class Registry:
    """The SageMaker Model Registry as approvers use it: read versions, set a status."""

    def __init__(self, client: Any = None) -> None:
        self._sagemaker = client or boto3.client("sagemaker")

    @property
    def region(self) -> str:
        return str(self._sagemaker.meta.region_name)

    def describe(self, arn: str) -> ModelVersion | None:
        """The version, or None when SageMaker does not know the ARN."""
        try:
            return ModelVersion.from_describe(
                self._sagemaker.describe_model_package(ModelPackageName=arn)
            )
        except ClientError as error:
            if error.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound"):
                return None
            raise

    def summaries(self, group: str, limit: int, status: str | None = None) -> list[dict[str, Any]]:
        """Newest first, following NextToken until `limit` summaries are read."""
        found: list[dict[str, Any]] = []
        request: dict[str, Any] = {"ModelPackageGroupName": group, "SortBy": "CreationTime",
                                   "SortOrder": "Descending"}  # fmt: skip
        if status is not None:
            request["ModelApprovalStatus"] = status
        while len(found) < limit:
            page = self._sagemaker.list_model_packages(
                **request, MaxResults=min(PAGE_SIZE, limit - len(found))
            )
            found.extend(page.get("ModelPackageSummaryList", []))
            if not page.get("NextToken"):
                break
            request["NextToken"] = page["NextToken"]
        return found[:limit]

    def versions(self, group: str, limit: int) -> list[ModelVersion]:
        """The newest `limit` versions, described (summaries carry no metadata)."""
        described = (self.describe(s["ModelPackageArn"]) for s in self.summaries(group, limit))
        return sorted((v for v in described if v), key=lambda v: v.version, reverse=True)

    def set_status(self, arn: str, status: str, description: str) -> None:
        self._sagemaker.update_model_package(
            ModelPackageArn=arn, ModelApprovalStatus=status, ApprovalDescription=description
        )


def _output(env: str, key: str) -> str:
    from mlops.stack_outputs import StackOutputError, stack_output

    try:
        return stack_output(f"mlops-{env}-registry", key)
    except StackOutputError as error:
        _usage(str(error))


def _ledger(env: str) -> Ledger:
    return Ledger(_output(env, "LedgerTableName"))


def _pointer(env: str) -> ChampionPointer:
    return ChampionPointer(_output(env, "ChampionParameterPrefix"))


def _champion(
    registry: Registry, pointer: ChampionPointer, model: str, known: list[ModelVersion]
) -> ModelVersion | None:
    """The version the pointer names (None if none serves, or the package is gone)."""
    champion = pointer.get(model)
    if champion is None:
        return None
    listed = [v for v in known if v.arn == champion.package_arn]
    return listed[0] if listed else registry.describe(champion.package_arn)


@models_app.command("list")
def list_versions(
    model: ModelArgument, env: EnvOption = "dev", limit: LimitOption = 20,
    chart: Annotated[bool, typer.Option("--chart", help="Add a bar chart of the gate metric.")]
    = False,
) -> None:  # fmt: skip
    """Versions newest first: status, gate metric, delta vs the champion (★), provenance."""
    try:
        check_model_name(model)
    except ValueError as error:
        _usage(str(error))
    pointer, registry = _pointer(env), Registry()
    with _aws_errors():
        versions = registry.versions(model, limit)
        if not versions:
            typer.echo(f"no registered versions of {model!r} in {registry.region}")
            return
        champion = _champion(registry, pointer, model, versions)
    console = Console()
    console.print(versions_table(versions, champion))
    if chart:
        console.print(metric_chart(versions, champion))


@models_app.command("show")
def show(arn: ArnArgument, env: EnvOption = "dev") -> None:
    """One version: status, approval, metrics, provenance, report, champion?, ledger entries."""
    version, registry = _existing(arn)
    ledger, pointer = _ledger(env), _pointer(env)
    with _aws_errors():
        champion = _champion(registry, pointer, version.group, [version])
        history = ledger.history(version.group, limit=HISTORY_WINDOW)
    entries = [entry for entry in history if entry.package_arn == version.arn]
    Console().print(version_details(version, champion, entries))


def _existing(arn: str) -> tuple[ModelVersion, Registry]:
    """The version `arn` names, or exit 2 saying why it cannot be used."""
    try:
        ref = PackageArn.parse(arn)
    except ValueError as error:
        _usage(str(error))
    registry = Registry()
    with _aws_errors():
        version = registry.describe(ref.arn)
    if version is None:
        _usage(f"no model package {ref.arn} in the registry of {registry.region}")
    return version, registry


@models_app.command("approve")
def approve(
    arn: ArnArgument, reason: ReasonOption, env: EnvOption = "dev", wait: WaitOption = True,
    timeout: TimeoutOption = 180.0,
) -> None:  # fmt: skip
    """Approve a version; the approval hook deploys it (canary) and records the outcome."""
    _change_status(arn, APPROVED, reason, env=env, wait=wait, timeout=timeout)


@models_app.command("reject")
def reject(
    arn: ArnArgument, reason: ReasonOption, env: EnvOption = "dev", wait: WaitOption = True,
    timeout: TimeoutOption = 180.0,
) -> None:  # fmt: skip
    """Reject a version; rejecting the champion rolls back to the previous approved one."""
    _change_status(arn, REJECTED, reason, env=env, wait=wait, timeout=timeout)


def _change_status(arn: str, status: str, description: str, **options: Any) -> None:
    target = _validated(arn, status, description)
    if target is not None:
        _apply(*target, status, description, **options)


def _validated(arn: str, status: str, description: str) -> tuple[ModelVersion, Registry] | None:
    """Check everything before changing anything (exit 2 on a problem); None: nothing to do."""
    try:
        PackageArn.parse(arn)
        check_description(description)
    except ValueError as error:
        _usage(str(error))
    version, registry = _existing(arn)
    if version.status == status:
        typer.echo(f"{version.group} {version.label} is already {status}: nothing changed")
        return None
    return version, registry


def _apply(
    version: ModelVersion, registry: Registry, status: str, description: str, *, env: str,
    wait: bool, timeout: float,
) -> None:  # fmt: skip
    """Set the status; with `wait`, follow the ledger to the hook's final outcome."""
    ledger = _ledger(env) if wait else None
    with _aws_errors():
        seen = ledger.keys_of(version.group, version.arn, HISTORY_WINDOW) if ledger else set()
        registry.set_status(version.arn, status, description)
    typer.echo(f"{version.group} {version.label}: {version.status} → {status} ({description})")
    if ledger is None:
        typer.echo(f"not waiting; follow it with: mlops deployments {version.group} --env {env}")
        return
    typer.echo(f"waiting up to {timeout:g}s for the approval hook's outcome")
    with _aws_errors():
        entry = ledger.wait_for(
            version.group, version.arn, status, seen=seen, timeout=timeout,
            poll=POLL_SECONDS, on_progress=lambda e: typer.echo(progress(e)),
        )  # fmt: skip
    if entry is None or not entry.outcome.final:
        known = progress(entry) if entry else "the hook has recorded nothing for this change yet"
        _failed(f"timed out after {timeout:g}s: the registry shows {status}; {known}")
    colour = "red" if entry.outcome is Outcome.FAILED else "green"
    typer.secho(f"outcome: {progress(entry)}", fg=colour)
    if entry.outcome is Outcome.FAILED:
        raise typer.Exit(1)


def deployments_command(
    model: ModelArgument, env: EnvOption = "dev", limit: LimitOption = 20
) -> None:
    """The deployment ledger of MODEL, newest first: every approval and rejection acted on."""
    try:
        check_model_name(model)
    except ValueError as error:
        _usage(str(error))
    ledger = _ledger(env)
    with _aws_errors():
        entries = ledger.history(model, limit=limit)
    if not entries:
        typer.echo(f"no ledger entries for {model!r}: the hook has acted on no change yet")
        return
    Console().print(ledger_table(entries, title=f"{model}: deployments, newest first"))


def rollback_command(
    model: ModelArgument, reason: ReasonOption, env: EnvOption = "dev", wait: WaitOption = True,
    timeout: TimeoutOption = 180.0,
) -> None:  # fmt: skip
    """Reject MODEL's champion; the hook then serves the previous approved version again."""
    try:
        check_model_name(model)
        check_description(reason)
        description = check_description(f"rollback: {reason}")
    except ValueError as error:
        _usage(str(error))
    pointer = _pointer(env)
    with _aws_errors():
        champion = pointer.get(model)
    if champion is None:
        _usage(
            f"{model!r} has no champion ({pointer.name(model)} is not set): nothing to roll back"
        )
    target = _validated(champion.package_arn, REJECTED, description)
    if target is None:
        return
    version, registry = target
    with _aws_errors():
        successor = [s for s in registry.summaries(model, 2, status=APPROVED)
                     if s["ModelPackageArn"] != version.arn]  # fmt: skip
    after = (
        f"v{successor[0]['ModelPackageVersion']} should serve afterwards (the newest other "
        "approved version)" if successor else "no other approved version: the hook has none "
        "to roll back to"
    )  # fmt: skip
    typer.echo(f"rolling back {model}: rejecting the champion {version.label}; {after}")
    _apply(version, registry, REJECTED, description, env=env, wait=wait, timeout=timeout)
