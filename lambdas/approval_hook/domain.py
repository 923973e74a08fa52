"""What an approval-status change means for serving, free of AWS.

Two kinds of events reach the hook:

* **SageMaker Model Package State Change** (`parse_package_change`). Only `Approved` and
  `Rejected` of the platform's own groups count; anything else -- another group,
  `PendingManualApproval`, a detail without an ARN, version or status -- is `Ignored` with the
  reason, and nothing is recorded.
* **CodeDeploy Deployment State-change Notification** (`parse_rollout_change`): the end of a
  traffic shift the hook started; its outcome completes the ledger entry that started it.

`plan` decides what a package change does, given the registry's *current* status of the package
(events can be stale or arrive out of order: the registry, not the event, is the truth), the
champion (what serves) and a rollout still shifting traffic, if any:

| change | condition | action |
| --- | --- | --- |
| any | the package's status is no longer the event's | record: stale |
| Approved | it is the champion, or the version being rolled out | record: already serving |
| Approved | older than the champion or the rollout in progress | record: not promoted |
| Approved | otherwise | promote it |
| Rejected | it is being rolled out | roll back to the champion (stop the shift) |
| Rejected | it is the champion | roll back to the newest other Approved version |
| Rejected | otherwise | record: not serving |

"Older" is the package version: the champion is always the newest approved version that rolled
out, the same rule the training gate uses to pick the version a candidate must beat.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlops.deployments import Action, Champion, VersionRef, entry_key

PACKAGE_SOURCE = "aws.sagemaker"
PACKAGE_DETAIL_TYPE = "SageMaker Model Package State Change"
ROLLOUT_SOURCE = "aws.codedeploy"
ROLLOUT_DETAIL_TYPE = "CodeDeploy Deployment State-change Notification"
DECISIONS = ("Approved", "Rejected")
ROLLOUT_SUCCEEDED = "SUCCESS"
ROLLOUT_ENDED_BADLY = ("FAILURE", "STOP")
LEDGER_TAG = "ledger:"  # a CodeDeploy deployment's description names its ledger entry


@dataclass(frozen=True)
class Ignored:
    reason: str


@dataclass(frozen=True)
class PackageChange:
    """One approval-status change of one of the platform's model versions."""

    model: str
    version: int
    package_arn: str
    status: str
    occurred_at: str
    event_id: str | None
    approver: dict[str, Any] | None
    description: str | None
    model_data_url: str | None

    @property
    def ref(self) -> VersionRef:
        return VersionRef(self.version, self.package_arn)

    @property
    def entry(self) -> str:
        """The ledger key: the same for every delivery of this change, new for the next one."""
        key = f"{self.package_arn}|{self.status}|{self.occurred_at}|{self.description or ''}"
        return entry_key(self.occurred_at, key)


@dataclass(frozen=True)
class RolloutChange:
    deployment_id: str
    state: str
    application: str

    @property
    def succeeded(self) -> bool:
        return self.state == ROLLOUT_SUCCEEDED


@dataclass(frozen=True)
class Plan:
    action: Action
    reason: str
    target: VersionRef | None = None  # what to deploy (None: nothing, or nothing left to)
    stop_rollout: bool = False  # a shift in progress must stop first


