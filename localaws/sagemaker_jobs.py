"""Real compute for SageMaker processing and training jobs in the local engine.

moto records `CreateProcessingJob` / `CreateTrainingJob` and reports them "Completed" at once
with fake output. This extension wraps moto's SageMaker backend so a job is `InProgress` when the
API call returns and its script then runs for real in a background thread, as a subprocess of the
engine's own Python (`sys.executable`). Container images are NOT emulated: the image URI is kept
in the job's description but never pulled; `python`/`python3` entrypoints run on the engine's
interpreter, with its installed packages.

The SageMaker container contract is honoured with `/opt/ml` mapped into a per-job temp directory
(see `_sm_contract`): inputs and channels are downloaded from the emulated S3, processing outputs
and `model.tar.gz` are uploaded after success, `/opt/ml/output/failure` becomes FailureReason,
`MaxRuntimeInSeconds` stops the job. The job's status is always written last, after outputs
exist, so a poller that sees `Completed` can read the artifacts. stdout/stderr are kept
(`job_logs`) and written to CloudWatch Logs (`/aws/sagemaker/{Processing,Training}Jobs`) when the
job ends.

Patched moto internals (checked by the contract test): `SageMakerModelBackend.create_*_job`,
`stop_processing_job`, the `processing_jobs` / `training_jobs` dicts and the `Fake*Job`
attribute names; `SageMakerResponse.create_*_job` (to keep the `Environment` moto drops) and a
new `stop_training_job` action (moto has none).
"""

from __future__ import annotations

import copy
import inspect
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from localaws import _sm_contract as contract
from localaws import _sm_runners as runners

logger = logging.getLogger(__name__)

# SageMaker gives 120 s between SIGTERM and SIGKILL; the engine is impatient on purpose.
STOP_GRACE_SECONDS = 2.0
_DEFAULT_MAX_RUNTIME = 86_400
_POLL_SECONDS = 0.1
_MISSING = object()


@dataclass(frozen=True)
class JobLogs:
    """What a job's process wrote; empty until the process has ended."""

    stdout: str = ""
    stderr: str = ""


@dataclass
class _Run:
    kind: str  # "processing" | "training"
    job: Any
    region: str
    environment: dict[str, str]
    stop_requested: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    process: subprocess.Popen[str] | None = None
    logs: JobLogs = field(default_factory=JobLogs)

    @property
    def name(self) -> str:
        return str(
            self.job.processing_job_name
            if self.kind == "processing"
            else self.job.training_job_name
        )


_runs: dict[str, _Run] = {}  # by job ARN
_runs_lock = threading.Lock()
_pending = threading.local()
_patches: list[tuple[type, str, Any]] = []


def install() -> None:
    """Make SageMaker processing/training jobs run for real. Idempotent."""
    if _patches:
        return
    from moto.sagemaker.models import SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse

    backend, response = SageMakerModelBackend, SageMakerResponse
    _patch(response, "create_processing_job", _keeping_environment(response.create_processing_job))
    _patch(response, "create_training_job", _keeping_environment(response.create_training_job))
    _patch(response, "stop_training_job", _stop_training_job_action)
    _patch(backend, "create_processing_job", _creating("processing", backend.create_processing_job))
    _patch(backend, "create_training_job", _creating("training", backend.create_training_job))
    _patch(backend, "stop_processing_job", _stopping("processing", backend.stop_processing_job))
    _patch(backend, "stop_training_job", _stopping("training", None))


def uninstall(timeout: float = 10.0) -> None:
    """Stop running jobs, then restore moto's original behaviour. Idempotent."""
    with _runs_lock:
        active = list(_runs.values())
    for run in active:
        run.stop_requested.set()
    for run in active:
        if run.thread is not None:
            run.thread.join(timeout)
    while _patches:
        owner, name, original = _patches.pop()
        if original is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, original)
    with _runs_lock:
        _runs.clear()


def job_logs(job_name: str) -> JobLogs:
    """stdout/stderr of the most recent job with this name (processing or training)."""
    with _runs_lock:
        matches = [run for run in _runs.values() if run.name == job_name]
    if not matches:
        raise KeyError(f"no SageMaker job named {job_name!r} ran in this engine")
    return matches[-1].logs


def wait_for_jobs(timeout: float = 60.0) -> None:
    """Block until every job started so far has finished (status set). For tests and CLIs."""
    deadline = time.monotonic() + timeout
    with _runs_lock:
        threads = [run.thread for run in _runs.values() if run.thread is not None]
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            raise TimeoutError(f"SageMaker jobs still running after {timeout} s")


def _patch(owner: type, name: str, replacement: Any) -> None:
    _patches.append((owner, name, owner.__dict__.get(name, _MISSING)))
    setattr(owner, name, replacement)


