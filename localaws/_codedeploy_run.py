"""One CodeDeploy Lambda deployment, run in a background thread (see `localaws.codedeploy`).

A `Run` validates the AppSpec and the function, shifts the alias's traffic per its plan, watches
the alarms and honours StopDeployment, then records the outcome on moto's `DeploymentInfo`
(status, times, `errorInformation`, `rollbackInfo`) and emits the "CodeDeploy Deployment
State-change Notification" events. A deployment minute lasts `seconds_per_minute()` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from localaws._codedeploy_appspec import (
    DeploymentError,
    LambdaTarget,
    check_lambda,
    parse_appspec,
    rollback_revision,
)
from localaws.events import put_aws_event

log = logging.getLogger(__name__)
ERROR_ATTR, ROLLBACK_ATTR = "localaws_error_information", "localaws_rollback_info"
ACTIVE = frozenset({"Created", "Queued", "InProgress", "Baking", "Ready"})
_EVENT_STATES = {"InProgress": "START", "Succeeded": "SUCCESS", "Failed": "FAILURE",
                 "Stopped": "STOP"}  # fmt: skip
_ALARM_MESSAGE = (
    "One or more alarms have been activated according to the Amazon CloudWatch metrics you "
    "selected, and the affected deployments have been stopped. Activated alarms: {}"
)
_SNAKE = {"ignorePollAlarmFailure": "ignore_poll_alarm_failure"}
_POLL_SECONDS = 0.01
_scale = {"seconds_per_minute": 0.05}
_runs: dict[str, Run] = {}
_runs_lock = threading.Lock()
_shutdown = threading.Event()


def set_time_scale(seconds_per_minute: float) -> None:
    """How many wall-clock seconds one deployment minute lasts (default 0.05), for
    deployments started from now on."""
    if seconds_per_minute < 0:
        raise ValueError("seconds_per_minute must not be negative")
    _scale["seconds_per_minute"] = float(seconds_per_minute)


def seconds_per_minute() -> float:
    return _scale["seconds_per_minute"]


class _Stopped(Exception):
    def __init__(self, code: str, message: str, rollback: bool) -> None:
        super().__init__(message)
        self.code, self.message, self.rollback = code, message, rollback


class _Shutdown(Exception):
    """The extension is being uninstalled: leave the deployment as it is."""


def _settings(config: Any, *keys: str) -> list[Any]:
    """Fields of a configuration moto keeps either as the request's dict or as a model."""
    if isinstance(config, Mapping):
        return [config.get(key) for key in keys]
    return [getattr(config, _SNAKE.get(key, key), None) for key in keys]


def set_status(deployment: Any, status: str, account_id: str, region: str) -> None:
    """Record a status (with its time) and emit the state-change event AWS sends for it."""
    from moto.core.utils import utcnow

    if status == "InProgress":
        deployment.start_time = utcnow()
    elif status not in ACTIVE:
        deployment.complete_time = utcnow()
    counted = status if status in ("InProgress", "Succeeded") else "Failed"
    deployment.deployment_overview = dict.fromkeys(deployment.deployment_overview, 0)
    deployment.deployment_overview[counted] = 1
    deployment.status = status
    if status not in _EVENT_STATES:
        return
    application, group = deployment.application_name, deployment.deployment_group_name
    detail = {
        "account": account_id,
        "region": region,
        "application": application,
        "deploymentGroup": group,
        "deploymentId": deployment.deployment_id,
        "instanceGroupId": deployment.deployment_group.deployment_group_id,
        "state": _EVENT_STATES[status],
    }
    arn = f"arn:aws:codedeploy:{region}:{account_id}"
    resources = [f"{arn}:application:{application}", f"{arn}:deploymentgroup:{application}/{group}"]
    detail_type = "CodeDeploy Deployment State-change Notification"
    put_aws_event(account_id, region, "aws.codedeploy", detail_type, detail, resources)


