"""What an in-process Lambda handler sees -- context, environment, output -- and how it is called.

A real Lambda sandbox is a process of its own. Here handlers share this process, so:

* the function's environment variables are applied to the process-global ``os.environ`` for the
  duration of one invocation and every change is undone afterwards (the caller serialises
  invocations, see ``lambda_runtime``);
* ``print`` and ``logging`` output of the handler's thread is routed to a per-invocation buffer
  (so it can go to the function's CloudWatch Logs group) while every other thread keeps
  writing where it did. The routers are permanent objects because libraries such as
  aws-lambda-powertools' ``Logger`` keep a reference to ``sys.stdout`` taken at import time;
* failures are reported with the error types of the Lambda Python runtime
  (``Runtime.ImportModuleError``, ``Runtime.HandlerNotFound``, ``Runtime.MarshalError``, or the
  exception's class name) and its payload ``errorMessage/errorType/requestId/stackTrace``.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO, cast

from localaws.lambda_code import (
    DeploymentPackage,
    HandlerNotFoundError,
    StaleDeploymentPackageError,
    load_handler,
)

LOGGER = logging.getLogger(__name__)


@dataclass
class LambdaContext:
    """The ``context`` argument of a Python handler, with the attributes AWS documents."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    timeout_seconds: float
    identity: Any = None
    client_context: Any = None
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class SnapshotEnviron(os._Environ):  # type: ignore[type-arg]
    """``os.environ`` whose views are snapshots, so iterating it races no other thread.

    ``Mapping.items()`` lists the keys, then looks each one up: a key another thread removes
    in between raises ``KeyError`` in the reader. botocore reads ``os.environ.items()`` (proxy
    settings) whenever a client is created, while an invocation's variables are being removed.
    ``dict.copy`` of the underlying data runs without releasing the GIL, so it is atomic.
    """

    def _snapshot(self) -> dict[str, str]:
        data = self._data.copy()  # type: ignore[attr-defined]
        return {self.decodekey(k): self.decodevalue(v) for k, v in data.items()}

    def keys(self) -> Any:
        return self._snapshot().keys()

    def items(self) -> Any:
        return self._snapshot().items()

    def values(self) -> Any:
        return self._snapshot().values()

    def copy(self) -> dict[str, str]:
        return self._snapshot()


def snapshot_views(on: bool) -> None:
    """Give ``os.environ`` snapshot views (``on``) or its own class back. Idempotent."""
    os.environ.__class__ = SnapshotEnviron if on else os._Environ


@contextmanager
def function_environment(variables: dict[str, str]) -> Iterator[None]:
    """Apply ``variables`` to ``os.environ`` and undo every change made while inside.

    Keys are restored one by one rather than by clearing ``os.environ``: other threads (the
    moto server, Step Functions executions, the caller's) read the environment concurrently
    and must never observe it empty; they iterate it safely once :func:`snapshot_views` is on.
    """
    snapshot = os.environ.copy()
    os.environ.update(variables)
    try:
        yield
    finally:
        for key in [k for k in os.environ.keys() if k not in snapshot]:
            os.environ.pop(key, None)
        for key, value in snapshot.items():
            if os.environ.get(key) != value:
                os.environ[key] = value


class _ThreadRoutedStream(io.TextIOBase):
    """A text stream that sends writes of captured threads to their buffer."""

    def __init__(self, name: str, routes: dict[int, io.StringIO]) -> None:
        super().__init__()
        self._name = name
        self._routes = routes
        self.previous: TextIO | None = None

    def _fallback(self) -> TextIO:
        current: Any = getattr(sys, self._name)
        if current is not self:
            return cast(TextIO, current)
        if self.previous is not None:
            return cast(TextIO, self.previous)
        original: TextIO = getattr(sys, f"__{self._name}__")
        return original

    def write(self, text: str) -> int:
        buffer = self._routes.get(threading.get_ident())
        if buffer is not None:
            return buffer.write(text)
        return self._fallback().write(text)

    def flush(self) -> None:
        if threading.get_ident() not in self._routes:
            self._fallback().flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fallback().fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"