def _keeping_environment(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Response-layer wrapper: hand the request's `Environment` to the backend wrapper."""

    def wrapper(self: Any) -> Any:
        _pending.environment = dict(self._get_param("Environment") or {})
        try:
            return original(self)
        finally:
            _pending.environment = None

    return wrapper


def _stop_training_job_action(self: Any) -> Any:
    from moto.core.responses import EmptyResult

    self.sagemaker_backend.stop_training_job(self._get_param("TrainingJobName"))
    return EmptyResult()


def _creating(kind: str, original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(self, *args, **kwargs).arguments
        name = arguments[f"{kind}_job_name"]
        _refuse_duplicate(self, kind, name)
        spec = copy.deepcopy(arguments.get("algorithm_specification"))
        job = original(self, *args, **kwargs)
        if kind == "training":
            job.algorithm_specification = spec  # moto overwrites MetricDefinitions
        environment = getattr(_pending, "environment", None) or {}
        _launch(_Run(kind=kind, job=job, region=self.region_name, environment=environment))
        return job

    return wrapper


def _refuse_duplicate(backend: Any, kind: str, name: str) -> None:
    from moto.sagemaker.exceptions import ValidationError

    existing = getattr(backend, f"{kind}_jobs").get(name)
    if existing is not None:
        raise ValidationError(
            message="Job name must be unique within an AWS account and region, and a job with "
            f"this name already exists ({existing.arn})"
        )


def _stopping(kind: str, original: Callable[..., Any] | None) -> Callable[..., Any]:
    def wrapper(self: Any, job_name: str) -> None:
        from moto.sagemaker.exceptions import ValidationError

        job = getattr(self, f"{kind}_jobs").get(job_name)
        with _runs_lock:
            run = _runs.get(job.arn) if job is not None else None
        if run is not None and run.thread is not None and run.thread.is_alive():
            setattr(job, f"{kind}_job_status", "Stopping")
            run.stop_requested.set()
        elif original is not None:
            original(self, job_name)
        elif job is None:
            raise ValidationError(message=f"Could not find {kind} job '{job_name}'.")

    return wrapper


def _launch(run: _Run) -> None:
    runners.mark_started(run.kind, run.job, run.environment)
    with _runs_lock:
        _runs[run.job.arn] = run
    run.thread = threading.Thread(
        target=_execute, args=(run,), name=f"sagemaker-{run.kind}-{run.name}", daemon=True
    )
    run.thread.start()


def _execute(run: _Run) -> None:
    """The job's life: set up /opt/ml, run, publish outputs and logs, and only then the status."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"sagemaker-{run.name}-") as tmp:
        status, reason = _outcome(run, contract.JobTree(Path(tmp) / "opt" / "ml"))
    _publish_logs(run)
    runners.finish(run.kind, run.job, status, reason, started)


def _outcome(run: _Run, tree: contract.JobTree) -> tuple[str, str | None]:
    """(status, FailureReason) of running the job in `tree`; outputs are uploaded on success."""
    s3 = _client("s3", run.region)
    tree.make_standard_dirs()
    try:
        command, env, cwd = runners.prepare(run.kind, run.job, tree, s3)
        runners.mark_running(run.kind, run.job)
        exit_code, why_stopped = _run_process(run, command, env | run.environment, cwd)
        runners.record_metrics(run.kind, run.job, run.logs.stdout + run.logs.stderr)
        if why_stopped is not None:
            return "Stopped", why_stopped
        if exit_code != 0:
            failure = tree.failure_file_text()
            return "Failed", failure or contract.algorithm_error(
                exit_code, run.logs.stderr, command
            )
        runners.publish_outputs(run.kind, run.job, tree, s3)
        return "Completed", None
    except contract.JobSetupError as error:
        return "Failed", f"ClientError: {error}"
    except Exception as error:
        logger.exception("SageMaker %s job %s crashed in the engine", run.kind, run.name)
        return "Failed", f"InternalServerError: {type(error).__name__}: {error}"


def _run_process(
    run: _Run, command: list[str], env: dict[str, str], cwd: Path
) -> tuple[int, str | None]:
    """Run until exit, MaxRuntimeInSeconds or a stop request -> (exit code, stop reason)."""
    limit = float(
        (run.job.stopping_condition or {}).get("MaxRuntimeInSeconds", _DEFAULT_MAX_RUNTIME)
    )
    deadline = time.monotonic() + limit
    logger.info("SageMaker %s job %s: %s", run.kind, run.name, " ".join(command))
    process = subprocess.Popen(
        command, cwd=cwd, env=env, text=True, errors="replace",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    run.process = process
    why_stopped: str | None = None
    while True:
        try:
            stdout, stderr = process.communicate(timeout=_POLL_SECONDS)
            break
        except subprocess.TimeoutExpired:
            if run.stop_requested.is_set():
                why_stopped = "Stopped: the job was stopped by a StopJob request"
            elif time.monotonic() >= deadline:
                why_stopped = (
                    f"MaxRuntimeExceeded: the job exceeded MaxRuntimeInSeconds={limit:g} "
                    "and was stopped"
                )
            if why_stopped is not None:
                _terminate(process)
                stdout, stderr = process.communicate()
                break
    run.logs = JobLogs(stdout=stdout, stderr=stderr)
    return process.returncode, why_stopped


def _terminate(process: subprocess.Popen[str]) -> None:
    """SIGTERM the job's process group, then SIGKILL it after the grace period."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_SECONDS), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        if wait is None:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _client(service: str, region: str) -> Any:
    """A client for the emulator, reached the way moto's own integrations reach it."""
    from moto.settings import moto_server_port

    return boto3.client(
        service,
        region_name=region,
        endpoint_url=f"http://localhost:{moto_server_port()}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - emulator credentials
    )


def _publish_logs(run: _Run) -> None:
    """Write the job's output to CloudWatch Logs as SageMaker does (best effort)."""
    group = f"/aws/sagemaker/{'ProcessingJobs' if run.kind == 'processing' else 'TrainingJobs'}"
    stream = f"{run.name}/{contract.CURRENT_HOST}-{int(time.time())}"
    lines = (run.logs.stdout + run.logs.stderr).splitlines() or ["(no output)"]
    now_ms = int(time.time() * 1000)
    try:
        logs = _client("logs", run.region)
        try:
            logs.create_log_group(logGroupName=group)
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        for start in range(0, len(lines), 5_000):
            events = [
                {"timestamp": now_ms, "message": line} for line in lines[start : start + 5_000]
            ]
            logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)
    except Exception:
        logger.warning("could not write logs of SageMaker job %s to CloudWatch", run.name)
