"""Train a sample bundle's model outside the workflow, the way its SageMaker jobs run it.

The bundle's own preprocessing and training scripts run in subprocesses from a copy of the
bundle, with argv and `SM_*` variables as SageMaker sets them. The result is the model directory
the training job would tar into model.tar.gz (`model.onnx`, `signature.json`, the native model):
what the serving tests and benchmarks load, produced by the same code a real run uses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import yaml

SAMPLES = Path(__file__).resolve().parent / "samples"


class SampleRunError(RuntimeError):
    """A bundle script failed; the message carries its output."""


def run_script(code: Path, script: str, argv: list[str], env: dict[str, str]) -> str:
    """One job: the bundle's script as SageMaker starts it, from the code dir, no project path."""
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("SM_")}
    done = subprocess.run(
        [sys.executable, script, *argv],
        cwd=code,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise SampleRunError(f"{script} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def hyperparameter_argv(hyperparameters: dict[str, Any]) -> list[str]:
    return [item for k, v in hyperparameters.items() for item in (f"--{k}", str(v))]


def train_sample_model(
    bundle: str,
    frame_dir: Path,
    workdir: Path,
    *,
    hyperparameters: dict[str, Any] | None = None,
) -> Path:
    """Preprocess `frame_dir` (the training frame as the feature store returns it) and train;
    returns the model directory. `hyperparameters` override the manifest's."""
    code = shutil.copytree(SAMPLES / bundle, workdir / "code")
    manifest = yaml.safe_load((code / "manifest.yaml").read_text(encoding="utf-8"))
    entry = manifest["entry_points"]
    failure = {"SM_OUTPUT_FAILURE": str(workdir / "output" / "failure")}
    split = workdir / "processing" / "output"
    argv = ["--input-dir", str(frame_dir), "--output-dir", str(split)]
    run_script(code, entry["preprocessing"], argv, failure)
    params = {**manifest["hyperparameters"], **(hyperparameters or {})}
    training_env = {
        **failure,
        "SM_CHANNEL_TRAIN": str(split / "train"),
        "SM_CHANNEL_VALIDATION": str(split / "validation"),
        "SM_MODEL_DIR": str(workdir / "model"),
        "SM_HPS": json.dumps(params),
    }
    run_script(code, entry["training"], hyperparameter_argv(params), training_env)
    return workdir / "model"


def pack_model(model_dir: Path, archive: Path) -> Path:
    """model.tar.gz as a SageMaker training job uploads it (files at the archive root)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return archive
