"""Monitoring configuration: the drift job, its thresholds and continuous training per model.

Part of `EnvironmentConfig` (`monitoring:` in an environment of cdk.json). The models watched are
those in `serving.models` (only a served model has prediction logs); `models` here sets, per
model, what a drift alarm does:

- `off`: nothing beyond the published metrics and the dashboard (no alarm notifications);
- `notify` (default): the drift alarms notify the platform topic;
- `retrain`: they notify, and the `act` alarm also starts one retraining run of the champion's
  bundle through the training trigger (the same upload path a person uses).

`retrain_schedule` adds a time-based retraining run (any policy but `off`), and `auto_approve`
approves a version a *continuous-training* run registered (it still had to pass the gate);
uploads by people always wait for approval.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEDULE_PATTERN = r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(.+\))$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelMonitoring(_Strict):
    """What drift means for one model, and what it sets off."""

    policy: Literal["off", "notify", "retrain"] = "notify"
    auto_approve: bool = Field(
        default=False,
        description="Approve a version registered by a continuous-training run (it passed the "
        "gate against the champion); false = it waits for a person like any other.",
    )
    retrain_schedule: str | None = Field(
        default=None,
        pattern=SCHEDULE_PATTERN,
        description="Also retrain on this EventBridge Scheduler expression (null = drift only).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ModelMonitoring:
        if self.policy == "off" and (self.auto_approve or self.retrain_schedule):
            raise ValueError("policy 'off' takes neither auto_approve nor retrain_schedule")
        if self.auto_approve and self.policy != "retrain" and not self.retrain_schedule:
            raise ValueError("auto_approve needs a retraining source: policy 'retrain' or a "
                             "retrain_schedule")  # fmt: skip
        return self


class MonitoringConfig(_Strict):
    enabled: bool = Field(default=True, description="Deploy the monitoring stack.")
    drift_schedule: str = Field(
        default="cron(30 0 * * ? *)",
        pattern=SCHEDULE_PATTERN,
        description="When the drift job runs (EventBridge Scheduler, UTC); default daily "
        "00:30, once the previous day's logs are delivered.",
    )
    window_days: int = Field(
        default=1, ge=1, le=31, description="Daily log partitions per reading, ending yesterday."
    )
    warn: float = Field(default=0.1, gt=0, description="PSI from which a column is `warn`.")
    act: float = Field(default=0.25, gt=0, description="PSI from which a column is `act`.")
    min_rows: int = Field(
        default=100, ge=1, description="Fewest values in the window a PSI is read on."
    )
    metrics_namespace: str = Field(default="MLOps/Drift", min_length=1, max_length=255)
    report_retention_days: int = Field(default=400, ge=1, le=3650)
    job_memory_mb: int = Field(default=1024, ge=256, le=10_240)
    job_timeout_minutes: int = Field(default=10, ge=1, le=15)
    models: dict[str, ModelMonitoring] = Field(
        default_factory=dict,
        description="Per served model; a served model not named here gets the defaults.",
    )

    @model_validator(mode="after")
    def _thresholds(self) -> MonitoringConfig:
        if self.warn > self.act:
            raise ValueError(f"warn ({self.warn}) must not exceed act ({self.act})")
        return self

    def of(self, model: str) -> ModelMonitoring:
        return self.models.get(model, ModelMonitoring())
