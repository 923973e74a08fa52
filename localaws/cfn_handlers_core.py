"""Engine handlers for general-purpose types moto skips or creates with properties dropped.

Handlers talk to the emulator through boto3 (the public API), not moto's internals, so a moto
upgrade breaks them only where the AWS API itself would. Each returns the `Ref` value and the
`Fn::GetAtt` attributes CloudFormation documents for the type.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from typing import Any

from localaws.resources import (
    Created,
    ResourceContext,
    cfn_tag_list,
    cfn_tags,
    create_with_moto,
    handler,
)

log = logging.getLogger(__name__)


def _arn(context: ResourceContext, service: str, resource: str) -> str:
    return f"arn:aws:{service}:{context.region}:{context.account_id}:{resource}"


def _policy_json(document: Any) -> str:
    return document if isinstance(document, str) else json.dumps(document)


@handler("AWS::S3::Bucket")
def s3_bucket(context: ResourceContext) -> Created:
    """moto creates the bucket (encryption, tags); the rest is applied through the S3 API."""
    created = create_with_moto(context)
    name = created.physical_id
    props, s3 = context.properties, context.client("s3")
    if "VersioningConfiguration" in props:
        s3.put_bucket_versioning(
            Bucket=name,
            VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]},
        )
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
        )
    if "NotificationConfiguration" in props:
        s3.put_bucket_notification_configuration(
            Bucket=name,
            NotificationConfiguration=_s3_notifications(props["NotificationConfiguration"]),
        )
    regional = f"{name}.s3.{context.region}.amazonaws.com"
    created.attributes.update(
        Arn=f"arn:aws:s3:::{name}",
        DomainName=f"{name}.s3.amazonaws.com",
        RegionalDomainName=regional,
        DualStackDomainName=f"{name}.s3.dualstack.{context.region}.amazonaws.com",
        WebsiteURL=f"http://{name}.s3-website.{context.region}.amazonaws.com",
    )
    return created


def _s3_notifications(cfn: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's NotificationConfiguration shape -> the S3 API's."""

    def filters(item: dict[str, Any]) -> dict[str, Any]:
        rules = item.get("Filter", {}).get("S3Key", {}).get("Rules", [])
        return {"Filter": {"Key": {"FilterRules": rules}}} if rules else {}

    api: dict[str, Any] = {}
    if "EventBridgeConfiguration" in cfn:
        api["EventBridgeConfiguration"] = {}
    for cfn_key, api_key, target, api_target in (
        ("LambdaConfigurations", "LambdaFunctionConfigurations", "Function", "LambdaFunctionArn"),
        ("QueueConfigurations", "QueueConfigurations", "Queue", "QueueArn"),
        ("TopicConfigurations", "TopicConfigurations", "Topic", "TopicArn"),
    ):
        api[api_key] = [
            {api_target: item[target], "Events": [item["Event"]], **filters(item)}
            for item in cfn.get(cfn_key, [])
        ]
    return {key: value for key, value in api.items() if value or key == "EventBridgeConfiguration"}


@handler("AWS::S3::BucketPolicy")
def s3_bucket_policy(context: ResourceContext) -> Created:
    bucket = context.properties["Bucket"]
    context.client("s3").put_bucket_policy(
        Bucket=bucket, Policy=_policy_json(context.properties["PolicyDocument"])
    )
    return Created(physical_id=bucket)


@handler("Custom::S3BucketNotifications")
def s3_bucket_notifications(context: ResourceContext) -> Created:
    """CDK's notifications custom resource: its Lambda puts this configuration on the bucket."""
    bucket = context.properties["BucketName"]
    config = dict(context.properties.get("NotificationConfiguration") or {})
    context.client("s3").put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration=config
    )
    return Created(physical_id=f"{bucket}-notifications")


