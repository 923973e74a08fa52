"""Engine handlers for the rollout types: CodeDeploy applications, deployment groups and
deployment configurations (what `aws_cdk.aws_codedeploy.LambdaDeploymentGroup` synthesizes).

moto 5.2.5 has no CloudFormation model for any `AWS::CodeDeploy::*` type, so they are created
through the emulator's CodeDeploy API. `Ref` is the name of each (CloudFormation documents no
`Fn::GetAtt` attributes for them); unnamed resources get CloudFormation's generated name.
A deployment configuration goes into the registry behind the CreateDeploymentConfig that
`localaws.codedeploy` adds (moto has none), with that API's validation.

Nested properties are passed in the API's camelCase shape. Deployment-group properties that only
EC2/ECS blue/green deployments use (load balancers, ECS services, tag sets) and `Deployment` (a
deployment started at creation) are rejected rather than silently dropped.

The `UpdatePolicy: CodeDeployLambdaAliasUpdate` the CDK puts on the group's alias only acts when
CloudFormation *updates* the alias's version; the engine creates stacks and never updates them,
so the policy is ignored. Rollouts are CreateDeployment calls, as on AWS outside CloudFormation.
"""

from __future__ import annotations

from typing import Any

from localaws._codedeploy_configs import create_deployment_config
from localaws.resources import Created, ResourceContext, cfn_tag_list, handler

_GROUP_VALUES = (
    "ServiceRoleArn",
    "DeploymentConfigName",
    "OutdatedInstancesStrategy",
    "AutoScalingGroups",
    "Ec2TagFilters",
    "OnPremisesInstanceTagFilters",
)
_GROUP_SHAPES = (
    "AlarmConfiguration",
    "AutoRollbackConfiguration",
    "DeploymentStyle",
    "TriggerConfigurations",
)
_GROUP_HANDLED = {
    "ApplicationName",
    "DeploymentGroupName",
    "Tags",
    "TerminationHookEnabled",
    *_GROUP_VALUES,
    *_GROUP_SHAPES,
}
_BOOLEANS = {"Enabled", "IgnorePollAlarmFailure"}


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _api_shape(value: Any, key: str = "") -> Any:
    """A CloudFormation property value with the API's camelCase keys (booleans as booleans)."""
    if isinstance(value, dict):
        return {_lower_first(name): _api_shape(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [_api_shape(item) for item in value]
    if key in _BOOLEANS and isinstance(value, str):
        return value.lower() == "true"
    return value


@handler("AWS::CodeDeploy::Application")
def application(context: ResourceContext) -> Created:
    props = context.properties
    name = props.get("ApplicationName", context.physical_name)
    request: dict[str, Any] = {
        "applicationName": name,
        "computePlatform": props.get("ComputePlatform", "Server"),
    }
    if tags := cfn_tag_list(props):
        request["tags"] = tags
    context.client("codedeploy").create_application(**request)
    return Created(physical_id=name)


@handler("AWS::CodeDeploy::DeploymentGroup")
def deployment_group(context: ResourceContext) -> Created:
    props = context.properties
    unsupported = sorted(set(props) - _GROUP_HANDLED)
    if unsupported:
        raise ValueError(
            f"deployment group properties not emulated by the local engine: {unsupported}"
        )
    name = props.get("DeploymentGroupName", context.physical_name)
    request: dict[str, Any] = {
        "applicationName": props["ApplicationName"],
        "deploymentGroupName": name,
    }
    request.update({_lower_first(key): props[key] for key in _GROUP_VALUES if key in props})
    request.update(
        {_lower_first(key): _api_shape(props[key]) for key in _GROUP_SHAPES if key in props}
    )
    if "TerminationHookEnabled" in props:
        request["terminationHookEnabled"] = str(props["TerminationHookEnabled"]).lower() == "true"
    if tags := cfn_tag_list(props):
        request["tags"] = tags
    context.client("codedeploy").create_deployment_group(**request)
    return Created(physical_id=name)


@handler("AWS::CodeDeploy::DeploymentConfig")
def deployment_config(context: ResourceContext) -> Created:
    """Stored where the extension's CreateDeploymentConfig stores configurations (moto has no
    such API), so it exists whether or not `localaws.codedeploy` is installed yet."""
    from moto.codedeploy.models import codedeploy_backends

    props = context.properties
    name = props.get("DeploymentConfigName", context.physical_name)
    keys = ("TrafficRoutingConfig", "MinimumHealthyHosts", "ZonalConfig")
    shapes = [_api_shape(props[key]) if key in props else None for key in keys]
    backend = codedeploy_backends[context.account_id][context.region]
    create_deployment_config(backend, name, props.get("ComputePlatform", "Server"), *shapes)
    return Created(physical_id=name)
