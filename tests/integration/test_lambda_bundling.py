"""Real host-side bundling: pip fetches Lambda-platform wheels; the bundle runs on 3.12."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from stacks.constructs.python_function import LambdaBundlingError, LambdaSource, build_bundle

pytestmark = pytest.mark.integration
PROBE = LambdaSource(
    handler="tests.fixtures.lambda_probe.handler.handler",
    include=("tests/fixtures/lambda_probe",),
    requirements="tests/fixtures/lambda_probe/requirements.txt",
)


def _python312() -> str:
    # pyenv's shim exits 127 unless 3.12 is selected, so prefer the real interpreter.
    found = next(
        (str(p) for p in sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))), None
    ) or shutil.which("python3.12")
    if found is None:
        pytest.fail("python3.12 is needed to run a Lambda bundle built for python3.12")
    return found


def test_bundle_has_manylinux_wheels_and_runs_on_the_target_python(tmp_path: Path) -> None:
    build_bundle(PROBE, tmp_path, "3.12", "vendored")
    assert (tmp_path / "tests/fixtures/lambda_probe/handler.py").is_file()
    assert (tmp_path / "tests/__init__.py").is_file()  # parent packages come along
    compiled = list((tmp_path / "yaml").glob("_yaml*.so"))
    assert compiled and "cpython-312-x86_64-linux-gnu" in compiled[0].name
    probe = (
        "import json, sys; sys.path.insert(0, sys.argv[1]);"
        "from tests.fixtures.lambda_probe.handler import handler;"
        "print(json.dumps(handler({'k': [1, 2]}, None)))"
    )
    result = subprocess.run(
        [_python312(), "-I", "-c", probe, str(tmp_path)],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert json.loads(result.stdout) == {"echo": {"k": [1, 2]}, "cyaml": True}


def test_provided_mode_ships_only_the_project_code(tmp_path: Path) -> None:
    build_bundle(PROBE, tmp_path, "3.12", "provided")
    assert not (tmp_path / "yaml").exists()
    assert (tmp_path / "tests/fixtures/lambda_probe/handler.py").is_file()


def test_unresolvable_requirement_is_a_clear_error(tmp_path: Path) -> None:
    broken = LambdaSource(
        handler=PROBE.handler,
        include=PROBE.include,
        requirements="tests/fixtures/lambda_probe/requirements-broken.txt",
    )
    with pytest.raises(LambdaBundlingError) as info:
        build_bundle(broken, tmp_path, "3.12", "vendored")
    message = str(info.value)
    assert "requirements-broken.txt" in message
    assert "python3.12, manylinux2014_x86_64" in message
    assert "this-package-does-not-exist-anywhere" in message
