"""The events AWS emits and delivers that moto 5.2.5 does not.

* EventBridge -> **Lambda / Step Functions targets**: moto's ``Rule.send_to_targets`` raises
  NotImplementedError for both (skipping every later target of the rule). Lambda targets are
  invoked asynchronously through ``lambda_runtime``; state machines get a StartExecution.
  ``Input``, ``InputPath`` and ``InputTransformer`` are honoured. A failed delivery (missing
  function or state machine: not retriable, so ``RetryPolicy`` never applies) goes to the
  target's ``DeadLetterConfig`` queue with AWS's ``RULE_ARN``/``TARGET_ARN``/``ERROR_CODE``/
  ``ERROR_MESSAGE`` attributes. Other target types keep moto's delivery.
* **S3 -> EventBridge / Lambda / SQS / SNS** with the documented shapes (moto's EventBridge
  detail is its own, goes to every bus, and S3 -> Lambda runs synchronously inside the S3
  request and swallows errors; AWS invokes asynchronously).
* **SageMaker "Model Package State Change"** on every CreateModelPackage and
  UpdateModelPackage (detail = DescribeModelPackage, datetimes as ISO-8601 as in AWS's
  example). An update that keeps the approval status still emits, so a rule on
  ``ModelApprovalStatus: [Approved]`` can fire again: consumers must be idempotent.
* **Step Functions "Execution Status Change"** on start (RUNNING) and on the terminal status.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import secrets
import string
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from localaws import lambda_runtime

LOGGER = logging.getLogger(__name__)
# Patched attribute name -> moto's original; every patched name is unique across owners.
_originals: dict[str, Any] = {}
_sequencer_lock = threading.Lock()
_last_sequencer = 0


def put_aws_event(
    account_id: str, region: str, source: str, detail_type: str, detail: Any, resources: list[str]
) -> None:
    """Put a service event on the default bus, as the AWS service itself does."""
    from moto.events.models import events_backends

    entry = {
        "Source": source,
        "DetailType": detail_type,
        "Detail": json.dumps(detail),
        "Resources": resources,
        "EventBusName": "default",
    }
    results = events_backends[account_id][region].put_events([entry])
    if results and "ErrorCode" in results[0]:
        LOGGER.warning("EventBridge refused the %s event: %s", detail_type, results[0])


# -- EventBridge targets --------------------------------------------------------------------------
def _send_to_targets(
    rule: Any, original_event: dict[str, Any], transform_input: bool = True
) -> None:
    """Replacement for ``Rule.send_to_targets`` delivering Lambda and Step Functions targets."""
    if not rule.event_pattern.matches_event(original_event):
        return
    others = []
    for target in rule.targets:
        if target["Arn"].split(":")[2] in ("lambda", "states"):
            _deliver(rule, target, original_event)
        else:
            others.append(target)
    if others:
        subset = copy.copy(rule)
        subset.targets = others
        try:
            _originals["send_to_targets"](subset, original_event, transform_input)
        except NotImplementedError:
            LOGGER.warning("rule %s has a target type the emulator does not deliver", rule.name)


def _deliver(rule: Any, target: dict[str, Any], event: dict[str, Any]) -> None:
    envelope = aws_envelope(event)
    arn = target["Arn"]
    _, _, service, region, account, _ = arn.split(":", 5)
    try:
        payload = target_input(target, envelope, rule.arn, rule.name)
        if service == "lambda":
            lambda_runtime.invoke_async(account, region, arn, payload)
        else:
            from moto.stepfunctions.responses import get_backend

            get_backend(account, region).start_execution(
                arn, str(uuid.uuid4()), json.dumps(payload)
            )
    except Exception as exc:
        LOGGER.warning("EventBridge could not deliver to %s: %s", arn, exc)
        _dead_letter(rule.arn, target, envelope, exc)


def aws_envelope(event: dict[str, Any]) -> dict[str, Any]:
    """The event as AWS delivers it: ISO time, no moto bookkeeping fields."""
    envelope = {k: v for k, v in event.items() if k != "ingestion-time"}
    if isinstance(envelope.get("time"), int | float):
        envelope["time"] = datetime.fromtimestamp(envelope["time"], UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
    return envelope


def target_input(
    target: dict[str, Any], event: dict[str, Any], rule_arn: str, rule_name: str
) -> Any:
    """What the target receives: the event, ``Input``, ``InputPath`` or ``InputTransformer``."""
    if "Input" in target:
        return json.loads(target["Input"])
    if "InputPath" in target:
        return json_path(event, target["InputPath"])
    transformer = target.get("InputTransformer")
    if not transformer:
        return event
    values: dict[str, Any] = {
        name: json_path(event, path) for name, path in transformer.get("InputPathsMap", {}).items()
    }
    values.update(
        {
            "aws.events.rule-arn": rule_arn,
            "aws.events.rule-name": rule_name,
            "aws.events.event.json": event,
            "aws.events.event.ingestion-time": event.get("time"),
        }
    )
    text = _fill_template(transformer["InputTemplate"], values)
    try:
        return json.loads(text)
    except ValueError:
        return text


def json_path(document: Any, path: str) -> Any:
    """The subset of JSONPath EventBridge accepts: ``$.a.b``, ``$.a[0]``; None when absent."""
    value = document
    for name, index in re.findall(r"\.([^.\[\]]+)|\[(\d+)\]", path.removeprefix("$")):
        if name and isinstance(value, dict):
            value = value.get(name)
        elif index and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            return None
    return value


def _fill_template(template: str, values: dict[str, Any]) -> str:
    """Replace ``<name>``: inside a JSON string as escaped text, elsewhere as a JSON value."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        value = values[name]
        before = template[: match.start()].replace('\\"', "")
        if before.count('"') % 2 == 1:
            text = value if isinstance(value, str) else json.dumps(value)
            return "" if value is None else json.dumps(text)[1:-1]
        return json.dumps(value)

    return re.sub(r"<([A-Za-z0-9_.\-]+)>", replace, template)


