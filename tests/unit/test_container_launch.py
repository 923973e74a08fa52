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


def _wheel(directory: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel of a module `name` whose VALUE is `version`."""
    import zipfile

    directory.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    path = directory / f"{name}-{version}-py3-none-any.whl"
    files = {
        f"{name}.py": f"VALUE = {version!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }  # fmt: skip
    record = "".join(f"{file},,\n" for file in files) + f"{dist}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as archive:
        for file, text in {**files, f"{dist}/RECORD": record}.items():
            archive.writestr(file, text)
    return path


def test_a_platform_step_installs_its_own_requirements_from_a_wheelhouse(tmp_path: Path) -> None:
    code = _bundle(tmp_path, "this-package-does-not-exist-anywhere==0.0.1\n")  # not used
    (code / "_platform").mkdir()
    (code / "_platform" / "requirements.txt").write_text("mlops_wheel_probe==1.2\n")
    (code / "step.py").write_text("import mlops_wheel_probe\nprint(mlops_wheel_probe.VALUE)\n")
    wheelhouse = tmp_path / "wheels"
    _wheel(wheelhouse, "mlops_wheel_probe", "1.2")
    env = {"PATH": "/usr/bin:/bin", "SM_OUTPUT_FAILURE": str(tmp_path / "failure"),
           "MLOPS_REQUIREMENTS": "_platform/requirements.txt",
           "MLOPS_WHEELHOUSE": str(wheelhouse)}  # fmt: skip
    result = subprocess.run(
        [sys.executable, str(code / "_mlops_launch.py"), "step.py"],
        capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1.2"

    # No index is consulted: a requirement the wheelhouse lacks fails, naming it.
    (code / "_platform" / "requirements.txt").write_text("mlops_wheel_probe==9.9\n")
    result = subprocess.run(
        [sys.executable, str(code / "_mlops_launch.py"), "step.py"],
        capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 1
    assert "mlops_wheel_probe==9.9" in (tmp_path / "failure").read_text()

    env["MLOPS_WHEELHOUSE"] = str(tmp_path / "missing")
    result = subprocess.run(
        [sys.executable, str(code / "_mlops_launch.py"), "step.py"],
        capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 1
    assert "MLOPS_WHEELHOUSE" in (tmp_path / "failure").read_text()
