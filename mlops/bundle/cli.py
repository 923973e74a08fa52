"""`mlops bundle ...`: check a bundle folder and upload it to start training.

Both commands run the same validation as the trigger Lambda, on the same bytes: `validate`
packages the folder exactly as `upload` would. Exit codes: 0 ok, 1 invalid bundle or failed
upload, 2 missing configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from botocore.exceptions import BotoCoreError, ClientError

from mlops.bundle.upload import InvalidBundleError, UploadError, upload_bundle
from mlops.bundle.validate import BundleReport, validate_directory

bundle_app = typer.Typer(
    help="Model bundles: validate a bundle folder, upload it to start training.",
    no_args_is_help=True,
    add_completion=False,
)

DirArgument = Annotated[
    Path,
    typer.Argument(help="Bundle folder (manifest.yaml at its root).", file_okay=False),
]


@bundle_app.command("validate")
def validate_command(directory: DirArgument) -> None:
    """Check a bundle folder as the platform will: archive, manifest, scripts."""
    report = validate_directory(directory)
    if not report.ok:
        _fail(directory, report.errors)
    assert report.manifest is not None
    typer.secho(f"OK  {directory}", fg="green", bold=True)
    for line in summary_lines(report):
        typer.echo(f"  {line}")


@bundle_app.command("upload")
def upload_command(
    directory: DirArgument,
    model: Annotated[str, typer.Option("--model", help="Model name; must match model.name.")],
    bucket: Annotated[
        str | None, typer.Option(help="Code bucket (default: $MLOPS_CODE_BUCKET).")
    ] = None,
    git_commit: Annotated[
        str | None,
        typer.Option("--git-commit", help="Commit to record (default: git rev-parse HEAD)."),
    ] = None,
) -> None:
    """Validate, package and upload a bundle; the upload starts a training run."""
    try:
        result = upload_bundle(directory, model=model, bucket=bucket, git_commit=git_commit)
    except UploadError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from None
    except InvalidBundleError as error:
        _fail(directory, error.errors, "nothing was uploaded")
    except (BotoCoreError, ClientError) as error:
        typer.secho(f"error: upload failed: {error}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.secho(f"uploaded {result.uri}", fg="green", bold=True)
    typer.echo(f"  version id  {result.version_id or '(bucket not versioned)'}")
    typer.echo(f"  sha256      {result.sha256}")
    typer.echo(f"  git commit  {result.git_commit}")
    typer.echo(f"  follow it with: mlops runs list --model {model}")


def summary_lines(report: BundleReport) -> list[str]:
    """What a reviewer wants to see before an upload: model, scripts, data, gate."""
    manifest = report.manifest or {}
    model, entry = manifest["model"], manifest["entry_points"]
    gate = manifest["evaluation"]
    better = "higher" if gate["direction"] == "max" else "lower"
    bound = ">=" if gate["direction"] == "max" else "<="
    source = manifest["input"]
    data = (
        f"dataset datasets/{source['dataset']}"
        if "dataset" in source
        else f"feature service {source['feature_service']} (entity {source['entity']})"
    )
    size = sum(len(b) for b in report.files.values())
    return [
        f"model         {model['name']} ({model['framework']} {model['framework_version']}, "
        f"owner {model['owner']})",
        f"entry points  {entry['preprocessing']} -> {entry['training']} -> {entry['evaluation']}",
        f"input         {data}",
        f"gate          {gate['metric']} ({better} is better) {bound} {gate['threshold']} to "
        f"register; beat the approved version by >= {gate['min_improvement']}",
        f"report        {gate['report']}",
        f"bundle        {len(report.files)} files, {size} bytes, sha256 {report.sha256[:12]}",
    ]


def _fail(directory: Path, errors: list[str], consequence: str = "") -> NoReturn:
    suffix = f"; {consequence}" if consequence else ""
    count = len(errors)
    typer.secho(
        f"INVALID  {directory}: {count} problem{'s' if count != 1 else ''}{suffix}",
        fg="red", bold=True, err=True,
    )  # fmt: skip
    for error in errors:
        typer.secho(f"  - {error}", err=True)
    raise typer.Exit(1)
