"""Processing-job launcher: install what the bundle needs, then run its script.

SageMaker framework images install a bundle's `requirements.txt` only for script-mode
*training*; a processing job started with a plain ContainerEntrypoint gets none of it,
so an evaluation script needing, say, onnxruntime would fail on the XGBoost image. The
workflow therefore runs processing scripts through this launcher, staged beside them:

    python3 /opt/ml/processing/input/code/_mlops_launch.py <entry.py> [args...]

Requirements already satisfied by the image are not installed again; the rest go into a
temporary directory put first on `sys.path` (the image's site-packages stay untouched).
Standard library only (plus `packaging` when the image has it), because it runs before
anything is installed.

Platform steps run through it too: `MLOPS_REQUIREMENTS` names their requirements file (relative
to the code directory) instead of the manifest's, and `MLOPS_WHEELHOUSE` a directory of wheels
to install from with no package index (jobs in subnets without internet access).
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path

FAILURE_FILE = "/opt/ml/output/failure"
# Platform steps (not a bundle's scripts) name their own requirements file, relative to the
# code directory, and may bring a wheelhouse directory to install from without an index.
REQUIREMENTS_ENV = "MLOPS_REQUIREMENTS"
WHEELHOUSE_ENV = "MLOPS_WHEELHOUSE"


def _fail(message: str) -> None:
    """Leave the reason where SageMaker (or the local engine) reports it, then exit 1."""
    path = Path(os.environ.get("SM_OUTPUT_FAILURE", FAILURE_FILE))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(message[:1000])
    except OSError:
        pass
    sys.stderr.write(message + "\n")
    raise SystemExit(1)


def unsatisfied(lines: list[str]) -> list[str]:
    """Requirement lines the running interpreter does not already satisfy."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:
        return lines  # cannot check without `packaging`: install them all
    missing = []
    for line in lines:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            missing.append(line)  # pip will judge (or reject) it
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            missing.append(line)
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            missing.append(line)
    return missing


def requirement_lines(path: Path) -> list[str]:
    lines = (raw.split("#", 1)[0].strip() for raw in path.read_text().splitlines())
    return [line for line in lines if line]


def install(lines: list[str], wheelhouse: Path | None = None) -> Path:
    """pip-install `lines` into a fresh directory; from `wheelhouse` only, when given (jobs in
    subnets without internet access get their wheels as a processing input)."""
    target = Path(tempfile.mkdtemp(prefix="mlops-deps-"))
    index = ["--no-index", "--find-links", str(wheelhouse)] if wheelhouse else []
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-input",
               "--disable-pip-version-check", *index, "--target", str(target), *lines]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        _fail(f"could not install the bundle's requirements {lines}: {tail}")
    return target


def main(argv: list[str]) -> None:
    code_dir = Path(__file__).resolve().parent
    if not argv:
        _fail("launcher: no entry script given")
    entry = (code_dir / argv[0]).resolve()
    if code_dir not in entry.parents or not entry.is_file():
        _fail(f"launcher: entry script {argv[0]!r} is not a file of the bundle")
    manifest_path = code_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    requirements = code_dir / (
        os.environ.get(REQUIREMENTS_ENV)
        or manifest.get("model", {}).get("requirements", "requirements.txt")
    )
    wheelhouse = os.environ.get(WHEELHOUSE_ENV)
    if wheelhouse and not Path(wheelhouse).is_dir():
        _fail(f"launcher: {WHEELHOUSE_ENV}={wheelhouse} is not a directory")
    if requirements.is_file():
        missing = unsatisfied(requirement_lines(requirements))
        if missing:
            sys.path.insert(0, str(install(missing, Path(wheelhouse) if wheelhouse else None)))
    sys.path.insert(0, str(code_dir))
    sys.argv = [str(entry), *argv[1:]]
    runpy.run_path(str(entry), run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