def _dead_letter(rule_arn: str, target: dict[str, Any], event: Any, exc: Exception) -> None:
    queue_arn = target.get("DeadLetterConfig", {}).get("Arn")
    if not queue_arn:
        return
    from moto.sqs.models import sqs_backends

    _, _, _, region, account, queue_name = queue_arn.split(":", 5)
    attributes = {
        "RULE_ARN": rule_arn,
        "TARGET_ARN": target["Arn"],
        "ERROR_CODE": type(exc).__name__,
        "ERROR_MESSAGE": str(exc)[:256] or type(exc).__name__,
    }
    sqs_backends[account][region].send_message(
        queue_name,
        json.dumps(event),
        message_attributes={
            k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
        },
    )


# -- S3 --------------------------------------------------------------------------------------------
_S3_REASONS = {
    "s3:ObjectCreated:Put": "PutObject",
    "s3:ObjectCreated:Post": "POST Object",
    "s3:ObjectCreated:Copy": "CopyObject",
    "s3:ObjectCreated:CompleteMultipartUpload": "CompleteMultipartUpload",
    "s3:ObjectRemoved:Delete": "DeleteObject",
    "s3:ObjectRemoved:DeleteMarkerCreated": "DeleteObject",
}


def _sequencer() -> str:
    """Increasing hexadecimal sequencers, as S3 issues per key."""
    global _last_sequencer
    with _sequencer_lock:
        _last_sequencer = max(_last_sequencer + 1, time.time_ns())
        return f"{_last_sequencer:018X}"


def _request_id() -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16))


def _version_id(key: Any) -> str | None:
    version = getattr(key, "version_id", None)
    return None if version in (None, "null") else str(version)


def _s3_to_eventbridge(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
    """Replacement for ``moto.s3.notifications._send_event_bridge_message``."""
    from moto.s3 import notifications

    try:
        detail_type = notifications._detail_type(event_name)
        obj: dict[str, Any] = {"key": key.name}
        if detail_type != "Object Deleted":
            obj.update(size=key.size, etag=key.etag.strip('"'))
        if version := _version_id(key):
            obj["version-id"] = version
        obj["sequencer"] = _sequencer()
        detail: dict[str, Any] = {
            "version": "0",
            "bucket": {"name": bucket.name},
            "object": obj,
            "request-id": _request_id(),
            "requester": account_id,
            "source-ip-address": "127.0.0.1",
        }
        if event_name in _S3_REASONS:
            detail["reason"] = _S3_REASONS[event_name]
        if detail_type == "Object Deleted":
            marker = event_name.endswith("DeleteMarkerCreated")
            detail["deletion-type"] = "Delete Marker Created" if marker else "Permanently Deleted"
        put_aws_event(account_id, bucket.region_name, "aws.s3", detail_type, detail, [bucket.arn])
    except Exception:  # S3 notifications are asynchronous: the S3 call itself never fails
        LOGGER.exception("could not send the S3 %s event of %s", event_name, bucket.name)


def _s3_send_event(account_id: str, event_name: str, bucket: Any, key: Any) -> None:
    """Replacement for ``moto.s3.notifications.send_event`` dropping events AWS never sends.

    moto stores a completed multipart upload with ``put_object`` (announcing a PutObject before
    its own CompleteMultipartUpload event) and tags every new object through
    ``put_object_tagging`` (announcing "Object Tags Added" for untagged PutObject calls).
    """
    if event_name == "s3:ObjectCreated:Put" and getattr(key, "multipart", None) is not None:
        return
    if event_name == "s3:ObjectTagging:Put" and not _object_tags(account_id, bucket, key):
        return
    _originals["send_event"](account_id, event_name, bucket, key)


def _object_tags(account_id: str, bucket: Any, key: Any) -> list[Any]:
    from moto.s3.models import s3_backends
    from moto.utilities.utils import get_partition

    backend = s3_backends[account_id][get_partition(bucket.region_name)]
    tags: list[Any] = backend.tagger.list_tags_for_resource(key.arn)["Tags"]
    return tags


def _s3_record(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
    """Replacement for ``moto.s3.notifications._get_s3_event``: the documented record."""
    obj: dict[str, Any] = {"key": quote_plus(key.name, safe="/")}
    if "ObjectRemoved" not in event_name:
        obj.update(size=key.size, eTag=key.etag.strip('"'))
    if version := _version_id(key):
        obj["versionId"] = version
    obj["sequencer"] = _sequencer()
    principal = f"AWS:{bucket.account_id}"
    now = datetime.now(UTC)
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": bucket.region_name,
        "eventTime": f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond // 1000:03d}Z",
        "eventName": event_name.removeprefix("s3:"),
        "userIdentity": {"principalId": principal},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": _request_id(), "x-amz-id-2": _request_id()},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": notification_id,
            "bucket": {
                "name": bucket.name,
                "ownerIdentity": {"principalId": principal},
                "arn": bucket.arn,
            },
            "object": obj,
        },
    }
    return {"Records": [record]}


