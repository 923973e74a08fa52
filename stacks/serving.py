"""Serving: the model proxy on Lambda and the prediction log every serving tier writes to."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from mlops.config import EnvironmentConfig
from stacks.base import PlatformStack
from stacks.constructs.online_store import OnlineFeatureStore
from stacks.constructs.prediction_log import PredictionLog, firehose_endpoint
from stacks.constructs.serving_lambda import ServingFunction
from stacks.nag_reasons import suppress_prediction_log_findings, suppress_serving_function_findings
from stacks.security import removal_policy


def serving_spec(env_config: EnvironmentConfig) -> str:
    """The spec JSON planned from the Feast definitions (imports Feast: synthesis only)."""
    from serving.spec import build_spec_json

    return build_spec_json(env_config.serving, env_config.feature_store.feast_project)


class ServingStack(PlatformStack):
    """The prediction log (always: the EKS tier writes to it too) and, when
    `serving.lambda.enabled`, the Lambda model proxy with its alarms.

    The function's spec is `serving_spec(env_config)`. Alarms go to `alarm_topic` when given.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_config: EnvironmentConfig,
        vpc: ec2.IVpc,
        data_key: kms.IKey,
        access_logs: s3.IBucket,
        online: OnlineFeatureStore,
        artifacts_bucket: s3.IBucket,
        alarm_topic: sns.ITopic | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, env_config=env_config, **kwargs)
        config = env_config.serving
        self.prediction_log = PredictionLog(
            self, "PredictionLog", data_key=data_key, access_logs=access_logs,
            retention_days=config.prediction_log_retention_days,
            log_retention_days=env_config.log_retention_days,
            removal_policy=removal_policy(env_config),
        )  # fmt: skip
        suppress_prediction_log_findings(self.prediction_log.stream)
        if env_config.network.interface_endpoints:
            firehose_endpoint(self, "FirehoseEndpoint", vpc=vpc, cidr=str(env_config.network.cidr))
        alarms = [self.prediction_log.stale_alarm()]
        self.function: ServingFunction | None = None
        if config.lambda_.enabled:
            self.function = ServingFunction(
                self, "Lambda", config=config,
                spec=serving_spec(env_config),
                python_version=env_config.lambda_python,
                dependencies=env_config.lambda_dependencies,
                log_retention_days=env_config.log_retention_days, data_key=data_key, vpc=vpc,
                online=online, artifacts_bucket=artifacts_bucket,
                prediction_log=self.prediction_log,
            )  # fmt: skip
            suppress_serving_function_findings(self.function.role)
            alarms += self.function.alarms()
        if alarm_topic is not None:
            action = cw_actions.SnsAction(alarm_topic)
            for alarm in alarms:
                alarm.add_alarm_action(action)
        self._outputs()

    def _outputs(self) -> None:
        outputs = {
            "PredictionLogBucket": self.prediction_log.bucket.bucket_name,
            "PredictionLogStream": self.prediction_log.stream.delivery_stream_name,
        }
        if self.function is not None:
            outputs |= {
                "ServingUrl": self.function.url.url,
                "ServingFunctionName": self.function.function.function_name,
                "ServingAliasArn": self.function.alias.function_arn,
            }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
