"""The local engine: the platform's `local` environment running in this process.

`LocalEngine.start()` brings up the emulator with every extension, synthesizes the `local`
environment of the real CDK app (the same code `cdk synth -c env=local` runs) and deploys
the resulting cloud assembly into the emulator. From then on the project's code -- CLI,
handlers, state machine, SageMaker job scripts -- runs against it exactly as against AWS,
reaching it through `AWS_ENDPOINT_URL` in the environment.

What is not emulated: container images (SageMaker jobs run on this interpreter with the
locked dependencies), IAM enforcement, VPC networking, and real service latencies.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localaws import (
    cloudwatch_alarms,
    codedeploy,
    events,
    firehose_delivery,
    lambda_runtime,
    s3_secure_transport,
    sagemaker_jobs,
    sagemaker_registry,
    scheduler,
    stepfunctions_sync,
)
from localaws.deploy import Deployment, deploy_assembly
from localaws.emulator import Emulator

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORKDIR = REPO_ROOT / ".localaws"
# Order matters: `events` wraps UpdateModelPackage after `sagemaker_registry` fixed it, so
# the state-change event carries the merged metadata; uninstall runs in reverse.
_EXTENSIONS = (
    sagemaker_jobs,
    sagemaker_registry,
    stepfunctions_sync,
    lambda_runtime,
    events,
    codedeploy,
    cloudwatch_alarms,
    s3_secure_transport,
    firehose_delivery,
)


@dataclass(frozen=True)
class TrainingOutputs:
    """Where the training stack's resources ended up, from its CloudFormation outputs."""

    code_bucket: str
    artifacts_bucket: str
    runs_table: str
    state_machine_arn: str
    notification_topic_arn: str

    @classmethod
    def from_deployment(cls, deployment: Deployment, stack: str) -> TrainingOutputs:
        out = deployment[stack].outputs
        return cls(
            code_bucket=out["CodeBucketName"],
            artifacts_bucket=out["ArtifactsBucketName"],
            runs_table=out["RunsTableName"],
            state_machine_arn=out["StateMachineArn"],
            notification_topic_arn=out["NotificationTopicArn"],
        )


@dataclass
class LocalEngine:
    """Emulator + extensions + the deployed `local` app."""

    workdir: Path = DEFAULT_WORKDIR
    redis_url: str = "redis://127.0.0.1:6379"
    emulator: Emulator = field(default_factory=Emulator)
    deployment: Deployment | None = None
    project: str = "mlops"
    timings: dict[str, float] = field(default_factory=dict)
    _saved_environ: dict[str, str] = field(default_factory=dict, repr=False)

    def start(self) -> LocalEngine:
        """Start the emulator and install the extensions (no deployment yet)."""
        started = time.perf_counter()
        self._saved_environ = dict(os.environ)
        self.emulator.start()
        self.emulator.apply_environ()
        for extension in _EXTENSIONS:
            extension.install()
        self.timings["emulator"] = time.perf_counter() - started
        return self

    def synthesize(self) -> Path:
        """Synthesize the `local` environment into workdir/cdk.out (host bundling)."""
        from stacks.assembly import synthesize_environment

        started = time.perf_counter()
        outdir = self.workdir / "cdk.out"
        outdir.mkdir(parents=True, exist_ok=True)
        synthesize_environment("local", outdir, bundling=True)
        self.timings["synth"] = time.perf_counter() - started
        return outdir

    def deploy(self, assembly: Path | None = None) -> Deployment:
        started = time.perf_counter()
        self.deployment = deploy_assembly(
            assembly or self.synthesize(), emulator=self.emulator, redis_url=self.redis_url
        )
        self.timings["deploy"] = time.perf_counter() - started
        return self.deployment

    def run_schedule(self, name: str, group: str = "default", **kw: Any) -> Any:
        """Deliver an EventBridge Scheduler schedule's target now (`localaws.scheduler`)."""
        kw.setdefault("region", self.emulator.region)
        return scheduler.run_schedule(name, group, **kw)

    @property
    def training(self) -> TrainingOutputs:
        if self.deployment is None:
            raise RuntimeError("the local app is not deployed: call deploy() first")
        return TrainingOutputs.from_deployment(self.deployment, f"{self.project}-local-training")

    def stop(self) -> None:
        for extension in reversed(_EXTENSIONS):
            try:
                extension.uninstall()
            except Exception:  # noqa: BLE001 - stopping must release everything it can
                log.exception("could not uninstall %s", extension.__name__)
        self.emulator.stop()
        os.environ.clear()
        os.environ.update(self._saved_environ)

    def __enter__(self) -> LocalEngine:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
