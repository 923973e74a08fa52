"""Read a synthesized cloud assembly (`cdk.out`), emulate `cdk bootstrap`, publish file assets.

Only what `cdk synth` wrote is used: stacks and their dependencies come from `manifest.json`,
asset locations from each `*.assets.json`. The bootstrap resources are the ones the modern
stack synthesizer's templates and asset manifests expect (qualifier from the manifest,
`hnb659fds` by default): the file-asset bucket, the version parameter and the roles.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localaws.emulator import Emulator

log = logging.getLogger(__name__)

DEFAULT_QUALIFIER = "hnb659fds"
BOOTSTRAP_VERSION = "30"
"""The version the emulated bootstrap reports; templates reject versions below 6."""

_PUBLIC_ACCESS_FLAGS = (
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
)
_ROLE_KINDS = ("deploy", "file-publishing", "image-publishing", "lookup", "cfn-exec")


class AssemblyError(RuntimeError):
    """The cloud assembly cannot be deployed here (unknown artifact, Docker asset...)."""


@dataclass(frozen=True)
class StackArtifact:
    """One `aws:cloudformation:stack` artifact of the manifest."""

    artifact_id: str
    stack_name: str
    template_file: Path
    dependencies: tuple[str, ...]
    parameters: dict[str, str]
    environment: str
    asset_manifests: tuple[Path, ...]
    qualifier: str

    def template(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.template_file.read_text())
        return loaded


def read_stacks(assembly_dir: Path) -> list[StackArtifact]:
    """Stacks of the assembly, in manifest order, with stack-to-stack dependencies only."""
    manifest = json.loads((assembly_dir / "manifest.json").read_text())
    artifacts: dict[str, Any] = manifest.get("artifacts", {})
    nested = [name for name, a in artifacts.items() if a.get("type") == "cdk:cloud-assembly"]
    if nested:
        raise AssemblyError(f"nested cloud assemblies (CDK Stages) are not supported: {nested}")
    asset_files = {
        name: assembly_dir / a["properties"]["file"]
        for name, a in artifacts.items()
        if a.get("type") == "cdk:asset-manifest"
    }
    stack_ids = {n for n, a in artifacts.items() if a.get("type") == "aws:cloudformation:stack"}
    stacks = []
    for artifact_id in (n for n in artifacts if n in stack_ids):
        artifact = artifacts[artifact_id]
        props = artifact.get("properties", {})
        deps = tuple(
            dict.fromkeys(
                [*artifact.get("dependencies", []), *props.get("additionalDependencies", [])]
            )
        )
        ssm_name = str(props.get("bootstrapStackVersionSsmParameter", ""))
        qualifier = ssm_name.split("/")[2] if ssm_name.count("/") >= 3 else DEFAULT_QUALIFIER
        stacks.append(
            StackArtifact(
                artifact_id=artifact_id,
                stack_name=props.get("stackName", artifact_id),
                template_file=assembly_dir / props["templateFile"],
                dependencies=tuple(d for d in deps if d in stack_ids),
                parameters={str(k): str(v) for k, v in props.get("parameters", {}).items()},
                environment=artifact.get("environment", "aws://unknown-account/unknown-region"),
                asset_manifests=tuple(asset_files[d] for d in deps if d in asset_files),
                qualifier=qualifier,
            )
        )
    return stacks


def deployment_order(
    stacks: Sequence[StackArtifact], selected: Iterable[str] | None
) -> list[StackArtifact]:
    """Stacks to deploy, dependencies first; a selection pulls in what it depends on."""
    by_id = {s.artifact_id: s for s in stacks}
    by_name = {s.stack_name: s for s in stacks} | by_id
    wanted = list(by_id) if selected is None else list(selected)
    unknown = [name for name in wanted if name not in by_name]
    if unknown:
        raise AssemblyError(f"no such stacks in the assembly: {unknown}; have {list(by_name)}")
    ordered: list[StackArtifact] = []

    def visit(stack: StackArtifact, path: tuple[str, ...]) -> None:
        if stack in ordered:
            return
        if stack.artifact_id in path:
            raise AssemblyError(f"circular stack dependency: {' -> '.join(path)}")
        for dependency in stack.dependencies:
            visit(by_id[dependency], (*path, stack.artifact_id))
        ordered.append(stack)

    for name in wanted:
        visit(by_name[name], ())
    return ordered


def check_environment(stack: StackArtifact, *, account_id: str, region: str) -> None:
    """Refuse stacks pinned to another account or region than the emulator's."""
    stack_account, _, stack_region = stack.environment.removeprefix("aws://").partition("/")
    if stack_account not in ("unknown-account", account_id):
        raise AssemblyError(f"{stack.stack_name} targets account {stack_account}, not {account_id}")
    if stack_region not in ("unknown-region", region):
        raise AssemblyError(f"{stack.stack_name} targets region {stack_region}, not {region}")


