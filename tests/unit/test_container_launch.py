"""The processing-job launcher, run as SageMaker would run it (a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.container.launch import unsatisfied

pytestmark = pytest.mark.unit
LAUNCHER = Path(__file__).resolve().parents[2] / "pipelines" / "container" / "launch.py"


def test_only_unsatisfied_requirements_are_installed() -> None:
    lines = ["pyarrow>=1", "pyarrow<1", "surely-not-installed-pkg==1.0",
             "onnx>=1; python_version < '3.0'"]  # fmt: skip
    assert unsatisfied(lines) == ["pyarrow<1", "surely-not-installed-pkg==1.0"]


def _bundle(tmp_path: Path, requirements: str) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "_mlops_launch.py").write_bytes(LAUNCHER.read_bytes())
    (code / "helper.py").write_text("VALUE = 42\n")
    (code / "entry.py").write_text("import sys, helper\nprint(helper.VALUE, sys.argv[1:])\n")
    (code / "requirements.txt").write_text(requirements)
    (code / "manifest.json").write_text(json.dumps({"model": {"name": "m"}}))
    return code


def test_runs_the_entry_with_its_arguments_and_the_bundle_importable(tmp_path: Path) -> None:
    code = _bundle(tmp_path, "pyarrow>=1  # satisfied: nothing to install\n")
    result = subprocess.run(
        [sys.executable, str(code / "_mlops_launch.py"), "entry.py", "--x", "1"],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42 ['--x', '1']"


def test_an_uninstallable_requirement_fails_with_a_reason(tmp_path: Path) -> None:
    code = _bundle(tmp_path, "this-package-does-not-exist-anywhere==0.0.1\n")
    failure = tmp_path / "failure"
    result = subprocess.run(
        [sys.executable, str(code / "_mlops_launch.py"), "entry.py"],
        capture_output=True, text=True, check=False, cwd=tmp_path,
        env={"SM_OUTPUT_FAILURE": str(failure), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 1
    assert "could not install the bundle's requirements" in failure.read_text()
    assert "this-package-does-not-exist-anywhere" in failure.read_text()


def test_an_entry_outside_the_bundle_is_refused(tmp_path: Path) -> None:
    code = _bundle(tmp_path, "")
    failure = tmp_path / "failure"
    result = subprocess.run(
        [sys.executable, str(code / "_mlops_launch.py"), "../../etc/passwd"],
        capture_output=True, text=True, check=False,
        env={"SM_OUTPUT_FAILURE": str(failure), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 1
    assert "is not a file of the bundle" in failure.read_text()