@handler("AWS::Lambda::Function")
def lambda_function(context: ResourceContext) -> Created:
    props = context.properties
    name = props.get("FunctionName", context.physical_name)
    request: dict[str, Any] = {
        "FunctionName": name,
        "Role": props["Role"],
        "Code": _lambda_code(props["Code"], props.get("Runtime", "")),
        "Tags": cfn_tags(props),
    }
    for key in (
        "Runtime", "Handler", "Description", "Timeout", "MemorySize", "Environment",
        "VpcConfig", "TracingConfig", "Architectures", "EphemeralStorage", "PackageType",
        "ImageConfig", "DeadLetterConfig", "LoggingConfig",
    ):  # fmt: skip
        if key in props:
            request[key] = props[key]
    if "KmsKeyArn" in props:
        request["KMSKeyArn"] = props["KmsKeyArn"]
    known, unknown = _split_layers(context, props.get("Layers", []))
    if unknown:
        log.warning("%s: layers not in the emulator, not attached: %s", name, unknown)
    request["Layers"] = known
    client = context.client("lambda")
    arn = client.create_function(**request)["FunctionArn"]
    if props.get("ReservedConcurrentExecutions") is not None:
        client.put_function_concurrency(
            FunctionName=name,
            ReservedConcurrentExecutions=int(props["ReservedConcurrentExecutions"]),
        )
    return Created(physical_id=name, attributes={"Arn": arn})


def _lambda_code(code: dict[str, Any], runtime: str) -> dict[str, Any]:
    if "ZipFile" not in code:
        return {key: code[key] for key in ("S3Bucket", "S3Key", "S3ObjectVersion", "ImageUri")
                if key in code}  # fmt: skip
    # CloudFormation stores inline code as index.py / index.js at the archive root.
    filename = "index.py" if runtime.startswith("python") else "index.js"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(filename, code["ZipFile"])
    return {"ZipFile": buffer.getvalue()}


def _split_layers(context: ResourceContext, layers: list[str]) -> tuple[list[str], list[str]]:
    client = context.client("lambda")
    known, unknown = [], []
    for arn in layers:
        name, _, version = arn.rpartition(":")
        try:
            client.get_layer_version(LayerName=name, VersionNumber=int(version))
            known.append(arn)
        except Exception:  # noqa: BLE001 - any failure means the layer is not emulated
            unknown.append(arn)
    return known, unknown


@handler("AWS::Lambda::Alias")
def lambda_alias(context: ResourceContext) -> Created:
    props = context.properties
    response = context.client("lambda").create_alias(
        FunctionName=props["FunctionName"],
        Name=props["Name"],
        FunctionVersion=props["FunctionVersion"],
        Description=props.get("Description", ""),
    )
    return Created(physical_id=response["AliasArn"], attributes={"AliasArn": response["AliasArn"]})


@handler("AWS::Lambda::EventInvokeConfig")
def lambda_event_invoke_config(context: ResourceContext) -> Created:
    props = context.properties
    request = {key: props[key] for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds",
                                           "DestinationConfig") if key in props}  # fmt: skip
    context.client("lambda").put_function_event_invoke_config(
        FunctionName=props["FunctionName"], Qualifier=props.get("Qualifier", "$LATEST"), **request
    )
    return Created(physical_id=f"{props['FunctionName']}-{props.get('Qualifier', '$LATEST')}")


@handler("AWS::Lambda::Url")
def lambda_url(context: ResourceContext) -> Created:
    props = context.properties
    response = context.client("lambda").create_function_url_config(
        FunctionName=props["TargetFunctionArn"], AuthType=props["AuthType"]
    )
    return Created(
        physical_id=response["FunctionArn"],
        attributes={"FunctionUrl": response["FunctionUrl"], "FunctionArn": response["FunctionArn"]},
    )


@handler("AWS::StepFunctions::StateMachine")
def state_machine(context: ResourceContext) -> Created:
    props = context.properties
    definition = props.get("DefinitionString")
    if definition is None:
        definition = json.dumps(props["Definition"])
    for name, value in (props.get("DefinitionSubstitutions") or {}).items():
        definition = definition.replace("${" + name + "}", str(value))
    name = props.get("StateMachineName", context.physical_name)
    request: dict[str, Any] = {
        "name": name,
        "definition": definition,
        "roleArn": props["RoleArn"],
        "type": props.get("StateMachineType", "STANDARD"),
        "tags": [{"key": k, "value": v} for k, v in cfn_tags(props).items()],
    }
    if "LoggingConfiguration" in props:
        request["loggingConfiguration"] = _camel_keys(props["LoggingConfiguration"])
    if "TracingConfiguration" in props:
        request["tracingConfiguration"] = _camel_keys(props["TracingConfiguration"])
    arn = context.client("stepfunctions").create_state_machine(**request)["stateMachineArn"]
    return Created(physical_id=arn, attributes={"Arn": arn, "Name": name})


