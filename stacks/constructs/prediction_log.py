"""Prediction logs: a Kinesis Data Firehose stream (Direct PUT) delivering to an S3 bucket.

The serving app (serving/predictlog.py) ships one JSON object per scored item, newline-terminated,
with PutRecordBatch: `model`, `version`, `request_id`, `ts`, `latency_ms`, `features` (object) and
`score`. Firehose buffers 60 s or 5 MiB, gzips and writes them under `predictions/dt=YYYY-MM-DD/`,
encrypted with the platform data key; drift monitoring reads them from there.

Why one date partition and not `model=.../dt=...`: dynamic partitioning on the `model` field
needs a buffer of at least 64 MiB and an interval of at least 60 s (CloudFormation rejects less),
is billed per GB and per object on top of ingestion, and buys little here -- every record
carries its `model`, and one day of one platform's predictions is read whole by the drift job.

Records Firehose cannot deliver go to `prediction-errors/<error type>/dt=.../` in the same
bucket; the `DeliveryStale` alarm fires when records wait in the stream longer than 15 minutes.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Size
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.constructs.retention import retention
from stacks.constructs.secure_bucket import SecureBucket

PREDICTIONS_PREFIX = "predictions/dt=!{timestamp:yyyy-MM-dd}/"
ERRORS_PREFIX = "prediction-errors/!{firehose:error-output-type}/dt=!{timestamp:yyyy-MM-dd}/"
BUFFER_INTERVAL = Duration.seconds(60)
BUFFER_SIZE = Size.mebibytes(5)
STALE_AFTER_SECONDS = 15 * 60


class PredictionLog(Construct):
    """The log bucket, the delivery stream and its delivery-error log group.

    Contract: `stream` accepts PutRecordBatch from roles holding `put_statement()`;
    `bucket` holds the delivered objects, expired after `retention_days`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        data_key: kms.IKey,
        access_logs: s3.IBucket,
        retention_days: int,
        log_retention_days: int,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        # Firehose writes each object once under a unique key and nothing overwrites it, so
        # versioning would only keep expired records (which hold features) beyond retention.
        self.bucket = SecureBucket(
            self, "Bucket", encryption_key=data_key, access_logs=access_logs,
            removal_policy=removal_policy, versioned=False,
        ).bucket  # fmt: skip
        self.bucket.add_lifecycle_rule(
            id="expire-prediction-logs",
            expiration=Duration.days(retention_days),
            abort_incomplete_multipart_upload_after=Duration.days(7),
        )
        self.delivery_logs = logs.LogGroup(
            self, "DeliveryLogs", encryption_key=data_key,
            retention=retention(log_retention_days), removal_policy=removal_policy,
        )  # fmt: skip
        destination = firehose.S3Bucket(
            self.bucket,
            data_output_prefix=PREDICTIONS_PREFIX,
            error_output_prefix=ERRORS_PREFIX,
            buffering_interval=BUFFER_INTERVAL,
            buffering_size=BUFFER_SIZE,
            compression=firehose.Compression.GZIP,
            encryption_key=data_key,
            logging_config=firehose.EnableLogging(self.delivery_logs),
        )
        self.stream = firehose.DeliveryStream(
            self,
            "Stream",
            destination=destination,
            encryption=firehose.StreamEncryption.customer_managed_key(data_key),
        )

    def put_statement(self) -> iam.PolicyStatement:
        """PutRecordBatch on this stream only: what the serving app calls, and nothing else
        (a new statement per call, so each role gets its own)."""
        return iam.PolicyStatement(
            actions=["firehose:PutRecordBatch"], resources=[self.stream.delivery_stream_arn]
        )

    def stale_alarm(self) -> cloudwatch.Alarm:
        """Records older than 15 minutes wait in the stream: delivery to S3 is failing."""
        metric = cloudwatch.Metric(
            namespace="AWS/Firehose", metric_name="DeliveryToS3.DataFreshness",
            dimensions_map={"DeliveryStreamName": self.stream.delivery_stream_name},
            statistic="Maximum", period=Duration.minutes(5),
        )  # fmt: skip
        return metric.create_alarm(
            self, "DeliveryStale", threshold=STALE_AFTER_SECONDS, evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="Prediction logs are not reaching S3 (oldest record > 15 min)",
        )  # fmt: skip


def firehose_endpoint(scope: Construct, construct_id: str, *, vpc: ec2.IVpc, cidr: str) -> None:
    """An interface endpoint so that clients in isolated subnets reach Firehose.

    The network's configurable endpoints (mlops.config.InterfaceEndpoint) have no Firehose
    member, so the serving stack adds this one; HTTPS from the VPC's CIDR only.
    """
    group = ec2.SecurityGroup(
        scope, f"{construct_id}SecurityGroup", vpc=vpc, allow_all_outbound=False,
        description="Firehose interface endpoint: HTTPS from inside the VPC only",
    )  # fmt: skip
    group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(443), "HTTPS from inside the VPC")
    ec2.InterfaceVpcEndpoint(
        scope,
        construct_id,
        vpc=vpc,
        service=ec2.InterfaceVpcEndpointAwsService.KINESIS_FIREHOSE,
        private_dns_enabled=True,
        subnets=ec2.SubnetSelection(subnet_group_name="private"),
        security_groups=[group],
        open=False,
    )
