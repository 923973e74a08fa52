"""CodeDeploy Lambda deployments that run: traffic shifting, alarms, rollback, events.

moto 5.2.5 stores applications, deployment groups and deployments but never runs a deployment
(its status stays "Created"), has no deployment-configuration APIs and no StopDeployment, and
reports `errorInformation`/`rollbackInfo` as `{}`. With this extension installed, CreateDeployment
on an application whose compute platform is Lambda starts a background thread that does what
CodeDeploy does with the AppSpec's `AWS::Lambda::Function` resource:

- Created -> InProgress (event START) -> Succeeded (SUCCESS): the alias's traffic moves from
  `CurrentVersion` to `TargetVersion` per the deployment configuration -- during a canary or
  linear step the alias keeps `FunctionVersion = CurrentVersion` with
  `RoutingConfig.AdditionalVersionWeights = {TargetVersion: percent / 100}`; at the end
  `FunctionVersion = TargetVersion` and the routing is cleared. Predefined Lambda
  configurations (`CodeDeployDefault.LambdaAllAtOnce`, `...LambdaCanary10Percent{5,10,15,30}
  Minutes`, `...LambdaLinear10PercentEvery{1Minute,2Minutes,3Minutes,10Minutes}`) and custom
  ones (CreateDeploymentConfig, added here with GetDeploymentConfig/ListDeploymentConfigs) apply.
  A deployment minute lasts `set_time_scale(seconds_per_minute)` seconds (default 0.05).
- Alarms: while shifting, the enabled AlarmConfiguration (the deployment's override, else the
  group's) is read from moto's CloudWatch every 10 ms, so at every step and just before
  completing. An alarm in ALARM stops the deployment: status Stopped and event STOP (AWS: "If any
  of the specified alarms are activated, the deployment stops, and the status is updated to
  Stopped"), errorInformation `ALARM_ACTIVE` naming the alarms.
- Rollback, when the AutoRollbackConfiguration (the deployment's, else the group's) lists the
  triggering event (DEPLOYMENT_STOP_ON_ALARM, DEPLOYMENT_STOP_ON_REQUEST, DEPLOYMENT_FAILURE) and
  traffic had moved: as on AWS a *new* deployment (creator `codeDeployRollback`, events START,
  SUCCESS) puts the alias back on CurrentVersion; `rollbackInfo` links both deployments.
- StopDeployment: status Stopped, errorInformation `MANUAL_STOP`; `autoRollbackEnabled`
  true/false decides the rollback, absent defers to DEPLOYMENT_STOP_ON_REQUEST.
- GetDeployment/BatchGetDeployments report status, times, errorInformation, rollbackInfo and the
  resolved deploymentConfigName; as AWS documents, an AppSpecContent revision comes back with
  its `sha256` and without `content`. GetDeploymentGroup reports its alarmConfiguration.

Choices where AWS's documentation is silent (made to fail loudly rather than quietly):
- The API refuses synchronously: an unknown or non-Lambda deployment configuration
  (DeploymentConfigDoesNotExistException / InvalidDeploymentConfigNameException), a second
  active deployment in a group (DeploymentLimitExceededException), malformed alarm or rollback
  configurations of a group. A group that names no configuration gets its platform's default
  (CodeDeployDefault.LambdaAllAtOnce for Lambda, as AWS Config's
  codedeploy-lambda-allatonce-traffic-shift-disabled rule describes).
- AppSpec problems fail the deployment (START, then FAILURE): content that is not JSON/YAML or
  lacks Name/Alias/CurrentVersion/TargetVersion -> `INVALID_REVISION`; a missing function ->
  `INVALID_LAMBDA_FUNCTION`; a missing alias or version, or an alias not on CurrentVersion ->
  `INVALID_LAMBDA_CONFIGURATION`; lifecycle Hooks (not emulated) -> `HOOK_EXECUTION_FAILURE`.
- An alarm that does not exist counts as a failed alarm poll: the deployment stops unless
  IgnorePollAlarmFailure is set. Without a rollback, a stopped or failed deployment leaves the
  alias's weights as they were.
- The rollback deployment moves all traffic back at once (CodeDeployDefault.LambdaAllAtOnce).

Not emulated: S3/GitHub revisions, Server and ECS deployments (recorded as moto does, never run),
DeleteDeploymentConfig, and weighted routing at invoke time (invoking the alias runs its
FunctionVersion). `install()` is idempotent and runs `check_contract()` first; `uninstall()`
stops running deployments where they are and restores moto; `wait_idle()` waits for them.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Mapping
from functools import partial
from typing import Any

from localaws import _codedeploy_configs as configs
from localaws import _codedeploy_run as runs
from localaws._codedeploy_configs import api_error
from localaws._codedeploy_run import seconds_per_minute, set_time_scale
from localaws.patching import MotoContractError

__all__ = ["check_contract", "install", "installed", "seconds_per_minute", "set_time_scale",
           "uninstall", "wait_idle"]  # fmt: skip

_ABSENT = object()
_originals: dict[str, Any] = {}  # "<owner>.<name>" -> moto's attribute (or _ABSENT)


def wait_idle(timeout: float = 30.0) -> bool:
    """Wait until no deployment runs (True) or `timeout` seconds pass (False)."""
    return runs.wait_idle(timeout)


def _key(owner: Any, name: str) -> str:
    prefix = f"{owner.__module__}.{owner.__name__}" if inspect.isclass(owner) else owner.__name__
    return f"{prefix}.{name}"


def _moto(owner: Any, name: str) -> Any:
    """moto's own attribute (or `_ABSENT`), whether or not the extension is installed."""
    return _originals.get(_key(owner, name), getattr(owner, name, _ABSENT))


