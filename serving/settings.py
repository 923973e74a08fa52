"""Runtime settings of the serving app: environment variables `MLOPS_SERVING_<FIELD>`.

Read once by `settings_from_env()` when an app is built (never at import), so the Lambda handler,
the uvicorn factory and the tests configure the same app the same way. Where each value comes
from on AWS: the serving stack sets them on the function / pod (docs/serving.md). The request
metrics' two settings (`MetricsSettings`, which `ServingSettings` extends) can also be read alone,
since the app reads them itself when its builder does not pass them.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A model package version (what the registry and the approval hook name); an unversioned
# package (no group) is accepted too.
MODEL_PACKAGE_ARN = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/[A-Za-z0-9-]{1,63}(/\d+)?$"
)

DEFAULT_METRICS_NAMESPACE = "MLOps/Serving"
MetricsMode = Literal["emf", "off"]


class MetricsSettings(BaseSettings):
    """The request metrics' settings (serving.metrics), readable on their own: `create_app`
    reads just these when it is not handed its metrics, as on Lambda, where the handler builds
    the app from a runtime."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_SERVING_", extra="ignore", frozen=True)

    metrics: MetricsMode = Field(
        default="off",
        description="'emf': one CloudWatch Embedded Metric Format line per model request on "
        "stdout (requests, 4xx, 5xx, latency per model; predictions per model version); 'off': "
        "nothing (local runs, tests).",
    )
    metrics_namespace: str = Field(
        default=DEFAULT_METRICS_NAMESPACE, description="The CloudWatch namespace of those metrics."
    )

    @field_validator("metrics_namespace")
    @classmethod
    def _namespace(cls, namespace: str) -> str:
        # CloudWatch's rule for a namespace: 1-255 characters, not starting with ':'; names
        # starting with 'AWS/' are reserved for AWS services.
        if not 1 <= len(namespace) <= 255 or namespace.startswith(":"):
            raise ValueError(
                f"MLOPS_SERVING_METRICS_NAMESPACE {namespace!r}: a CloudWatch namespace has 1-255 "
                "characters and does not start with ':'"
            )
        if namespace.startswith("AWS/"):
            raise ValueError(
                f"MLOPS_SERVING_METRICS_NAMESPACE {namespace!r}: namespaces starting with 'AWS/' "
                "are reserved for AWS services"
            )
        return namespace


class ServingSettings(MetricsSettings):
    """Everything the app needs besides the models themselves."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_SERVING_", extra="ignore", frozen=True)

    spec: str | None = Field(
        default=None,
        description="The serving spec as JSON (models, their feature plans); see serving.spec.",
    )
    spec_file: str | None = Field(default=None, description="...or a file holding it.")

    redis_url: str | None = Field(
        default=None, description="redis:// or rediss:// URL (local runs, tests, tunnels)."
    )
    redis_host: str | None = Field(default=None, description="ElastiCache primary endpoint.")
    redis_port: int = Field(default=6379, ge=1, le=65535)
    redis_tls: bool = True
    redis_secret_arn: str | None = Field(
        default=None, description="Secrets Manager secret holding the Redis AUTH token."
    )
    redis_timeout_ms: int = Field(default=20, ge=1, le=5_000)

    model_source: Literal["champion", "registry", "directory"] = Field(
        default="registry",
        description="'champion': each model's champion is the version its champion pointer "
        "names (the SSM parameter <champion_prefix><model> the approval hook writes after a "
        "rollout; what the stacks set); 'registry': the newest Approved package of its "
        "SageMaker model package group; 'directory': <model_dir>/<model>/ holds model.onnx and "
        "signature.json (benchmarks, tests, bring-your-own).",
    )
    champion_prefix: str | None = Field(
        default=None,
        description="Pointer parameter prefix, /<project>/<env>/champions/ "
        "(mlops.deployments.pointer_prefix); required by model_source 'champion'.",
    )
    pinned_models: dict[str, str] = Field(
        default_factory=dict,
        description="JSON {model: model package ARN}: these models serve exactly that package "
        "whatever the source says (the approval hook sets it on the Lambda versions it "
        "publishes); every key must be a served model (checked when the runtime is built).",
    )
    model_dir: str | None = None
    model_cache_dir: str = Field(
        default="/tmp/mlops-models", description="Where downloaded artifacts are unpacked."
    )
    refresh_seconds: int = Field(
        default=30, ge=0, description="Champion check interval; 0 disables the background check."
    )
    max_batch_size: int = Field(default=100, ge=1, le=10_000)

    prediction_log_stream: str | None = Field(
        default=None, description="Kinesis Data Firehose delivery stream for prediction logs."
    )
    prediction_log_file: str | None = Field(
        default=None, description="...or a JSON-lines file (local runs)."
    )
    prediction_log_queue: int = Field(
        default=10_000, ge=1, description="Records buffered before new ones are dropped."
    )

    region: str | None = Field(default=None, description="Default: the SDK's (AWS_REGION).")
    endpoint_url: str | None = Field(
        default=None, description="AWS endpoint override (the local engine, LocalStack)."
    )

    @field_validator("pinned_models")
    @classmethod
    def _package_arns(cls, pins: dict[str, str]) -> dict[str, str]:
        bad = {model: arn for model, arn in pins.items() if not MODEL_PACKAGE_ARN.match(arn)}
        if bad:
            raise ValueError(
                f"MLOPS_SERVING_PINNED_MODELS: {bad} are not model package ARNs "
                "(arn:<partition>:sagemaker:<region>:<account>:model-package/<group>/<version>)"
            )
        return pins

    @model_validator(mode="after")
    def _complete(self) -> ServingSettings:
        if (self.spec is None) == (self.spec_file is None):
            raise ValueError("set exactly one of MLOPS_SERVING_SPEC and MLOPS_SERVING_SPEC_FILE")
        if (self.redis_url is None) == (self.redis_host is None):
            raise ValueError(
                "set exactly one of MLOPS_SERVING_REDIS_URL and MLOPS_SERVING_REDIS_HOST"
            )
        if self.model_source == "directory" and not self.model_dir:
            raise ValueError("MLOPS_SERVING_MODEL_SOURCE=directory needs MLOPS_SERVING_MODEL_DIR")
        if self.model_source == "champion" and not self.champion_prefix:
            raise ValueError(
                "MLOPS_SERVING_MODEL_SOURCE=champion needs MLOPS_SERVING_CHAMPION_PREFIX"
            )
        prefix = self.champion_prefix
        if prefix is not None and not (prefix.startswith("/") and prefix.endswith("/")):
            raise ValueError(
                f"MLOPS_SERVING_CHAMPION_PREFIX {prefix!r} must start and end with '/'"
            )
        if self.prediction_log_stream and self.prediction_log_file:
            raise ValueError(
                "set at most one of MLOPS_SERVING_PREDICTION_LOG_STREAM and _PREDICTION_LOG_FILE"
            )
        return self


def settings_from_env() -> ServingSettings:
    """The settings from the process environment (raises pydantic's ValidationError, which
    names every bad variable)."""
    return ServingSettings()


def metrics_settings_from_env() -> MetricsSettings:
    """Only the request metrics' settings from the process environment."""
    return MetricsSettings()
