"""Probes of the moto models `localaws.codedeploy` reads and writes (part of its contract check).

The extension sets attributes of moto's CodeDeploy `DeploymentInfo`, reads its deployment groups'
alarm and rollback configurations, moves Lambda aliases through `LambdaBackend.update_alias` and
reads alarm states from the CloudWatch backend. Each probe builds throwaway models (never the
registered backends) and reports what is missing, so a moto upgrade fails loudly.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

_ACCOUNT, _REGION = "000000000000", "us-east-1"
_DEPLOYMENT_FIELDS = (
    "status",
    "start_time",
    "complete_time",
    "revision",
    "deployment_id",
    "application_name",
    "deployment_group_name",
    "deployment_group",
    "override_alarm_configuration",
    "auto_rollback_configuration",
    "creator",
    "deployment_overview",
    "deployment_config_name",
)
_GROUP_FIELDS = (
    "alarm_configuration",
    "auto_rollback_configuration",
    "deployment_group_id",
    "deployment_config_name",
    "application",
)
_LAMBDA_SIGNATURES = {
    "update_alias": [
        "self",
        "name",
        "function_name",
        "function_version",
        "description",
        "routing_config",
    ],
    "get_alias": ["self", "name", "function_name"],
    "get_function": ["self", "function_name_or_arn", "qualifier"],
}


def model_problems(
    create_group: Callable[..., Any], create_deployment: Callable[..., Any]
) -> list[str]:
    """What changed in moto's models; `create_*` are moto's own backend methods."""
    problems: list[str] = []
    for probe in (_codedeploy_problems, _lambda_problems, _cloudwatch_problems):
        try:
            problems += probe(create_group, create_deployment)
        except Exception as error:  # noqa: BLE001 - any failure is a contract change
            problems.append(f"{probe.__name__.strip('_')} failed: {error!r}")
    return problems


def _missing(obj: Any, fields: tuple[str, ...], what: str) -> list[str]:
    return [f"{what}.{name} is missing" for name in fields if not hasattr(obj, name)]


def _codedeploy_problems(create_group: Callable[..., Any], create: Callable[..., Any]) -> list[str]:
    from moto.codedeploy.exceptions import CodeDeployException
    from moto.codedeploy.models import CodeDeployBackend, codedeploy_backends  # noqa: F401

    backend = CodeDeployBackend(_REGION, _ACCOUNT)
    backend.create_application("probe", "Lambda", [])
    create_group(
        backend,
        application_name="probe",
        deployment_group_name="group",
        deployment_config_name="CodeDeployDefault.LambdaAllAtOnce",
        ec2_tag_filters=None,
        on_premises_instance_tag_filters=None,
        auto_scaling_groups=None,
        service_role_arn=f"arn:aws:iam::{_ACCOUNT}:role/probe",
        alarm_configuration={"enabled": False, "alarms": []},
    )
    deployment_id = create(
        backend,
        application_name="probe",
        deployment_group_name="group",
        revision={},
        deployment_config_name=None,
    )
    deployment = backend.deployments[deployment_id]
    problems = _missing(deployment, _DEPLOYMENT_FIELDS, "DeploymentInfo")
    problems += _missing(deployment.deployment_group, _GROUP_FIELDS, "DeploymentGroup")
    problems += _missing(deployment.application, ("compute_platform",), "Application")
    if not isinstance(CodeDeployException("Probe", "probe"), Exception):
        problems.append("CodeDeployException(code, message) changed")
    return problems


def _lambda_problems(*_: Any) -> list[str]:
    from moto.awslambda import exceptions
    from moto.awslambda.models import LambdaAlias, LambdaBackend, lambda_backends  # noqa: F401

    problems = []
    for name, expected in _LAMBDA_SIGNATURES.items():
        params = list(inspect.signature(getattr(LambdaBackend, name)).parameters)
        if params != expected:
            problems.append(f"LambdaBackend.{name} signature changed to {params}")
    alias = LambdaAlias(
        account_id=_ACCOUNT,
        region=_REGION,
        name="live",
        function_name="f",
        function_version="1",
        description="",
        routing_config="",
    )
    problems += _missing(alias, ("function_version", "routing_config"), "LambdaAlias")
    for error in ("UnknownAliasException", "UnknownFunctionException"):
        if not hasattr(exceptions, error):
            problems.append(f"moto.awslambda.exceptions.{error} is missing")
    return problems


def _cloudwatch_problems(*_: Any) -> list[str]:
    from moto.cloudwatch.models import CloudWatchBackend, cloudwatch_backends  # noqa: F401

    backend = CloudWatchBackend(_REGION, _ACCOUNT)
    backend.put_metric_alarm(
        name="probe",
        namespace="Probe",
        metric_name="Errors",
        comparison_operator="GreaterThanThreshold",
        evaluation_periods=1,
        period=60,
        threshold=1.0,
        statistic="Sum",
        description="",
        dimensions=[],
        alarm_actions=[],
    )
    alarm = getattr(backend, "alarms", {}).get("probe")
    if getattr(alarm, "state_value", None) != "OK":
        return ["CloudWatchBackend.alarms[name].state_value is gone"]
    return []