def _original(name: str) -> Any:
    from moto.codedeploy.models import CodeDeployBackend

    return _moto(CodeDeployBackend, name)


# -- backend -------------------------------------------------------------------------------------
def _create_deployment_group(
    self: Any,
    application_name: str,
    deployment_group_name: str,
    deployment_config_name: str | None = None,
    **kwargs: Any,
) -> str:
    """CreateDeploymentGroup with AWS's checks and its platform's default configuration."""
    platform = self.get_application(application_name).compute_platform or configs.SERVER
    name = deployment_config_name or configs.PLATFORM_DEFAULTS.get(platform, "")
    configs.require(self, name, platform)
    configs.check_group_settings(
        kwargs.get("alarm_configuration"), kwargs.get("auto_rollback_configuration")
    )
    create = _original("create_deployment_group")
    return str(create(self, application_name=application_name,
                      deployment_group_name=deployment_group_name,
                      deployment_config_name=name, **kwargs))  # fmt: skip


def _create_deployment(
    self: Any,
    application_name: str,
    deployment_group_name: str,
    revision: dict[str, Any],
    deployment_config_name: str | None = None,
    **kwargs: Any,
) -> str:
    """CreateDeployment; a Lambda deployment is then run by a `_codedeploy_run.Run`."""
    names = {"application_name": application_name, "deployment_group_name": deployment_group_name}
    create = partial(_original("create_deployment"), self, revision=revision, **names, **kwargs)
    application = self.get_application(application_name)
    if application.compute_platform != configs.LAMBDA or not deployment_group_name:
        return str(create(deployment_config_name=deployment_config_name))
    group = self.get_deployment_group(application_name, deployment_group_name)
    name = deployment_config_name or group.deployment_config_name
    if type(name) is not str:  # moto's enum default: the group predates install()
        name = configs.LAMBDA_ALL_AT_ONCE
    config = configs.require(self, name, configs.LAMBDA)
    for other in self.deployments.values():
        same = (other.application_name, other.deployment_group_name) == (
            application_name,
            deployment_group_name,
        )
        if same and other.status in runs.ACTIVE:
            message = (
                f"The Deployment Group '{deployment_group_name}' already has an active "
                f"Deployment '{other.deployment_id}'"
            )
            raise api_error("DeploymentLimitExceededException", message)
    deployment_id = str(create(deployment_config_name=config.name))
    record_rollback = partial(_record_rollback, self)
    deployment = self.deployments[deployment_id]
    runs.start(runs.Run(deployment, config.plan(), self.account_id, self.region_name,
                        record_rollback))  # fmt: skip
    return deployment_id


def _record_rollback(backend: Any, deployment: Any, revision: dict[str, Any]) -> Any:
    """The rollback deployment, recorded as CreateDeployment records one."""
    rollback_id = _original("create_deployment")(
        backend,
        application_name=deployment.application_name,
        deployment_group_name=deployment.deployment_group_name,
        revision=revision,
        deployment_config_name=configs.LAMBDA_ALL_AT_ONCE,
    )
    rollback = backend.deployments[rollback_id]
    rollback.creator = "codeDeployRollback"
    return rollback


def _stop_deployment(
    self: Any, deployment_id: str, auto_rollback_enabled: bool | None = None
) -> dict[str, str]:
    """StopDeployment: the run stops at its next check (within 10 ms)."""
    deployment = self.get_deployment(deployment_id)
    if deployment.status not in runs.ACTIVE:
        message = f"The deployment {deployment_id} has already completed ({deployment.status})."
        raise api_error("DeploymentAlreadyCompletedException", message)
    run = runs.find(deployment_id)
    if run is None:  # a deployment moto only records: nothing moved, nothing to roll back
        runs.set_status(deployment, "Stopped", self.account_id, self.region_name)
        return {"status": "Succeeded", "statusMessage": "The deployment was stopped."}
    run.request_stop(auto_rollback_enabled)
    return {"status": "Pending", "statusMessage": "The deployment stops at its next check."}


