"""Continuous training: a drift alarm (or a schedule) becomes one retraining run.

Triggers (`parse_request`):

- the model's `act` drift alarm entering ALARM (EventBridge "CloudWatch Alarm State Change";
  the model is the alarm metric's `Model` dimension), when its policy is `retrain`;
- its `retrain_schedule` (EventBridge Scheduler: `{"model", "reason": "schedule",
  "scheduled_time"}`), when it has one.

What happens: the champion's bundle -- the exact object version its run trained, found through
the package's `run_id` metadata and the runs table -- is copied to
`continuous-training/<model>/<model>-<reason>-<time>.tar.gz` in the code bucket. That is an
upload like any other: the training trigger validates it and starts the workflow, whose gate
compares the new version with the champion on the fresh out-of-time slice, and the register
step leaves it pending (or approves it when the model's `auto_approve` is set; the prefix is
writable by this function's role only, see stacks/training.py).

Exactly one run per trigger: the key is a function of the trigger (the alarm's transition time
or the scheduled time), so a re-delivered event finds its copy and stops (`duplicate`); and no
run starts while another run of the model is still in flight (`in_progress`). Every decision
is logged and returned; a started run is announced on the notification topic.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from mlops.runs import RunStatus, run_id_for

logger = Logger(service="retrain", child=True)

PREFIX = "continuous-training/"
ALARM_SOURCE = "aws.cloudwatch"
ALARM_DETAIL_TYPE = "CloudWatch Alarm State Change"
IN_FLIGHT_HOURS = 48  # a run not finished after this long is stuck, not running
Reason = Literal["drift", "schedule"]


class RequestError(ValueError):
    """The event is neither a drift alarm change nor a retraining schedule's payload."""


@dataclass(frozen=True)
class Request:
    model: str
    reason: Reason
    at: datetime  # the alarm's transition or the scheduled time: the trigger's identity
    detail: str
    entering_alarm: bool = True


