"""Docker-free packaging for every Python Lambda of the project.

`aws_lambda_python_alpha.PythonFunction` bundles inside a Docker container, which neither
these build machines nor many CI runners have. This construct bundles on the host instead:
the project's own packages are copied verbatim (keeping their repo-relative paths, so the
handler string is the same dotted path the tests import) and third-party requirements are
installed with `pip --platform manylinux2014_x86_64 --only-binary=:all:` for the Lambda
runtime's Python version, which yields exactly the wheels the Lambda runtime would get.

The asset hash is computed from the inputs (the copied files' bytes, the requirements file,
the Python version and the dependency mode), so it is stable across machines and runs and
CDK skips re-bundling an unchanged function.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, Duration, ILocalBundling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.constructs.retention import retention

REPO_ROOT = Path(__file__).resolve().parents[2]
LAMBDA_PLATFORM = "manylinux2014_x86_64"
# Lambda's Python 3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34), so wheels tagged up to
# manylinux_2_34 run there. pip does not widen a manylinux_2_x tag to older ones (only
# manylinux2014/2010 are widened), so every accepted tag is listed; onnxruntime 1.31 publishes
# manylinux_2_28 wheels only.
LAMBDA_PLATFORMS = (LAMBDA_PLATFORM, "manylinux_2_28_x86_64", "manylinux_2_34_x86_64")
_SKIP_PARTS = {"__pycache__", "tests", ".mypy_cache", ".pytest_cache"}
_RUNTIMES = {
    "3.12": lambda_.Runtime.PYTHON_3_12,
    "3.13": lambda_.Runtime.PYTHON_3_13,
    "3.14": lambda_.Runtime.PYTHON_3_14,
}
DependencyMode = Literal["vendored", "provided"]


class LambdaBundlingError(RuntimeError):
    """A function's bundle could not be built; the message says which and why."""


@dataclass(frozen=True)
class LambdaSource:
    """What goes into a function's deployment package.

    handler: dotted path to the handler, e.g. `lambdas.training_trigger.handler.handler`.
    include: repo-relative files or folders copied verbatim, e.g. `("lambdas/training_trigger",
        "mlops")`; parent packages' `__init__.py` files are added automatically.
    requirements: repo-relative requirements file installed into the bundle (pinned versions).
    """

    handler: str
    include: tuple[str, ...]
    requirements: str | None = None

    def __post_init__(self) -> None:
        for rel in (*self.include, *([self.requirements] if self.requirements else [])):
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise LambdaBundlingError(f"{rel!r}: include paths must be repo-relative")
            if not (REPO_ROOT / rel).exists():
                raise LambdaBundlingError(f"{rel!r} does not exist under {REPO_ROOT}")
        module = self.handler.rsplit(".", 1)[0]
        if not any(_module_path(module).startswith(p.rstrip("/")) for p in self.include):
            raise LambdaBundlingError(
                f"handler {self.handler!r} is not inside any included path {self.include}"
            )


def _module_path(module: str) -> str:
    return module.replace(".", "/")


def _source_files(source: LambdaSource) -> Iterator[Path]:
    """Repo-relative files of the bundle, sorted, without caches or tests."""
    found: set[Path] = set()
    for rel in source.include:
        root = REPO_ROOT / rel
        paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in paths:
            below_root = path.relative_to(root).parts if root.is_dir() else ()
            if _SKIP_PARTS.isdisjoint(below_root) and path.suffix != ".pyc":
                found.add(path.relative_to(REPO_ROOT))
        for parent in Path(rel).parents:
            init = parent / "__init__.py"
            if parent != Path() and (REPO_ROOT / init).is_file():
                found.add(init)
    yield from sorted(found)


