"""The approval hook's AWS side: check a version's artifact, roll it out to the serving targets.

**Artifact check** (`ArtifactCheck`): the package records metrics (`metric.<name>` metadata, the
gate's metric among them) and its model.tar.gz loads exactly as the serving app will load it
(`serving.model.load_model`: model.onnx and signature.json present, the signature's features in the
served feature service, ONNX input width and type, score output, a warm-up run). A version that
fails is never rolled out.

**Lambda** (`LambdaTarget`): the serving function's `$LATEST` gets the version pinned
(`MLOPS_SERVING_PINNED_MODELS`, merged with the pins of the function's other models), a function
version is published, and the `live` alias moves to it: in one step, or through a CodeDeploy
deployment that shifts traffic and rolls back on the serving alarms. The alias is the last thing
touched, so any failure before it leaves the previous version serving.

**EKS** needs no call: the pods follow the champion pointer (`refresh_seconds`), which the hook
moves only after the rollout succeeded.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from mlops.deployments import VersionRef
from serving.champion import ChampionRef, RegistryChampion
from serving.model import ModelLoadError, load_model
from serving.spec import ServingSpec

PINS_VARIABLE = "MLOPS_SERVING_PINNED_MODELS"
METRIC_PREFIX = "metric."
UPDATE_WAIT_SECONDS = 60.0


class RolloutError(RuntimeError):
    """The version cannot be rolled out; the message is the ledger's reason."""


class RolloutBusy(RuntimeError):
    """Another rollout still holds the deployment group; raising lets Lambda retry later."""


@dataclass(frozen=True)
class Package:
    """What the hook reads from the registry about one version."""

    ref: VersionRef
    status: str | None
    model_data_url: str | None
    metadata: Mapping[str, str]
    report_uri: str | None


def describe_package(sagemaker: Any, arn: str) -> Package | None:
    try:
        described = sagemaker.describe_model_package(ModelPackageName=arn)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound"):
            return None
        raise
    containers = described.get("InferenceSpecification", {}).get("Containers") or [{}]
    quality = described.get("ModelMetrics", {}).get("ModelQuality", {})
    return Package(
        ref=VersionRef(int(described["ModelPackageVersion"]), arn),
        status=described.get("ModelApprovalStatus"),
        model_data_url=containers[0].get("ModelDataUrl"),
        metadata=described.get("CustomerMetadataProperties") or {},
        report_uri=quality.get("Statistics", {}).get("S3Uri"),
    )


def approved_versions(sagemaker: Any, group: str) -> list[VersionRef]:
    """Every Approved version of `group` (paginated)."""
    refs: list[VersionRef] = []
    paginator = sagemaker.get_paginator("list_model_packages")
    for page in paginator.paginate(ModelPackageGroupName=group, ModelApprovalStatus="Approved"):
        for item in page["ModelPackageSummaryList"]:
            arn = str(item["ModelPackageArn"])
            refs.append(
                VersionRef(int(item.get("ModelPackageVersion") or arn.rsplit("/")[-1]), arn)
            )
    return refs


class ArtifactCheck:
    def __init__(self, spec: ServingSpec, sagemaker: Any, s3: Any) -> None:
        self._spec = spec
        self._sagemaker = sagemaker
        self._s3 = s3

    def __call__(self, model: str, package: Package) -> None:
        """Raise `RolloutError` naming the first reason `package` must not serve `model`."""
        label = f"{model} {package.ref.label}"
        if model not in self._spec.models:
            raise RolloutError(f"{label}: the serving spec does not serve {model!r}")
        metrics = sorted(k for k in package.metadata if k.startswith(METRIC_PREFIX))
        gate_metric = package.metadata.get("gate_metric")
        if not metrics or package.report_uri is None:
            raise RolloutError(f"{label}: no metrics recorded (metric.* metadata and the "
                               "evaluation report), so nobody could have judged it")  # fmt: skip
        if gate_metric and f"{METRIC_PREFIX}{gate_metric}" not in package.metadata:
            raise RolloutError(f"{label}: the gate's metric {gate_metric!r} is not recorded")
        if not package.model_data_url:
            raise RolloutError(f"{label}: the package has no ModelDataUrl")
        with tempfile.TemporaryDirectory(prefix="hook-") as scratch:
            source = RegistryChampion(self._sagemaker, self._s3, Path(scratch))
            ref = ChampionRef(model, str(package.ref.version), package.ref.package_arn,
                              package.model_data_url)  # fmt: skip
            try:
                directory = source.fetch(ref)
                load_model(directory, self._spec.models[model], version=ref.version,
                           package_arn=ref.package_arn, source=ref.source)  # fmt: skip
            except ModelLoadError as error:
                raise RolloutError(str(error)) from None
            except ClientError as error:
                raise RolloutError(
                    f"{label}: cannot read {package.model_data_url}: {error}"
                ) from None


