"""Model bundles: the manifest contract, validation, packaging and upload.

Import-light on purpose: the trigger Lambda ships this package, so nothing here imports the
CLI's dependencies (typer, rich); the CLI lives in `mlops.bundle.cli`.
"""

from mlops.bundle.archive import ArchiveLimits, read_archive, write_archive
from mlops.bundle.manifest import MANIFEST_NAMES, manifest_schema
from mlops.bundle.validate import (
    BundleReport,
    validate_archive,
    validate_directory,
)

__all__ = [
    "MANIFEST_NAMES",
    "ArchiveLimits",
    "BundleReport",
    "manifest_schema",
    "read_archive",
    "validate_archive",
    "validate_directory",
    "write_archive",
]
