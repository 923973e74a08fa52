"""The materialization job's code and wheelhouse, staged on the host at synthesis (no Docker).

The job runs as a SageMaker Processing job in the VPC's private subnets, which have no route to
the internet: everything it needs arrives as two S3 assets.

- **Code**: the `features` package (Python files only), the sample-data module its Feast
  definitions import, the platform launcher as `_mlops_launch.py` and a `requirements.txt`.
- **Wheelhouse**: binary wheels of every requirement and its dependencies for the image's
  Python on manylinux x86_64, at the versions uv.lock resolves for that Python; the launcher
  installs from it with `--no-index`.

`pip download` evaluates environment markers (`python_version < "3.11"`, ...) against the
interpreter running it, not against `--python-version`, so a wheelhouse built on a newer
Python silently lacks backports the image needs (redis needs `async-timeout` below 3.11.3).
`build_wheelhouse` therefore re-walks the downloaded wheels' metadata with the *image's* marker
environment and tops up whatever is missing until the set is closed.

Both hashes are computed from the inputs, so they are stable across machines and CDK skips
restaging unchanged assets. In the `provided` dependency mode (the local engine, whose
interpreter already has every package) the wheelhouse holds only a note and nothing is
downloaded.
"""

from __future__ import annotations

import email.parser
import hashlib
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import cast

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from mlops.images import PLATFORM_JOB_PYTHON
from pipelines.container import LAUNCHER
from pipelines.container.launch import requirement_lines
from stacks.constructs.python_function import DependencyMode

REPO_ROOT = Path(__file__).resolve().parents[2]
# Python of the processing image (`materialization.processing_image`): the project's code needs
# >= 3.11 (`datetime.UTC`, ...), so the 3.10 framework images do not fit.
IMAGE_PYTHON = PLATFORM_JOB_PYTHON
# manylinux_2_17 (= manylinux2014) to manylinux_2_28: glibc 2.28 is below the image's (Ubuntu
# 24.04, glibc 2.39). pip expands `manylinux2014` only to manylinux2010/manylinux1, not 2_x.
WHEEL_PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(28, 16, -1)),
    "manylinux2014_x86_64",
)
# What the job imports: the feature-store jobs' one requirements file (pinned to the lock;
# the local engine's interpreter satisfies it all and installs nothing). Every other wheel is
# constrained to the lock too (`lock_constraints`).
JOB_REQUIREMENTS = tuple(requirement_lines(REPO_ROOT / "features" / "requirements.txt"))
# Staged beside the launcher at these repo-relative paths; features.repo.definitions imports
# pipelines.sample_data (the warehouse contract), so that module travels with it.
CODE_INCLUDE = ("features", "pipelines/__init__.py", "pipelines/sample_data.py")
ENTRY = "features/materialize_entry.py"
LAUNCHER_SOURCE = "pipelines/container/launch.py"
REQUIREMENTS_FILE = "requirements.txt"
LOCK_FILE = "uv.lock"
_SKIP_PARTS = frozenset({"__pycache__", "tests", ".mypy_cache", ".pytest_cache"})
_MAX_TOP_UPS = 10


class AssetStagingError(RuntimeError):
    """An asset of the materialization job could not be built; the message says why."""


def requirements_text(requirements: Sequence[str] = JOB_REQUIREMENTS) -> str:
    header = "# The materialization job's requirements (stacks/constructs/materialization_assets)\n"
    return header + "".join(f"{line}\n" for line in requirements)


def code_files() -> dict[str, Path]:
    """Staged path → source file of the code asset (sorted; Python files only)."""
    files: dict[str, Path] = {LAUNCHER: REPO_ROOT / LAUNCHER_SOURCE}
    for rel in CODE_INCLUDE:
        root = REPO_ROOT / rel
        if not root.exists():
            raise AssetStagingError(f"{rel!r} (materialization code) does not exist in {REPO_ROOT}")
        for path in [root] if root.is_file() else sorted(root.rglob("*.py")):
            relative = path.relative_to(REPO_ROOT)
            if path.suffix == ".py" and _SKIP_PARTS.isdisjoint(relative.parts):
                files[relative.as_posix()] = path
    if ENTRY not in files:
        raise AssetStagingError(f"the job's entry {ENTRY} is not among the staged files")
    return dict(sorted(files.items()))


