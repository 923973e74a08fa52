"""The resource registry: which CloudFormation types the deployer can create, and how.

A type is created either by an engine handler (registered with `@handler("AWS::X::Y")` in a
`cfn_handlers_*` module) or, when no handler exists, by moto's own
`create_from_cloudformation_json` for the types moto's CloudFormation support knows. A handler
wins over moto: handlers exist where moto drops properties the platform depends on (bucket
versioning, state machine substitutions, Lambda layers...) or lacks the type entirely.

Type coverage (moto 5.2.5). "moto": moto's CloudFormation model creates it; "engine": a
handler here does, mostly through the emulator's AWS API.

    Type                                        By      Notes
    AWS::S3::Bucket                             engine  moto model (encryption, tags) + versioning,
                                                        public access block, notifications (incl.
                                                        EventBridgeConfiguration) via the S3 API
    AWS::S3::BucketPolicy                       engine  PutBucketPolicy
    Custom::S3BucketNotifications               engine  PutBucketNotificationConfiguration
    AWS::KMS::Key                               engine  CreateKey (moto's model mangles tags)
    AWS::KMS::Alias                             moto
    AWS::IAM::Role/Policy/ManagedPolicy/
      InstanceProfile                           moto
    AWS::Lambda::Function                       engine  CreateFunction: code from S3Bucket/S3Key or
                                                        ZipFile, layers known to the emulator,
                                                        architectures, tracing, tags
    AWS::Lambda::Permission/LayerVersion/
      EventSourceMapping                        moto
    AWS::Lambda::Alias/EventInvokeConfig/Url    engine  an alias's provisioned concurrency is not
                                                        emulated (moto has no such API)
    AWS::Lambda::Version                        engine  PublishVersion (Ref: the version's ARN)
    AWS::StepFunctions::StateMachine            engine  DefinitionString or Definition, with
                                                        DefinitionSubstitutions; type, logging
    AWS::Events::Rule/EventBus/Archive          moto    rule targets included
    AWS::DynamoDB::Table, AWS::SNS::Topic,
      AWS::SQS::Queue                           moto
    AWS::SNS::Subscription/TopicPolicy,
      AWS::SQS::QueuePolicy                     engine
    AWS::SSM::Parameter                         engine  moto's model ignores generated names
    AWS::SecretsManager::Secret                 engine  SecretString or GenerateSecretString
                                                        (SecretStringTemplate/GenerateStringKey)
    AWS::CloudWatch::Alarm                      engine  PutMetricAlarm; single-metric alarms are
                                                        evaluated on PutMetricData, with state-
                                                        change events and SNS actions, by
                                                        localaws.cloudwatch_alarms
    AWS::CloudWatch::Dashboard,
      AWS::Logs::LogGroup                       moto
    AWS::Logs::LogStream                        engine  CreateLogStream
    AWS::KinesisFirehose::DeliveryStream        engine  in moto's Firehose; S3 destinations only,
                                                        delivered as AWS does by
                                                        localaws.firehose_delivery
    AWS::EC2::VPC/Subnet/RouteTable/Route/
      SubnetRouteTableAssociation/
      InternetGateway/VPCGatewayAttachment/
      NatGateway/EIP/VPCEndpoint/FlowLog/
      SecurityGroup/SecurityGroupIngress        moto    Subnet attributes supplemented here
    AWS::EC2::SecurityGroupEgress               engine  AuthorizeSecurityGroupEgress
    Custom::VpcRestrictDefaultSG                engine  revokes the default group's rules
    AWS::SageMaker::ModelPackageGroup           engine  in moto's SageMaker (registry works)
    AWS::Glue::Database, AWS::Glue::Table       engine  in moto's Glue catalog
    AWS::Athena::WorkGroup                      engine  in moto's Athena
    AWS::ElastiCache::ReplicationGroup/
      CacheCluster/ServerlessCache              engine  recorded; endpoint attributes are the
                                                        configured local Redis (redis_url)
    AWS::ElastiCache::SubnetGroup/
      ParameterGroup/User/UserGroup             engine  recorded
    AWS::EKS::Cluster,
      Custom::AWSCDK-EKS-Cluster                engine  in moto's EKS (metadata only)
    AWS::EKS::Nodegroup/FargateProfile/
      AccessEntry/Addon, Custom::AWSCDK-EKS-
      KubernetesResource/HelmChart/Patch        engine  recorded with resolved properties
    AWS::Scheduler::Schedule/ScheduleGroup      engine  in moto's Scheduler; no clock: a Lambda or
                                                        Step Functions target runs on demand
                                                        (LocalEngine.run_schedule)
    AWS::CDK::Metadata                          engine  ignored
    AWS::CloudFormation::Stack (nested)         --      unsupported: fails the pre-scan

Anything else moto's CloudFormation models cover (see `moto_types()`) is created by moto.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from localaws.emulator import Emulator

log = logging.getLogger(__name__)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"


class ResourceCreationError(RuntimeError):
    """A resource could not be created; names the stack, logical id and type."""


@dataclass
class ResourceContext:
    """Everything a handler needs to create one resource.

    `properties` are fully resolved (no intrinsics left). `physical_name` is the name
    CloudFormation would generate when the template names nothing.
    """

    stack_name: str
    stack_id: str
    logical_id: str
    resource_type: str
    properties: dict[str, Any]
    physical_name: str
    account_id: str
    region: str
    emulator: Emulator
    redis_url: str = DEFAULT_REDIS_URL

    def client(self, service: str) -> Any:
        return self.emulator.client(service)


@dataclass
class Created:
    """A created resource: its `Ref` value and a way to read `Fn::GetAtt` attributes.

    `attributes` holds precomputed values; `model` (a moto model) answers the rest through its
    `get_cfn_attribute`. `recorded` marks resources that only exist in the engine's records
    (no emulated AWS service behind them).
    """

    physical_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    model: Any = None
    recorded: bool = False

    def get_att(self, name: str) -> Any:
        if name in self.attributes:
            return self.attributes[name]
        if self.model is not None:
            return self.model.get_cfn_attribute(name)
        raise KeyError(name)


_NOT_DELEGATED = frozenset({"AWS::CloudFormation::Stack", "AWS::SERVICE::RESOURCE"})

Handler = Callable[[ResourceContext], Created]
_HANDLERS: dict[str, Handler] = {}


def handler(*resource_types: str) -> Callable[[Handler], Handler]:
    """Register a create function for one or more CloudFormation types."""

    def register(function: Handler) -> Handler:
        for resource_type in resource_types:
            _HANDLERS[resource_type] = function
        return function

    return register


def _load_handlers() -> None:
    # Handler modules register themselves on import.
    from localaws import (  # noqa: F401
        cfn_handlers_core,
        cfn_handlers_platform,
        cfn_handlers_rollout,
        cfn_handlers_serving,
    )


def moto_types() -> Mapping[str, Any]:
    """CloudFormation types moto 5.2.5 can create, mapped to their model classes."""
    from moto.cloudformation.parsing import get_model_map

    # Nested stacks would bypass this engine's resolution and support checks.
    return {
        name: model
        for name, model in get_model_map().items()
        if name.startswith("AWS::") and name not in _NOT_DELEGATED
    }


def engine_types() -> frozenset[str]:
    _load_handlers()
    return frozenset(_HANDLERS)


def is_supported(resource_type: str) -> bool:
    return resource_type in engine_types() or resource_type in moto_types()


def create(context: ResourceContext) -> Created:
    """Create one resource through its handler, or through moto's model for the type."""
    _load_handlers()
    function = _HANDLERS.get(context.resource_type, create_with_moto)
    try:
        return function(context)
    except Exception as error:
        raise ResourceCreationError(
            f"{context.stack_name}/{context.logical_id} ({context.resource_type}): {error}"
        ) from error