def bootstrap(emulator: Emulator, *, account_id: str, qualifier: str = DEFAULT_QUALIFIER) -> str:
    """Create what `cdk bootstrap` would (idempotent); return the file-asset bucket name."""
    region = emulator.region
    bucket = f"cdk-{qualifier}-assets-{account_id}-{region}"
    s3 = emulator.client("s3")
    if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration=dict.fromkeys(
                (
                    "BlockPublicAcls",
                    "IgnorePublicAcls",
                    "BlockPublicPolicy",
                    "RestrictPublicBuckets",
                ),
                True,
            ),  # fmt: skip
        )
    emulator.client("ssm").put_parameter(
        Name=f"/cdk-bootstrap/{qualifier}/version",
        Value=BOOTSTRAP_VERSION,
        Type="String",
        Overwrite=True,
    )
    iam = emulator.client("iam")
    trust = json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                       "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"}}],
    })  # fmt: skip
    existing = {r["RoleName"] for r in iam.list_roles(MaxItems=1000)["Roles"]}
    for kind in _ROLE_KINDS:
        name = f"cdk-{qualifier}-{kind}-role-{account_id}-{region}"
        if name not in existing:
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)
    return bucket


def publish_assets(manifest_file: Path, emulator: Emulator, *, account_id: str) -> int:
    """Upload every file asset of one asset manifest; return how many objects were written."""
    manifest = json.loads(manifest_file.read_text())
    images = list(manifest.get("dockerImages", {}))
    if images:
        raise AssemblyError(
            f"{manifest_file.name}: Docker image assets {images} cannot be published: the local "
            "engine has no Docker; package the code as a file asset (Code.from_asset) instead"
        )
    s3 = emulator.client("s3")
    written = 0
    for asset_id, asset in manifest.get("files", {}).items():
        body = _asset_bytes(manifest_file.parent, asset_id, asset["source"])
        for destination in asset["destinations"].values():
            bucket = _substitute(destination["bucketName"], account_id, emulator.region)
            key = _substitute(destination["objectKey"], account_id, emulator.region)
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            written += 1
    return written


def _substitute(text: str, account_id: str, region: str) -> str:
    return (
        text.replace("${AWS::AccountId}", account_id)
        .replace("${AWS::Region}", region)
        .replace("${AWS::Partition}", "aws")
    )


def _asset_bytes(root: Path, asset_id: str, source: dict[str, Any]) -> bytes:
    if "executable" in source or "path" not in source:
        raise AssemblyError(f"asset {asset_id}: only path-based file assets are supported")
    path = root / source["path"]
    packaging = source.get("packaging", "file")
    if packaging == "file":
        return bytes(path.read_bytes())
    if packaging == "zip":
        return zip_directory(path) if path.is_dir() else path.read_bytes()
    raise AssemblyError(f"asset {asset_id}: unknown packaging {packaging!r}")


def zip_directory(directory: Path) -> bytes:
    """Deterministic zip of a directory's files (sorted, fixed timestamps), like the CDK CLI."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(p for p in directory.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(file.relative_to(directory).as_posix(), (1980, 1, 1, 0, 0, 0))
            info.external_attr = (file.stat().st_mode & 0o777) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, file.read_bytes())
    return buffer.getvalue()
