"""The SageMaker container contract, reproduced on the engine's own filesystem and interpreter.

A SageMaker job sees a fixed tree under `/opt/ml` (inputs, code, model, output, config files)
and a set of environment variables. The engine cannot create `/opt/ml` (no container, no root),
so every job gets a private temp directory and every `/opt/ml/...` path in the job's request is
mapped under it. Scripts therefore work unchanged as long as they take their paths from argv or
the `SM_*` variables -- which is what SageMaker's own framework containers hand them -- and not
from hard-coded `/opt/ml` literals.

The training environment follows the SageMaker training toolkit used by the framework images
(XGBoost, SKLearn, PyTorch...): hyperparameters are JSON-decoded when possible, `sagemaker_*`
ones are framework settings and are withheld from the script, the rest arrive as sorted
`--name value` arguments and as `SM_HP_<NAME>` / `SM_HPS`.
"""

from __future__ import annotations

import json
import os
import re
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OPT_ML = "/opt/ml"
CURRENT_HOST = "algo-1"
# SageMaker caps DescribeXJob.FailureReason at 1024 characters.
FAILURE_REASON_LIMIT = 1024
_STDERR_TAIL_LINES = 10


class JobSetupError(Exception):
    """The job could not be started; the message becomes a `ClientError: ...` FailureReason."""


@dataclass(frozen=True)
class JobTree:
    """A job's private stand-in for `/opt/ml`."""

    root: Path

    def path(self, container_path: str) -> Path:
        """Map a container path (`/opt/ml/...`) to its place under this job's root."""
        if container_path != OPT_ML and not container_path.startswith(OPT_ML + "/"):
            raise JobSetupError(f"path {container_path!r} is outside {OPT_ML}")
        relative = container_path[len(OPT_ML) :].lstrip("/")
        return self.root / relative if relative else self.root

    def rewrite(self, argument: str) -> str:
        """Rewrite an argument that is, or ends in (`--x=/opt/ml/...`), a container path."""
        if argument == OPT_ML or argument.startswith(OPT_ML + "/"):
            return str(self.path(argument))
        key, sep, value = argument.partition("=")
        if sep and (value == OPT_ML or value.startswith(OPT_ML + "/")):
            return f"{key}={self.path(value)}"
        return argument

    def make_standard_dirs(self) -> None:
        for sub in ("input/config", "input/data", "model", "output/data", "code", "config"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def failure_file_text(self) -> str | None:
        failure = self.root / "output" / "failure"
        if not failure.is_file():
            return None
        return failure.read_text(encoding="utf-8", errors="replace").strip() or None


def split_s3_uri(uri: str) -> tuple[str, str]:
    match = re.fullmatch(r"s3://([^/]+)/?(.*)", uri)
    if match is None:
        raise JobSetupError(f"not an s3:// URI: {uri!r}")
    return match.group(1), match.group(2)


def download_prefix(s3: Any, uri: str, destination: Path) -> int:
    """Download every object under an S3Prefix (or the single object it names).

    The local layout keeps each key's path relative to the prefix, as SageMaker's File mode
    does; a prefix naming one object lands as that object's file name. Returns the count.
    """
    bucket, prefix = split_s3_uri(uri)
    destination.mkdir(parents=True, exist_ok=True)
    count = 0
    base = prefix.rstrip("/")
    parent = base.rsplit("/", 1)[0] if "/" in base else ""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key: str = item["Key"]
            if key.endswith("/"):
                continue
            if key == base:
                relative = key.rsplit("/", 1)[-1]
            elif key.startswith(base + "/"):
                relative = key[len(base) + 1 :]
            else:
                relative = key[len(parent) + 1 :] if parent else key
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(target))
            count += 1
    if count == 0:
        raise JobSetupError(f"no objects found under {uri}")
    return count


def upload_tree(s3: Any, source: Path, uri: str) -> list[str]:
    """Upload every file under `source` to `uri`, keeping relative paths. Returns the keys."""
    bucket, prefix = split_s3_uri(uri)
    prefix = prefix.rstrip("/")
    keys = []
    for file in sorted(p for p in source.rglob("*") if p.is_file()):
        relative = file.relative_to(source).as_posix()
        key = f"{prefix}/{relative}" if prefix else relative
        s3.upload_file(str(file), bucket, key)
        keys.append(key)
    return keys


def tar_directory(source: Path, archive: Path) -> None:
    """Pack a directory's contents (not the directory itself), as SageMaker packs model.tar.gz."""
    with tarfile.open(archive, "w:gz") as tar:
        for item in sorted(source.iterdir()):
            tar.add(item, arcname=item.name)


def extract_archive(archive: Path, destination: Path) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        tar.extractall(destination, filter="data")


def decode_hyperparameters(raw: Mapping[str, str] | None) -> dict[str, Any]:
    """JSON-decode each value when possible, as the training toolkit does."""
    decoded: dict[str, Any] = {}
    for name, value in (raw or {}).items():
        try:
            decoded[name] = json.loads(value)
        except (TypeError, ValueError):
            decoded[name] = value
    return decoded


