"""The SageMaker task service registered by `stepfunctions_sync` (see its docstring).

Kept apart so that importing `stepfunctions_sync` does not import moto's interpreter.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, cast

from botocore.exceptions import ClientError
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (
    CustomErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
    StatesErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
    ResourceCondition,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (  # noqa: E501
    StateTaskServiceCallback,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

from localaws.stepfunctions_sync import FAILED_STATUSES, POLL_SECONDS, SYNC_JOBS, to_state_json

logger = logging.getLogger(__name__)

# The error name Step Functions gives SageMaker API errors in optimised integrations.
_API_ERROR = "SageMaker.AmazonSageMakerException"


class StateTaskServiceSageMaker(StateTaskServiceCallback):
    """The optimised SageMaker integration: request/response and `.sync`."""

    def __init__(self) -> None:
        patterns: set[Any] = {ResourceCondition.Sync}
        super().__init__(supported_integration_patterns=patterns)

    def _validate_service_integration_is_supported(self) -> None:
        condition = self.resource.condition
        if condition is not None and (
            condition != ResourceCondition.Sync or self.resource.api_action not in SYNC_JOBS
        ):
            raise ValueError(
                f"Unsupported {condition} integration pattern in resource "
                f"{self.resource.resource_arn}: SageMaker supports .sync only for "
                f"{sorted(SYNC_JOBS)}"
            )

    def _client(self, region: str, credentials: Any) -> Any:
        return boto_client_for(region=region, service="sagemaker", state_credentials=credentials)

    def _eval_service_task(
        self, env: Any, resource_runtime_part: Any, normalised_parameters: dict[str, Any],
        state_credentials: Any,
    ) -> None:  # fmt: skip
        client = self._client(resource_runtime_part.region, state_credentials)
        action = self._get_boto_service_action()
        response = getattr(client, action)(**normalised_parameters)
        response.pop("ResponseMetadata", None)
        env.stack.append(to_state_json(response))

    def _from_error(self, env: Any, ex: Exception) -> Any:
        if not isinstance(ex, ClientError):
            return super()._from_error(env=env, ex=ex)
        error = ex.response["Error"]
        cause = (
            f"{error.get('Message', '')} (Service: AmazonSageMaker; "
            f"Error Code: {error.get('Code', '')})"
        )
        return self._failure(env, CustomErrorName(_API_ERROR), _API_ERROR, cause)

    def _failure(self, env: Any, error_name: Any, error: str, cause: str) -> Any:
        return FailureEvent(
            env=env,
            error_name=error_name,
            event_type=HistoryEventType.TaskFailed,
            event_details=cast(Any, EventDetails)(
                taskFailedEventDetails=TaskFailedEventDetails(
                    error=error,
                    cause=cause,
                    resource=self._get_sfn_resource(),
                    resourceType=self._get_sfn_resource_type(),
                )
            ),
        )

    def _eval_integration_pattern(
        self, env: Any, resource_runtime_part: Any, normalised_parameters: dict[str, Any],
        state_credentials: Any,
    ) -> None:  # fmt: skip
        if self.resource.condition != ResourceCondition.Sync:
            raise RuntimeError(f"Unsupported integration {self.resource.resource_arn}")
        env.stack.pop()  # the Create* response; the job is found by its name
        client = self._client(resource_runtime_part.region, state_credentials)
        resolve = self._sync_resolver(env, client, normalised_parameters)
        while env.is_running():
            result = resolve()
            if result is not None:
                env.stack.append(result)
                return
            time.sleep(POLL_SECONDS)
        self._stop_job(client, normalised_parameters)

    def _sync_resolver(
        self, env: Any, client: Any, parameters: dict[str, Any]
    ) -> Callable[[], Any]:
        describe, name_key, status_key, _ = SYNC_JOBS[self.resource.api_action]
        name = parameters[name_key]

        def resolve() -> Any:
            output = getattr(client, describe)(**{name_key: name})
            output.pop("ResponseMetadata", None)
            status = output.get(status_key)
            if status == "Completed":
                return to_state_json(output)
            if status in FAILED_STATUSES:
                raise FailureEventException(
                    self._failure(
                        env,
                        StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                        StatesErrorNameType.StatesTaskFailed.to_name(),
                        to_json_str(to_state_json(output)),
                    )
                )
            return None

        return resolve

    def _stop_job(self, client: Any, parameters: dict[str, Any]) -> None:
        """The state ended (timeout, execution stopped) before the job: stop the job too."""
        _, name_key, _, stop = SYNC_JOBS[self.resource.api_action]
        try:
            getattr(client, stop)(**{name_key: parameters[name_key]})
        except Exception:  # best effort, as in Step Functions
            logger.warning("could not %s %s", stop, parameters.get(name_key), exc_info=True)