@dataclass(frozen=True)
class Rollout:
    """Where a rollout stands: the published version, and CodeDeploy's deployment if shifting."""

    lambda_version: str | None
    deployment_id: str | None

    @property
    def finished(self) -> bool:
        return self.deployment_id is None


class LambdaTarget:
    """The serving function's `live` alias, optionally shifted by a CodeDeploy group."""

    def __init__(
        self,
        lambda_client: Any,
        codedeploy: Any,
        *,
        function: str,
        alias: str,
        application: str | None,
        group: str | None,
    ) -> None:
        self._lambda = lambda_client
        self._codedeploy = codedeploy
        self.function = function
        self.alias = alias
        self._application = application
        self._group = group

    @property
    def name(self) -> str:
        return f"lambda:{self.function}:{self.alias}"

    def deploy(self, model: str, target: VersionRef, *, shift: bool, reference: str) -> Rollout:
        """Pin, publish, move the alias (shifted through CodeDeploy when `shift`)."""
        version = self._publish_pinned(model, target, reference)
        current = str(self._lambda.get_alias(FunctionName=self.function, Name=self.alias)
                      ["FunctionVersion"])  # fmt: skip
        if current == version:
            return Rollout(version, None)
        if shift and self._application and self._group:
            return Rollout(version, self._start_shift(current, version, reference))
        self._lambda.update_alias(
            FunctionName=self.function, Name=self.alias, FunctionVersion=version,
            RoutingConfig={"AdditionalVersionWeights": {}},
        )  # fmt: skip
        return Rollout(version, None)

    def stop(self, deployment_id: str) -> None:
        """Stop a shift; CodeDeploy returns the alias to the version it started from."""
        try:
            self._codedeploy.stop_deployment(deploymentId=deployment_id, autoRollbackEnabled=True)
        except ClientError as error:
            if error.response["Error"]["Code"] != "DeploymentAlreadyCompletedException":
                raise

    def deployment(self, deployment_id: str) -> dict[str, Any]:
        info: dict[str, Any] = self._codedeploy.get_deployment(deploymentId=deployment_id)[
            "deploymentInfo"
        ]
        return info

    def _publish_pinned(self, model: str, target: VersionRef, reference: str) -> str:
        config = self._lambda.get_function_configuration(FunctionName=self.function)
        variables = dict(config.get("Environment", {}).get("Variables", {}))
        pins = json.loads(variables.get(PINS_VARIABLE) or "{}")
        if pins.get(model) != target.package_arn:
            pins[model] = target.package_arn
            variables[PINS_VARIABLE] = json.dumps(pins, sort_keys=True, separators=(",", ":"))
            self._lambda.update_function_configuration(
                FunctionName=self.function, Environment={"Variables": variables}
            )
            self._wait_updated()
        description = f"{model} {target.label} ({reference})"[:256]
        return str(self._lambda.publish_version(FunctionName=self.function,
                                                Description=description)["Version"])  # fmt: skip

    def _wait_updated(self) -> None:
        deadline = time.monotonic() + UPDATE_WAIT_SECONDS
        while time.monotonic() < deadline:
            config = self._lambda.get_function_configuration(FunctionName=self.function)
            status = config.get("LastUpdateStatus", "Successful")
            if status == "Successful":
                return
            if status == "Failed":
                raise RolloutError(f"{self.function}: configuration update failed: "
                                   f"{config.get('LastUpdateStatusReason')}")  # fmt: skip
            time.sleep(1.0)
        raise RolloutBusy(f"{self.function}: configuration update still in progress")

    def _start_shift(self, current: str, target: str, reference: str) -> str:
        appspec = {
            "version": 0.0,
            "Resources": [{"serving": {"Type": "AWS::Lambda::Function", "Properties": {
                "Name": self.function, "Alias": self.alias,
                "CurrentVersion": current, "TargetVersion": target,
            }}}],
        }  # fmt: skip
        try:
            created = self._codedeploy.create_deployment(
                applicationName=self._application, deploymentGroupName=self._group,
                revision={"revisionType": "AppSpecContent",
                          "appSpecContent": {"content": json.dumps(appspec)}},
                description=reference,
            )  # fmt: skip
        except ClientError as error:
            if error.response["Error"]["Code"] in (
                "DeploymentLimitExceededException", "DeploymentAlreadyStartedException"
            ):  # fmt: skip
                raise RolloutBusy(f"{self._group}: another deployment is active") from None
            raise
        return str(created["deploymentId"])