def bundle_hash(source: LambdaSource, python_version: str, dependencies: DependencyMode) -> str:
    """A hash of everything that determines the bundle's content."""
    digest = hashlib.sha256()
    digest.update(f"{python_version}|{','.join(LAMBDA_PLATFORMS)}|{dependencies}|".encode())
    for relative in _source_files(source):
        digest.update(str(relative).encode() + b"\0" + (REPO_ROOT / relative).read_bytes())
    if source.requirements and dependencies == "vendored":
        digest.update((REPO_ROOT / source.requirements).read_bytes())
    return digest.hexdigest()


def build_bundle(
    source: LambdaSource, output_dir: Path, python_version: str, dependencies: DependencyMode
) -> None:
    """Copy the project's code and (when vendored) install the requirements into output_dir."""
    for relative in _source_files(source):
        target = output_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / relative, target)
    if source.requirements and dependencies == "vendored":
        _pip_install(REPO_ROOT / source.requirements, output_dir, python_version)


def _pip_install(requirements: Path, output_dir: Path, python_version: str) -> None:
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-compile", "--requirement", str(requirements), "--target", str(output_dir),
        *(arg for platform in LAMBDA_PLATFORMS for arg in ("--platform", platform)),
        "--implementation", "cp",
        "--python-version", python_version, "--only-binary=:all:",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-12:])
        raise LambdaBundlingError(
            f"could not install {requirements.relative_to(REPO_ROOT)} for Lambda "
            f"(python{python_version}, {LAMBDA_PLATFORM}, binary wheels only):\n{tail}"
        )


@jsii.implements(ILocalBundling)
class _HostBundler:
    """CDK's local-bundling hook: runs build_bundle on the host instead of in Docker."""

    def __init__(
        self, source: LambdaSource, python_version: str, dependencies: DependencyMode
    ) -> None:
        self._source = source
        self._python_version = python_version
        self._dependencies = dependencies

    def try_bundle(self, output_dir: str, options: BundlingOptions) -> bool:  # noqa: ARG002
        build_bundle(self._source, Path(output_dir), self._python_version, self._dependencies)
        return True


def lambda_code(
    source: LambdaSource, *, python_version: str, dependencies: DependencyMode
) -> lambda_.Code:
    """The asset for a function, bundled on the host, with an input-derived hash."""
    return lambda_.Code.from_asset(
        str(REPO_ROOT / source.include[0]),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=bundle_hash(source, python_version, dependencies),
        bundling=BundlingOptions(
            # Never pulled: local bundling always succeeds or raises.
            image=DockerImage.from_registry("unused-host-bundling"),
            local=cast(ILocalBundling, _HostBundler(source, python_version, dependencies)),
        ),
    )


class PythonFunction(Construct):
    """A Python Lambda with the platform's defaults: encrypted logs with retention, X-Ray
    tracing, the configured runtime, and host-side bundling."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        source: LambdaSource,
        python_version: str,
        dependencies: DependencyMode,
        log_retention_days: int,
        log_key: kms.IKey,
        description: str,
        environment: Mapping[str, str] | None = None,
        timeout: Duration | None = None,
        memory_size: int = 512,
        vpc: ec2.IVpc | None = None,
        role_name: str | None = None,
        **function_props: Any,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self, "Logs", retention=retention(log_retention_days), encryption_key=log_key
        )
        # An own role instead of AWSLambdaBasicExecutionRole: the function may write to its
        # own log group and nothing else by default.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{description} (Lambda execution role)",
            role_name=role_name,
        )
        self.log_group.grant_write(self.role)
        if vpc is not None:
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces",
                             "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses",
                             "ec2:UnassignPrivateIpAddresses"],
                    resources=["*"],
                )
            )  # fmt: skip
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=_RUNTIMES[python_version],
            architecture=lambda_.Architecture.X86_64,
            handler=source.handler,
            code=lambda_code(source, python_version=python_version, dependencies=dependencies),
            description=description,
            environment=dict(environment or {}),
            timeout=timeout or Duration.seconds(30),
            memory_size=memory_size,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            role=self.role,
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_group_name="private") if vpc else None,
            **function_props,
        )