def _camel_keys(node: Any) -> Any:
    """Step Functions' API spells CloudFormation's PascalCase keys in camelCase."""
    if isinstance(node, list):
        return [_camel_keys(item) for item in node]
    if isinstance(node, dict):
        return {key[:1].lower() + key[1:]: _camel_keys(value) for key, value in node.items()}
    return node


@handler("AWS::SNS::Subscription")
def sns_subscription(context: ResourceContext) -> Created:
    props = context.properties
    attributes: dict[str, str] = {
        key: _policy_json(props[key]) for key in ("FilterPolicy", "RedrivePolicy") if key in props
    }
    if "RawMessageDelivery" in props:
        attributes["RawMessageDelivery"] = str(props["RawMessageDelivery"]).lower()
    arn = context.client("sns").subscribe(
        TopicArn=props["TopicArn"],
        Protocol=props["Protocol"],
        Endpoint=props["Endpoint"],
        Attributes=attributes,
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]
    return Created(physical_id=arn, attributes={"Arn": arn})


@handler("AWS::SNS::TopicPolicy")
def sns_topic_policy(context: ResourceContext) -> Created:
    document = _policy_json(context.properties["PolicyDocument"])
    for topic in context.properties["Topics"]:
        context.client("sns").set_topic_attributes(
            TopicArn=topic, AttributeName="Policy", AttributeValue=document
        )
    return Created(physical_id=context.physical_name)


@handler("AWS::SQS::QueuePolicy")
def sqs_queue_policy(context: ResourceContext) -> Created:
    document = _policy_json(context.properties["PolicyDocument"])
    for queue_url in context.properties["Queues"]:
        context.client("sqs").set_queue_attributes(
            QueueUrl=queue_url, Attributes={"Policy": document}
        )
    return Created(physical_id=context.physical_name)


@handler("AWS::CloudWatch::Alarm")
def cloudwatch_alarm(context: ResourceContext) -> Created:
    props = dict(context.properties)
    name = props.pop("AlarmName", context.physical_name)
    props.pop("Tags", None)
    context.client("cloudwatch").put_metric_alarm(AlarmName=name, **props)
    return Created(
        physical_id=name, attributes={"Arn": _arn(context, "cloudwatch", f"alarm:{name}")}
    )


@handler("AWS::EC2::SecurityGroupEgress")
def security_group_egress(context: ResourceContext) -> Created:
    props = dict(context.properties)
    group_id = props.pop("GroupId")
    permission: dict[str, Any] = {"IpProtocol": str(props["IpProtocol"])}
    for key in ("FromPort", "ToPort"):
        if key in props:
            permission[key] = int(props[key])
    if "CidrIp" in props:
        permission["IpRanges"] = [{"CidrIp": props["CidrIp"]}]
    if "CidrIpv6" in props:
        permission["Ipv6Ranges"] = [{"CidrIpv6": props["CidrIpv6"]}]
    if "DestinationSecurityGroupId" in props:
        permission["UserIdGroupPairs"] = [{"GroupId": props["DestinationSecurityGroupId"]}]
    response = context.client("ec2").authorize_security_group_egress(
        GroupId=group_id, IpPermissions=[permission]
    )
    rules = response.get("SecurityGroupRules") or [{}]
    return Created(physical_id=rules[0].get("SecurityGroupRuleId", context.physical_name))


@handler("Custom::VpcRestrictDefaultSG")
def restrict_default_security_group(context: ResourceContext) -> Created:
    """CDK's `restrictDefaultSecurityGroup`: strip every rule from the VPC's default group."""
    group_id = context.properties["DefaultSecurityGroupId"]
    ec2 = context.client("ec2")
    group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    if group.get("IpPermissions"):
        ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=group["IpPermissions"])
    if group.get("IpPermissionsEgress"):
        ec2.revoke_security_group_egress(
            GroupId=group_id, IpPermissions=group["IpPermissionsEgress"]
        )
    return Created(physical_id=f"{group_id}-restricted")


