"""The deployment ledger and the champion pointer: what approvers, the hook and serving share.

**Ledger** (DynamoDB; partition key `model`, sort key `entry`): one entry per approval-status change
the approval hook acted on -- an approval that promoted a version, an approval that did not
(older than the champion, stale, already champion), a rejection that rolled back, a rejection of a
version that was not serving -- and its outcome. `entry` is `<occurred_at>#<12 hex of the change's
key>`, so a model's history reads in the order SageMaker made the changes, and a re-delivered event
maps to the entry that already exists (`Ledger.claim` writes only if it does not).

**Champion pointer** (SSM parameter `<prefix><model>`, JSON): the version that serves now, written
by the hook only after a rollout succeeded. Unpinned serving processes (the EKS pods, a Lambda
version `cdk deploy` published) load the version it names; the versions the hook publishes pin
theirs.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import boto3
from botocore.exceptions import ClientError

from mlops.dynamo import from_dynamo, to_dynamo

POINTER_PREFIX_TEMPLATE = "/{project}/{env}/champions/"


class Action(StrEnum):
    PROMOTE = "promote"  # an approval that makes its version the champion
    ROLLBACK = "rollback"  # the champion was rejected: its predecessor serves again
    RECORD = "record"  # recorded only: nothing to deploy (the reason says why)


class Outcome(StrEnum):
    IN_PROGRESS = "in_progress"  # rollout started (a canary shifting traffic), not finished
    DEPLOYED = "deployed"  # the target version serves; the pointer names it
    RECORDED = "recorded"  # nothing was deployed, by design
    FAILED = "failed"  # the rollout failed; the previous champion still serves

    @property
    def final(self) -> bool:
        return self is not Outcome.IN_PROGRESS


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def pointer_prefix(project: str, env: str) -> str:
    return POINTER_PREFIX_TEMPLATE.format(project=project, env=env)


@dataclass(frozen=True)
class VersionRef:
    """A registered model version as the ledger and the pointer name it."""

    version: int
    package_arn: str

    @property
    def label(self) -> str:
        return f"v{self.version}"


@dataclass(frozen=True)
class Champion:
    """The pointer's content: what serves `model` now and since when."""

    model: str
    version: int
    package_arn: str
    model_data_url: str
    since: str
    entry: str | None = None  # the ledger entry that made it champion
    lambda_version: str | None = None  # the published serving version pinned to it

    @property
    def ref(self) -> VersionRef:
        return VersionRef(self.version, self.package_arn)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Champion:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a champion pointer must be a JSON object")
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


def entry_key(occurred_at: str, change_key: str) -> str:
    """The ledger sort key of one status change (see the module doc)."""
    return f"{occurred_at}#{hashlib.sha256(change_key.encode()).hexdigest()[:12]}"


@dataclass
class LedgerEntry:
    model: str
    entry: str
    package_arn: str
    version: int
    status: str  # the approval status the change set: Approved or Rejected
    action: Action
    outcome: Outcome
    reason: str
    occurred_at: str
    event_id: str | None = None
    approver: dict[str, Any] | None = None  # LastModifiedBy, as SageMaker reports it
    description: str | None = None  # ApprovalDescription
    previous_champion: VersionRef | None = None
    target: VersionRef | None = None  # what the action deploys (the predecessor, for rollback)
    lambda_version: str | None = None
    deployment_id: str | None = None  # CodeDeploy's, for a shifted rollout
    targets: list[str] = field(default_factory=list)
    recorded_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["action"], data["outcome"] = str(self.action), str(self.outcome)
        return data

    def to_item(self) -> dict[str, Any]:
        return {k: to_dynamo(v) for k, v in self.to_dict().items() if v not in (None, [], {})}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> LedgerEntry:
        data = {k: from_dynamo(v) for k, v in item.items() if k in cls.__dataclass_fields__}
        data["action"], data["outcome"] = Action(data["action"]), Outcome(data["outcome"])
        for name in ("previous_champion", "target"):
            if data.get(name):
                data[name] = VersionRef(int(data[name]["version"]), data[name]["package_arn"])
        return cls(**data)


