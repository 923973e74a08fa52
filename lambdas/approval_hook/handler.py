"""Approval hook (EventBridge target): approval → deployment, rejection → rollback, all recorded.

Two rules invoke it (stacks/registry.py): model package status changes of the platform's groups
(Approved or Rejected only) and the end of the serving application's CodeDeploy deployments.
`lambdas/approval_hook/domain.py` decides, `rollout.py` acts, `mlops/deployments.py` records.

Every change the hook acts on gets one ledger entry, claimed before anything is deployed, so a
re-delivered event finds its entry and deploys nothing twice. The function runs one invocation at
a time (reserved concurrency 1): rollouts of the serving function never interleave.

Each outcome is logged as one JSON line with `outcome` (a metric filter counts `failed`).
Raising is reserved for what a retry can fix (AWS errors, a deployment group still busy); Lambda
retries the asynchronous invocation and, when retries run out, EventBridge's dead-letter queue
keeps the event.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lambdas.approval_hook.domain import (
    Ignored,
    PackageChange,
    Plan,
    is_rollout_event,
    ledger_reference,
    parse_ledger_reference,
    parse_package_change,
    parse_rollout_change,
    plan,
)
from lambdas.approval_hook.rollout import (
    ArtifactCheck,
    LambdaTarget,
    Package,
    RolloutError,
    approved_versions,
    describe_package,
)
from lambdas.common import load_settings
from mlops.deployments import (
    Action,
    Champion,
    ChampionPointer,
    Ledger,
    LedgerEntry,
    Outcome,
    now_iso,
)
from serving.spec import ServingSpec

logger = Logger(service="approval-hook")
EKS_TARGET = "eks: pods follow the champion pointer"


class HookSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    ledger_table: str = Field(min_length=1)
    champion_prefix: str = Field(pattern=r"^/.*/$")
    models: str = Field(min_length=1, description="Comma-separated model package groups.")
    mlops_serving_spec: str = Field(min_length=2, description="The serving spec (same JSON).")
    serving_function: str | None = None
    serving_alias: str = "live"
    rollout_application: str | None = None
    rollout_group: str | None = None
    eks_enabled: bool = False

    @property
    def groups(self) -> list[str]:
        return [name.strip() for name in self.models.split(",") if name.strip()]


class Hook:
    """The hook with its clients; `handle(event)` is the whole behaviour."""

    def __init__(self, settings: HookSettings, session: Any = None) -> None:
        session = session or boto3.session.Session()
        self.settings = settings
        self.ledger = Ledger(settings.ledger_table, resource=session.resource("dynamodb"))
        self.pointer = ChampionPointer(settings.champion_prefix, ssm=session.client("ssm"))
        self.sagemaker = session.client("sagemaker")
        spec = ServingSpec.from_json(settings.mlops_serving_spec)
        self.check = ArtifactCheck(spec, self.sagemaker, session.client("s3"))
        self.target: LambdaTarget | None = None
        if settings.serving_function:
            self.target = LambdaTarget(
                session.client("lambda"), session.client("codedeploy"),
                function=settings.serving_function, alias=settings.serving_alias,
                application=settings.rollout_application, group=settings.rollout_group,
            )  # fmt: skip

    def handle(self, event: Any) -> dict[str, Any]:
        if is_rollout_event(event):
            return self._rollout_ended(event)
        change = parse_package_change(event, self.settings.groups)
        if isinstance(change, Ignored):
            logger.info("ignored", extra={"reason": change.reason})
            return {"ignored": change.reason}
        existing = self.ledger.get(change.model, change.entry)
        if existing is not None and (existing.outcome.final or existing.deployment_id):
            # handled, or its traffic shift runs and its end event will finish it
            logger.info("duplicate", extra={"entry": existing.entry})
            return {"duplicate": existing.entry, "outcome": str(existing.outcome)}
        package = describe_package(self.sagemaker, change.package_arn)
        champion = self.pointer.get(change.model)
        shifting = self.ledger.shifting(change.model)
        decided = plan(
            change, package.status if package else None, champion,
            shifting.target if shifting else None,
            approved_versions(self.sagemaker, change.model),
        )  # fmt: skip
        entry = self._new_entry(change, decided, champion)
        if existing is None:
            claimed = self.ledger.claim(entry)
            if claimed is not None:  # another delivery claimed it first
                return {"duplicate": claimed.entry, "outcome": str(claimed.outcome)}
        else:  # an earlier delivery stopped half-way (e.g. a retried AWS error): redo it
            entry.recorded_at = existing.recorded_at
        self._act(entry, decided, shifting)
        return {"entry": entry.entry, "action": str(entry.action), "outcome": str(entry.outcome)}

    def _new_entry(
        self, change: PackageChange, decided: Plan, champion: Champion | None
    ) -> LedgerEntry:
        return LedgerEntry(
            model=change.model, entry=change.entry, package_arn=change.package_arn,
            version=change.version, status=change.status, action=decided.action,
            outcome=Outcome.IN_PROGRESS, reason=decided.reason, occurred_at=change.occurred_at,
            event_id=change.event_id, approver=change.approver, description=change.description,
            previous_champion=champion.ref if champion else None, target=decided.target,
        )  # fmt: skip

    def _act(self, entry: LedgerEntry, decided: Plan, shifting: LedgerEntry | None) -> None:
        if decided.action is Action.RECORD:
            return self._finish(entry, Outcome.RECORDED)
        if decided.target is None and not decided.stop_rollout:
            return self._finish(entry, Outcome.FAILED)
        if decided.stop_rollout and shifting is not None:
            self._stop(shifting, f"stopped: {entry.reason}")
            if decided.action is Action.ROLLBACK:  # CodeDeploy returns the alias by itself
                entry.targets = [self.target.name] if self.target else []
                return self._finish(entry, Outcome.DEPLOYED)
        assert decided.target is not None
        package = describe_package(self.sagemaker, decided.target.package_arn)
        try:
            if package is None:
                raise RolloutError(f"{decided.target.package_arn} no longer exists")
            self.check(entry.model, package)
            self._roll_out(entry, package, shift=decided.action is Action.PROMOTE)
        except RolloutError as error:
            entry.reason = f"{entry.reason} -- rollout failed: {error}"
            return self._finish(entry, Outcome.FAILED)
        return None

    def _roll_out(self, entry: LedgerEntry, package: Package, *, shift: bool) -> None:
        entry.targets = [EKS_TARGET] if self.settings.eks_enabled else []
        if self.target is None:
            self._make_champion(entry, package, None)
            return self._finish(entry, Outcome.DEPLOYED)
        entry.targets.insert(0, self.target.name)
        reference = ledger_reference(entry.model, entry.entry)
        rollout = self.target.deploy(entry.model, package.ref, shift=shift, reference=reference)
        entry.lambda_version, entry.deployment_id = rollout.lambda_version, rollout.deployment_id
        if not rollout.finished:
            self.ledger.save(entry)  # the deployment's end event finishes it
            logger.info("rollout started", extra=entry.to_dict())
            return None
        self._make_champion(entry, package, rollout.lambda_version)
        return self._finish(entry, Outcome.DEPLOYED)

    def _make_champion(
        self, entry: LedgerEntry, package: Package, lambda_version: str | None
    ) -> None:
        current = self.pointer.get(entry.model)
        if (
            current is not None
            and current.version > package.ref.version
            and entry.action is Action.PROMOTE
        ):
            entry.reason += f" (the pointer stays on the newer {current.ref.label})"
            return
        self.pointer.put(Champion(
            model=entry.model, version=package.ref.version, package_arn=package.ref.package_arn,
            model_data_url=package.model_data_url or "", since=now_iso(), entry=entry.entry,
            lambda_version=lambda_version,
        ))  # fmt: skip

    def _stop(self, shifting: LedgerEntry, reason: str) -> None:
        if self.target is not None and shifting.deployment_id:
            self.target.stop(shifting.deployment_id)
        shifting.reason = f"{shifting.reason} -- {reason}"
        self._finish(shifting, Outcome.FAILED)

    def _rollout_ended(self, event: Any) -> dict[str, Any]:
        change = parse_rollout_change(event, self.settings.rollout_application)
        if isinstance(change, Ignored) or self.target is None:
            reason = change.reason if isinstance(change, Ignored) else "no Lambda target"
            logger.info("ignored", extra={"reason": reason})
            return {"ignored": reason}
        info = self.target.deployment(change.deployment_id)
        found = parse_ledger_reference(info.get("description"))
        entry = self.ledger.get(*found) if found else None
        unfit: str | None = None
        if entry is None or entry.deployment_id != change.deployment_id:
            unfit = f"deployment {change.deployment_id} was not started by the hook"
        elif entry.outcome.final:
            unfit = f"deployment {change.deployment_id} already finished ({entry.outcome})"
        if unfit is not None:
            logger.info("ignored", extra={"reason": unfit, "description": info.get("description")})
            return {"ignored": unfit}
        assert entry is not None
        if change.succeeded and entry.target is not None:
            package = describe_package(self.sagemaker, entry.target.package_arn)
            if package is not None:
                self._make_champion(entry, package, entry.lambda_version)
            self._finish(entry, Outcome.DEPLOYED)
        else:
            error = (info.get("errorInformation") or {}).get("message") or change.state
            entry.reason = f"{entry.reason} -- traffic shift ended {change.state}: {error}"
            self._finish(entry, Outcome.FAILED)
        return {"entry": entry.entry, "outcome": str(entry.outcome)}

    def _finish(self, entry: LedgerEntry, outcome: Outcome) -> None:
        entry.outcome = outcome
        self.ledger.save(entry)
        log = logger.error if outcome is Outcome.FAILED else logger.info
        log("outcome", extra=entry.to_dict())


_hooks: dict[tuple[HookSettings, str | None], Hook] = {}


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001
    """One Hook (its clients) per execution environment, as long as its settings and endpoint
    stay the same -- in the local engine one process hosts successive deployments."""
    key = (load_settings(HookSettings), os.environ.get("AWS_ENDPOINT_URL"))
    if key not in _hooks:
        _hooks.clear()
        _hooks[key] = Hook(key[0])
    return _hooks[key].handle(event)
