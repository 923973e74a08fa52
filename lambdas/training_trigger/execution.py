"""The workflow's execution input and the staged code: pure functions of a valid bundle.

The shape is the contract in docs/training-pipeline.md ("Execution input"); the state
machine definition reads these paths, so a change here is a change there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.bundle import write_archive
from mlops.images import PURPOSES, image_uri, platform_job_image
from pipelines.container import LAUNCHER, launch

STEPS = ("preprocessing", "training", "evaluation")
SOURCE_DIR = "sourcedir.tar.gz"
PROCESSING_DIR = "processing"
# The training-set step (input.feature_service): its entry beside the bundle's scripts, the
# platform modules it imports under their own directory (first on its sys.path), and the
# requirements the launcher installs for it.
TRAINING_SET_ENTRY = "_mlops_training_set.py"
PLATFORM_DIR = "_mlops_platform"
PLATFORM_FILES = (
    "features/__init__.py",
    "features/lake.py",
    "features/requirements.txt",
    "features/store.py",
    "features/training_set.py",
    "features/repo/__init__.py",
    "features/repo/definitions.py",
    "pipelines/__init__.py",
    "pipelines/sample_data.py",
)
REPO_ROOT = Path(__file__).resolve().parents[2]  # the project root, or /var/task in Lambda


@dataclass(frozen=True)
class FeatureStoreSettings:
    """The feature store a run's training set is built from (the trainer's settings)."""

    offline_store: str  # "athena" | "file" (the local engine has no Athena)
    project: str
    data_lake_bucket: str
    offline_prefix: str
    database: str | None
    workgroup: str | None
    athena_results: str | None


@dataclass(frozen=True)
class ExecutionPlan:
    """Everything the execution input is built from."""

    run_id: str
    manifest: dict[str, Any]  # normalised (mlops.bundle.manifest.normalise)
    bundle: dict[str, str]  # bucket, key, version_id, git_commit, uploaded_by, sha256
    artifacts_bucket: str
    region: str
    feature_store: FeatureStoreSettings | None = None

    @property
    def run_prefix(self) -> str:
        return f"runs/{self.run_id}"

    def uri(self, suffix: str) -> str:
        return f"s3://{self.artifacts_bucket}/{self.run_prefix}/{suffix}"


def hyperparameter_value(value: str | int | float | bool) -> str:
    """SageMaker takes strings only; booleans become `true`/`false` (JSON, as the toolkit
    parses them), numbers their shortest round-tripping text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else repr(value)


def build_execution_input(plan: ExecutionPlan) -> dict[str, Any]:
    """The Step Functions input for one run (raises ImageNotFoundError for the region)."""
    manifest = plan.manifest
    model, evaluation = manifest["model"], manifest["evaluation"]
    images = {
        purpose: image_uri(model["framework"], model["framework_version"], plan.region,
                           purpose=purpose)
        for purpose in PURPOSES
    }  # fmt: skip
    source_dir = plan.uri(f"code/{SOURCE_DIR}")
    hyperparameters = {k: hyperparameter_value(v) for k, v in manifest["hyperparameters"].items()}
    hyperparameters["sagemaker_program"] = manifest["entry_points"]["training"]
    hyperparameters["sagemaker_submit_directory"] = source_dir
    return {
        "run_id": plan.run_id,
        "model_name": model["name"],
        "model_package_group": model["name"],
        "bundle": dict(plan.bundle),
        "code": {
            "processing": plan.uri(f"code/{PROCESSING_DIR}/"),
            "launcher": LAUNCHER,
            "source_dir": source_dir,
            "preprocessing_entry": manifest["entry_points"]["preprocessing"],
            "evaluation_entry": manifest["entry_points"]["evaluation"],
        },
        **_training_set(plan),
        "data": {
            "input": (
                plan.uri("data/training_set/")
                if plan.feature_store
                else f"s3://{plan.artifacts_bucket}/datasets/{manifest['input']['dataset']}"
            ),
            "splits": plan.uri("data/"),
            "train": plan.uri("data/train/"),
            "validation": plan.uri("data/validation/"),
            "test": plan.uri("data/test/"),
        },
        "output": {"model": plan.uri("model/"), "evaluation": plan.uri("evaluation/")},
        "images": images,
        "resources": {step: dict(manifest["resources"][step]) for step in STEPS},
        "hyperparameters": hyperparameters,
        "metric_definitions": [
            {"Name": d["name"], "Regex": d["regex"]} for d in manifest["metric_definitions"]
        ],
        "evaluation": {
            "metric": evaluation["metric"],
            "direction": evaluation["direction"],
            "threshold": evaluation["threshold"],
            "min_improvement": evaluation["min_improvement"],
            "report_uri": plan.uri(f"evaluation/{evaluation['report']}"),
        },
    }