def split_framework_params(hps: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(user hyperparameters, `sagemaker_*` framework parameters)."""
    user = {k: v for k, v in hps.items() if not k.startswith("sagemaker_")}
    framework = {k: v for k, v in hps.items() if k.startswith("sagemaker_")}
    return user, framework


def to_cmd_args(hps: Mapping[str, Any]) -> list[str]:
    """Sorted `--name value` pairs (`-n` for one-letter names), like the training toolkit."""
    args: list[str] = []
    for name in sorted(hps):
        value = hps[name]
        if isinstance(value, Mapping):
            value = ",".join(f"{k}={v}" for k, v in sorted(value.items()))
        args += [f"--{name}" if len(name) > 1 else f"-{name}", "" if value is None else str(value)]
    return args


def _env_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class TrainingLayout:
    """What the training toolkit would derive from the job request."""

    tree: JobTree
    job_name: str
    channels: Mapping[str, Mapping[str, Any]]
    hyperparameters: Mapping[str, Any]
    framework_params: Mapping[str, Any]
    resource_config: Mapping[str, Any]
    entry_point: str
    module_dir: str

    def channel_dir(self, channel: str) -> Path:
        return self.tree.path(f"{OPT_ML}/input/data/{channel}")

    def write_config_files(self, raw_hyperparameters: Mapping[str, str] | None) -> None:
        config = self.tree.path(f"{OPT_ML}/input/config")
        config.mkdir(parents=True, exist_ok=True)
        (config / "hyperparameters.json").write_text(json.dumps(dict(raw_hyperparameters or {})))
        (config / "inputdataconfig.json").write_text(json.dumps(dict(self.channels)))
        (config / "resourceconfig.json").write_text(json.dumps(dict(self.resource_config)))

    def environ(self) -> dict[str, str]:
        """The `SM_*` variables of the framework containers, with host paths substituted."""
        path = self.tree.path
        channel_dirs = {name: str(self.channel_dir(name)) for name in self.channels}
        values: dict[str, Any] = {
            "hosts": [CURRENT_HOST],
            "current_host": CURRENT_HOST,
            "network_interface_name": "eth0",
            "hps": dict(self.hyperparameters),
            "user_entry_point": self.entry_point,
            "module_name": self.entry_point.removesuffix(".py"),
            "module_dir": self.module_dir,
            "framework_params": dict(self.framework_params),
            "resource_config": dict(self.resource_config),
            "input_data_config": dict(self.channels),
            "channels": sorted(self.channels),
            "input_dir": str(path(f"{OPT_ML}/input")),
            "input_config_dir": str(path(f"{OPT_ML}/input/config")),
            "output_dir": str(path(f"{OPT_ML}/output")),
            "output_data_dir": str(path(f"{OPT_ML}/output/data")),
            "output_intermediate_dir": str(path(f"{OPT_ML}/output/intermediate")),
            "model_dir": str(path(f"{OPT_ML}/model")),
            "num_cpus": os.cpu_count() or 1,
            "num_gpus": 0,
            "log_level": 20,
            "user_args": to_cmd_args(self.hyperparameters),
        }
        values |= {f"channel_{name}": where for name, where in channel_dirs.items()}
        values |= {f"hp_{name}": value for name, value in self.hyperparameters.items()}
        env = {f"SM_{key.upper()}": _env_value(value) for key, value in values.items()}
        env["SM_TRAINING_ENV"] = json.dumps(
            {k: v for k, v in values.items() if not k.startswith(("channel_", "hp_"))}
            | {"channel_input_dirs": channel_dirs, "job_name": self.job_name},
            sort_keys=True,
        )
        env["TRAINING_JOB_NAME"] = self.job_name
        return env


def resource_config(instance_type: str, instance_count: int) -> dict[str, Any]:
    group = {
        "instance_group_name": "homogeneousCluster",
        "instance_type": instance_type,
        "hosts": [CURRENT_HOST],
    }
    return {
        "current_host": CURRENT_HOST,
        "current_instance_type": instance_type,
        "current_group_name": "homogeneousCluster",
        "hosts": [CURRENT_HOST],
        "instance_groups": [group],
        "network_interface_name": "eth0",
        "requested_instance_count": instance_count,
    }


def algorithm_error(exit_code: int, stderr: str, command: Iterable[str]) -> str:
    """The FailureReason SageMaker reports when a script exits non-zero without a failure file."""
    tail = "\n".join(stderr.strip().splitlines()[-_STDERR_TAIL_LINES:])
    return truncate_reason(
        f"AlgorithmError: ExecuteUserScriptError:\nExitCode {exit_code}\n"
        f'ErrorMessage "{tail}"\nCommand "{" ".join(command)}", exit code: {exit_code}'
    )


def truncate_reason(reason: str) -> str:
    return (
        reason
        if len(reason) <= FAILURE_REASON_LIMIT
        else reason[: FAILURE_REASON_LIMIT - 3] + "..."
    )


def final_metrics(
    definitions: Iterable[Mapping[str, str]], log_text: str
) -> list[tuple[str, float]]:
    """The last value each MetricDefinitions regex captured (group 1) in the job's output."""
    found: list[tuple[str, float]] = []
    for definition in definitions:
        last: float | None = None
        for match in re.finditer(definition["Regex"], log_text):
            try:
                last = float(match.group(1))
            except (IndexError, ValueError):
                continue
        if last is not None:
            found.append((definition["Name"], last))
    return found
