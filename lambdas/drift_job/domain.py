"""The drift job: for each watched model, read its champion against the last window of logs.

Per model (`monitoring.job` does the reading, the same code `mlops drift` runs):

1. the champion (the pointer the approval hook writes) and its evaluation report's baselines;
2. the window's prediction-log records of that version (`Window.hours_before(end, hours)`);
3. PSI per feature and for the score (`monitoring.drift`), published as CloudWatch metrics
   (`monitoring.metrics`), which the `warn`/`act` alarms watch;
4. the report, as HTML with the distribution charts and as JSON, to
   `s3://<report bucket>/<prefix><model>/dt=<window end day>/report.{html,json}`.

A model without a champion is `no_champion` (nothing to compare yet), one whose version cannot
be read against is `unreadable` with the reason: both are results, not failures. Any other error
of one model is recorded and the others still run; the job then raises `DriftJobError`, so the
invocation counts as an error and the function's error alarm fires.

AWS clients are passed in, so this module knows nothing about Lambda.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from monitoring.drift import Thresholds
from monitoring.job import Reading, TargetError, Window, read_window, resolve_target
from monitoring.metrics import publish
from monitoring.report import render_html, report_key

logger = Logger(service="drift-job", child=True)


class DriftJobError(RuntimeError):
    """At least one model's reading failed unexpectedly (the others were still read)."""


class JobSettings(BaseSettings):
    """The function's environment (set by stacks/monitoring.py)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    log_bucket: str = Field(min_length=1)
    report_bucket: str = Field(min_length=1)
    report_prefix: str = Field(default="drift-reports/", pattern=r"^([A-Za-z0-9_.-]+/)*$")
    champion_prefix: str = Field(pattern=r"^/.*/$")
    models: str = Field(description="Comma-separated served models to watch.")
    metrics_namespace: str = Field(default="MLOps/Drift", min_length=1, max_length=255)
    window_hours: int = Field(default=24, ge=1, le=744)
    warn: float = 0.1
    act: float = 0.25
    min_rows: int = Field(default=100, ge=1)
    aws_region: str = Field(
        min_length=1, validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )

    @property
    def watched(self) -> list[str]:
        return [m for m in self.models.split(",") if m]

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(warn=self.warn, act=self.act, min_rows=self.min_rows)


class JobRequest(BaseModel):
    """The invocation's input: `{}` from the schedule (plus its `end`), or a manual re-run."""

    model_config = ConfigDict(extra="forbid")

    models: list[str] | None = Field(default=None, min_length=1)
    end: datetime | None = Field(
        default=None, description="Window end (ISO 8601; the schedule passes its scheduled "
        "time, so a retried run reads the same window); default: now."
    )  # fmt: skip
    hours: int | None = Field(default=None, ge=1, le=744)


@dataclass(frozen=True)
class ModelResult:
    model: str
    status: str
    version: int | None = None
    max_psi: float | None = None
    records: int | None = None
    report: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class DriftJob:
    settings: JobSettings
    sagemaker: Any
    s3: Any
    cloudwatch: Any
    pointer: Any  # mlops.deployments.ChampionPointer

    def run(self, request: JobRequest, now: datetime | None = None) -> dict[str, Any]:
        at = now or datetime.now(UTC)
        end = (request.end or at).astimezone(UTC)
        window = Window.hours_before(end, request.hours or self.settings.window_hours)
        watched = self.settings.watched
        models = request.models or watched
        unknown = sorted(set(models) - set(watched))
        if unknown:
            raise ValueError(f"models {unknown} are not watched here (watched: {watched})")
        results = [self._guarded(model, window, at) for model in models]
        failed = [r.model for r in results if r.status == "error"]
        summary = {"window": {"start": window.start.isoformat(), "end": window.end.isoformat()},
                   "models": [r.as_dict() for r in results]}  # fmt: skip
        logger.info("drift job finished", extra={"summary": summary})
        if failed:
            raise DriftJobError(f"drift readings failed for {failed}: {json.dumps(summary)}")
        return summary

    def _guarded(self, model: str, window: Window, at: datetime) -> ModelResult:
        try:
            return self._one(model, window, at)
        except Exception as error:
            logger.exception("drift reading failed", extra={"model": model})
            return ModelResult(model, "error", reason=f"{type(error).__name__}: {error}")

    def _one(self, model: str, window: Window, at: datetime) -> ModelResult:
        if self.pointer.get(model) is None:
            logger.info("no champion yet", extra={"model": model})
            return ModelResult(model, "no_champion", reason="no version has been deployed")
        try:
            target = resolve_target(self.sagemaker, self.s3, self.pointer, model)
        except TargetError as error:
            logger.warning("cannot read drift", extra={"model": model, "reason": str(error)})
            return ModelResult(model, "unreadable", reason=str(error))
        reading = read_window(self.s3, self.settings.log_bucket, target, window,
                              self.settings.thresholds)  # fmt: skip
        publish(self.cloudwatch, self.settings.metrics_namespace, reading.report, at)
        location = self._write(reading, at)
        psis = [c.psi for c in reading.report.columns if c.psi is not None]
        return ModelResult(
            model, reading.report.status.value, version=target.version,
            max_psi=max(psis) if psis else None, records=reading.report.window.records,
            report=location,
        )  # fmt: skip

    def _write(self, reading: Reading, at: datetime) -> str:
        """The HTML and JSON report; returns the HTML's s3:// location."""
        bucket = self.settings.report_bucket
        html_key = report_key(self.settings.report_prefix, reading.target.model,
                              reading.window.end.date())  # fmt: skip
        body = reading.to_dict()
        html = render_html(body, generated_at=at, context=reading.context())
        self.s3.put_object(Bucket=bucket, Key=html_key, Body=html.encode(),
                           ContentType="text/html; charset=utf-8")  # fmt: skip
        self.s3.put_object(
            Bucket=bucket,
            Key=html_key.removesuffix(".html") + ".json",
            Body=json.dumps(body, indent=2, allow_nan=False).encode(),
            ContentType="application/json",
        )
        return f"s3://{bucket}/{html_key}"
