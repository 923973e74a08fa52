"""The two kinds of SageMaker job: how each is prepared, published and described.

`sagemaker_jobs` owns threads and processes; this module owns what differs between a processing
job (entrypoint + arguments, `ProcessingInputs`/`ProcessingOutputConfig`) and a training job
(script mode, channels, hyperparameters, `model.tar.gz`, metrics, secondary statuses), and the
moto job attributes each one updates. Attribute names are moto's (`Fake*Job.__dict__` becomes
the Describe* response), so a rename in moto breaks here -- the contract test watches them.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from localaws import _sm_contract as contract
from localaws._sm_contract import JobSetupError, JobTree

_INTERPRETER = re.compile(r"python(\d+(\.\d+)?)?")


def mark_started(kind: str, job: Any, environment: dict[str, str]) -> None:
    """Replace moto's instant "Completed" with the state of a job that was just accepted."""
    from moto.core.utils import utcnow

    now = utcnow()
    job.environment = environment or None
    job.failure_reason = None
    job.last_modified_time = now
    if kind == "processing":
        job.processing_start_time = None
        job.processing_end_time = None
        job.processing_job_status = "InProgress"
        return
    job.model_artifacts = None
    job.final_metric_data_list = None
    job.training_start_time = None
    job.training_end_time = None
    job.secondary_status_transitions = []
    _transition(job, "Starting", "Starting the training job")
    job.training_job_status = "InProgress"


def mark_running(kind: str, job: Any) -> None:
    from moto.core.utils import utcnow

    if kind == "processing":
        job.processing_start_time = utcnow()
        return
    job.training_start_time = utcnow()
    _transition(job, "Training", "Training in progress (engine interpreter; image not pulled)")


def prepare(kind: str, job: Any, tree: JobTree, s3: Any) -> tuple[list[str], dict[str, str], Path]:
    """Download inputs and return (command, environment, working directory)."""
    if kind == "processing":
        return _prepare_processing(job, tree, s3)
    return _prepare_training(job, tree, s3)


def publish_outputs(kind: str, job: Any, tree: JobTree, s3: Any) -> None:
    """Upload what a successful job produced (EndOfJob semantics)."""
    if kind == "processing":
        for output in (job.processing_output_config or {}).get("Outputs", []):
            target = output["S3Output"]
            contract.upload_tree(s3, tree.path(target["LocalPath"]), target["S3Uri"])
        return
    _transition(job, "Uploading", "Uploading generated training model")
    base = f"{job.output_data_config['S3OutputPath'].rstrip('/')}/{job.training_job_name}/output"
    for source, name in (
        ("/opt/ml/model", "model.tar.gz"),
        ("/opt/ml/output/data", "output.tar.gz"),
    ):
        directory = tree.path(source)
        if name == "output.tar.gz" and not any(directory.iterdir()):
            continue
        archive = tree.root.parent / name
        contract.tar_directory(directory, archive)
        bucket, key = contract.split_s3_uri(f"{base}/{name}")
        s3.upload_file(str(archive), bucket, key)
    job.model_artifacts = {"S3ModelArtifacts": f"{base}/model.tar.gz"}


def record_metrics(kind: str, job: Any, log_text: str) -> None:
    """Apply AlgorithmSpecification.MetricDefinitions to the job's output (training only)."""
    if kind != "training":
        return
    from moto.core.utils import utcnow

    definitions = (job.algorithm_specification or {}).get("MetricDefinitions") or []
    found = contract.final_metrics(definitions, log_text)
    now = utcnow()
    job.final_metric_data_list = [
        {"MetricName": name, "Value": value, "Timestamp": now} for name, value in found
    ] or None


def finish(kind: str, job: Any, status: str, reason: str | None, started: float) -> None:
    """Record the outcome. The status is written last: pollers may act on it immediately."""
    from moto.core.utils import utcnow

    now = utcnow()
    job.failure_reason = contract.truncate_reason(reason) if reason else None
    job.last_modified_time = now
    if kind == "processing":
        job.processing_end_time = now
        job.processing_job_status = status
        return
    seconds = max(1, round(time.monotonic() - started))
    job.training_end_time = now
    job.training_time_in_seconds = seconds
    job.billable_time_in_seconds = seconds
    secondary = status
    if status == "Stopped" and (reason or "").startswith("MaxRuntimeExceeded"):
        secondary = "MaxRuntimeExceeded"
    _transition(job, secondary, reason or "Training job completed", terminal=True)
    job.training_job_status = status


def _transition(job: Any, status: str, message: str, terminal: bool = False) -> None:
    from moto.core.utils import utcnow

    now = utcnow()
    transitions: list[dict[str, Any]] = job.secondary_status_transitions
    if transitions:
        transitions[-1]["EndTime"] = now
    entry: dict[str, Any] = {"Status": status, "StartTime": now, "StatusMessage": message}
    if terminal:
        entry["EndTime"] = now
    transitions.append(entry)
    job.secondary_status = status


def _base_env(job: Any, tree: JobTree) -> dict[str, str]:
    """The interpreter's environment plus the job's region and the failure-file location.

    A container's scripts write `/opt/ml/output/failure`; here `/opt/ml` is a temp dir a
    script cannot guess, so its mapped path is exported as `SM_OUTPUT_FAILURE` (scripts read
    it first and fall back to the fixed container path, which is what runs on AWS).
    """
    region = str(job.arn).split(":")[3]
    (tree.root / "output").mkdir(parents=True, exist_ok=True)
    return os.environ.copy() | {
        "PYTHONUNBUFFERED": "1",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "SM_OUTPUT_FAILURE": str(tree.root / "output" / "failure"),
    }


