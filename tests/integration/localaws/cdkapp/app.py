"""A two-stack CDK app exercising the resource types the platform deploys.

`DataStack` owns storage (KMS, S3, DynamoDB, SNS, SSM, a secret, the Glue catalog, an Athena
workgroup, a model package group) and exports the bucket name; `WorkflowStack` imports it
(a cross-stack reference becomes `Fn::ImportValue`) and defines the Lambda trigger, a state
machine whose definition embeds the Lambda ARN via `Fn::Join`, and an EventBridge rule.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_athena as athena
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

LAMBDA_SRC = Path(__file__).parent / "lambda_src"
MODEL_PACKAGE_GROUP = "cdkapp-models"
GLUE_DATABASE = "cdkapp_features"
GLUE_TABLE = "driver_stats"
WORKGROUP = "cdkapp-wg"


class DataStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        key = kms.Key(self, "DataKey", enable_key_rotation=True, alias="alias/cdkapp-data")
        self.bucket = s3.Bucket(
            self,
            "DataBucket",
            versioned=True,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            event_bridge_enabled=True,
        )
        dynamodb.Table(
            self,
            "Approvals",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        )
        topic = sns.Topic(self, "Alerts", master_key=key)
        ssm.StringParameter(
            self,
            "BucketParam",
            parameter_name="/cdkapp/bucket",
            string_value=self.bucket.bucket_name,
        )
        self.secret = secretsmanager.Secret(
            self,
            "RedisAuth",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                exclude_punctuation=True, password_length=32
            ),
        )
        sagemaker.CfnModelPackageGroup(self, "Models", model_package_group_name=MODEL_PACKAGE_GROUP)
        self._catalog()
        is_prod = cdk.CfnCondition(
            self, "IsProd", expression=cdk.Fn.condition_equals(cdk.Aws.REGION, "us-east-1")
        )
        cdk.CfnOutput(self, "BucketName", value=self.bucket.bucket_name)
        cdk.CfnOutput(self, "TopicArn", value=topic.topic_arn)
        cdk.CfnOutput(
            self, "Tier", value=cdk.Fn.condition_if(is_prod.logical_id, "prod", "dev").to_string()
        )
        cdk.CfnOutput(self, "FirstAz", value=cdk.Fn.select(0, cdk.Fn.get_azs()))
        cdk.CfnOutput(self, "KeyIdFromArn", value=cdk.Fn.select(1, cdk.Fn.split("/", key.key_arn)))

    def _catalog(self) -> None:
        database = glue.CfnDatabase(
            self,
            "FeatureDb",
            catalog_id=cdk.Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(name=GLUE_DATABASE),
        )
        table = glue.CfnTable(
            self,
            "DriverStats",
            catalog_id=cdk.Aws.ACCOUNT_ID,
            database_name=GLUE_DATABASE,
            table_input=glue.CfnTable.TableInputProperty(
                name=GLUE_TABLE,
                table_type="EXTERNAL_TABLE",
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=f"s3://{self.bucket.bucket_name}/features/driver_stats/",
                    columns=[
                        glue.CfnTable.ColumnProperty(name="driver_id", type="bigint"),
                        glue.CfnTable.ColumnProperty(name="conv_rate", type="double"),
                    ],
                ),
            ),
        )
        table.add_dependency(database)
        athena.CfnWorkGroup(
            self,
            "Analytics",
            name=WORKGROUP,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{self.bucket.bucket_name}/athena/"
                )
            ),
        )


class WorkflowStack(cdk.Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, data: DataStack, **kwargs: object
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        role = iam.Role(
            self,
            "TriggerRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    "service-role/AWSLambdaBasicExecutionRole"
                )
            ],
        )
        data.bucket.grant_read(role)
        data.secret.grant_read(role)
        fn = lambda_.Function(
            self,
            "Trigger",
            runtime=lambda_.Runtime.PYTHON_3_12,
            handler="pkg.handler.handler",
            code=lambda_.Code.from_asset(str(LAMBDA_SRC)),
            role=role,
            environment={"DATA_BUCKET": data.bucket.bucket_name},
        )
        invoke = tasks.LambdaInvoke(self, "Invoke", lambda_function=fn, payload_response_only=True)
        machine = sfn.StateMachine(
            self,
            "Workflow",
            definition_body=sfn.DefinitionBody.from_chainable(
                invoke.next(sfn.Succeed(self, "Done"))
            ),
        )
        events.Rule(
            self,
            "OnUpload",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={"bucket": {"name": [data.bucket.bucket_name]}},
            ),
            targets=[targets.SfnStateMachine(machine)],
        )
        cdk.CfnOutput(self, "FunctionName", value=fn.function_name)
        cdk.CfnOutput(self, "StateMachineArn", value=machine.state_machine_arn)


def build_app(outdir: Path) -> cdk.App:
    """Synthesize both stacks into `outdir`; env-agnostic so no context lookups are needed."""
    app = cdk.App(outdir=str(outdir))
    data = DataStack(app, "CdkAppData")
    workflow = WorkflowStack(app, "CdkAppWorkflow", data=data)
    workflow.add_dependency(data)
    app.synth()
    return app