def _s3_to_lambda(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
    """Replacement for ``moto.s3.notifications._invoke_awslambda``: an asynchronous invoke."""
    try:
        lambda_runtime.invoke_async(account_id, region_name, fn_arn, event_body)
    except Exception:
        LOGGER.exception("S3 could not invoke %s", fn_arn)


# -- SageMaker -------------------------------------------------------------------------------------
def _iso(value: Any) -> str:
    if not isinstance(value, datetime):
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _emit_model_package(backend: Any, arn: str) -> None:
    package = backend.describe_model_package(arn)
    detail = json.loads(json.dumps(package.gen_response_object(), default=_iso))
    put_aws_event(
        backend.account_id,
        backend.region_name,
        "aws.sagemaker",
        "SageMaker Model Package State Change",
        detail,
        [arn],
    )


def _create_model_package(self: Any, *args: Any, **kwargs: Any) -> str:
    arn: str = _originals["create_model_package"](self, *args, **kwargs)
    _emit_model_package(self, arn)
    return arn


def _update_model_package(self: Any, *args: Any, **kwargs: Any) -> str:
    arn: str = _originals["update_model_package"](self, *args, **kwargs)
    _emit_model_package(self, arn)
    return arn


# -- Step Functions --------------------------------------------------------------------------------
def _millis(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def _emit_execution_status(execution: Any, status: str) -> None:
    succeeded = status == "SUCCEEDED"
    detail = {
        "executionArn": execution.exec_arn,
        "stateMachineArn": execution.state_machine_arn,
        "name": execution.name,
        "status": status,
        "startDate": _millis(execution.start_date),
        "stopDate": _millis(execution.stop_date),
        "input": json.dumps(execution.input_data),
        "output": json.dumps(execution.output) if succeeded else None,
        "inputDetails": {"included": True},
        "outputDetails": {"included": True} if succeeded else None,
        "error": execution.error,
        "cause": execution.cause,
    }
    put_aws_event(
        execution.account_id,
        execution.region_name,
        "aws.states",
        "Step Functions Execution Status Change",
        detail,
        [execution.exec_arn],
    )


def _execution_start(self: Any) -> None:
    _emit_execution_status(self, "RUNNING")
    _originals["start"](self)


def _execution_terminated(self: Any) -> None:
    _originals["terminated"](self)
    try:
        status = self.execution.exec_status
        _emit_execution_status(self.execution, str(getattr(status, "value", status)))
    except Exception:
        LOGGER.exception("could not emit the execution status event")


# -- installation ----------------------------------------------------------------------------------
def _patches() -> list[tuple[Any, str, Any]]:
    from moto.events.models import Rule
    from moto.s3 import notifications
    from moto.sagemaker.models import SageMakerModelBackend
    from moto.stepfunctions.parser.backend import execution

    return [
        (Rule, "send_to_targets", _send_to_targets),
        (notifications, "send_event", _s3_send_event),
        (notifications, "_send_event_bridge_message", _s3_to_eventbridge),
        (notifications, "_get_s3_event", _s3_record),
        (notifications, "_invoke_awslambda", _s3_to_lambda),
        (SageMakerModelBackend, "create_model_package", _create_model_package),
        (SageMakerModelBackend, "update_model_package", _update_model_package),
        (execution.Execution, "start", _execution_start),
        (execution.BaseExecutionWorkerCommunication, "terminated", _execution_terminated),
    ]


def install() -> None:
    """Patch moto to emit and deliver these events. Idempotent."""
    for owner, name, replacement in _patches():
        if name not in _originals:
            _originals[name] = getattr(owner, name)
            setattr(owner, name, replacement)


def uninstall() -> None:
    """Restore moto's own behaviour."""
    for owner, name, _ in _patches():
        original = _originals.pop(name, None)
        if original is not None:
            setattr(owner, name, original)