class Ledger:
    """DynamoDB access to the ledger table."""

    def __init__(self, table_name: str, *, resource: Any = None) -> None:
        self._table = (resource or boto3.resource("dynamodb")).Table(table_name)

    def claim(self, entry: LedgerEntry) -> LedgerEntry | None:
        """Write `entry` if no entry has its key; otherwise change nothing and return that one."""
        try:
            self._table.put_item(
                Item=entry.to_item(), ConditionExpression="attribute_not_exists(#e)",
                ExpressionAttributeNames={"#e": "entry"},
            )  # fmt: skip
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            existing = self.get(entry.model, entry.entry)
            if existing is None:  # deleted between the two calls: claim again
                return self.claim(entry)
            return existing
        return None

    def save(self, entry: LedgerEntry) -> None:
        """Overwrite `entry` (its outcome moved on); `updated_at` is set now."""
        entry.updated_at = now_iso()
        self._table.put_item(Item=entry.to_item())

    def get(self, model: str, entry: str) -> LedgerEntry | None:
        item = self._table.get_item(Key={"model": model, "entry": entry}, ConsistentRead=True)
        return LedgerEntry.from_item(item["Item"]) if "Item" in item else None

    def history(self, model: str, limit: int = 50) -> list[LedgerEntry]:
        """Newest first: by when the registry changed, then by when the hook recorded it
        (changes within one timestamp tick, e.g. SageMaker's whole seconds)."""
        response = self._table.query(
            KeyConditionExpression="#m = :m", ExpressionAttributeNames={"#m": "model"},
            ExpressionAttributeValues={":m": model}, ScanIndexForward=False, Limit=limit,
        )  # fmt: skip
        entries = [LedgerEntry.from_item(item) for item in response.get("Items", [])]
        return sorted(entries, key=lambda e: (e.occurred_at, e.recorded_at), reverse=True)

    def keys_of(self, model: str, package_arn: str, recent: int = 100) -> set[str]:
        """The entry keys of one version among the model's `recent` newest entries."""
        return {e.entry for e in self.history(model, limit=recent) if e.package_arn == package_arn}

    def wait_for(
        self,
        model: str,
        package_arn: str,
        status: str,
        *,
        seen: set[str],
        timeout: float,
        poll: float = 0.5,
        on_progress: Callable[[LedgerEntry], None] | None = None,
    ) -> LedgerEntry | None:
        """Follow the hook's entry for a status change of one version: a new entry (not in
        `seen`, the keys from before the change) of `package_arn` with `status`. Returns it
        once its outcome is final, or its latest state (None: no entry yet) after `timeout`
        seconds; `on_progress` sees each state change in between."""
        deadline, latest, shown = time.monotonic() + timeout, None, None
        while True:
            found = [
                entry for entry in self.history(model, limit=100)
                if entry.package_arn == package_arn and entry.status == status
                and entry.entry not in seen
            ]  # fmt: skip
            latest = found[0] if found else latest
            if latest is not None and latest.outcome.final:
                return latest
            state = (latest.outcome, latest.deployment_id) if latest else None
            if latest is not None and on_progress is not None and state != shown:
                on_progress(latest)
            shown = state
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return latest
            time.sleep(min(poll, remaining))

    def shifting(self, model: str, recent: int = 25) -> LedgerEntry | None:
        """The newest entry whose traffic shift (a CodeDeploy deployment) has not ended."""
        for entry in self.history(model, limit=recent):
            if entry.outcome is Outcome.IN_PROGRESS and entry.deployment_id:
                return entry
        return None


class ChampionPointer:
    """The SSM parameters `<prefix><model>`."""

    def __init__(self, prefix: str, *, ssm: Any = None) -> None:
        if not prefix.startswith("/") or not prefix.endswith("/"):
            raise ValueError(f"a pointer prefix starts and ends with '/': {prefix!r}")
        self.prefix = prefix
        self._ssm = ssm or boto3.client("ssm")

    def name(self, model: str) -> str:
        return f"{self.prefix}{model}"

    def get(self, model: str) -> Champion | None:
        try:
            value = self._ssm.get_parameter(Name=self.name(model))["Parameter"]["Value"]
        except ClientError as error:
            if error.response["Error"]["Code"] == "ParameterNotFound":
                return None
            raise
        return Champion.from_json(str(value))

    def put(self, champion: Champion) -> None:
        self._ssm.put_parameter(
            Name=self.name(champion.model), Value=champion.to_json(), Type="String",
            Overwrite=True, Description=f"serving champion of {champion.model} (approval hook)",
        )  # fmt: skip
