"""Entry point of the drift job (EventBridge Scheduler → Lambda; see `domain.py`).

Event: `{}` or `{"end": "<ISO 8601>", "hours": N, "models": [...]}`; the schedule sends
`{"end": "<aws.scheduler.scheduled-time>"}`, so a retried invocation reads the same window.
Output: `{"window": {"start", "end"}, "models": [{"model", "status", "version", "max_psi",
"records", "report", "reason"}]}`.

The function ships lambdas/drift_job, lambdas/common.py, monitoring/ and mlops/deployments.py
(+ mlops/dynamo.py), so it imports nothing else from the repository.
"""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.common import load_settings, parse_event
from lambdas.drift_job.domain import DriftJob, JobRequest, JobSettings
from mlops.deployments import ChampionPointer

logger = Logger(service="drift-job")


def job(settings: JobSettings) -> DriftJob:
    """The use case wired to AWS clients in the function's region."""
    region = settings.aws_region
    return DriftJob(
        settings=settings,
        sagemaker=boto3.client("sagemaker", region_name=region),
        s3=boto3.client("s3", region_name=region),
        cloudwatch=boto3.client("cloudwatch", region_name=region),
        pointer=ChampionPointer(
            settings.champion_prefix, ssm=boto3.client("ssm", region_name=region)
        ),
    )


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001
    request = parse_event(JobRequest, event)
    settings = load_settings(JobSettings)
    return job(settings).run(request)
