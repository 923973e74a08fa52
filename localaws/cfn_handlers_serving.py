"""Engine handlers for the types the serving stack brings: Lambda versions, Firehose delivery
streams and CloudWatch log streams.

moto 5.2.5 has no CloudFormation model for delivery streams or log streams, and its model of
`AWS::Lambda::Version` answers neither `Ref` (the version's ARN) nor `Fn::GetAtt ... Version`
(what an alias points at), so all three are created through the emulator's API. A delivery
stream's S3 destination is checked first (`localaws.firehose_delivery.check_destination`):
settings the engine would not honour when delivering fail the deployment instead of being
ignored.
"""

from __future__ import annotations

from typing import Any

from localaws.firehose_delivery import check_destination
from localaws.resources import Created, ResourceContext, cfn_tags, handler

# CloudFormation properties passed to CreateDeliveryStream as they are (same names and shapes).
_STREAM_PARAMETERS = (
    "DeliveryStreamType",
    "DeliveryStreamEncryptionConfigurationInput",
    "KinesisStreamSourceConfiguration",
    "S3DestinationConfiguration",
    "ExtendedS3DestinationConfiguration",
)


@handler("AWS::Lambda::Version")
def lambda_version(context: ResourceContext) -> Created:
    props = context.properties
    request = {key: props[key] for key in ("CodeSha256", "Description") if key in props}
    published = context.client("lambda").publish_version(
        FunctionName=props["FunctionName"], **request
    )
    arn = published["FunctionArn"]  # qualified: <function arn>:<version>
    return Created(
        physical_id=arn,
        attributes={"Version": published["Version"], "FunctionArn": arn.rpartition(":")[0]},
    )


@handler("AWS::KinesisFirehose::DeliveryStream")
def delivery_stream(context: ResourceContext) -> Created:
    props = context.properties
    destinations = sorted(key for key in props if key.endswith("DestinationConfiguration"))
    unsupported = [key for key in destinations if key not in _STREAM_PARAMETERS]
    if unsupported:
        raise ValueError(f"destinations not emulated by the local engine: {unsupported}")
    for key in destinations:
        check_destination(props[key])
    name = props.get("DeliveryStreamName", context.physical_name)
    request: dict[str, Any] = {key: props[key] for key in _STREAM_PARAMETERS if key in props}
    tags = cfn_tags(props)
    if tags:
        request["Tags"] = [{"Key": key, "Value": value} for key, value in tags.items()]
    created = context.client("firehose").create_delivery_stream(DeliveryStreamName=name, **request)
    return Created(physical_id=name, attributes={"Arn": created["DeliveryStreamARN"]})


@handler("AWS::Logs::LogStream")
def log_stream(context: ResourceContext) -> Created:
    props = context.properties
    name = props.get("LogStreamName", context.physical_name)
    context.client("logs").create_log_stream(logGroupName=props["LogGroupName"], logStreamName=name)
    return Created(physical_id=name)