@dataclass(frozen=True)
class Outcome:
    status: Literal["started", "duplicate", "in_progress", "ignored", "no_champion"]
    model: str
    detail: str
    run_id: str | None = None
    key: str | None = None
    version_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _time(text: Any, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise RequestError(f"{what} is not an ISO 8601 time: {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _alarm_model(detail: dict[str, Any]) -> str:
    metrics = detail.get("configuration", {}).get("metrics", [])
    for metric in metrics if isinstance(metrics, list) else []:
        dims = metric.get("metricStat", {}).get("metric", {}).get("dimensions", {})
        if isinstance(dims, dict) and isinstance(dims.get("Model"), str):
            return str(dims["Model"])
    raise RequestError(f"alarm {detail.get('alarmName')!r} has no metric with a Model dimension")


def parse_request(event: Any) -> Request:
    """The trigger an event describes; `RequestError` says what is wrong with it."""
    if not isinstance(event, dict):
        raise RequestError(f"the event is not an object: {type(event).__name__}")
    if event.get("source") == ALARM_SOURCE and event.get("detail-type") == ALARM_DETAIL_TYPE:
        detail = event.get("detail")
        if not isinstance(detail, dict) or not isinstance(detail.get("state"), dict):
            raise RequestError("alarm state change without detail.state")
        state = detail["state"]
        return Request(
            model=_alarm_model(detail), reason="drift",
            at=_time(state.get("timestamp") or event.get("time"), "detail.state.timestamp"),
            detail=f"alarm {detail.get('alarmName')}: {state.get('reason', '')}".strip(),
            entering_alarm=state.get("value") == "ALARM",
        )  # fmt: skip
    if event.get("reason") == "schedule":
        model = event.get("model")
        if not isinstance(model, str) or not model:
            raise RequestError("a retraining schedule's payload needs a `model`")
        when = _time(event.get("scheduled_time"), "scheduled_time")
        return Request(model=model, reason="schedule", at=when, detail="retrain_schedule")
    raise RequestError("neither a CloudWatch alarm state change nor a retraining schedule "
                       f"payload (source={event.get('source')!r})")  # fmt: skip


def target_key(request: Request) -> str:
    stamp = request.at.strftime("%Y%m%dT%H%M%SZ")
    return f"{PREFIX}{request.model}/{request.model}-{request.reason}-{stamp}.tar.gz"


@dataclass
class Retrainer:
    """The use case; construct with clients and the models' policies."""

    policies: dict[str, dict[str, Any]]  # model -> {"policy": ..., "schedule": bool}
    code_bucket: str
    topic_arn: str
    s3: Any
    sagemaker: Any
    sns: Any
    runs: Any  # mlops.runs.RunsRepository
    pointer: Any  # mlops.deployments.ChampionPointer

    def handle(self, request: Request, now: datetime | None = None) -> Outcome:
        why = self._refusal(request)
        if why is not None:
            logger.info("not retraining", extra={"model": request.model, "why": why})
            return Outcome("ignored", request.model, why)
        key = target_key(request)
        if self._exists(key):
            return Outcome("duplicate", request.model, "this trigger already copied its bundle",
                           key=key)  # fmt: skip
        busy = self._in_flight(request.model, now or datetime.now(UTC))
        if busy is not None:
            return Outcome("in_progress", request.model,
                           f"run {busy} of {request.model} is still in flight")  # fmt: skip
        champion = self.pointer.get(request.model)
        if champion is None:
            return Outcome("no_champion", request.model, "no deployed version to retrain")
        return self._copy(request, key, str(champion.package_arn))

    def _refusal(self, request: Request) -> str | None:
        policy = self.policies.get(request.model)
        if policy is None:
            return f"{request.model!r} is not a watched model"
        if not request.entering_alarm:
            return "the alarm left ALARM"
        if request.reason == "drift" and policy.get("policy") != "retrain":
            return f"policy is {policy.get('policy')!r}, not 'retrain'"
        if request.reason == "schedule" and not policy.get("schedule"):
            return "the model has no retrain_schedule"
        return None

    def _exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.code_bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def _in_flight(self, model: str, now: datetime) -> str | None:
        since = (now - timedelta(hours=IN_FLIGHT_HOURS)).isoformat()
        for run in self.runs.list(model, limit=20):
            received = str(run.received_at).replace("Z", "+00:00")
            if not RunStatus(run.status).terminal and received >= since:
                return str(run.run_id)
        return None

    def _source(self, package_arn: str) -> tuple[str, str, str]:
        """(bucket, key, version id) of the bundle the champion was trained from."""
        package = self.sagemaker.describe_model_package(ModelPackageName=package_arn)
        run_id = package.get("CustomerMetadataProperties", {}).get("run_id")
        record = self.runs.get(run_id) if run_id else None
        if record is None:
            raise LookupError(f"{package_arn}: no run record for run_id {run_id!r}; cannot "
                              "tell which bundle version to retrain")  # fmt: skip
        return str(record.bucket), str(record.key), str(record.version_id)

    def _copy(self, request: Request, key: str, package_arn: str) -> Outcome:
        bucket, source_key, version = self._source(package_arn)
        where = {"Bucket": bucket, "Key": source_key, "VersionId": version}
        head = self.s3.head_object(**where)
        metadata = {k.lower(): v for k, v in head.get("Metadata", {}).items()}
        metadata |= {
            "uploaded-by": "continuous-training",
            "retrain-reason": request.reason,
            "retrain-of": package_arn,
            "retrain-source": f"s3://{bucket}/{source_key}",
        }
        copied = self.s3.copy_object(
            Bucket=self.code_bucket, Key=key, CopySource=where, MetadataDirective="REPLACE",
            Metadata=metadata, ContentType=head.get("ContentType", "application/gzip"),
            TaggingDirective="REPLACE",  # no tags: copying them would need GetObjectTagging
        )  # fmt: skip
        new_version = str(copied.get("VersionId") or "null")
        run_id = run_id_for(request.model, self.code_bucket, key, new_version)
        detail = f"{request.reason}: {request.detail}; retraining {source_key}?versionId={version}"
        self._announce(request, run_id, key, detail)
        logger.info("retraining started", extra={"model": request.model, "run_id": run_id,
                                                  "key": key})  # fmt: skip
        return Outcome("started", request.model, detail, run_id=run_id, key=key,
                       version_id=new_version)  # fmt: skip

    def _announce(self, request: Request, run_id: str, key: str, detail: str) -> None:
        message = {"event": "retraining.started", "model_name": request.model, "run_id": run_id,
                   "reason": request.reason, "key": key, "detail": detail}  # fmt: skip
        self.sns.publish(
            TopicArn=self.topic_arn,
            Subject=f"[mlops] retraining {request.model} ({request.reason})"[:100],
            Message=json.dumps(message),
            MessageAttributes={"model": {"DataType": "String", "StringValue": request.model}},
        )


def policies_from(text: str) -> dict[str, dict[str, Any]]:
    """POLICIES: `{"<model>": {"policy": "off|notify|retrain", "schedule": bool}}`."""
    raw = json.loads(text)
    if not isinstance(raw, dict) or not all(
        isinstance(v, dict) and v.get("policy") in ("off", "notify", "retrain")
        for v in raw.values()
    ):
        raise ValueError(f"POLICIES is not {{model: {{policy, schedule}}}}: {text[:200]!r}")
    bad = [m for m in raw if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", m)]
    if bad:
        raise ValueError(f"POLICIES names invalid models: {bad}")
    return raw