# -- responses -----------------------------------------------------------------------------------
def _stop_deployment_response(self: Any) -> Any:
    from moto.core.responses import ActionResult

    backend = self.codedeploy_backend
    args = (self._get_param("deploymentId"), self._get_param("autoRollbackEnabled"))
    return ActionResult(backend.stop_deployment(*args))


def _deployment_info(deployment: Any) -> dict[str, Any]:
    """moto's DeploymentInfo plus errorInformation, rollbackInfo; AppSpec content as sha256."""
    from moto.codedeploy import responses

    info: dict[str, Any] = _moto(responses, "_deployment_info")(deployment)
    info["errorInformation"] = getattr(deployment, runs.ERROR_ATTR, {})
    info["rollbackInfo"] = getattr(deployment, runs.ROLLBACK_ATTR, {})
    revision = dict(deployment.revision or {})
    content = (revision.get("appSpecContent") or {}).get("content")
    if content is not None:
        revision["appSpecContent"] = {"sha256": hashlib.sha256(str(content).encode()).hexdigest()}
    info["revision"] = revision
    return info


def _deployment_group_info(deployment_group: Any) -> dict[str, Any]:
    """moto's DeploymentGroupInfo plus the alarmConfiguration it leaves empty."""
    from moto.codedeploy import responses

    info: dict[str, Any] = _moto(responses, "_deployment_group_info")(deployment_group)
    config = deployment_group.alarm_configuration
    if config is not None and not isinstance(config, Mapping):
        config = {"alarms": config.alarms, "enabled": config.enabled,
                  "ignorePollAlarmFailure": config.ignore_poll_alarm_failure}  # fmt: skip
    info["alarmConfiguration"] = dict(config or {})
    return info


# -- installation --------------------------------------------------------------------------------
def _patches() -> list[tuple[Any, str, Any, tuple[str, ...] | None]]:
    """(owner, name, replacement, parameters moto's original must have -- None: must not exist)."""
    from moto.codedeploy import responses
    from moto.codedeploy.models import CodeDeployBackend as Backend

    response = responses.CodeDeployResponse
    deployment = ("application_name", "deployment_group_name", "revision",
                  "deployment_config_name", "auto_rollback_configuration",
                  "override_alarm_configuration")  # fmt: skip
    group = ("application_name", "deployment_group_name", "deployment_config_name",
             "alarm_configuration", "auto_rollback_configuration")  # fmt: skip
    return [
        (Backend, "create_deployment", _create_deployment, deployment),
        (Backend, "create_deployment_group", _create_deployment_group, group),
        (Backend, "stop_deployment", _stop_deployment, None),
        (response, "stop_deployment", _stop_deployment_response, None),
        (responses, "_deployment_info", _deployment_info, ("deployment",)),
        (responses, "_deployment_group_info", _deployment_group_info, ("deployment_group",)),
        *configs.patches(Backend, response),
    ]


def check_contract() -> None:
    """Raise `MotoContractError` if a moto internal used or patched here changed shape."""
    from localaws._codedeploy_contract import model_problems

    problems = []
    for owner, name, _, expected in _patches():
        current, where = _moto(owner, name), f"{owner.__name__}.{name}"
        if expected is None and current is not _ABSENT:
            problems.append(f"{where} now exists in moto")
        elif expected is not None and current is _ABSENT:
            problems.append(f"{where} is missing")
        elif expected is not None:
            params = inspect.signature(current).parameters
            lacking = [param for param in expected if param not in params]
            if lacking:
                problems.append(f"{where} lacks parameters {lacking}")
    if not problems:
        create_group, create = _original("create_deployment_group"), _original("create_deployment")
        problems += model_problems(create_group, create)
    if problems:
        raise MotoContractError(
            f"moto internals changed: {'; '.join(problems)}. localaws.codedeploy must be adapted."
        )


def install() -> None:
    """Patch moto so Lambda deployments run. Idempotent; checks the contract first."""
    if _originals:
        return
    check_contract()
    for owner, name, replacement, _ in _patches():
        _originals[_key(owner, name)] = getattr(owner, name, _ABSENT)
        setattr(owner, name, replacement)


def uninstall() -> None:
    """Stop running deployments where they are and restore moto's own behaviour."""
    if not _originals:
        return
    runs.shutdown()
    for owner, name, _, _ in _patches():
        original = _originals.pop(_key(owner, name), _ABSENT)
        if original is _ABSENT:
            delattr(owner, name)
        else:
            setattr(owner, name, original)


def installed() -> bool:
    return bool(_originals)