def _iso(value: Any) -> str | None:
    """ISO-8601 UTC with milliseconds for the timestamps SageMaker and EventBridge send."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    else:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_package_change(event: Any, groups: Iterable[str]) -> PackageChange | Ignored:
    """The change an EventBridge event reports, or why the hook ignores it."""
    if not isinstance(event, Mapping):
        return Ignored(f"not an event object: {type(event).__name__}")
    if event.get("source") != PACKAGE_SOURCE or event.get("detail-type") != PACKAGE_DETAIL_TYPE:
        return Ignored(f"not a model package change: {event.get('detail-type')!r}")
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        return Ignored("malformed: the event has no detail object")
    group, arn = detail.get("ModelPackageGroupName"), detail.get("ModelPackageArn")
    version, status = detail.get("ModelPackageVersion"), detail.get("ModelApprovalStatus")
    missing = [name for name, value in (("ModelPackageGroupName", group),
               ("ModelPackageArn", arn), ("ModelApprovalStatus", status)) if not value]  # fmt: skip
    if missing:
        return Ignored(f"malformed: the detail lacks {', '.join(missing)}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return Ignored(f"malformed: ModelPackageVersion {version!r} is not a positive integer")
    if not str(arn).startswith("arn:") or not str(arn).endswith(f"/{group}/{version}"):
        return Ignored(f"malformed: {arn!r} is not version {version} of group {group!r}")
    if group not in set(groups):
        return Ignored(f"foreign group {group!r}: not one of the platform's models")
    if status not in DECISIONS:
        return Ignored(f"status {status!r} asks for no deployment decision")
    occurred = _iso(detail.get("LastModifiedTime")) or _iso(event.get("time"))
    if occurred is None:
        return Ignored("malformed: neither LastModifiedTime nor the event time is a timestamp")
    approver = detail.get("LastModifiedBy")
    description = detail.get("ApprovalDescription")
    return PackageChange(
        model=str(group), version=version, package_arn=str(arn), status=str(status),
        occurred_at=occurred, event_id=str(event["id"]) if event.get("id") else None,
        approver=dict(approver) if isinstance(approver, Mapping) and approver else None,
        description=str(description) if description else None,
        model_data_url=_model_data_url(detail),
    )  # fmt: skip


def _model_data_url(detail: Mapping[str, Any]) -> str | None:
    try:
        return str(detail["InferenceSpecification"]["Containers"][0]["ModelDataUrl"])
    except (KeyError, IndexError, TypeError):
        return None


def parse_rollout_change(event: Any, application: str | None) -> RolloutChange | Ignored:
    """A CodeDeploy deployment of the serving application that ended, or why it is ignored."""
    detail = event.get("detail") if isinstance(event, Mapping) else None
    if not isinstance(detail, Mapping):
        return Ignored("malformed: the event has no detail object")
    if application is None or detail.get("application") != application:
        return Ignored(f"deployment of another application {detail.get('application')!r}")
    state, deployment = detail.get("state"), detail.get("deploymentId")
    if not deployment or not isinstance(deployment, str):
        return Ignored("malformed: the detail lacks deploymentId")
    if state != ROLLOUT_SUCCEEDED and state not in ROLLOUT_ENDED_BADLY:
        return Ignored(f"deployment {deployment} is {state!r}: not an end state")
    return RolloutChange(deployment, str(state), str(application))


def is_rollout_event(event: Any) -> bool:
    return isinstance(event, Mapping) and event.get("source") == ROLLOUT_SOURCE


def plan(
    change: PackageChange,
    current_status: str | None,
    champion: Champion | None,
    rolling_out: VersionRef | None,
    approved: Iterable[VersionRef],
) -> Plan:
    """What to do about `change` (see the table in the module doc)."""
    if current_status != change.status:
        return Plan(Action.RECORD, f"stale: {change.ref.label} is {current_status} now, not "
                    f"{change.status}; the later change decides")  # fmt: skip
    serving = champion.ref if champion else None
    if change.status == "Approved":
        return _plan_approval(change.ref, serving, rolling_out)
    if rolling_out is not None and rolling_out.package_arn == change.package_arn:
        reason = f"{change.ref.label} was rejected while rolling out: stop the shift"
        if serving is None:
            return Plan(Action.ROLLBACK, f"{reason}; no earlier champion", None, True)
        return Plan(Action.ROLLBACK, f"{reason}, {serving.label} keeps serving", serving, True)
    if serving is None or serving.package_arn != change.package_arn:
        return Plan(Action.RECORD, f"{change.ref.label} rejected; it is not serving, so nothing "
                    "is deployed")  # fmt: skip
    others = [ref for ref in approved if ref.package_arn != change.package_arn]
    if not others:
        return Plan(Action.ROLLBACK, f"the champion {serving.label} was rejected but no other "
                    f"version is approved: {serving.label} keeps serving until one is")  # fmt: skip
    previous = max(others, key=lambda ref: ref.version)
    return Plan(Action.ROLLBACK, f"the champion {serving.label} was rejected: roll back to "
                f"{previous.label}, the newest other approved version", previous)  # fmt: skip


def _plan_approval(
    candidate: VersionRef, serving: VersionRef | None, rolling_out: VersionRef | None
) -> Plan:
    for current, what in ((serving, "the champion"), (rolling_out, "being rolled out")):
        if current is not None and current.package_arn == candidate.package_arn:
            return Plan(Action.RECORD, f"{candidate.label} is already {what}: nothing to deploy")
    newest = max((r for r in (serving, rolling_out) if r is not None),
                 key=lambda r: r.version, default=None)  # fmt: skip
    if newest is not None and newest.version > candidate.version:
        return Plan(Action.RECORD, f"{candidate.label} is older than {newest.label}, which "
                    f"{'serves' if newest is serving else 'is rolling out'}: not promoted "
                    "(reject the newer version to roll back)")  # fmt: skip
    stop = rolling_out is not None
    reason = f"{candidate.label} approved: promote it"
    if serving is not None:
        reason += f" over {serving.label}"
    if stop and rolling_out is not None:
        reason += f" (stops the rollout of {rolling_out.label})"
    return Plan(Action.PROMOTE, reason, candidate, stop)


def ledger_reference(model: str, entry: str) -> str:
    """What a CodeDeploy deployment's description carries to find its ledger entry."""
    return f"{LEDGER_TAG}{model}|{entry}"


def parse_ledger_reference(description: str | None) -> tuple[str, str] | None:
    if not description or LEDGER_TAG not in description:
        return None
    model, _, entry = description.split(LEDGER_TAG, 1)[1].strip().partition("|")
    return (model, entry) if model and entry else None
