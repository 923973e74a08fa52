"""The model proxy on Lambda: the serving app under Mangum, behind an IAM-authenticated URL.

Callers invoke the `live` alias through its Function URL (`AuthType AWS_IAM`: requests are
SigV4-signed and need `lambda:InvokeFunctionUrl` on the alias), so a new deployment moves the
alias, and provisioned concurrency -- when configured -- warms the version the alias points at.

At runtime the function reads features from the online store (in the VPC's private subnets,
carrying the store's consumers security group), finds each model's champion through its champion
pointer (the SSM parameter `<champion_prefix><model>` the approval hook writes; a version the
hook published serves the model package pinned to it instead), downloads its model.tar.gz from
the training stack's artifacts bucket, and ships prediction logs to Firehose. Its role may do
exactly that: the pointer parameters, the listed groups, `runs/*/model.tar.gz` objects, the Redis
AUTH secret and one delivery stream.

Alarms watch the alias: error rate (errors / invocations, in %), p99 duration and throttles.
With a `canary` or `linear` rollout (`serving.lambda.rollout`) a CodeDeploy deployment group
owns the alias: a deployment shifts its traffic to a new version step by step and rolls back by
itself when one of those alarms fires, or the deployment fails or is stopped.
"""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlops.config_serving import LambdaRollout, ServingConfig
from stacks.constructs.online_store import OnlineFeatureStore
from stacks.constructs.prediction_log import PredictionLog
from stacks.constructs.python_function import DependencyMode, LambdaSource, PythonFunction

SERVING_METRICS_NAMESPACE = "MLOps/Serving"  # Requests, Status4xx/5xx, Latency, Predictions
SOURCE = LambdaSource(
    handler="serving.lambda_handler.handler",
    include=(
        "serving",
        "features/redis_plan.py",
        "features/store.py",
        "mlops/__init__.py",
        "mlops/deployments.py",
        "mlops/dynamo.py",
    ),
    requirements="serving/requirements.txt",
)
ALIAS = "live"
MODEL_CACHE_DIR = "/tmp/mlops-models"  # noqa: S108 - Lambda's only writable path
MODEL_ARTIFACTS = "runs/*/model.tar.gz"  # SageMaker: <S3OutputPath>/<job>/output/model.tar.gz
# Lambda caps a function's environment at 4 KB (names and values); the rest needs ~1 KB.
SPEC_LIMIT_BYTES = 3 * 1024
_FIVE_MINUTES = Duration.minutes(5)


class ServingSpecTooLarge(ValueError):
    """The serving spec does not fit in the function's environment."""