def code_hash(requirements: Sequence[str] = JOB_REQUIREMENTS) -> str:
    digest = hashlib.sha256(requirements_text(requirements).encode())
    for name, source in code_files().items():
        digest.update(b"\0" + name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def stage_code(output_dir: Path, requirements: Sequence[str] = JOB_REQUIREMENTS) -> None:
    for name, source in code_files().items():
        target = output_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    (output_dir / REQUIREMENTS_FILE).write_text(requirements_text(requirements))


def marker_environment(python_version: str) -> dict[str, str]:
    """PEP 508 marker values of the image's interpreter (CPython on Linux x86_64)."""
    return {
        "implementation_name": "cpython", "implementation_version": f"{python_version}.0",
        "os_name": "posix", "platform_machine": "x86_64", "platform_python_implementation":
        "CPython", "platform_release": "", "platform_system": "Linux", "platform_version": "",
        "python_full_version": f"{python_version}.0", "python_version": python_version,
        "sys_platform": "linux",
    }  # fmt: skip


def for_target(requirements: Iterable[str], environment: Mapping[str, str]) -> list[str]:
    """The requirement lines that apply on the target, without their markers."""
    selected = []
    for line in requirements:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(dict(environment)):
            requirement.marker = None
            selected.append(str(requirement))
    return selected


def lock_constraints(python_version: str, lock: Path | None = None) -> list[str]:
    """`name==version` of every package uv.lock resolves for the image's Python, so the
    wheelhouse holds the versions the project is tested with (where the lock has a choice
    per Python, the one for the image's)."""
    data = tomllib.loads((lock or REPO_ROOT / LOCK_FILE).read_text())
    environment = marker_environment(python_version)
    pins: dict[str, str] = {}
    for package in data["package"]:
        markers = package.get("resolution-markers")
        if "registry" not in package.get("source", {}) or (
            markers and not any(Marker(m).evaluate(environment) for m in markers)
        ):
            continue
        if pins.setdefault(package["name"], package["version"]) != package["version"]:
            raise AssetStagingError(f"{LOCK_FILE}: two versions of {package['name']} apply")
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def pip_download_command(
    requirements: Sequence[str],
    dest: Path,
    python_version: str,
    *,
    constraints: Path | None = None,
    no_deps: bool = False,
) -> list[str]:
    platforms = [arg for platform in WHEEL_PLATFORMS for arg in ("--platform", platform)]
    return [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--only-binary=:all:", "--implementation", "cp", "--python-version", python_version,
        *platforms, "--dest", str(dest), *(["--constraint", str(constraints)] if constraints
                                           else []),
        *(["--no-deps"] if no_deps else []), *requirements,
    ]  # fmt: skip


def _requires_dist(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.BytesParser().parsebytes(archive.read(name), headersonly=True)
    return list(metadata.get_all("Requires-Dist") or [])


def missing_requirements(
    wheelhouse: Path, requirements: Iterable[str], environment: Mapping[str, str]
) -> list[str]:
    """Requirements (transitively, markers evaluated for `environment`) no wheel satisfies."""
    wheels: dict[str, list[tuple[Version, Path]]] = {}
    for path in sorted(wheelhouse.glob("*.whl")):
        name, version, _, _ = parse_wheel_filename(path.name)
        wheels.setdefault(name, []).append((version, path))
    queue = [Requirement(line) for line in requirements]
    seen: set[str] = set()
    missing: set[str] = set()
    while queue:
        requirement = queue.pop()
        requirement.marker = None
        if str(requirement) in seen:
            continue
        seen.add(str(requirement))
        name = canonicalize_name(requirement.name)
        found = [w for w in wheels.get(name, []) if requirement.specifier.contains(w[0], True)]
        if not found:
            missing.add(str(requirement))
            continue
        extras = ("", *sorted(requirement.extras))
        for line in _requires_dist(max(found)[1]):
            dependency = Requirement(line)
            marker = dependency.marker
            if marker is None or any(marker.evaluate({**environment, "extra": e}) for e in extras):
                queue.append(dependency)
    return sorted(missing)


def _pip(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        python = command[command.index("--python-version") + 1]
        lines = [x for x in result.stderr.strip().splitlines() if "is ignored" not in x]
        raise AssetStagingError(
            f"could not download wheels for the materialization job ({what}; python{python}, "
            "manylinux x86_64, binary wheels only):\n" + "\n".join(lines[-12:])
        )


def build_wheelhouse(
    output_dir: Path,
    requirements: Sequence[str] = JOB_REQUIREMENTS,
    python_version: str = IMAGE_PYTHON,
    constraints: Sequence[str] | None = None,
) -> None:
    """Download the requirements' wheels for the image (versions constrained to the lock),
    then top up until the set is closed for the image's markers."""
    environment = marker_environment(python_version)
    wanted = for_target(requirements, environment)
    pins = lock_constraints(python_version) if constraints is None else constraints
    with tempfile.TemporaryDirectory() as scratch:
        constraint_file = Path(scratch) / "constraints.txt"
        constraint_file.write_text("".join(f"{pin}\n" for pin in pins))
        _pip(pip_download_command(wanted, output_dir, python_version, constraints=constraint_file),
             ", ".join(wanted))  # fmt: skip
        for _ in range(_MAX_TOP_UPS):
            missing = missing_requirements(output_dir, wanted, environment)
            if not missing:
                return
            _pip(pip_download_command(missing, output_dir, python_version,
                                      constraints=constraint_file, no_deps=True),
                 ", ".join(missing))  # fmt: skip
    raise AssetStagingError(
        f"the wheelhouse still lacks {missing_requirements(output_dir, wanted, environment)} "
        f"after {_MAX_TOP_UPS} top-ups"
    )


def wheelhouse_hash(dependencies: DependencyMode, python_version: str = IMAGE_PYTHON) -> str:
    key = f"{python_version}|{','.join(WHEEL_PLATFORMS)}|{dependencies}|{requirements_text()}"
    if dependencies == "vendored":
        key += "|" + ",".join(lock_constraints(python_version))
    return hashlib.sha256(key.encode()).hexdigest()


def stage_wheelhouse(output_dir: Path, dependencies: DependencyMode) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    if dependencies == "vendored":
        build_wheelhouse(output_dir)
        return
    (output_dir / "PROVIDED.txt").write_text(
        "Dependency mode 'provided': the interpreter running the job already has every "
        "requirement, so no wheels were downloaded.\n"
    )


@jsii.implements(ILocalBundling)
class _HostStaging:
    """CDK's local-bundling hook: stages an asset directory on the host instead of in Docker."""

    def __init__(self, stage: Callable[[Path], None]) -> None:
        self._stage = stage

    def try_bundle(self, output_dir: str, options: BundlingOptions) -> bool:  # noqa: ARG002
        self._stage(Path(output_dir))
        return True


def host_staged_asset(
    scope: Construct, construct_id: str, *, asset_hash: str, stage: Callable[[Path], None]
) -> s3_assets.Asset:
    """A zipped directory asset built by `stage(output_dir)` on the host, hashed by its inputs."""
    return s3_assets.Asset(
        scope,
        construct_id,
        # Never read: the content comes from `stage`; CDK only needs an existing directory.
        path=str(REPO_ROOT / "features"),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=asset_hash,
        bundling=BundlingOptions(
            image=DockerImage.from_registry("unused-host-bundling"),  # never pulled
            local=cast(ILocalBundling, _HostStaging(stage)),
        ),
    )


def wheelhouse_size(directory: Path) -> tuple[int, int]:
    """(number of wheels, total bytes) of a built wheelhouse."""
    wheels = list(directory.glob("*.whl"))
    return len(wheels), sum(w.stat().st_size for w in wheels)