@handler("AWS::SecretsManager::Secret")
def secret(context: ResourceContext) -> Created:
    props = context.properties
    # CloudFormation names an unnamed secret LogicalId-<random>, without the stack name.
    suffix = context.physical_name.rpartition("-")[2]
    name = props.get("Name", f"{context.logical_id}-{suffix}")
    request: dict[str, Any] = {
        "Name": name,
        "SecretString": _secret_string(context, props),
        "Tags": cfn_tag_list(props),
    }
    for key in ("Description", "KmsKeyId"):
        if key in props:
            request[key] = props[key]
    arn = context.client("secretsmanager").create_secret(**request)["ARN"]
    return Created(physical_id=arn, attributes={"Id": arn})


def _secret_string(context: ResourceContext, props: dict[str, Any]) -> str:
    if "SecretString" in props:
        return str(props["SecretString"])
    spec = dict(props.get("GenerateSecretString") or {})
    template, key = spec.pop("SecretStringTemplate", None), spec.pop("GenerateStringKey", None)
    request = {name: spec[name] for name in (
        "ExcludeCharacters", "ExcludeLowercase", "ExcludeNumbers", "ExcludePunctuation",
        "ExcludeUppercase", "IncludeSpace", "RequireEachIncludedType", "PasswordLength",
    ) if name in spec}  # fmt: skip
    password = context.client("secretsmanager").get_random_password(**request)["RandomPassword"]
    if template is None or key is None:
        return str(password)
    document = json.loads(template)
    document[key] = password
    return json.dumps(document)


@handler("AWS::CDK::Metadata")
def cdk_metadata(context: ResourceContext) -> Created:
    """Usage analytics for the CDK team; nothing to emulate."""
    return Created(physical_id=context.physical_name, recorded=True)


@handler("AWS::SSM::Parameter")
def ssm_parameter(context: ResourceContext) -> Created:
    """moto's model ignores the generated name, so an unnamed parameter fails there."""
    props = context.properties
    suffix = context.physical_name.rpartition("-")[2]
    name = props.get("Name", f"CFN-{context.logical_id}-{suffix}")
    request: dict[str, Any] = {"Name": name, "Value": str(props["Value"]), "Type": props["Type"]}
    for key in ("Description", "AllowedPattern", "Tier", "Policies", "DataType"):
        if key in props:
            request[key] = props[key]
    if tags := cfn_tag_list(props):
        request["Tags"] = tags
    context.client("ssm").put_parameter(**request)
    return Created(physical_id=name, attributes={"Type": props["Type"], "Value": props["Value"]})


@handler("AWS::KMS::Key")
def kms_key(context: ResourceContext) -> Created:
    """moto's model passes CloudFormation's `{Key, Value}` tags where KMS wants TagKey/TagValue."""
    props = context.properties
    request: dict[str, Any] = {
        "KeyUsage": props.get("KeyUsage", "ENCRYPT_DECRYPT"),
        "KeySpec": props.get("KeySpec", "SYMMETRIC_DEFAULT"),
        "Tags": [{"TagKey": k, "TagValue": v} for k, v in cfn_tags(props).items()],
    }
    if "KeyPolicy" in props:
        request["Policy"] = _policy_json(props["KeyPolicy"])
    for key in ("Description", "MultiRegion"):
        if key in props:
            request[key] = props[key]
    kms = context.client("kms")
    metadata = kms.create_key(**request)["KeyMetadata"]
    if props.get("EnableKeyRotation"):
        kms.enable_key_rotation(KeyId=metadata["KeyId"])
    if props.get("Enabled") is False:
        kms.disable_key(KeyId=metadata["KeyId"])
    return Created(
        physical_id=metadata["KeyId"],
        attributes={"Arn": metadata["Arn"], "KeyId": metadata["KeyId"]},
    )
