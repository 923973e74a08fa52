"""A Docker-free Lambda runtime: moto's Lambda functions run their Python handler in-process.

moto 5.2.5 runs function code in a Docker container (``LambdaFunction._invoke_lambda``). Every
invocation path in moto -- the Invoke API (with version and alias qualifiers resolved by
``LambdaBackend.get_function``), Step Functions' ``lambda:invoke`` and legacy function-ARN
tasks (which call the Invoke API over HTTP), SQS/SNS/S3 deliveries -- ends in
``LambdaFunction.invoke(body, request_headers, response_headers)``. :func:`install` replaces
that method so the handler is imported from the function's own deployment package
(``lambda_code``) and called with a real context object (``lambda_sandbox``).

Contract, as AWS behaves:

* ``RequestResponse``: the handler's JSON result is the payload; an exception is a function
  error (``X-Amz-Function-Error: Unhandled``, payload ``errorMessage/errorType/requestId/
  stackTrace``); exceeding the configured timeout yields ``Sandbox.Timedout``.
* ``Event``: accepted at once (202) and run by a background worker; a failed attempt is retried
  ``MaximumRetryAttempts`` times (default 2, from the function's event-invoke config) and, when
  retries are exhausted, an ``OnFailure`` SQS destination receives the invocation record.
  The retry delays are shortened from AWS's minutes to :attr:`LambdaRuntime.async_retry_delays`.
* ``DryRun``: validates and returns 204 without running anything.

Invocations are serialised by one lock because ``os.environ`` is process-global: two handlers
running at once would see each other's environment variables. Consequence: a handler that
*synchronously* invokes another function through the emulator waits until its own timeout
frees the lock. A Python thread cannot be killed, so a timed-out handler is abandoned: the
invocation fails, the lock is released and the environment restored, while the thread runs on
in the background.

Every attempt is recorded (:func:`invocations`) and its output, framed by the runtime's
START/END/REPORT lines, goes to the CloudWatch Logs group ``/aws/lambda/<function>``.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import queue
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from localaws.lambda_code import DeploymentPackage, extract, on_sys_path
from localaws.lambda_sandbox import (
    LambdaContext,
    OutputCapture,
    call_handler,
    frame_log,
    function_environment,
    reserved_variables,
    save_logs,
    snapshot_views,
)
from localaws.patching import PatchSet

LOGGER = logging.getLogger(__name__)
# No Lambda function may run longer than 15 minutes, so no lock holder can keep it longer.
LOCK_WAIT_SECONDS = 900.0
LOG_TAIL_BYTES = 4096


@dataclass(frozen=True)
class InvocationRecord:
    """One attempt to run a function: what the engine's CLI and the tests inspect."""

    function_name: str
    function_arn: str
    version: str
    request_id: str
    invocation_type: str
    attempt: int
    started_at: datetime
    duration_ms: float
    outcome: str  # "Succeeded" | "Failed" | "TimedOut"
    error_type: str | None
    error_message: str | None
    log_stream_name: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "started_at": self.started_at.isoformat()}


@dataclass(frozen=True)
class InvocationResult:
    record: InvocationRecord
    payload: bytes
    log_text: str

    @property
    def function_error(self) -> bool:
        return self.record.outcome != "Succeeded"


@dataclass(frozen=True)
class _AsyncRequest:
    function: Any  # moto's LambdaFunction (a version object when qualified)
    event: Any