def _interpreter(program: str, tree: JobTree) -> str:
    """`python`/`python3`/`python3.x` (bare or absolute) run on the engine's interpreter."""
    if _INTERPRETER.fullmatch(Path(program).name):
        return sys.executable
    return tree.rewrite(program)


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, default=str))


def _prepare_processing(job: Any, tree: JobTree, s3: Any) -> tuple[list[str], dict[str, str], Path]:
    app = job.app_specification or {}
    entrypoint = list(app.get("ContainerEntrypoint") or [])
    if not entrypoint:
        raise JobSetupError(
            "AppSpecification.ContainerEntrypoint is required: the engine does not run the image "
            f"{app.get('ImageUri')!r}, so it has no default entrypoint"
        )
    for item in job.processing_inputs or []:
        source = item.get("S3Input")
        if source is None or source.get("S3DataType", "S3Prefix") != "S3Prefix":
            raise JobSetupError(
                f"input {item.get('InputName')!r}: only S3Input/S3Prefix is supported"
            )
        contract.download_prefix(s3, source["S3Uri"], tree.path(source["LocalPath"]))
    for output in (job.processing_output_config or {}).get("Outputs", []):
        if "S3Output" not in output:
            raise JobSetupError(f"output {output.get('OutputName')!r}: only S3Output is supported")
        tree.path(output["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
    _write_json(
        tree.path("/opt/ml/config/processingjobconfig.json"),
        {
            "ProcessingJobArn": job.arn,
            "ProcessingJobName": job.processing_job_name,
            "AppSpecification": app,
            "Environment": job.environment or {},
            "ProcessingInputs": job.processing_inputs or [],
            "ProcessingOutputConfig": job.processing_output_config or {},
            "RoleArn": job.role_arn,
            "StoppingCondition": job.stopping_condition or {},
        },
    )
    _write_json(
        tree.path("/opt/ml/config/resourceconfig.json"),
        {"current_host": contract.CURRENT_HOST, "hosts": [contract.CURRENT_HOST]},
    )
    arguments = entrypoint[1:] + list(app.get("ContainerArguments") or [])
    command = [_interpreter(entrypoint[0], tree), *(tree.rewrite(a) for a in arguments)]
    return command, _base_env(job, tree), tree.root


def _prepare_training(job: Any, tree: JobTree, s3: Any) -> tuple[list[str], dict[str, str], Path]:
    _transition(job, "Downloading", "Downloading input data")
    spec = job.algorithm_specification or {}
    user_hps, framework = contract.split_framework_params(
        contract.decode_hyperparameters(job.hyper_parameters)
    )
    program = str(framework.get("sagemaker_program") or "")
    submit = str(framework.get("sagemaker_submit_directory") or "")
    resources = job.resource_config or {}
    layout = contract.TrainingLayout(
        tree=tree,
        job_name=job.training_job_name,
        channels=_download_channels(job, tree, s3, spec.get("TrainingInputMode", "File")),
        hyperparameters=user_hps,
        framework_params=framework,
        resource_config=contract.resource_config(
            resources.get("InstanceType", "local"), int(resources.get("InstanceCount", 1))
        ),
        entry_point=program,
        module_dir=submit,
    )
    layout.write_config_files(job.hyper_parameters)
    env = _base_env(job, tree) | layout.environ()
    code = tree.path("/opt/ml/code")
    if spec.get("ContainerEntrypoint"):
        entry = list(spec["ContainerEntrypoint"]) + list(spec.get("ContainerArguments") or [])
        return [_interpreter(entry[0], tree), *(tree.rewrite(a) for a in entry[1:])], env, code
    if not program:
        raise JobSetupError(
            "the engine runs training jobs in script mode only (hyperparameter sagemaker_program, "
            "or AlgorithmSpecification.ContainerEntrypoint); the image "
            f"{spec.get('TrainingImage')!r} is not emulated"
        )
    if submit:
        _fetch_code(s3, submit, code)
    if program.endswith(".py"):
        if not (code / program).is_file():
            raise JobSetupError(f"entry point {program!r} not found in {submit or 'the code'}")
        runner = [sys.executable, program]
    else:
        runner = [sys.executable, "-m", program]
    return [*runner, *contract.to_cmd_args(user_hps)], env, code


def _download_channels(job: Any, tree: JobTree, s3: Any, mode: str) -> dict[str, dict[str, str]]:
    channels: dict[str, dict[str, str]] = {}
    for channel in job.input_data_config or []:
        name = channel["ChannelName"]
        source = (channel.get("DataSource") or {}).get("S3DataSource")
        if source is None or source.get("S3DataType", "S3Prefix") != "S3Prefix":
            raise JobSetupError(f"channel {name!r}: only S3DataSource/S3Prefix is supported")
        contract.download_prefix(s3, source["S3Uri"], tree.path(f"/opt/ml/input/data/{name}"))
        described = {
            "TrainingInputMode": channel.get("InputMode", mode),
            "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
        }
        if "ContentType" in channel:
            described["ContentType"] = channel["ContentType"]
        channels[name] = described
    return channels


def _fetch_code(s3: Any, uri: str, code: Path) -> None:
    """Extract `sagemaker_submit_directory` (an s3:// tar.gz) into /opt/ml/code."""
    if not uri.startswith("s3://"):
        raise JobSetupError(f"sagemaker_submit_directory must be an s3:// URI, got {uri!r}")
    bucket, key = contract.split_s3_uri(uri)
    archive = code.parent / "sourcedir.tar.gz"
    try:
        s3.download_file(bucket, key, str(archive))
    except Exception as error:
        raise JobSetupError(f"cannot download sagemaker_submit_directory {uri}: {error}") from error
    contract.extract_archive(archive, code)
    archive.unlink()
