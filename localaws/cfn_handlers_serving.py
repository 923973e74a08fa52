"""Engine handlers for the types the serving and registry stacks bring: Lambda versions, Firehose
delivery streams, CloudWatch log streams and log metric filters.

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
from localaws.resources import Created, ResourceContext, cfn_tag_list, handler

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
    if tags := cfn_tag_list(props):
        request["Tags"] = tags
    created = context.client("firehose").create_delivery_stream(DeliveryStreamName=name, **request)
    return Created(physical_id=name, attributes={"Arn": created["DeliveryStreamARN"]})


@handler("AWS::Logs::LogStream")
def log_stream(context: ResourceContext) -> Created:
    props = context.properties
    name = props.get("LogStreamName", context.physical_name)
    context.client("logs").create_log_stream(logGroupName=props["LogGroupName"], logStreamName=name)
    return Created(physical_id=name)


@handler("AWS::Logs::MetricFilter")
def metric_filter(context: ResourceContext) -> Created:
    """Stored through PutMetricFilter (moto has no CloudFormation model for it). moto keeps the
    filter but never turns matching log events into metric data, so an alarm on the filter's
    metric stays in INSUFFICIENT_DATA in the engine."""
    props = context.properties
    name = props.get("FilterName", context.physical_name)
    transformations = [
        {key: item[key] for key in ("MetricName", "MetricNamespace", "MetricValue",
                                    "DefaultValue", "Unit", "Dimensions") if key in item}
        for item in props["MetricTransformations"]
    ]  # fmt: skip
    context.client("logs").put_metric_filter(
        logGroupName=props["LogGroupName"], filterName=name,
        filterPattern=props["FilterPattern"], metricTransformations=[
            {k[0].lower() + k[1:]: v for k, v in t.items()} for t in transformations
        ],
    )  # fmt: skip
    return Created(physical_id=name)