class LambdaRuntime:
    """Runs handlers, keeps the invocation log and the asynchronous queue."""

    def __init__(self) -> None:
        self.async_retry_delays: tuple[float, ...] = (0.1, 0.2)
        self._lock = threading.Lock()
        self._records: list[InvocationRecord] = []
        self._records_lock = threading.Lock()
        self._queue: queue.Queue[_AsyncRequest] = queue.Queue()
        self._outstanding = 0
        self._idle = threading.Condition()
        self._worker: threading.Thread | None = None
        self._output = OutputCapture()

    # -- inspection ---------------------------------------------------------------------------
    def invocations(self, function_name: str | None = None) -> list[InvocationRecord]:
        with self._records_lock:
            return [r for r in self._records if function_name in (None, r.function_name)]

    def clear(self) -> None:
        with self._records_lock:
            self._records.clear()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until every accepted asynchronous invocation has finished all its attempts."""
        with self._idle:
            return self._idle.wait_for(lambda: self._outstanding == 0, timeout=timeout)

    # -- asynchronous invocations ----------------------------------------------------------------
    def submit(self, function: Any, event: Any) -> None:
        with self._idle:
            self._outstanding += 1
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._drain, name="localaws-lambda-async", daemon=True
                )
                self._worker.start()
        self._queue.put(_AsyncRequest(function, event))

    def _drain(self) -> None:
        while True:
            request = self._queue.get()
            try:
                self._run_async(request)
            except Exception:  # the worker must survive anything a delivery does
                LOGGER.exception("asynchronous invocation crashed the engine")
            finally:
                with self._idle:
                    self._outstanding -= 1
                    self._idle.notify_all()

    def _run_async(self, request: _AsyncRequest) -> None:
        config = _event_invoke_config(request.function)
        retries = int(config.get("MaximumRetryAttempts", 2))
        result: InvocationResult | None = None
        for attempt in range(1, retries + 2):
            if attempt > 1:
                delays = self.async_retry_delays or (0.0,)
                time.sleep(delays[min(attempt - 2, len(delays) - 1)])
            result = self.execute(request.function, request.event, "Event", attempt)
            if not result.function_error:
                return
        assert result is not None
        LOGGER.warning(
            "asynchronous invocation of %s failed %d times (%s); event discarded",
            result.record.function_name,
            retries + 1,
            result.record.error_type,
        )
        _send_to_failure_destination(request, config, result, retries + 1)

    # -- one attempt ------------------------------------------------------------------------------
    def execute(
        self, function: Any, event: Any, invocation_type: str, attempt: int = 1
    ) -> InvocationResult:
        """Run the handler once and record the attempt; never raises for handler failures."""
        context = _new_context(function)
        started_at, started = datetime.now(UTC), time.monotonic()
        outcome, payload, output = self._run_serialised(function, event, context)
        duration_ms = (time.monotonic() - started) * 1000
        error = json.loads(payload) if outcome != "Succeeded" else {}
        record = InvocationRecord(
            function_name=function.function_name,
            function_arn=function.function_arn,
            version=context.function_version,
            request_id=context.aws_request_id,
            invocation_type=invocation_type,
            attempt=attempt,
            started_at=started_at,
            duration_ms=duration_ms,
            outcome=outcome,
            error_type=error.get("errorType"),
            error_message=error.get("errorMessage"),
            log_stream_name=context.log_stream_name,
        )
        timed_out = record.error_message if outcome == "TimedOut" else None
        log_text = frame_log(
            record.request_id,
            record.version,
            output,
            timed_out,
            duration_ms,
            context.memory_limit_in_mb,
        )
        save_logs(function, context.log_stream_name, log_text)
        with self._records_lock:
            self._records.append(record)
        return InvocationResult(record=record, payload=payload, log_text=log_text)

    def _run_serialised(
        self, function: Any, event: Any, context: LambdaContext
    ) -> tuple[str, bytes, str]:
        if getattr(function, "package_type", "Zip") != "Zip" or not function.code_bytes:
            return _failure(context, "LocalEngine.UnsupportedPackage", "only zip packages run")
        package = extract(function.function_name, function.code_digest, function.code_bytes)
        if not self._lock.acquire(timeout=LOCK_WAIT_SECONDS):
            return _failure(context, "LocalEngine.RuntimeBusy", "another invocation never ended")
        try:
            variables = reserved_variables(function, context, str(package.directory))
            with (
                function_environment(variables),
                on_sys_path(package),
                self._output.installed(),
            ):
                return self._run_in_worker(function.handler, package, event, context)
        finally:
            self._lock.release()

    def _run_in_worker(
        self, handler: str, package: DeploymentPackage, event: Any, context: LambdaContext
    ) -> tuple[str, bytes, str]:
        buffer = io.StringIO()
        box: dict[str, Any] = {}

        def run() -> None:
            self._output.register(buffer)
            try:
                box["outcome"] = call_handler(handler, package, event, context)
            finally:
                self._output.unregister(threading.get_ident())

        worker = threading.Thread(target=run, name=f"lambda-{context.function_name}", daemon=True)
        worker.start()
        worker.join(context.timeout_seconds)
        if worker.is_alive():
            self._output.unregister(worker.ident)
            message = (
                f"RequestId: {context.aws_request_id} Error: Task timed out after "
                f"{context.timeout_seconds:.2f} seconds"
            )
            error = {"errorType": "Sandbox.Timedout", "errorMessage": message}
            return "TimedOut", json.dumps(error).encode(), buffer.getvalue()
        outcome, payload = box["outcome"]
        return outcome, payload, buffer.getvalue()


def _new_context(function: Any) -> LambdaContext:
    version = str(function.version)
    return LambdaContext(
        function_name=function.function_name,
        function_version=version,
        invoked_function_arn=function.function_arn,
        memory_limit_in_mb=int(function.memory_size),
        aws_request_id=str(uuid.uuid4()),
        log_group_name=function.logs_group_name,
        log_stream_name=f"{datetime.now(UTC):%Y/%m/%d}/[{version}]{uuid.uuid4().hex}",
        timeout_seconds=float(function.timeout),
    )


def _failure(context: LambdaContext, error_type: str, message: str) -> tuple[str, bytes, str]:
    payload = {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": context.aws_request_id,
    }
    return "Failed", json.dumps(payload).encode(), f"[ERROR] {error_type}: {message}\n"


def _event_invoke_config(function: Any) -> dict[str, Any]:
    configs = getattr(function, "event_invoke_config", None) or []
    return dict(configs[0].config) if configs else {}


def _send_to_failure_destination(
    request: _AsyncRequest, config: dict[str, Any], result: InvocationResult, attempts: int
) -> None:
    """Deliver the AWS invocation record to an ``OnFailure`` SQS destination, if configured."""
    destination = config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
    if not destination:
        return
    if ":sqs:" not in destination:
        LOGGER.warning("OnFailure destination %s is not emulated (SQS only)", destination)
        return
    from moto.sqs.models import sqs_backends

    record = {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(),
        "requestContext": {
            "requestId": result.record.request_id,
            "functionArn": f"{result.record.function_arn}",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": request.event,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": result.record.version,
            "functionError": "Unhandled",
        },
        "responsePayload": json.loads(result.payload),
    }
    _, _, _, region, account, queue_name = destination.split(":", 5)
    sqs_backends[account][region].send_message(queue_name, json.dumps(record))


RUNTIME = LambdaRuntime()


def _header(headers: Any, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def _parse_payload(body: str | bytes | None) -> Any:
    from moto.awslambda.exceptions import LambdaClientError

    if not body:
        return {}
    try:
        return json.loads(body)
    except ValueError as exc:
        raise LambdaClientError(
            "InvalidRequestContentException", f"Could not parse request body into json: {exc}"
        ) from exc


def _invoke(
    function: Any, body: str | bytes | None, request_headers: Any, response_headers: Any
) -> bytes:
    """Replacement for ``LambdaFunction.invoke``; the Invoke API wraps it in 200/202/204."""
    invocation_type = _header(request_headers, "x-amz-invocation-type") or "RequestResponse"
    event = _parse_payload(body)
    response_headers["x-amz-executed-version"] = str(function.version)
    if invocation_type == "DryRun":
        return b""
    if invocation_type == "Event":
        RUNTIME.submit(function, event)
        return b""
    result = RUNTIME.execute(function, event, invocation_type)
    if result.function_error:
        response_headers["x-amz-function-error"] = "Unhandled"
    tail = result.log_text.encode()[-LOG_TAIL_BYTES:]
    response_headers["x-amz-log-result"] = base64.b64encode(tail).decode()
    return result.payload


def invoke_async(account_id: str, region: str, function_arn: str, event: Any) -> None:
    """Queue an ``Event`` invocation, as EventBridge and S3 do; raises if no such function."""
    from moto.awslambda.utils import get_backend

    function = get_backend(account_id, region).get_function(function_arn)
    RUNTIME.submit(function, event)


def invocations(function_name: str | None = None) -> list[InvocationRecord]:
    return RUNTIME.invocations(function_name)


def wait_for_async(timeout: float = 30.0) -> bool:
    return RUNTIME.wait_idle(timeout)


def _invoke_response(self: Any) -> Any:
    """moto reads the Invoke API's query parameter as ``qualifier``; SDKs send ``Qualifier``."""
    if "Qualifier" in self.querystring:
        self.querystring.setdefault("qualifier", self.querystring["Qualifier"])
    return _PATCHES["LambdaResponse.invoke"](self)


def _patches() -> list[tuple[Any, str, Any]]:
    from moto.awslambda.models import LambdaFunction
    from moto.awslambda.responses import LambdaResponse

    return [(LambdaFunction, "invoke", _invoke), (LambdaResponse, "invoke", _invoke_response)]


_PATCHES = PatchSet(_patches)


def install() -> None:
    """Make moto run Lambda handlers in-process. Idempotent."""
    _PATCHES.install()
    snapshot_views(True)


def uninstall() -> None:
    """Restore moto's Docker-based invocation. Queued asynchronous invocations still run."""
    _PATCHES.uninstall()
    snapshot_views(False)
