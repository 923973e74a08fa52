"""Uploading a validated bundle to the code bucket.

The object key is `bundles/<model>/<model>-<yyyymmddHHMMSS UTC>-<sha8>.tar.gz`: sortable,
unique per content and second, and under the prefix the trigger listens to. Object metadata
carries provenance the platform records with the run (`git-commit`, `uploaded-by`,
`bundle-sha256`); the trigger re-hashes the bytes and refuses a mismatch.
"""

from __future__ import annotations

import getpass
import io
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3

from mlops.bundle.archive import ArchiveLimits
from mlops.bundle.validate import validate_directory

CODE_BUCKET_ENV = "MLOPS_CODE_BUCKET"
BUNDLE_PREFIX = "bundles/"
UNKNOWN = "unknown"


class UploadError(RuntimeError):
    """The bundle could not be uploaded; the message says why and what to do."""


@dataclass(frozen=True)
class UploadResult:
    bucket: str
    key: str
    version_id: str | None
    sha256: str
    size: int
    metadata: dict[str, str]

    @property
    def git_commit(self) -> str:
        return self.metadata["git-commit"]

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def resolve_bucket(explicit: str | None) -> str:
    """The code bucket: `--bucket`, else $MLOPS_CODE_BUCKET, else a readable error."""
    bucket = explicit or os.environ.get(CODE_BUCKET_ENV, "").strip()
    if not bucket:
        raise UploadError(
            f"no code bucket: pass --bucket NAME or set {CODE_BUCKET_ENV} to the training "
            "stack's code bucket (the bundle bucket the trigger listens to)"
        )
    return bucket


def git_commit_of(path: Path) -> str:
    """HEAD of the git work tree holding `path`, or "unknown" outside one."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--is-inside-work-tree", "HEAD"],
            cwd=path, capture_output=True, text=True, check=False, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return UNKNOWN
    lines = result.stdout.split()
    if result.returncode != 0 or len(lines) != 2 or lines[0] != "true":
        return UNKNOWN
    return lines[1]


def current_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return UNKNOWN


def bundle_key(model: str, sha256: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d%H%M%S")
    return f"{BUNDLE_PREFIX}{model}/{model}-{stamp}-{sha256[:8]}.tar.gz"


def _metadata_value(value: str) -> str:
    """S3 user metadata travels in HTTP headers: keep it ASCII (percent-encode the rest)."""
    return quote(value, safe=" !#$&'()*+,-./:;=?@[]^_`{|}~")


class InvalidBundleError(ValueError):
    """The folder is not a bundle the platform would accept; `errors` lists every reason."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def upload_bundle(
    directory: Path,
    *,
    model: str,
    bucket: str | None = None,
    git_commit: str | None = None,
    progress: bool | Callable[[int], None] = True,
    limits: ArchiveLimits | None = None,
    endpoint_url: str | None = None,
) -> UploadResult:
    """What `mlops bundle upload` does: validate, package, upload; nothing is uploaded
    unless the bundle would be accepted.

    bucket: default $MLOPS_CODE_BUCKET. git_commit: default HEAD of the folder's work tree.
    progress: True draws a progress bar, a callable receives bytes sent, False is silent.
    Raises UploadError (no bucket) or InvalidBundleError before anything is uploaded.
    """
    target = resolve_bucket(bucket)
    report = validate_directory(directory, expected_model=model, limits=limits)
    if not report.ok:
        raise InvalidBundleError(report.errors)
    commit = git_commit or git_commit_of(directory.resolve())
    upload = partial(
        put_archive, report.archive, report.sha256, model=model, bucket=target,
        git_commit=commit, uploaded_by=current_user(), endpoint_url=endpoint_url,
    )  # fmt: skip
    if progress is True:
        return _with_progress_bar(upload, len(report.archive))
    return upload(progress=progress or None)


def _with_progress_bar(upload: Callable[..., UploadResult], total: int) -> UploadResult:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    columns = (TextColumn("uploading"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("upload", total=total)
        return upload(progress=lambda sent: bar.advance(task, sent))


def put_archive(
    archive: bytes,
    sha256: str,
    *,
    model: str,
    bucket: str,
    git_commit: str,
    uploaded_by: str,
    progress: Callable[[int], None] | None = None,
    endpoint_url: str | None = None,
    now: datetime | None = None,
) -> UploadResult:
    """Put validated archive bytes under bundles/<model>/ with provenance metadata."""
    s3: Any = boto3.client("s3", endpoint_url=endpoint_url)
    key = bundle_key(model, sha256, now)
    metadata = {
        "git-commit": _metadata_value(git_commit),
        "uploaded-by": _metadata_value(uploaded_by),
        "bundle-sha256": sha256,
    }
    s3.upload_fileobj(
        io.BytesIO(archive), bucket, key,
        ExtraArgs={"Metadata": metadata, "ContentType": "application/gzip"},
        Callback=progress,
    )  # fmt: skip
    head = s3.head_object(Bucket=bucket, Key=key)
    version = head.get("VersionId")
    return UploadResult(
        bucket=bucket,
        key=key,
        version_id=None if version in (None, "null") else version,
        sha256=sha256,
        size=len(archive),
        metadata=metadata,
    )
