"""The materialization state machine's container entrypoint, run on this interpreter.

The two inputs arrive as SageMaker delivers CDK directory assets (one zip file per input
directory); the entrypoint must unpack them, hand over to the platform launcher, which finds
every pinned requirement already installed (the `provided` mode of the local engine), and run
the job's entry script.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from localaws.cfn_assembly import zip_directory
from pipelines.container import CODE_DIR, LAUNCHER
from stacks.constructs.materialization import UNPACK_AND_LAUNCH, WHEELHOUSE_DIR
from stacks.constructs.materialization_assets import ENTRY, stage_code, stage_wheelhouse

pytestmark = pytest.mark.integration
CONTAINER_ROOT = "/opt/ml/processing"


def test_entrypoint_unpacks_both_assets_and_runs_the_job(tmp_path: Path) -> None:
    staged_code, staged_wheels = tmp_path / "code", tmp_path / "wheels"
    stage_code(staged_code)
    stage_wheelhouse(staged_wheels, "provided")
    root = tmp_path / "processing"

    def local(path: str) -> str:
        return path.replace(CONTAINER_ROOT, str(root))

    for directory, staged in ((CODE_DIR, staged_code), (WHEELHOUSE_DIR, staged_wheels)):
        Path(local(directory)).mkdir(parents=True)
        (Path(local(directory)) / "0123abcd.zip").write_bytes(zip_directory(staged))
    environment = os.environ | {
        "MLOPS_REQUIREMENTS": "requirements.txt",
        "MLOPS_WHEELHOUSE": local(WHEELHOUSE_DIR),
        "SM_OUTPUT_FAILURE": str(tmp_path / "failure"),
    }
    command = [sys.executable, "-c", UNPACK_AND_LAUNCH, local(CODE_DIR), local(WHEELHOUSE_DIR),
               local(f"{CODE_DIR}/{LAUNCHER}"), ENTRY, "--help"]  # fmt: skip
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Materialize the offline feature store into Redis." in result.stdout
    assert (Path(local(CODE_DIR)) / "features" / "job.py").is_file()
    assert (Path(local(WHEELHOUSE_DIR)) / "PROVIDED.txt").is_file()
    assert not (tmp_path / "failure").exists()
