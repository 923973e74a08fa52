"""How a training run ended, in words a data scientist can act on; free of AWS.

A failed step reaches the recorder as Step Functions' caught error `{"Error", "Cause"}`. The
Cause is whatever the failing integration produced, so the useful sentence is dug out of it:

- SageMaker `.sync` tasks fail with the job's Describe* output as JSON; its `FailureReason`
  is what the job's script wrote to its failure file;
- `lambda:invoke` tasks fail with the function's error payload as JSON (`errorType`,
  `errorMessage`);
- anything else (timeouts, API errors) is shown as Error and Cause, cut to `MAX_REASON`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

MAX_REASON = 1000
MAX_SUBJECT = 99  # SNS: "less than 100 characters"
_JOB_NAME_KEYS = ("TrainingJobName", "ProcessingJobName", "TransformJobName")
_JOB_STATUS_KEYS = ("TrainingJobStatus", "ProcessingJobStatus", "TransformJobStatus")


def truncate(text: str, limit: int = MAX_REASON) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _job_failure(cause: Mapping[str, Any]) -> str | None:
    name = next((str(cause[k]) for k in _JOB_NAME_KEYS if cause.get(k)), None)
    if name is None:
        return None
    status = next((str(cause[k]) for k in _JOB_STATUS_KEYS if cause.get(k)), "failed")
    return f"{name}: {cause.get('FailureReason') or f'status {status}, no FailureReason'}"


def _lambda_failure(cause: Mapping[str, Any], error_name: str) -> str | None:
    if "errorMessage" not in cause and "errorType" not in cause:
        return None
    kind = cause.get("errorType") or error_name
    return f"{kind}: {cause.get('errorMessage') or 'no message'}"


def failure_reason(error: Mapping[str, Any] | None, failed_step: str | None) -> str:
    """`step <name> failed: <what went wrong>`, at most MAX_REASON characters."""
    prefix = f"step {failed_step} failed" if failed_step else "the workflow failed"
    if not error:
        return f"{prefix} (no error details were passed)"
    name = str(error.get("Error") or "unknown error")
    cause_text = str(error.get("Cause") or "")
    cause = _json_object(cause_text)
    detail = (_job_failure(cause) or _lambda_failure(cause, name)) if cause else None
    if detail is None:
        detail = f"{name}: {cause_text}" if cause_text else name
    return truncate(f"{prefix}: {detail}")


def run_reason(
    status: str,
    *,
    reason: str | None,
    error: Mapping[str, Any] | None,
    failed_step: str | None,
    model_package_arn: str | None,
) -> str:
    """The runs-table reason for a terminal workflow status."""
    if status == "SUCCEEDED":
        return f"registered {model_package_arn}"
    if status == "GATED_OUT":
        return truncate(reason or "the model did not pass the evaluation gate")
    if error is None and reason:
        return truncate(reason)
    return failure_reason(error, failed_step)


def subject(model_name: str, status: str) -> str:
    """SNS subject: ASCII printable, one line, under 100 characters."""
    text = f"[mlops] {model_name} run {status}"
    printable = "".join(c if " " <= c <= "~" else "?" for c in text)
    return truncate(printable, MAX_SUBJECT)


def console_links(execution_arn: str | None, model_package_arn: str | None) -> dict[str, str]:
    """ARNs plus the Step Functions console page of the execution (commercial partition)."""
    links: dict[str, str] = {}
    if execution_arn:
        links["execution_arn"] = execution_arn
        parts = execution_arn.split(":")
        if len(parts) > 3 and parts[1] == "aws" and parts[3]:
            region = parts[3]
            links["execution_console"] = (
                f"https://{region}.console.aws.amazon.com/states/home?region={region}"
                f"#/v2/executions/details/{execution_arn}"
            )
    if model_package_arn:
        links["model_package_arn"] = model_package_arn
    return links


def notification(
    *,
    run_id: str,
    model_name: str,
    status: str,
    reason: str,
    links: Mapping[str, str],
    failed_step: str | None = None,
) -> tuple[str, str]:
    """(subject, message) of the run's notification; the message is JSON."""
    message: dict[str, Any] = {
        "run_id": run_id,
        "model": model_name,
        "status": status,
        "reason": reason,
        "links": dict(links),
        "details": f"mlops runs show {run_id}",
    }
    if failed_step:
        message["failed_step"] = failed_step
    return subject(model_name, status), json.dumps(message, sort_keys=True)
