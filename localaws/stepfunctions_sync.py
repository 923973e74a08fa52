"""Step Functions `.sync` for SageMaker processing and training jobs in the local engine.

moto's interpreter routes every `arn:aws:states:::sagemaker:*` resource to
`StateTaskServiceUnsupported`, which only knows `.waitForTaskToken`; `.sync` fails with
"Unsupported sync callback procedure". This extension registers a SageMaker task service that:

- forwards the request (`Parameters`, after moto resolved `.$` paths) to the SageMaker API,
  like AWS's optimised integration -- request/response for any SageMaker action;
- for `createProcessingJob.sync` / `createTrainingJob.sync` (and `createTransformJob.sync`) polls
  the matching Describe* call until the job is terminal. `Completed` -> the task's result is the
  Describe* output, timestamps as epoch milliseconds like Step Functions renders them (moto's
  `describe_execution` cannot serialise datetimes). `Failed`/`Stopped` -> the task fails with
  `States.TaskFailed` and a Cause that is the Describe* output as JSON (so it carries
  `FailureReason`), which `Catch`/`Retry` see like any task failure;
- fails the task with `States.Timeout` when `TimeoutSeconds` elapses (moto's state timeout ends
  the poll) and then stops the job, as Step Functions does for `.sync` jobs;
- does not use moto's `_eval_integration_pattern`, whose `finally` calls
  `callback_endpoint.interrupt_all()` on a `None` endpoint for any integration that does not
  support `.waitForTaskToken` (moto 5.2.5; it breaks moto's own Glue/Batch `.sync` too).

`HeartbeatSeconds` is accepted and ignored on these tasks: nothing sends heartbeats for a `.sync`
job. API errors fail the task as `SageMaker.AmazonSageMakerException` with the service message.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Final

POLL_SECONDS: Final = 0.2
# create action -> (describe action, name parameter, status field, stop action)
SYNC_JOBS: Final[dict[str, tuple[str, str, str, str]]] = {
    "createProcessingJob": (
        "describe_processing_job", "ProcessingJobName", "ProcessingJobStatus", "stop_processing_job"
    ),
    "createTrainingJob": (
        "describe_training_job", "TrainingJobName", "TrainingJobStatus", "stop_training_job"
    ),
    "createTransformJob": (
        "describe_transform_job", "TransformJobName", "TransformJobStatus", "stop_transform_job"
    ),
}  # fmt: skip
FAILED_STATUSES: Final = frozenset({"Failed", "Stopped"})

# The name moto's state-task factory module binds and calls for every service resource.
_FACTORY: Final = "state_task_service_for"
_installed: dict[str, Any] = {}


def install() -> None:
    """Route `sagemaker` task resources to the `.sync`-capable service. Idempotent."""
    if _installed:
        return
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import (
        state_task_factory,
    )

    from localaws._sfn_sagemaker_task import StateTaskServiceSageMaker

    namespace = vars(state_task_factory)
    original = namespace[_FACTORY]

    def state_task_service_for(service_name: str) -> Any:
        if service_name == "sagemaker":
            return StateTaskServiceSageMaker()
        return original(service_name=service_name)

    _installed["original"] = original
    namespace[_FACTORY] = state_task_service_for


def uninstall() -> None:
    """Restore moto's factory. State machines parsed afterwards use moto's behaviour."""
    if not _installed:
        return
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import (
        state_task_factory,
    )

    vars(state_task_factory)[_FACTORY] = _installed.pop("original")


def to_state_json(value: Any) -> Any:
    """Step Functions' rendering of an API response: timestamps become epoch milliseconds."""
    if isinstance(value, dict):
        return {key: to_state_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_state_json(item) for item in value]
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, date):
        return value.isoformat()
    return value