def create_with_moto(context: ResourceContext) -> Created:
    from moto.cloudformation.parsing import resource_name_property_from_type

    model_class = moto_types()[context.resource_type]
    name_property = resource_name_property_from_type(context.resource_type)
    name = context.properties.get(name_property or "", context.physical_name)
    model = model_class.create_from_cloudformation_json(
        name,
        {"Type": context.resource_type, "Properties": context.properties},
        context.account_id,
        context.region,
        LogicalId=context.logical_id,
        StackId=context.stack_id,
        ResourceType=context.resource_type,
    )
    model.cf_resource_type = context.resource_type
    model.logical_resource_id = context.logical_id
    extra = _MOTO_MISSING_ATTRIBUTES.get(context.resource_type, {})
    attributes = {name: getattr(model, field) for name, field in extra.items()}
    # Some moto models (e.g. Lambda Permission) have no physical id; CloudFormation would
    # generate one, which is what the engine's physical name stands for.
    physical_id = getattr(model, "physical_resource_id", None) or context.physical_name
    return Created(physical_id=str(physical_id), attributes=attributes, model=model)


# Documented Fn::GetAtt attributes moto's models raise NotImplemented for, by model field.
_MOTO_MISSING_ATTRIBUTES: dict[str, dict[str, str]] = {
    "AWS::EC2::Subnet": {
        "AvailabilityZone": "availability_zone",
        "SubnetId": "id",
        "VpcId": "vpc_id",
        "CidrBlock": "cidr_block",
    },
    "AWS::EC2::SecurityGroup": {"VpcId": "vpc_id"},
}


def cfn_tags(properties: Mapping[str, Any]) -> dict[str, str]:
    """CloudFormation's `[{Key, Value}]` tag list (or a tag map) as a dict."""
    tags = properties.get("Tags") or []
    if isinstance(tags, dict):
        return {str(key): str(value) for key, value in tags.items()}
    return {str(tag["Key"]): str(tag["Value"]) for tag in tags}


def cfn_tag_list(properties: Mapping[str, Any]) -> list[dict[str, str]]:
    """The resource's tags as the `[{"Key", "Value"}]` list most AWS APIs take."""
    return [{"Key": key, "Value": value} for key, value in cfn_tags(properties).items()]