class _ThreadRoutedLogHandler(logging.Handler):
    """Copies log records of captured threads into their buffer, as the Lambda runtime does."""

    def __init__(self, routes: dict[int, io.StringIO]) -> None:
        super().__init__()
        self._routes = routes
        self.setFormatter(logging.Formatter("[%(levelname)s]\t%(asctime)s\t%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        buffer = self._routes.get(record.thread or 0)
        if buffer is not None:
            buffer.write(self.format(record) + "\n")


class OutputCapture:
    """Per-thread capture of stdout, stderr and root-logger records."""

    def __init__(self) -> None:
        self._routes: dict[int, io.StringIO] = {}
        self._streams = {
            name: _ThreadRoutedStream(name, self._routes) for name in ("stdout", "stderr")
        }
        self._log_handler = _ThreadRoutedLogHandler(self._routes)

    def register(self, buffer: io.StringIO) -> None:
        """Route the calling thread's output into ``buffer``."""
        self._routes[threading.get_ident()] = buffer

    def unregister(self, thread_ident: int | None) -> None:
        if thread_ident is not None:
            self._routes.pop(thread_ident, None)

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Make the routers ``sys.stdout``/``sys.stderr`` while an invocation runs."""
        swapped: list[str] = []
        for name, stream in self._streams.items():
            if getattr(sys, name) is not stream:
                stream.previous = getattr(sys, name)
                setattr(sys, name, stream)
                swapped.append(name)
        logging.getLogger().addHandler(self._log_handler)
        try:
            yield
        finally:
            logging.getLogger().removeHandler(self._log_handler)
            for name in swapped:
                stream = self._streams[name]
                if getattr(sys, name) is stream and stream.previous is not None:
                    setattr(sys, name, stream.previous)
                stream.previous = None


def reserved_variables(function: Any, context: LambdaContext, task_root: str) -> dict[str, str]:
    """The variables Lambda defines for every function, then the function's own."""
    variables = {
        "AWS_LAMBDA_FUNCTION_NAME": context.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": context.function_version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(context.memory_limit_in_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": context.log_group_name,
        "AWS_LAMBDA_LOG_STREAM_NAME": context.log_stream_name,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.run_time}",
        "AWS_REGION": function.region,
        "AWS_DEFAULT_REGION": function.region,
        "LAMBDA_TASK_ROOT": task_root,
        "_HANDLER": str(function.handler),
    }
    variables.update({k: str(v) for k, v in (function.environment_vars or {}).items()})
    return variables


def frame_log(
    request_id: str,
    version: str,
    output: str,
    timeout_message: str | None,
    duration_ms: float,
    memory_mb: int,
) -> str:
    """The invocation's output between the runtime's START, END and REPORT lines."""
    lines = [f"START RequestId: {request_id} Version: {version}\n", output]
    if timeout_message:
        lines.append(f"{datetime.now(UTC).isoformat()} {timeout_message}\n")
    lines.append(f"END RequestId: {request_id}\n")
    lines.append(
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
        f"Billed Duration: {math.ceil(duration_ms)} ms\tMemory Size: {memory_mb} MB\n"
    )
    return "".join(lines)


def save_logs(function: Any, stream: str, log_text: str) -> None:
    """Write the log to the function's group ``/aws/lambda/<name>`` in moto's Logs backend."""
    logs = function.logs_backend
    logs.ensure_log_group(function.logs_group_name)
    logs.create_log_stream(function.logs_group_name, stream)
    millis = int(time.time() * 1000)
    events = [{"timestamp": millis, "message": line} for line in log_text.splitlines() if line]
    logs.put_log_events(function.logs_group_name, stream, events)


def call_handler(
    handler: str, package: DeploymentPackage, event: Any, context: LambdaContext
) -> tuple[str, bytes]:
    """Import and call the handler in the worker thread, mapping failures as the runtime does."""
    try:
        function = load_handler(package, handler)
    except StaleDeploymentPackageError as exc:
        LOGGER.error("%s: %s", context.function_name, exc)
        return _function_error(exc, context, "LocalEngine.StaleDeploymentPackage", str(exc))
    except HandlerNotFoundError as exc:
        return _function_error(exc, context, "Runtime.HandlerNotFound", str(exc))
    except Exception as exc:
        module = handler.rpartition(".")[0]
        return _function_error(
            exc, context, "Runtime.ImportModuleError", f"Unable to import module '{module}': {exc}"
        )
    try:
        result = function(event, context)
    except Exception as exc:
        return _function_error(exc, context, type(exc).__name__, str(exc))
    try:
        return "Succeeded", json.dumps(result).encode()
    except (TypeError, ValueError) as exc:
        return _function_error(
            exc, context, "Runtime.MarshalError", f"Unable to marshal response: {exc}"
        )


def _function_error(
    exc: BaseException, context: LambdaContext, error_type: str, message: str
) -> tuple[str, bytes]:
    """A function error as the Python runtime reports it; the runtime's own frames are cut."""
    handler_frames = exc.__traceback__.tb_next if exc.__traceback__ else None
    frames = traceback.format_list(traceback.extract_tb(handler_frames))
    # Runs in the captured worker thread, so this lands in the invocation's log.
    sys.stderr.write(f"[ERROR] {error_type}: {message}\n{''.join(frames)}")
    payload = {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": context.aws_request_id,
        "stackTrace": frames,
    }
    return "Failed", json.dumps(payload).encode()
