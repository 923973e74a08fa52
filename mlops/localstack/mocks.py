"""The Step Functions mock configuration for the training workflow, from its deployed definition.

LocalStack runs an execution started on ``<state machine ARN>#<test case>`` with each task of
that test case answered by a mocked response instead of calling the service. The file is
read at every such execution (``SFN_MOCK_CONFIG``), so it is written after the deployment,
when the state machine's generated name is known.

Every task state of the definition is mocked, named after what it stands for:

* SageMaker processing and training jobs return a completed job description (what ``.sync``
  returns), so the definition's ``ResultSelector`` paths are exercised as on AWS;
* Lambda tasks (gate, register, run recorder) return what those handlers return.

Test cases: ``HappyPath`` (the gate passes, the version is registered), ``GatedOut`` (the gate
refuses it) and ``TrainingFails`` (the training job fails; the run is recorded as failed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CASES = ("HappyPath", "GatedOut", "TrainingFails")
MODEL_PACKAGE_ARN = "arn:aws:sagemaker:{region}:000000000000:model-package/{group}/1"


def task_states(definition: dict[str, Any]) -> dict[str, str]:
    """Every Task state (also inside Parallel and Map branches) -> its resource."""
    found: dict[str, str] = {}

    def visit(states: dict[str, Any]) -> None:
        for name, state in states.items():
            if state.get("Type") == "Task":
                found[name] = state["Resource"]
            for branch in state.get("Branches", []):
                visit(branch["States"])
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if processor:
                visit(processor["States"])

    visit(definition["States"])
    return found


def _kind(resource: str) -> str:
    if ":sagemaker:createTrainingJob" in resource:
        return "training-job"
    if ":sagemaker:" in resource:
        return "processing-job"
    if resource.startswith("arn:aws:lambda:") or ":states:::lambda:invoke" in resource:
        return "lambda"
    raise ValueError(f"no mocked response for a task on {resource}")


def _job(state: str, kind: str) -> dict[str, Any]:
    name = f"mock-{state.lower()}"
    if kind == "training-job":
        return {
            "TrainingJobName": name,
            "TrainingJobStatus": "Completed",
            "ModelArtifacts": {"S3ModelArtifacts": f"s3://mock-artifacts/{name}/model.tar.gz"},
        }
    return {"ProcessingJobName": name, "ProcessingJobStatus": "Completed"}


def _lambda(state: str, *, passed: bool, region: str) -> dict[str, Any]:
    if state == "Gate":
        return {
            "passed": passed,
            "reason": "auc 0.82 >= threshold 0.7" if passed else "auc 0.61 < threshold 0.7",
            "metric": {"name": "auc", "value": 0.82 if passed else 0.61},
            "champion": None,
            "improvement": None,
            "metrics": {"auc": 0.82 if passed else 0.61},
        }
    if state == "Register":
        arn = MODEL_PACKAGE_ARN.format(region=region, group="mock-model")
        return {"model_package_arn": arn, "version": 1, "approval_status": "PendingManualApproval"}
    if state.startswith("Record"):
        return {"recorded": True, "reason": f"{state} (mocked)"}
    return {}


def build_mock_config(
    state_machine_name: str, definition: dict[str, Any], *, region: str
) -> dict[str, Any]:
    """The mock configuration (LocalStack's ``SFN_MOCK_CONFIG`` format) for one workflow."""
    tasks = {name: _kind(resource) for name, resource in task_states(definition).items()}
    responses: dict[str, Any] = {}
    cases: dict[str, dict[str, str]] = {case: {} for case in CASES}
    for case in CASES:
        for state, kind in tasks.items():
            key = f"{state_machine_name}-{case}-{state}"
            if kind == "lambda":
                # Lambda mocks are Invoke responses, also for function-ARN tasks (whose
                # result is the payload, as LocalStack unwraps it like the real call).
                payload = _lambda(state, passed=case != "GatedOut", region=region)
                answer: dict[str, Any] = {"Return": {"StatusCode": 200, "Payload": payload}}
            elif case == "TrainingFails" and kind == "training-job":
                cause = "AlgorithmError: training script exited with 1"
                answer = {"Throw": {"Error": "States.TaskFailed", "Cause": cause}}
            else:
                answer = {"Return": _job(state, kind)}
            responses[key] = {"0": answer}
            cases[case][state] = key
    return {
        "StateMachines": {state_machine_name: {"TestCases": cases}},
        "MockedResponses": responses,
    }


def write_mock_config(path: Path, config: dict[str, Any]) -> Path:
    """Write `config`, merged over the state machines already in the file at `path`."""
    existing: dict[str, Any] = {"StateMachines": {}, "MockedResponses": {}}
    if path.is_file():
        existing = json.loads(path.read_text())
    existing["StateMachines"].update(config["StateMachines"])
    existing["MockedResponses"].update(config["MockedResponses"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(existing, indent=1, sort_keys=True) + "\n")
    return path
