"""The training workflow: ONE Step Functions definition for AWS and the local engine.

Preprocess → Train → Evaluate (SageMaker `.sync` tasks) → Gate → Register, with every
outcome written to the runs table by the run recorder. The execution input is built by
the trigger Lambda; its shape is documented in docs/training-pipeline.md.

The SageMaker steps are written as raw ASL (`CustomState`) rather than CDK's typed task
constructs: the job parameters come from the execution input (`.$` paths), there is no
typed construct for processing jobs, and the ASL here reads one-to-one against the
SageMaker API reference and the container contract the sample bundles follow.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from pipelines.container import CODE_DIR, LAUNCHER

# SageMaker caps MaxRuntimeInSeconds at 5 days; the state's own timeout is a backstop
# an hour above that, so a job's manifest limit always fires first.
SAGEMAKER_STATE_TIMEOUT = 5 * 24 * 3600 + 3600
LAMBDA_STATE_TIMEOUT = 300
# Throttling and transient API errors when creating or polling a job.
SAGEMAKER_RETRY_ERRORS = ["SageMaker.AmazonSageMakerException", "ThrottlingException"]


def s3_input(name: str, uri: str, local_path: str, *, from_state: bool = True) -> dict[str, Any]:
    """A ProcessingInput copying an S3 prefix to `local_path`; `uri` is a JSONPath into the
    state (`from_state`) or a literal URI."""
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri.$" if from_state else "S3Uri": uri,
            "LocalPath": local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        },
    }


def _cluster(step: str) -> dict[str, Any]:
    return {
        "InstanceType.$": f"$.resources.{step}.instance_type",
        "InstanceCount.$": f"$.resources.{step}.instance_count",
        "VolumeSizeInGB.$": f"$.resources.{step}.volume_gb",
    }


def _entrypoint(entry_path: str, *args: str) -> str:
    """A ContainerEntrypoint built in ASL: python3 <code dir>/<launcher> <entry> <args...>.

    The platform launcher (pipelines/container/launch.py, staged beside the scripts) installs
    what the image lacks, then runs the entry (a path relative to the code directory)."""
    quoted = ", ".join(f"'{a}'" for a in args)
    return f"States.Array('python3', '{CODE_DIR}/{LAUNCHER}', {entry_path}, {quoted})"


class TrainingWorkflow(Construct):
    """The state machine and the IAM it needs to drive SageMaker jobs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        sagemaker_role: iam.IRole,
        data_key: kms.IKey,
        gate: lambda_.IFunction,
        register: lambda_.IFunction,
        recorder: lambda_.IFunction,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self._role = sagemaker_role
        self._key = data_key
        self._recorder = recorder
        training_set = self._sagemaker_step(
            "BuildTrainingSet", "createProcessingJob", self._training_set()
        )
        preprocess = self._sagemaker_step("Preprocess", "createProcessingJob", self._preprocess())
        train = self._sagemaker_step("Train", "createTrainingJob", self._train())
        evaluate = self._sagemaker_step("Evaluate", "createProcessingJob", self._evaluate())
        gate_step = self._lambda_step("Gate", gate, self._gate_payload(), "$.gate")
        register_step = self._lambda_step(
            "Register", register, self._register_payload(), "$.registered"
        )
        steps: list[tuple[str, Any]] = [
            ("training_set", training_set), ("preprocess", preprocess), ("train", train),
            ("evaluate", evaluate),
            ("gate", gate_step), ("register", register_step),
        ]  # fmt: skip
        record_failed = self._record("RecordFailed", "FAILED").next(
            sfn.Fail(self, "RunFailed", error="TrainingRunFailed", cause_path="$.recorded.reason")
        )
        for name, step in steps:
            title = "".join(part.capitalize() for part in name.split("_"))
            mark = sfn.Pass(
                self, f"{title}Failed", result=sfn.Result.from_string(name),
                result_path="$.failed_step",
            )  # fmt: skip
            step.add_catch(mark.next(record_failed), errors=["States.ALL"], result_path="$.error")
        gated_out = self._record("RecordGatedOut", "GATED_OUT").next(
            sfn.Fail(self, "GatedOut", error="GatedOut", cause_path="$.gate.reason")
        )
        succeeded = self._record("RecordSucceeded", "SUCCEEDED").next(
            sfn.Succeed(self, "Registered")
        )
        decision = (
            sfn.Choice(self, "PassedGate?")
            .when(
                sfn.Condition.boolean_equals("$.gate.passed", True), register_step.next(succeeded)
            )
            .otherwise(gated_out)
        )
        preprocess.next(train).next(evaluate).next(gate_step).next(decision)
        training_set.next(preprocess)
        # A feature-service input (see lambdas/training_trigger/execution.py) first builds the
        # point-in-time training set that preprocessing then reads as its input.
        definition = (
            sfn.Choice(self, "FromFeatureStore?")
            .when(sfn.Condition.is_present("$.feature_store"), training_set)
            .otherwise(preprocess)
        )
        self.log_group = logs.LogGroup(
            self, "ExecutionLogs", encryption_key=data_key, retention=log_retention
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=Duration.days(6),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
        )
        self._grant_sagemaker(self.state_machine.role)

    def _sagemaker_step(
        self, name: str, action: str, parameters: dict[str, Any]
    ) -> sfn.CustomState:
        state = sfn.CustomState(
            self,
            name,
            state_json={
                "Type": "Task",
                "Resource": f"arn:aws:states:::sagemaker:{action}.sync",
                "Parameters": parameters,
                "TimeoutSeconds": SAGEMAKER_STATE_TIMEOUT,
                "ResultSelector": (
                    {"job_name.$": "$.TrainingJobName",
                     "model_data_url.$": "$.ModelArtifacts.S3ModelArtifacts"}
                    if action == "createTrainingJob"
                    else {"job_name.$": "$.ProcessingJobName"}
                ),
                "ResultPath": f"$.steps.{name.lower()}",
            },
        )  # fmt: skip
        state.add_retry(
            errors=SAGEMAKER_RETRY_ERRORS,
            interval=Duration.seconds(15),
            backoff_rate=2.0,
            max_attempts=3,
        )
        return state

    def _training_set(self) -> dict[str, Any]:
        """Feast historical retrieval for the run's labels (features/training_set.py); its
        output prefix is the preprocessing input."""
        return {
            "ProcessingJobName.$": "States.Format('{}-set', $.run_id)",
            "RoleArn": self._role.role_arn,
            "AppSpecification": {
                "ImageUri.$": "$.feature_store.image",
                "ContainerEntrypoint.$": _entrypoint(
                    "$.feature_store.entry",
                    "--labels-dir",
                    "/opt/ml/processing/input/labels",
                    "--output-dir",
                    "/opt/ml/processing/output",
                ),
            },  # fmt: skip
            "ProcessingResources": {"ClusterConfig": _cluster("preprocessing")},
            "ProcessingInputs": [
                s3_input("labels", "$.feature_store.labels", "/opt/ml/processing/input/labels"),
                s3_input("code", "$.code.processing", CODE_DIR),
            ],
            "ProcessingOutputConfig": {
                "KmsKeyId": self._key.key_arn,
                "Outputs": [self._output("training_set", "$.data.input")],
            },
            "StoppingCondition": {
                "MaxRuntimeInSeconds.$": "$.resources.preprocessing.max_runtime_seconds"
            },
            "Environment.$": "$.feature_store.environment",
        }

    def _preprocess(self) -> dict[str, Any]:
        return {
            "ProcessingJobName.$": "States.Format('{}-pre', $.run_id)",
            "RoleArn": self._role.role_arn,
            "AppSpecification": {
                "ImageUri.$": "$.images.processing",
                "ContainerEntrypoint.$": _entrypoint(
                    "$.code.preprocessing_entry",
                    "--input-dir",
                    "/opt/ml/processing/input/data",
                    "--output-dir",
                    "/opt/ml/processing/output",
                ),
            },  # fmt: skip
            "ProcessingResources": {"ClusterConfig": _cluster("preprocessing")},
            "ProcessingInputs": [
                s3_input("data", "$.data.input", "/opt/ml/processing/input/data"),
                s3_input("code", "$.code.processing", CODE_DIR),
            ],
            "ProcessingOutputConfig": {
                "KmsKeyId": self._key.key_arn,
                "Outputs": [self._output("splits", "$.data.splits")],
            },
            "StoppingCondition": {
                "MaxRuntimeInSeconds.$": "$.resources.preprocessing.max_runtime_seconds"
            },
            "Environment": {"RUN_ID.$": "$.run_id", "MODEL_NAME.$": "$.model_name"},
        }

    def _train(self) -> dict[str, Any]:
        return {
            "TrainingJobName.$": "States.Format('{}-train', $.run_id)",
            "RoleArn": self._role.role_arn,
            "AlgorithmSpecification": {
                "TrainingImage.$": "$.images.training",
                "TrainingInputMode": "File",
                "MetricDefinitions.$": "$.metric_definitions",
            },
            "HyperParameters.$": "$.hyperparameters",
            "InputDataConfig": [self._channel("train"), self._channel("validation")],
            "OutputDataConfig": {"S3OutputPath.$": "$.output.model", "KmsKeyId": self._key.key_arn},
            "ResourceConfig": {**_cluster("training"), "VolumeKmsKeyId": self._key.key_arn},
            "StoppingCondition": {
                "MaxRuntimeInSeconds.$": "$.resources.training.max_runtime_seconds"
            },
            "Environment": {"RUN_ID.$": "$.run_id", "MODEL_NAME.$": "$.model_name"},
        }

    def _evaluate(self) -> dict[str, Any]:
        base = "/opt/ml/processing/input"
        return {
            "ProcessingJobName.$": "States.Format('{}-eval', $.run_id)",
            "RoleArn": self._role.role_arn,
            "AppSpecification": {
                "ImageUri.$": "$.images.processing",
                "ContainerEntrypoint.$": _entrypoint(
                    "$.code.evaluation_entry",
                    "--model-dir",
                    f"{base}/model",
                    "--test-dir",
                    f"{base}/test",
                    "--train-dir",
                    f"{base}/train",
                    "--output-dir",
                    "/opt/ml/processing/output",
                ),
            },  # fmt: skip
            "ProcessingResources": {"ClusterConfig": _cluster("evaluation")},
            "ProcessingInputs": [
                s3_input("model", "$.steps.train.model_data_url", f"{base}/model"),
                s3_input("test", "$.data.test", f"{base}/test"),
                s3_input("train", "$.data.train", f"{base}/train"),
                s3_input("code", "$.code.processing", CODE_DIR),
            ],
            "ProcessingOutputConfig": {
                "KmsKeyId": self._key.key_arn,
                "Outputs": [self._output("evaluation", "$.output.evaluation")],
            },
            "StoppingCondition": {
                "MaxRuntimeInSeconds.$": "$.resources.evaluation.max_runtime_seconds"
            },
            "Environment": {"RUN_ID.$": "$.run_id", "MODEL_NAME.$": "$.model_name"},
        }

    @staticmethod
    def _output(name: str, uri_path: str) -> dict[str, Any]:
        return {
            "OutputName": name,
            "S3Output": {
                "S3Uri.$": uri_path,
                "LocalPath": "/opt/ml/processing/output",
                "S3UploadMode": "EndOfJob",
            },
        }

    @staticmethod
    def _channel(name: str) -> dict[str, Any]:
        return {
            "ChannelName": name,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri.$": f"$.data.{name}",
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
        }

    @staticmethod
    def _gate_payload() -> dict[str, Any]:
        return {
            "run_id.$": "$.run_id",
            "model_package_group.$": "$.model_package_group",
            "evaluation.$": "$.evaluation",
        }

    @staticmethod
    def _register_payload() -> dict[str, Any]:
        return {
            "run_id.$": "$.run_id",
            "model_name.$": "$.model_name",
            "model_package_group.$": "$.model_package_group",
            "bundle.$": "$.bundle",
            "gate.$": "$.gate",
            "model_data_url.$": "$.steps.train.model_data_url",
            "training_job_name.$": "$.steps.train.job_name",
            "image.$": "$.images.inference",
            "report_uri.$": "$.evaluation.report_uri",
            "data_snapshot.$": "$.data.input",
        }

    def _lambda_step(
        self, name: str, function: lambda_.IFunction, payload: dict[str, Any], result_path: str
    ) -> tasks.LambdaInvoke:
        """A Lambda task whose return value lands at result_path, the rest of the state kept."""
        return tasks.LambdaInvoke(
            self,
            name,
            lambda_function=function,
            payload=sfn.TaskInput.from_object(payload),
            payload_response_only=True,
            result_path=result_path,
            task_timeout=sfn.Timeout.duration(Duration.seconds(LAMBDA_STATE_TIMEOUT)),
            retry_on_service_exceptions=True,
        )

    def _record(self, name: str, status: str) -> tasks.LambdaInvoke:
        payload: dict[str, Any] = {
            "run_id.$": "$.run_id",
            "status": status,
            "execution_arn.$": "$$.Execution.Id",
        }
        if status == "FAILED":
            payload.update({"error.$": "$.error", "failed_step.$": "$.failed_step"})
        elif status == "GATED_OUT":
            payload["reason.$"] = "$.gate.reason"
        else:
            payload["model_package_arn.$"] = "$.registered.model_package_arn"
        return self._lambda_step(name, self._recorder, payload, "$.recorded")

    def _grant_sagemaker(self, role: iam.IRole) -> None:
        """What a `.sync` SageMaker integration needs (AWS documents these actions)."""
        stack_arn = f"arn:{Stack.of(self).partition}:sagemaker:{self._region()}:{self._account()}"
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob", "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob",
                    "sagemaker:AddTags",
                ],
                resources=[f"{stack_arn}:processing-job/*", f"{stack_arn}:training-job/*"],
            )
        )  # fmt: skip
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[
                    f"arn:{Stack.of(self).partition}:events:{self._region()}:{self._account()}:rule/"
                    f"StepFunctionsGetEventsForSageMaker{kind}JobsRule"
                    for kind in ("Training", "Processing")
                ],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["iam:PassRole"], resources=[self._role.role_arn],
                                conditions={"StringEquals": {
                                    "iam:PassedToService": "sagemaker.amazonaws.com"}})
        )  # fmt: skip

    def _region(self) -> str:
        return Stack.of(self).region

    def _account(self) -> str:
        return Stack.of(self).account
