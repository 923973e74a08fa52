"""Serving configuration: which models the proxy serves and where it runs (Lambda, EKS).

Part of `EnvironmentConfig` (`serving:` in an environment of cdk.json); kept in its own module
so mlops/config.py stays readable. Defaults serve the sample model on Lambda only.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_MODEL_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # a model package group name
_FEATURE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServedModel(_Strict):
    """One model the proxy serves: its features come from `feature_service` by `entity`."""

    feature_service: str = Field(
        min_length=1, description="Feast feature service the model's signature is checked against."
    )
    entity: str = Field(
        pattern=_FEATURE_NAME.pattern, description="The service's join key, e.g. customer_id."
    )
    request_features: tuple[str, ...] = Field(
        default=(),
        description="Inputs the caller sends with each request instead of the feature store.",
    )

    @model_validator(mode="after")
    def _names(self) -> ServedModel:
        bad = [name for name in self.request_features if not _FEATURE_NAME.match(name)]
        if bad:
            raise ValueError(f"request_features: {bad} are not feature names")
        if len(set(self.request_features)) != len(self.request_features):
            raise ValueError("request_features: names must be unique")
        return self


class LambdaRollout(_Strict):
    """How an approved version reaches the `live` alias: CodeDeploy shifts traffic from the
    serving version to the new one and rolls back by itself when a serving alarm fires.

    `all_at_once` moves the alias in one step (no CodeDeploy deployment); `canary` sends
    `percent` % of traffic to the new version for `interval_minutes`, then the rest; `linear`
    adds `percent` % every `interval_minutes`.
    """

    strategy: Literal["all_at_once", "canary", "linear"] = "canary"
    percent: int = Field(default=10, ge=1, le=99, description="Traffic share per step.")
    interval_minutes: int = Field(
        default=5, ge=1, le=2880, description="Minutes between steps (CodeDeploy's bounds)."
    )


class LambdaServing(_Strict):
    """The proxy as a Lambda function (Mangum) behind an IAM-authenticated Function URL."""

    enabled: bool = True
    rollout: LambdaRollout = Field(default_factory=LambdaRollout)
    memory_mb: int = Field(default=2048, ge=512, le=10_240)
    timeout_seconds: int = Field(default=10, ge=1, le=60)
    reserved_concurrency: int | None = Field(
        default=None, ge=1, description="Cap on concurrent executions; null = account pool."
    )
    provisioned_concurrency: int = Field(
        default=0, ge=0, description="Pre-initialised environments on the live alias (0 = none)."
    )
    p99_latency_alarm_ms: int = Field(default=250, ge=1, description="Alarm on p99 duration.")
    error_rate_alarm_percent: float = Field(default=1.0, gt=0, le=100)

    @model_validator(mode="after")
    def _provisioned_within_reserved(self) -> LambdaServing:
        reserved = self.reserved_concurrency
        if reserved is not None and self.provisioned_concurrency > reserved:
            raise ValueError(
                f"provisioned_concurrency ({self.provisioned_concurrency}) exceeds "
                f"reserved_concurrency ({reserved})"
            )
        return self


class EksServing(_Strict):
    """The proxy on EKS: off, on a cluster this app creates, or on an existing cluster."""

    mode: Literal["off", "create", "existing"] = "off"
    cluster_name: str | None = Field(
        default=None, description="Required for 'existing'; the created cluster's name otherwise."
    )
    kubectl_role_arn: str | None = Field(
        default=None,
        description="'existing': an IAM role in the cluster's aws-auth / access entries that "
        "CDK uses to apply the manifests.",
    )
    oidc_provider_arn: str | None = Field(
        default=None,
        description="'existing': the cluster's IAM OIDC provider, which the pods' role trusts.",
    )
    cluster_security_group_id: str | None = Field(
        default=None,
        description="'existing': the cluster security group (kubectl handler in the VPC when "
        "the API endpoint is private; Redis is opened to it).",
    )
    namespace: str = Field(default="mlops-serving", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    image: str | None = Field(
        default=None,
        description="Container image of the serving app (built from serving/Dockerfile and "
        "pushed by CI); required unless mode is 'off'.",
    )
    min_replicas: int = Field(default=2, ge=1)
    max_replicas: int = Field(default=10, ge=1)
    target_cpu_percent: int = Field(default=70, ge=10, le=100)
    cpu: str = Field(default="1000m", description="CPU request and limit per pod.")
    memory: str = Field(default="1Gi", description="Memory request and limit per pod.")
    workers: int = Field(default=1, ge=1, le=16, description="uvicorn workers per pod.")

    @model_validator(mode="after")
    def _complete(self) -> EksServing:
        if self.mode == "off":
            return self
        if self.image is None:
            raise ValueError(f"serving.eks.image is required when mode is {self.mode!r}")
        needed = {
            "cluster_name": self.cluster_name,
            "kubectl_role_arn": self.kubectl_role_arn,
            "oidc_provider_arn": self.oidc_provider_arn,
        }
        missing = [name for name, value in needed.items() if value is None]
        if self.mode == "existing" and missing:
            raise ValueError(f"serving.eks mode 'existing' needs {', '.join(missing)}")
        if self.max_replicas < self.min_replicas:
            raise ValueError("serving.eks.max_replicas is below min_replicas")
        return self


class ServingConfig(_Strict):
    """What the model proxy serves and how (docs/serving.md)."""

    models: dict[str, ServedModel] = Field(
        default_factory=lambda: {
            "credit-risk": ServedModel(feature_service="credit_risk_v1", entity="customer_id")
        },
        description="Model package group name -> how to serve it.",
    )
    max_batch_size: int = Field(default=100, ge=1, le=10_000)
    redis_timeout_ms: int = Field(
        default=20,
        ge=1,
        le=5_000,
        description="Per Redis call; a Redis that is down or hung answers 503 within ~2x this.",
    )
    refresh_seconds: int = Field(
        default=30,
        ge=0,
        description="How often a running app checks the registry for a new champion (0 = never).",
    )
    prediction_log_retention_days: int = Field(default=400, ge=1, le=3650)
    lambda_: LambdaServing = Field(default_factory=LambdaServing, alias="lambda")
    eks: EksServing = Field(default_factory=EksServing)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _model_names(self) -> ServingConfig:
        bad = [name for name in self.models if not _MODEL_NAME.match(name)]
        if bad:
            raise ValueError(f"serving.models: {bad} are not model package group names")
        return self