class ServingFunction(Construct):
    """The function, its `live` alias with the Function URL, and the alias's alarms.

    Contract: `function` runs `serving.lambda_handler.handler` with the MLOPS_SERVING_*
    settings (serving/settings.py), following the champion pointers under `champion_prefix`;
    `alias` is what callers and alarms address; `url` is the alias's Function URL; `alarms()`
    returns the alarms without actions (the stack adds them). `rollout_application` and
    `rollout_group` are the CodeDeploy application and deployment group of the alias for a
    `canary`/`linear` rollout, None for `all_at_once`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ServingConfig,
        spec: str,
        python_version: str,
        dependencies: DependencyMode,
        log_retention_days: int,
        data_key: kms.IKey,
        vpc: ec2.IVpc,
        online: OnlineFeatureStore,
        artifacts_bucket: s3.IBucket,
        prediction_log: PredictionLog,
        champion_prefix: str,
    ) -> None:
        super().__init__(scope, construct_id)
        check_spec_size(spec)
        settings = config.lambda_
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, allow_all_outbound=False,
            description="Serving function: HTTPS to AWS endpoints (Redis via consumers group)",
        )  # fmt: skip
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS endpoints"
        )
        self.python_function = PythonFunction(
            self, "Proxy", source=SOURCE, python_version=python_version,
            dependencies=dependencies, log_retention_days=log_retention_days, log_key=data_key,
            description="model proxy: online features + ONNX Runtime (FastAPI under Mangum)",
            timeout=Duration.seconds(settings.timeout_seconds), memory_size=settings.memory_mb,
            environment=serving_environment(
                config, spec, online, prediction_log, Stack.of(self).region,
                model_cache_dir=MODEL_CACHE_DIR, champion_prefix=champion_prefix,
            ),
            vpc=vpc, security_groups=[online.consumers, self.security_group],
            reserved_concurrent_executions=settings.reserved_concurrency,
        )  # fmt: skip
        self.function = self.python_function.function
        self.role = self.python_function.role
        for statement in serving_statements(
            Stack.of(self), config, online, artifacts_bucket, data_key, prediction_log,
            champion_prefix=champion_prefix,
        ):  # fmt: skip
            self.role.add_to_principal_policy(statement)
        self.alias = lambda_.Alias(
            self, "Live", alias_name=ALIAS, version=self.function.current_version,
            description="What callers invoke; moved by each deployment",
            provisioned_concurrent_executions=settings.provisioned_concurrency or None,
        )  # fmt: skip
        self.url = self.alias.add_function_url(auth_type=lambda_.FunctionUrlAuthType.AWS_IAM)
        self._alarms = self._create_alarms(config)
        self.rollout_application: codedeploy.LambdaApplication | None = None
        self.rollout_group: codedeploy.LambdaDeploymentGroup | None = None
        if settings.rollout.strategy != "all_at_once":
            self._create_rollout(settings.rollout)

    def alarms(self) -> list[cloudwatch.Alarm]:
        return list(self._alarms)

    def _create_rollout(self, rollout: LambdaRollout) -> None:
        """The alias's CodeDeploy application and deployment group (see the module doc).

        The group's service role is built here with only what a deployment of this alias
        calls: read and move the alias (and read its provisioned concurrency), read the three
        alarms. It is handed over without policy updates, so CDK does not attach
        AWSCodeDeployRoleForLambdaLimited, which may move every alias in the account.
        """
        interval = Duration.minutes(rollout.interval_minutes)
        routing: codedeploy.TrafficRouting = (
            codedeploy.TimeBasedCanaryTrafficRouting(interval=interval, percentage=rollout.percent)
            if rollout.strategy == "canary"
            else codedeploy.TimeBasedLinearTrafficRouting(
                interval=interval, percentage=rollout.percent
            )
        )
        role = iam.Role(
            self, "RolloutRole", assumed_by=iam.ServicePrincipal("codedeploy.amazonaws.com"),
            description="CodeDeploy: shift the serving alias, watching its alarms",
        )  # fmt: skip
        role.add_to_policy(iam.PolicyStatement(
            actions=["lambda:GetAlias", "lambda:UpdateAlias",
                     "lambda:GetProvisionedConcurrencyConfig"],
            resources=[self.function.function_arn, self.alias.function_arn],
        ))  # fmt: skip
        role.add_to_policy(iam.PolicyStatement(
            actions=["cloudwatch:DescribeAlarms"],
            resources=[alarm.alarm_arn for alarm in self._alarms],
        ))  # fmt: skip
        self.rollout_application = codedeploy.LambdaApplication(self, "RolloutApplication")
        self.rollout_group = codedeploy.LambdaDeploymentGroup(
            self, "RolloutGroup", application=self.rollout_application, alias=self.alias,
            deployment_config=codedeploy.LambdaDeploymentConfig(
                self, "RolloutConfig", traffic_routing=routing
            ),
            alarms=self.alarms(), role=role.without_policy_updates(),
            auto_rollback=codedeploy.AutoRollbackConfig(
                failed_deployment=True, stopped_deployment=True, deployment_in_alarm=True
            ),
        )  # fmt: skip

    def _create_alarms(self, config: ServingConfig) -> list[cloudwatch.Alarm]:
        settings = config.lambda_
        alias = self.alias
        error_rate = cloudwatch.MathExpression(
            expression="IF(invocations > 0, 100 * errors / invocations, 0)",
            using_metrics={
                "errors": alias.metric_errors(period=_FIVE_MINUTES, statistic="Sum"),
                "invocations": alias.metric_invocations(period=_FIVE_MINUTES, statistic="Sum"),
            },
            label="Error rate (%)",
            period=_FIVE_MINUTES,
        )
        above = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
        quiet = cloudwatch.TreatMissingData.NOT_BREACHING
        return [
            error_rate.create_alarm(
                self, "ErrorRate", threshold=settings.error_rate_alarm_percent,
                evaluation_periods=1, comparison_operator=above, treat_missing_data=quiet,
                alarm_description=f"Serving: more than {settings.error_rate_alarm_percent} % "
                "of invocations failed in 5 minutes",
            ),
            alias.metric_duration(period=_FIVE_MINUTES, statistic="p99").create_alarm(
                self, "LatencyP99", threshold=settings.p99_latency_alarm_ms,
                evaluation_periods=3, datapoints_to_alarm=2, comparison_operator=above,
                treat_missing_data=quiet,
                alarm_description=f"Serving: p99 duration above {settings.p99_latency_alarm_ms}"
                " ms in 2 of 3 five-minute periods",
            ),
            alias.metric_throttles(period=_FIVE_MINUTES, statistic="Sum").create_alarm(
                self, "Throttles", threshold=0, evaluation_periods=1, comparison_operator=above,
                treat_missing_data=quiet,
                alarm_description="Serving: invocations were throttled (concurrency exhausted)",
            ),
        ]  # fmt: skip


def check_spec_size(spec: str) -> None:
    """Raise `ServingSpecTooLarge` when the spec would not fit in the function's environment."""
    size = len(spec.encode())
    if size > SPEC_LIMIT_BYTES:
        raise ServingSpecTooLarge(
            f"the serving spec is {size} bytes; Lambda's environment holds 4 KB in all, so "
            f"MLOPS_SERVING_SPEC may take at most {SPEC_LIMIT_BYTES} (serve fewer models "
            "per function)"
        )