class Run:
    """The worker of one deployment.

    `plan` is the configuration's (minute, percent) steps; `create_rollback(deployment,
    revision)` records a new deployment (creator codeDeployRollback) as CreateDeployment does.
    """

    def __init__(
        self,
        deployment: Any,
        plan: list[tuple[int, int]],
        account_id: str,
        region: str,
        create_rollback: Callable[[Any, dict[str, Any]], Any],
    ) -> None:
        self.deployment, self.plan = deployment, plan
        self.account_id, self.region = account_id, region
        self._create_rollback = create_rollback
        self._stop: tuple[bool | None] | None = None  # (rollback?) once StopDeployment asked
        self._wake = threading.Event()
        self._target: LambdaTarget | None = None
        self._shifted = False
        name = f"codedeploy-{deployment.deployment_id}"
        self.thread = threading.Thread(target=self.execute, name=name, daemon=True)

    def request_stop(self, rollback: bool | None) -> None:
        """StopDeployment: `rollback` None means "as the rollback configuration says"."""
        self._stop = (rollback,)
        self._wake.set()

    def execute(self) -> None:
        try:
            self._status("InProgress")
            self._target = parse_appspec(self.deployment.revision)
            check_lambda(self._lambda(), self._target)
            started, scale = time.monotonic(), seconds_per_minute()
            for minute, percent in self.plan:
                self._wait_until(started + minute * scale)
                self._route(self._target, percent)
            self._status("Succeeded")
        except _Shutdown:
            log.info("deployment %s left InProgress at shutdown", self.deployment.deployment_id)
        except _Stopped as stop:
            self._end("Stopped", stop.code, stop.message, stop.rollback)
        except DeploymentError as error:
            rollback = self._rollback_on("DEPLOYMENT_FAILURE")
            self._end("Failed", error.code, error.message, rollback)
        except Exception as error:  # noqa: BLE001 - any fault must end the deployment visibly
            log.exception("deployment %s failed", self.deployment.deployment_id)
            self._end("Failed", "INTERNAL_ERROR", f"{type(error).__name__}: {error}", False)

    def _wait_until(self, deadline: float) -> None:
        """Check the stop request and the alarms until `deadline` (at least once)."""
        while True:
            self._check()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wake.wait(min(remaining, _POLL_SECONDS))
            if _shutdown.is_set():
                raise _Shutdown

    def _check(self) -> None:
        if self._stop is not None:
            (rollback,) = self._stop
            if rollback is None:
                rollback = self._rollback_on("DEPLOYMENT_STOP_ON_REQUEST")
            raise _Stopped("MANUAL_STOP", "The deployment was stopped by StopDeployment.", rollback)
        problem = self._alarm_problem()
        if problem:
            raise _Stopped("ALARM_ACTIVE", problem, self._rollback_on("DEPLOYMENT_STOP_ON_ALARM"))

    def _alarm_problem(self) -> str:
        """Why the alarms stop the deployment ("" when they do not)."""
        from moto.cloudwatch.models import cloudwatch_backends

        config = self.deployment.override_alarm_configuration
        if not config:
            config = self.deployment.deployment_group.alarm_configuration
        keys = ("enabled", "alarms", "ignorePollAlarmFailure")
        enabled, alarms, ignore_failure = _settings(config or {}, *keys)
        if not enabled:
            return ""
        known = cloudwatch_backends[self.account_id][self.region].alarms
        names = [str(alarm["name"]) for alarm in alarms or []]
        active = [name for name in names if name in known and known[name].state_value == "ALARM"]
        if active:
            return _ALARM_MESSAGE.format(", ".join(active))
        unreadable = [name for name in names if name not in known]
        if unreadable and not ignore_failure:
            return f"The state of these alarms could not be retrieved: {', '.join(unreadable)}"
        return ""

    def _rollback_on(self, event: str) -> bool:
        config = self.deployment.auto_rollback_configuration
        if config is None:
            config = self.deployment.deployment_group.auto_rollback_configuration
        enabled, events = _settings(config or {}, "enabled", "events")
        return bool(enabled) and event in (events or [])

    def _route(self, target: LambdaTarget, percent: int) -> None:
        version, routing = target.target, {}
        if percent < 100:
            version = target.current
            routing = {"AdditionalVersionWeights": {target.target: percent / 100}}
        self._lambda().update_alias(target.alias, target.function, version, None, routing)
        self._shifted = True

    def _lambda(self) -> Any:
        from moto.awslambda.models import lambda_backends

        return lambda_backends[self.account_id][self.region]

    def _status(self, status: str, deployment: Any = None) -> None:
        set_status(deployment or self.deployment, status, self.account_id, self.region)

    def _end(self, status: str, code: str, message: str, rollback: bool) -> None:
        """Finish with an error; roll the alias back (as a new deployment) when asked to."""
        setattr(self.deployment, ERROR_ATTR, {"code": code, "message": message})
        target = self._target
        if not (rollback and self._shifted and target is not None):
            self._status(status)
            return
        try:
            undo = self._create_rollback(self.deployment, rollback_revision(target))
        except Exception:  # noqa: BLE001 - the deployment itself must still end
            log.exception("could not record the rollback of %s", self.deployment.deployment_id)
            self._status(status)
            return
        original_id, undo_id = self.deployment.deployment_id, undo.deployment_id
        setattr(undo, ROLLBACK_ATTR, {"rollbackTriggeringDeploymentId": original_id})
        setattr(self.deployment, ROLLBACK_ATTR, {
            "rollbackDeploymentId": undo_id,
            "rollbackMessage": f"Automatic rollback by deployment {undo_id}: "
                               f"alias {target.alias} returns to version {target.current}",
        })  # fmt: skip
        self._status(status)
        self._status("InProgress", undo)
        try:
            self._lambda().update_alias(target.alias, target.function, target.current, None, {})
        except Exception as error:  # noqa: BLE001 - the rollback deployment fails visibly
            setattr(undo, ERROR_ATTR, {"code": "INTERNAL_ERROR", "message": str(error)})
            self._status("Failed", undo)
            return
        self._status("Succeeded", undo)


def start(run: Run) -> None:
    with _runs_lock:
        _runs[run.deployment.deployment_id] = run
    run.thread.start()


def find(deployment_id: str) -> Run | None:
    with _runs_lock:
        return _runs.get(deployment_id)


def wait_idle(timeout: float) -> bool:
    """Wait until no deployment runs (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    with _runs_lock:
        threads = [run.thread for run in _runs.values()]
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return not any(thread.is_alive() for thread in threads)


def shutdown(timeout: float = 5.0) -> None:
    """Make every running deployment stop where it is, wait for the threads, forget them."""
    _shutdown.set()
    try:
        wait_idle(timeout)
    finally:
        with _runs_lock:
            _runs.clear()
        _shutdown.clear()
