"""CodeDeploy deployment configurations: AWS's predefined ones, custom ones and their API.

moto 5.2.5 has no deployment-configuration APIs; `localaws.codedeploy` installs
CreateDeploymentConfig, GetDeploymentConfig and ListDeploymentConfigs from here (`patches()`).
Custom configurations live on the moto CodeDeploy backend instance, so an emulator reset forgets
them as it forgets applications.

A Lambda configuration becomes a traffic plan (`DeploymentConfig.plan`): the deployment minute at
which the alias's weight on the target version changes, and the new percentage. Canary: `p` % at
minute 0, 100 % after the interval. Linear: `p` % at minute 0 and `p` % more at the start of each
further interval until 100 % (10 % every minute reaches 100 % at minute 9). All at once: 100 % at
minute 0. Custom percentages must be whole numbers from 1 to 99 and intervals whole minutes >= 1.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

LAMBDA, SERVER, ECS = "Lambda", "Server", "ECS"
ALL_AT_ONCE, CANARY, LINEAR = "AllAtOnce", "TimeBasedCanary", "TimeBasedLinear"
LAMBDA_ALL_AT_ONCE = "CodeDeployDefault.LambdaAllAtOnce"
# What AWS uses when a deployment group names no configuration, per compute platform.
PLATFORM_DEFAULTS = {
    LAMBDA: LAMBDA_ALL_AT_ONCE,
    ECS: "CodeDeployDefault.ECSAllAtOnce",
    SERVER: "CodeDeployDefault.OneAtATime",
}
ROLLBACK_EVENTS = {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST"}
_ROUTING_KEYS = {
    CANARY: ("timeBasedCanary", "canaryPercentage", "canaryInterval"),
    LINEAR: ("timeBasedLinear", "linearPercentage", "linearInterval"),
}
_STORE = "localaws_deployment_configs"  # attribute on the moto CodeDeploy backend


def api_error(code: str, message: str) -> Exception:
    """A CodeDeploy API error (`code` is the exception name the SDK raises)."""
    from moto.codedeploy.exceptions import CodeDeployException

    return CodeDeployException(code, message)


@dataclass(frozen=True)
class DeploymentConfig:
    """One deployment configuration in the API's shape (camelCase dictionaries)."""

    name: str
    compute_platform: str
    traffic_routing: Mapping[str, Any] | None = None
    minimum_healthy_hosts: Mapping[str, Any] | None = None
    zonal_config: Mapping[str, Any] | None = None
    config_id: str = ""
    create_time: datetime | None = None

    def info(self) -> dict[str, Any]:
        """The DeploymentConfigInfo GetDeploymentConfig returns."""
        optional = {
            "trafficRoutingConfig": self.traffic_routing,
            "minimumHealthyHosts": self.minimum_healthy_hosts,
            "zonalConfig": self.zonal_config,
            "createTime": self.create_time,
        }
        return {
            "deploymentConfigId": self.config_id,
            "deploymentConfigName": self.name,
            "computePlatform": self.compute_platform,
        } | {key: value for key, value in optional.items() if value is not None}

    def plan(self) -> list[tuple[int, int]]:
        """(deployment minute, percent of traffic on the target version); ends at 100."""
        routing = self.traffic_routing or {"type": ALL_AT_ONCE}
        if routing["type"] not in _ROUTING_KEYS:
            return [(0, 100)]
        section, percent_key, interval_key = _ROUTING_KEYS[routing["type"]]
        percent = int(routing[section][percent_key])
        interval = int(routing[section][interval_key])
        if routing["type"] == CANARY:
            return [(0, percent), (interval, 100)]
        steps = -(-100 // percent)  # increments needed to reach 100 %
        return [(step * interval, min(100, (step + 1) * percent)) for step in range(steps)]


def _routing(kind: str, percent: int = 0, interval: int = 0) -> dict[str, Any]:
    if kind not in _ROUTING_KEYS:
        return {"type": ALL_AT_ONCE}
    section, percent_key, interval_key = _ROUTING_KEYS[kind]
    return {"type": kind, section: {percent_key: percent, interval_key: interval}}


def _predefined_table() -> dict[str, DeploymentConfig]:
    routed = [("LambdaAllAtOnce", LAMBDA, ALL_AT_ONCE, 0, 0)]
    routed += [(f"LambdaCanary10Percent{m}Minutes", LAMBDA, CANARY, 10, m) for m in (5, 10, 15, 30)]
    routed += [
        (f"LambdaLinear10PercentEvery{m}Minute{'s' if m > 1 else ''}", LAMBDA, LINEAR, 10, m)
        for m in (1, 2, 3, 10)
    ]
    routed += [
        ("ECSAllAtOnce", ECS, ALL_AT_ONCE, 0, 0),
        ("ECSLinear10PercentEvery1Minutes", ECS, LINEAR, 10, 1),
        ("ECSLinear10PercentEvery3Minutes", ECS, LINEAR, 10, 3),
        ("ECSCanary10Percent5Minutes", ECS, CANARY, 10, 5),
        ("ECSCanary10Percent15Minutes", ECS, CANARY, 10, 15),
    ]
    configs = [
        DeploymentConfig(f"CodeDeployDefault.{name}", platform, _routing(kind, percent, minutes))
        for name, platform, kind, percent, minutes in routed
    ]
    for name, kind, value in (
        ("OneAtATime", "HOST_COUNT", 1),
        ("HalfAtATime", "FLEET_PERCENT", 50),
        ("AllAtOnce", "HOST_COUNT", 0),
    ):
        hosts = {"type": kind, "value": value}
        configs.append(DeploymentConfig(f"CodeDeployDefault.{name}", SERVER, None, hosts))
    return {
        config.name: DeploymentConfig(
            config.name,
            config.compute_platform,
            config.traffic_routing,
            config.minimum_healthy_hosts,
            config_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"codedeploy:{config.name}")),
        )
        for config in configs
    }


