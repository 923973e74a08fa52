"""Bundle validation: the one code path the CLI and the trigger Lambda share.

`validate_archive` judges the bytes of an uploaded .tar.gz; `validate_directory` packages a
folder exactly as `mlops bundle upload` would and judges those bytes, so "valid locally"
means "valid for the trigger". The manifest must sit at the bundle root (the archive's top
level); a bundle wrapped in a single folder is refused with a hint on how to archive it.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops import images
from mlops.bundle.archive import (
    ArchiveLimits,
    DirectoryError,
    collect_directory,
    read_archive,
    write_archive,
)
from mlops.bundle.manifest import MANIFEST_NAMES, STEPS, normalise, parse_manifest, schema_errors


@dataclass
class BundleReport:
    """The verdict on one bundle.

    errors: every problem found, one readable line each (empty when valid).
    manifest: the normalised manifest (defaults filled in) when it parsed and matched the
        schema, else None.
    files: the bundle's regular files, path relative to the bundle root → bytes.
    sha256: hex digest of the archive bytes (of the archive a folder packages into).
    archive: those archive bytes.
    """

    errors: list[str] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    sha256: str = ""
    archive: bytes = b""
    manifest_name: str | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


def validate_archive(
    data: bytes, *, expected_model: str | None = None, limits: ArchiveLimits | None = None
) -> BundleReport:
    """Check an uploaded .tar.gz: archive safety first, then the manifest and scripts."""
    report = BundleReport(sha256=hashlib.sha256(data).hexdigest(), archive=data)
    contents = read_archive(data, limits or ArchiveLimits())
    if contents.errors:
        report.errors = contents.errors
        return report
    report.files = contents.files
    report.manifest_name, report.manifest, report.errors = check_files(
        contents.files, expected_model=expected_model
    )
    return report


def validate_directory(
    path: Path, *, expected_model: str | None = None, limits: ArchiveLimits | None = None
) -> BundleReport:
    """Package a bundle folder deterministically and validate the resulting archive."""
    limits = limits or ArchiveLimits()
    try:
        files = collect_directory(path, limits)
    except DirectoryError as error:
        return BundleReport(errors=error.problems)
    return validate_archive(write_archive(files), expected_model=expected_model, limits=limits)


def check_files(
    files: dict[str, bytes], *, expected_model: str | None
) -> tuple[str | None, dict[str, Any] | None, list[str]]:
    """(manifest file name, normalised manifest, errors) for a bundle's files."""
    name, errors = _find_manifest(files)
    if name is None:
        return None, None, errors
    document, errors = parse_manifest(name, files[name])
    if document is None:
        return name, None, errors
    errors = schema_errors(document)
    errors += _content_errors(document, files, expected_model)
    if errors:
        return name, None, errors
    return name, normalise(document), []


def _find_manifest(files: dict[str, bytes]) -> tuple[str | None, list[str]]:
    at_root = [n for n in MANIFEST_NAMES if n in files]
    if len(at_root) == 1:
        return at_root[0], []
    if at_root:
        return None, [f"more than one manifest at the bundle root ({', '.join(at_root)}); "
                      "keep one"]  # fmt: skip
    nested = sorted(n for n in files if n.rsplit("/", 1)[-1] in MANIFEST_NAMES)
    if nested:
        folder = nested[0].rsplit("/", 1)[0]
        return None, [
            f"manifest not at the bundle root (found {nested[0]}): archive the folder's "
            f"contents, not the folder, e.g. `tar -C {folder} -czf bundle.tar.gz .`, or use "
            "`mlops bundle upload`"
        ]
    return None, [f"no manifest: the bundle root must contain {' or '.join(MANIFEST_NAMES)}"]


def _content_errors(
    document: dict[str, Any], files: dict[str, bytes], expected_model: str | None
) -> list[str]:
    """Checks beyond the schema; each runs only on fields the schema has not already faulted."""
    errors: list[str] = []
    raw_model = document.get("model")
    model: dict[str, Any] = raw_model if isinstance(raw_model, dict) else {}
    entry_points = document.get("entry_points")
    for step in STEPS:
        script = entry_points.get(step) if isinstance(entry_points, dict) else None
        if isinstance(script, str) and script.endswith(".py"):
            errors += _script_errors(f"entry_points.{step}", posixpath.normpath(script), files)
    requirements = model.get("requirements")
    if isinstance(requirements, str) and posixpath.normpath(requirements) not in files:
        errors.append(f"model.requirements: {requirements} is not in the bundle")
    framework, version = model.get("framework"), model.get("framework_version")
    if framework in images.FRAMEWORKS and isinstance(version, str):
        supported = images.supported_versions(framework)
        if version not in supported:
            errors.append(
                f"model.framework_version: {version!r} is not a supported {framework} "
                f"container version (supported: {', '.join(supported)})"
            )
    name = model.get("name")
    if expected_model is not None and isinstance(name, str) and name != expected_model:
        errors.append(
            f"model.name: {name!r} does not match the model {expected_model!r} "
            f"the bundle was uploaded for (bundles/{expected_model}/...)"
        )
    return errors


def _script_errors(field_path: str, script: str, files: dict[str, bytes]) -> list[str]:
    source = files.get(script)
    if source is None:
        return [f"{field_path}: {script} is not in the bundle"]
    try:
        compile(source, script, "exec", dont_inherit=True)
    except SyntaxError as error:
        return [f"{field_path}: {script} does not compile: {error.msg} (line {error.lineno})"]
    except ValueError as error:  # e.g. null bytes in the source
        return [f"{field_path}: {script} does not compile: {error}"]
    return []
