"""Serving: the model proxy on Lambda and/or EKS, and the prediction log every tier writes to."""

from __future__ import annotations

from typing import Any

from aws_cdk import Annotations, CfnOutput
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from mlops.config import EnvironmentConfig
from stacks.base import PlatformStack
from stacks.constructs.online_store import REDIS_PORT, OnlineFeatureStore
from stacks.constructs.prediction_log import PredictionLog, firehose_endpoint
from stacks.constructs.retention import retention
from stacks.constructs.serving_eks import ExistingCluster, ServingOnEks
from stacks.constructs.serving_lambda import (
    ServingFunction,
    serving_environment,
    serving_statements,
)
from stacks.nag_reasons import (
    suppress_prediction_log_findings,
    suppress_serving_function_findings,
    suppress_serving_pods_findings,
)
from stacks.security import removal_policy


def serving_spec(env_config: EnvironmentConfig) -> str:
    """The spec JSON planned from the Feast definitions (imports Feast: synthesis only)."""
    from serving.spec import build_spec_json

    return build_spec_json(env_config.serving, env_config.feature_store.feast_project)


class ServingStack(PlatformStack):
    """The prediction log (always), the Lambda model proxy with its alarms when
    `serving.lambda.enabled`, and the app on EKS when `serving.eks.mode` is not 'off'.

    Both tiers run the same app with the same settings (`serving_environment`, except the
    model cache directory, which each tier sets) and the same IAM statements
    (`serving_statements`), and both write to `prediction_log`. The spec is
    `serving_spec(env_config)`. Each model serves what its champion pointer under
    `champion_prefix` (mlops.deployments.pointer_prefix) names. Alarms go to `alarm_topic` when
    given.
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
        champion_prefix: str,
        alarm_topic: sns.ITopic | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, env_config=env_config, **kwargs)
        config = env_config.serving
        self.champion_prefix = champion_prefix
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
        spec = (
            serving_spec(env_config) if config.lambda_.enabled or config.eks.mode != "off" else ""
        )
        self.spec = spec  # what every tier serves (empty when no tier runs)
        self.function: ServingFunction | None = None
        if config.lambda_.enabled:
            self.function = ServingFunction(
                self, "Lambda", config=config, spec=spec,
                python_version=env_config.lambda_python,
                dependencies=env_config.lambda_dependencies,
                log_retention_days=env_config.log_retention_days, data_key=data_key, vpc=vpc,
                online=online, artifacts_bucket=artifacts_bucket,
                prediction_log=self.prediction_log, champion_prefix=champion_prefix,
            )  # fmt: skip
            suppress_serving_function_findings(self.function.role)
            alarms += self.function.alarms()
        self.eks: ServingOnEks | None = None
        if config.eks.mode != "off":
            self.eks = self._add_eks(spec, vpc, data_key, online, artifacts_bucket)
        if alarm_topic is not None:
            action = cw_actions.SnsAction(alarm_topic)
            for alarm in alarms:
                alarm.add_alarm_action(action)
        self._outputs()

    def _add_eks(
        self,
        spec: str,
        vpc: ec2.IVpc,
        data_key: kms.IKey,
        online: OnlineFeatureStore,
        artifacts_bucket: s3.IBucket,
    ) -> ServingOnEks:
        """The app on EKS, with the Lambda's settings (minus the model cache directory: the
        pods mount their cache volume) and statements, and Redis opened to the pods."""
        env_config = self.env_config
        config = env_config.serving
        eks_config = config.eks
        existing = None
        if eks_config.mode == "existing" and eks_config.oidc_provider_arn is not None:
            existing = ExistingCluster(
                oidc_provider_arn=eks_config.oidc_provider_arn,
                cluster_security_group_id=eks_config.cluster_security_group_id,
            )
        serving = ServingOnEks(
            self, "Eks", config=eks_config, vpc=vpc,
            env=serving_environment(config, spec, online, self.prediction_log, self.region,
                                    model_cache_dir=None, champion_prefix=self.champion_prefix),
            statements=serving_statements(self, config, online, artifacts_bucket, data_key,
                                          self.prediction_log,
                                          champion_prefix=self.champion_prefix),
            name_prefix=self.stack_name.lower().removesuffix("-serving"),
            secrets_key=data_key, existing=existing,
            log_retention=retention(env_config.log_retention_days),
            removal_policy=removal_policy(env_config),
        )  # fmt: skip
        suppress_serving_pods_findings(serving.role)
        pods = serving.cluster_security_group
        if pods is None:
            Annotations.of(serving).add_warning_v2(
                "mlops:serving:eksRedisAccess",
                "serving.eks.cluster_security_group_id is not set: Redis is not opened to the "
                f"pods; allow their security group on port {REDIS_PORT} yourself.",
            )
        else:
            # allow_to (not allow_from on the Redis group) keeps the rule in this stack, so
            # the feature store stack does not come to depend on the serving stack.
            pods.connections.allow_to(
                online.security_group, ec2.Port.tcp(REDIS_PORT), "Serving pods to Redis (TLS)"
            )
        return serving

    def _outputs(self) -> None:
        outputs = {
            "PredictionLogBucket": self.prediction_log.bucket.bucket_name,
            "PredictionLogStream": self.prediction_log.stream.delivery_stream_name,
        }
        function = self.function
        if function is not None:
            outputs |= {
                "ServingUrl": function.url.url,
                "ServingFunctionName": function.function.function_name,
                "ServingAlias": function.alias.alias_name,
                "ServingAliasArn": function.alias.function_arn,
            }
            if function.rollout_application is not None and function.rollout_group is not None:
                outputs |= {
                    "RolloutApplication": function.rollout_application.application_name,
                    "RolloutDeploymentGroup": function.rollout_group.deployment_group_name,
                }
        if self.eks is not None:
            outputs |= {
                "EksClusterName": self.eks.cluster.cluster_name,
                "ServingNamespace": self.env_config.serving.eks.namespace,
            }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