PREDEFINED = _predefined_table()


def custom_configs(backend: Any) -> dict[str, DeploymentConfig]:
    """The custom configurations of one moto CodeDeploy backend (account and region)."""
    store: dict[str, DeploymentConfig] = backend.__dict__.setdefault(_STORE, {})
    return store


def lookup(backend: Any, name: str) -> DeploymentConfig | None:
    return PREDEFINED.get(name) or custom_configs(backend).get(name)


def require(backend: Any, name: str, platform: str) -> DeploymentConfig:
    """The configuration `name` for `platform`, or the API error AWS raises."""
    config = lookup(backend, name)
    if config is None:
        message = f"The deployment configuration {name} does not exist."
        raise api_error("DeploymentConfigDoesNotExistException", message)
    if config.compute_platform != platform:
        message = f"{name} is a {config.compute_platform} configuration, not a {platform} one."
        raise api_error("InvalidDeploymentConfigNameException", message)
    return config


def check_traffic_routing(routing: Mapping[str, Any]) -> dict[str, Any]:
    """The routing with integer fields, or InvalidTrafficRoutingConfigurationException."""
    kind = routing.get("type")
    if kind == ALL_AT_ONCE:
        return _routing(ALL_AT_ONCE)
    problem = f"type {kind!r} is not AllAtOnce, TimeBasedCanary or TimeBasedLinear"
    if kind in _ROUTING_KEYS:
        section, percent_key, interval_key = _ROUTING_KEYS[kind]
        values = routing.get(section) or {}
        problem = f"{section} needs {percent_key} 1-99 and {interval_key} >= 1 (whole numbers)"
        try:
            percent, interval = int(values[percent_key]), int(values[interval_key])
        except (KeyError, TypeError, ValueError):
            percent, interval = 0, 0
        if 1 <= percent <= 99 and interval >= 1:
            return _routing(kind, percent, interval)
    raise api_error(
        "InvalidTrafficRoutingConfigurationException", f"trafficRoutingConfig: {problem}"
    )


