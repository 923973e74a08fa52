"""Entry point of the retraining function (see `domain.py`).

Events: EventBridge "CloudWatch Alarm State Change" of a drift `act` alarm, or a retraining
schedule's `{"model", "reason": "schedule", "scheduled_time"}`. Output: `{"status", "model",
"detail", "run_id"?, "key"?, "version_id"?}` with status started, duplicate, in_progress,
ignored or no_champion. A malformed event raises `InvalidInputError` (a wiring bug: it goes
to the dead-letter queue after the retries).

Environment: CODE_BUCKET, RUNS_TABLE, CHAMPION_PREFIX, NOTIFICATION_TOPIC_ARN, POLICIES
(JSON, `domain.policies_from`), AWS_REGION. The function ships lambdas/retrain,
lambdas/common.py, mlops/runs.py, mlops/dynamo.py and mlops/deployments.py.
"""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lambdas.common import InvalidInputError, load_settings
from lambdas.retrain.domain import RequestError, Retrainer, parse_request, policies_from
from mlops.deployments import ChampionPointer
from mlops.runs import RunsRepository

logger = Logger(service="retrain")


class RetrainSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    code_bucket: str = Field(min_length=1)
    runs_table: str = Field(min_length=1)
    champion_prefix: str = Field(pattern=r"^/.*/$")
    notification_topic_arn: str = Field(min_length=1)
    policies: str = Field(min_length=2)
    aws_region: str = Field(
        min_length=1, validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )


def retrainer(settings: RetrainSettings) -> Retrainer:
    region = settings.aws_region
    return Retrainer(
        policies=policies_from(settings.policies),
        code_bucket=settings.code_bucket,
        topic_arn=settings.notification_topic_arn,
        s3=boto3.client("s3", region_name=region),
        sagemaker=boto3.client("sagemaker", region_name=region),
        sns=boto3.client("sns", region_name=region),
        runs=RunsRepository(settings.runs_table),
        pointer=ChampionPointer(
            settings.champion_prefix, ssm=boto3.client("ssm", region_name=region)
        ),
    )


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001
    try:
        request = parse_request(event)
    except RequestError as error:
        raise InvalidInputError(str(error)) from None
    logger.append_keys(model=request.model, reason=request.reason)
    outcome = retrainer(load_settings(RetrainSettings)).handle(request)
    logger.info("retraining decision", extra=outcome.as_dict())
    return outcome.as_dict()