def _training_set(plan: ExecutionPlan) -> dict[str, Any]:
    """The `feature_store` block (absent for a dataset input): what the workflow's
    BuildTrainingSet step reads, with the job's settings as one JSON environment variable
    (features.training_set.TrainingSetSettings)."""
    store = plan.feature_store
    if store is None:
        return {}
    source = plan.manifest["input"]
    settings = {
        "project": store.project, "feature_service": source["feature_service"],
        "entity": source["entity"], "label_column": source["label"]["column"],
        "timestamp_column": source["label"]["timestamp_column"],
        "offline_store": store.offline_store, "region": plan.region,
        "data_lake_bucket": store.data_lake_bucket, "offline_prefix": store.offline_prefix,
        "database": store.database, "workgroup": store.workgroup,
        "athena_results": store.athena_results,
    }  # fmt: skip
    labels = f"s3://{store.data_lake_bucket}/{store.offline_prefix}{source['label']['source']}/"
    return {
        "feature_store": {
            "entry": TRAINING_SET_ENTRY,
            # Platform code, so the platform's image (Python 3.12), not the bundle's framework.
            "image": platform_job_image(plan.region),
            "labels": labels,
            "environment": {
                "MLOPS_FEATURE_STORE": json.dumps(settings, sort_keys=True),
                "MLOPS_REQUIREMENTS": f"{PLATFORM_DIR}/features/requirements.txt",
                "RUN_ID": plan.run_id,
            },
        }
    }


def staged_code(plan: ExecutionPlan, files: dict[str, bytes]) -> Iterator[tuple[str, bytes, str]]:
    """(key, body, content type) of each object under `runs/<run_id>/code/`.

    Processing jobs get the whole bundle under `code/processing/` with the platform's
    launcher (which installs the bundle's requirements, as the framework images do only for
    training) and the normalised manifest; training gets the bundle as a script-mode source
    directory. A feature-service input adds the training-set step's entry and the platform
    modules it runs (`PLATFORM_FILES` under `_mlops_platform/`).
    """
    code = f"{plan.run_prefix}/code"
    manifest = json.dumps(plan.manifest, indent=2, sort_keys=True).encode()
    for name, body in sorted(files.items()):
        kind = "text/x-python" if name.endswith(".py") else "application/octet-stream"
        yield f"{code}/{PROCESSING_DIR}/{name}", body, kind
    yield f"{code}/{PROCESSING_DIR}/{LAUNCHER}", Path(launch.__file__).read_bytes(), "text/x-python"
    if plan.feature_store is not None:
        entry = Path(launch.__file__).with_name("training_set_entry.py").read_bytes()
        yield f"{code}/{PROCESSING_DIR}/{TRAINING_SET_ENTRY}", entry, "text/x-python"
        for name in PLATFORM_FILES:
            body = (REPO_ROOT / name).read_bytes()
            yield f"{code}/{PROCESSING_DIR}/{PLATFORM_DIR}/{name}", body, "text/plain"
    yield f"{code}/{PROCESSING_DIR}/manifest.json", manifest, "application/json"
    yield f"{code}/{SOURCE_DIR}", write_archive(files), "application/gzip"
    yield f"{code}/manifest.json", manifest, "application/json"