def serving_environment(
    config: ServingConfig,
    spec: str,
    online: OnlineFeatureStore,
    prediction_log: PredictionLog,
    region: str,
    *,
    model_cache_dir: str | None,
    champion_prefix: str,
) -> dict[str, str]:
    """The app's settings (serving.settings.ServingSettings, prefix MLOPS_SERVING_), shared by
    every tier so they serve alike: each model's champion is what its pointer under
    `champion_prefix` (mlops.deployments.pointer_prefix) names.

    `model_cache_dir` None leaves MLOPS_SERVING_MODEL_CACHE_DIR out, for a tier that sets it
    itself (the EKS pods mount their cache volume there: serving.k8s.MODEL_CACHE_DIR).
    """
    group = online.replication_group
    environment = {
        "MLOPS_SERVING_SPEC": spec,
        "MLOPS_SERVING_REDIS_HOST": group.attr_primary_end_point_address,
        "MLOPS_SERVING_REDIS_PORT": group.attr_primary_end_point_port,
        "MLOPS_SERVING_REDIS_TLS": "true",
        "MLOPS_SERVING_REDIS_SECRET_ARN": online.auth_secret.secret_arn,
        "MLOPS_SERVING_REDIS_TIMEOUT_MS": str(config.redis_timeout_ms),
        "MLOPS_SERVING_MODEL_SOURCE": "champion",
        "MLOPS_SERVING_CHAMPION_PREFIX": champion_prefix,
        "MLOPS_SERVING_MODEL_CACHE_DIR": model_cache_dir,
        "MLOPS_SERVING_REFRESH_SECONDS": str(config.refresh_seconds),
        "MLOPS_SERVING_MAX_BATCH_SIZE": str(config.max_batch_size),
        "MLOPS_SERVING_PREDICTION_LOG_STREAM": prediction_log.stream.delivery_stream_name,
        "MLOPS_SERVING_REGION": region,
        # Request metrics as CloudWatch embedded metric format lines on stdout (serving/metrics.py)
        "MLOPS_SERVING_METRICS": "emf",
        "MLOPS_SERVING_METRICS_NAMESPACE": SERVING_METRICS_NAMESPACE,
    }
    return {name: value for name, value in environment.items() if value is not None}


def serving_statements(
    stack: Stack,
    config: ServingConfig,
    online: OnlineFeatureStore,
    artifacts_bucket: s3.IBucket,
    data_key: kms.IKey,
    prediction_log: PredictionLog,
    *,
    champion_prefix: str,
) -> list[iam.PolicyStatement]:
    """What the app calls, whichever tier runs it: the served models' champion pointers
    (GetParameter of `<champion_prefix><model>`), their registry entries (a pinned version
    describes its package), their archives, the Redis AUTH secret and the key it is encrypted
    with, the prediction log.

    Explicit statements, not `secret.grant_read(...)`: a grant on another stack's secret would
    edit that stack's resource policy and make the two stacks depend on each other. New
    statements each call, so every role gets its own objects.
    """
    return [
        iam.PolicyStatement(
            actions=["ssm:GetParameter"],
            resources=pointer_parameter_arns(stack, champion_prefix, config.models),
        ),
        *registry_statements(stack, config.models),
        iam.PolicyStatement(
            actions=["s3:GetObject"],
            resources=[artifacts_bucket.arn_for_objects(MODEL_ARTIFACTS)],
        ),
        iam.PolicyStatement(
            actions=["secretsmanager:GetSecretValue"], resources=[online.auth_secret.secret_arn]
        ),
        iam.PolicyStatement(actions=["kms:Decrypt"], resources=[data_key.key_arn]),
        prediction_log.put_statement(),
    ]


def pointer_parameter_arns(stack: Stack, champion_prefix: str, models: Iterable[str]) -> list[str]:
    """`arn:<partition>:ssm:<region>:<account>:parameter<prefix><model>` per model: exactly
    the pointers of the given models. The prefix starts with "/", which the ARN's `parameter`
    part is followed by."""
    if not champion_prefix.startswith("/"):
        raise ValueError(f"a champion prefix starts with '/': {champion_prefix!r}")
    return [
        stack.format_arn(
            service="ssm", resource="parameter", resource_name=f"{champion_prefix[1:]}{model}"
        )
        for model in sorted(models)
    ]


def registry_statements(stack: Stack, models: Iterable[str]) -> list[iam.PolicyStatement]:
    """List a served model's packages and describe its versions: its groups only.

    SageMaker writes resource names in lower case in the ARNs it returns; a group name with
    capitals is listed both ways so the statement matches whichever form the request carries.
    """
    names = sorted({form for name in models for form in (name, name.lower())})
    groups = [stack.format_arn(service="sagemaker", resource="model-package-group",
                               resource_name=name) for name in names]  # fmt: skip
    versions = [stack.format_arn(service="sagemaker", resource="model-package",
                                 resource_name=f"{name}/*") for name in names]  # fmt: skip
    return [
        iam.PolicyStatement(actions=["sagemaker:ListModelPackages"], resources=groups),
        iam.PolicyStatement(actions=["sagemaker:DescribeModelPackage"], resources=versions),
    ]