def check_group_settings(
    alarms: Mapping[str, Any] | None, rollback: Mapping[str, Any] | None
) -> None:
    """The alarm and auto-rollback configuration checks CreateDeploymentGroup makes."""
    listed = list((alarms or {}).get("alarms") or [])
    names = [str(alarm.get("name") or "") for alarm in listed]
    if len(listed) > 10:
        message = "The maximum number of alarms for a deployment group (10) was exceeded."
        raise api_error("AlarmsLimitExceededException", message)
    if (alarms or {}).get("enabled") and not listed:
        message = "The alarm configuration is enabled, but the alarm list is empty."
        raise api_error("InvalidAlarmConfigException", message)
    if "" in names or len(set(names)) != len(names):
        message = "Every alarm needs a name, and no alarm may be listed twice."
        raise api_error("InvalidAlarmConfigException", message)
    events = set((rollback or {}).get("events") or [])
    if ((rollback or {}).get("enabled") and not events) or events - ROLLBACK_EVENTS:
        message = f"Automatic rollback needs events from {sorted(ROLLBACK_EVENTS)}."
        raise api_error("InvalidAutoRollbackConfigException", message)


# -- the API moto lacks ---------------------------------------------------------------------------
def create_deployment_config(
    self: Any,
    deployment_config_name: str | None,
    compute_platform: str | None = None,
    traffic_routing_config: Mapping[str, Any] | None = None,
    minimum_healthy_hosts: Mapping[str, Any] | None = None,
    zonal_config: Mapping[str, Any] | None = None,
) -> str:
    """CodeDeployBackend.create_deployment_config: validate, store, return the new id."""
    from moto.core.utils import utcnow

    name, platform = deployment_config_name, compute_platform or SERVER
    if not name:
        raise api_error(
            "DeploymentConfigNameRequiredException", "deploymentConfigName is required."
        )
    if lookup(self, name) is not None:
        message = f"A deployment configuration named {name} already exists."
        raise api_error("DeploymentConfigAlreadyExistsException", message)
    if platform not in PLATFORM_DEFAULTS:
        message = f"The computePlatform {platform} is invalid: use Lambda, Server or ECS."
        raise api_error("InvalidComputePlatformException", message)
    if platform == SERVER and not minimum_healthy_hosts:
        message = "A Server deployment configuration needs minimumHealthyHosts."
        raise api_error("InvalidMinimumHealthyHostValueException", message)
    routing = None
    if platform != SERVER:
        routing = check_traffic_routing(traffic_routing_config or {"type": ALL_AT_ONCE})
    config_id = str(uuid.uuid4())
    custom_configs(self)[name] = DeploymentConfig(
        name, platform, routing, minimum_healthy_hosts, zonal_config, config_id, utcnow()
    )
    return config_id


def get_deployment_config(self: Any, deployment_config_name: str | None) -> dict[str, Any]:
    """CodeDeployBackend.get_deployment_config: the DeploymentConfigInfo."""
    if not deployment_config_name:
        raise api_error(
            "DeploymentConfigNameRequiredException", "deploymentConfigName is required."
        )
    config = lookup(self, deployment_config_name)
    if config is None:
        message = f"The deployment configuration {deployment_config_name} does not exist."
        raise api_error("DeploymentConfigDoesNotExistException", message)
    return config.info()


def list_deployment_configs(self: Any) -> list[str]:
    return sorted(PREDEFINED) + sorted(custom_configs(self))


def _respond(result: dict[str, Any]) -> Any:
    from moto.core.responses import ActionResult

    return ActionResult(result)


def _create_response(self: Any) -> Any:
    keys = ("deploymentConfigName", "computePlatform", "trafficRoutingConfig",
            "minimumHealthyHosts", "zonalConfig")  # fmt: skip
    config_id = self.codedeploy_backend.create_deployment_config(*map(self._get_param, keys))
    return _respond({"deploymentConfigId": config_id})


def _get_response(self: Any) -> Any:
    info = self.codedeploy_backend.get_deployment_config(self._get_param("deploymentConfigName"))
    return _respond({"deploymentConfigInfo": info})


def _list_response(self: Any) -> Any:
    return _respond({"deploymentConfigsList": self.codedeploy_backend.list_deployment_configs()})


def patches(backend: type, response: type) -> list[tuple[Any, str, Any, None]]:
    """The backend and response methods added to moto (None: moto must not have them)."""
    return [
        (backend, "create_deployment_config", create_deployment_config, None),
        (backend, "get_deployment_config", get_deployment_config, None),
        (backend, "list_deployment_configs", list_deployment_configs, None),
        (response, "create_deployment_config", _create_response, None),
        (response, "get_deployment_config", _get_response, None),
        (response, "list_deployment_configs", _list_response, None),
    ]
