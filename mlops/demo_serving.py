"""The demo's last steps: approve the registered version, then ask the model proxy for scores.

Approval is what the registry console (or `mlops models approve`) does: UpdateModelPackage. The
engine's SageMaker emits the state-change event, the registry stack's rule delivers it to the
approval hook, and the hook checks the artifact, publishes a serving version pinned to it, shifts
the `live` alias to it through CodeDeploy (a canary, minutes compressed by the engine), records
the ledger entry and moves the champion pointer. Serving then runs the configuration of the
version the `live` alias points at -- the serving spec and settings read back from the Lambda
function in the engine -- through the same Mangum handler type Lambda invokes, with a Function
URL event. One difference is explicit: the engine stands in for ElastiCache with a plain
local redis-server, so the function's TLS/AUTH Redis settings are replaced by that server's URL.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from rich.console import Console
from rich.table import Table

from localaws.engine import LocalEngine

SETTINGS_PREFIX = "MLOPS_SERVING_"
LOCAL_REDIS_TIMEOUT_MS = 500


def approve(engine: LocalEngine, package_arn: str, console: Console) -> dict[str, Any]:
    """Approve; wait for the hook's ledger entry to reach its outcome (DemoError otherwise)."""
    from mlops.demo import DemoError
    from mlops.deployments import Ledger, Outcome

    assert engine.deployment is not None
    outputs = engine.deployment[f"{engine.project}-local-registry"].outputs
    ledger = Ledger(str(outputs["LedgerTableName"]))
    sagemaker = boto3.client("sagemaker")
    package = dict(sagemaker.describe_model_package(ModelPackageName=package_arn))
    model = str(package["ModelPackageGroupName"])
    seen = ledger.keys_of(model, package_arn)
    sagemaker.update_model_package(
        ModelPackageArn=package_arn,
        ModelApprovalStatus="Approved",
        ApprovalDescription="local demo: metrics reviewed, approved for serving",
    )
    console.print(f"  {package_arn} → Approved")
    entry = ledger.wait_for(
        model, package_arn, "Approved", seen=seen, timeout=120,
        on_progress=lambda e: console.print(f"  hook: {e.action} {e.outcome}"
                                            + (f" (CodeDeploy {e.deployment_id})"
                                               if e.deployment_id else "")),
    )  # fmt: skip
    if entry is None or entry.outcome is not Outcome.DEPLOYED:
        state = f"{entry.outcome}: {entry.reason}" if entry else "no ledger entry"
        raise DemoError(f"the approval hook did not deploy {package_arn}: {state}")
    shifted = f", CodeDeploy {entry.deployment_id}" if entry.deployment_id else ""
    console.print(
        f"  ledger: {entry.action} v{entry.version} → {entry.outcome} on "
        f"{', '.join(entry.targets)} (serving version {entry.lambda_version}{shifted}); "
        f"{entry.reason}"
    )
    return {**dict(sagemaker.describe_model_package(ModelPackageName=package_arn)),
            "ledger": entry}  # fmt: skip


def function_url_event(method: str, path: str, body: Any = None) -> dict[str, Any]:
    """A Lambda Function URL (payload format 2.0) request, as Lambda hands it to the handler."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "localhost"},
        "requestContext": {
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
            },
            "requestId": "demo",
            "stage": "$default",
        },
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


def deployed_settings(engine: LocalEngine, cache_dir: Path) -> Any:
    """The MLOPS_SERVING_* settings of the version the `live` alias points at (pinned to the
    approved model by the hook), Redis pointed at the engine's."""
    from serving.settings import ServingSettings

    assert engine.deployment is not None
    outputs = engine.deployment[f"{engine.project}-local-serving"].outputs
    function = boto3.client("lambda").get_function_configuration(
        FunctionName=str(outputs["ServingFunctionName"]), Qualifier=str(outputs["ServingAlias"])
    )
    variables = function["Environment"]["Variables"]
    values: dict[str, Any] = {
        key.removeprefix(SETTINGS_PREFIX).lower(): value
        for key, value in variables.items()
        if key.startswith(SETTINGS_PREFIX)
    }
    for stand_in in ("redis_host", "redis_port", "redis_tls", "redis_secret_arn"):
        values.pop(stand_in, None)
    if "pinned_models" in values:  # JSON in the environment, as pydantic-settings reads it
        values["pinned_models"] = json.loads(values["pinned_models"])
    values.update(redis_url=engine.redis_url, model_cache_dir=str(cache_dir), refresh_seconds=0)
    # The deployed 20 ms read budget is for ElastiCache in the VPC. Here the proxy's event loop
    # shares one process (and its GIL) with the emulator, whose threads deliver the prediction
    # log meanwhile: the budget would measure the emulator, not Redis.
    values["redis_timeout_ms"] = LOCAL_REDIS_TIMEOUT_MS
    return ServingSettings(**values)


@contextmanager
def proxy(engine: LocalEngine, scratch: Path) -> Iterator[Callable[[str, Any], dict[str, Any]]]:
    """The proxy on the deployed settings behind Mangum; yields `call(path, body)` (a POST as
    a Function URL event, RuntimeError on a non-200) and flushes the prediction log at exit."""
    from mangum import Mangum

    from serving.app import create_app
    from serving.runtime import build_runtime

    runtime = build_runtime(deployed_settings(engine, scratch / "models"))
    runtime.start()
    handler = Mangum(create_app(runtime, manage_runtime=False), lifespan="off")
    try:
        yield lambda path, body: _call(handler, path, body)
        if runtime.prediction_log is not None:
            runtime.prediction_log.flush()
    finally:
        import asyncio

        asyncio.get_event_loop().run_until_complete(runtime.stop())


def serve(
    engine: LocalEngine, customers: list[int], scratch: Path, console: Console
) -> dict[str, Any]:
    """Score `customers` (one alone, then all as a batch with an unknown id) on the deployed
    proxy, and show the prediction log landing in S3."""
    path = "/v1/models/credit-risk/predict"
    with proxy(engine, scratch) as call:
        single = call(path, {"entity_id": customers[0], "id": "demo-1"})
        batch = call(path, {"requests": [
            {"entity_id": c, "id": f"demo-{i}"} for i, c in enumerate([*customers, 42], start=2)
        ]})  # fmt: skip
    _show(single, batch, console)
    logged = prediction_log_objects(engine)
    console.print(
        f"  prediction log: {len(logged)} object(s) in s3://{logged[0] if logged else '-'}"
    )
    return {"single": single, "batch": batch, "logged": logged}


RETRIES_503 = 3  # the proxy answers 503 + Retry-After when Redis is slow; clients retry


def _call(handler: Any, path: str, body: Any) -> dict[str, Any]:
    """POST as a client that honours 503's Retry-After (shortened: the demo's local Redis only
    ever stalls briefly, e.g. past the deployed 20 ms read timeout on a loaded machine)."""
    for attempt in range(RETRIES_503 + 1):
        reply = handler(function_url_event("POST", path, body), _Context())
        if reply["statusCode"] != 503 or attempt == RETRIES_503:
            break
        time.sleep(0.2 * (attempt + 1))
    if reply["statusCode"] != 200:
        raise RuntimeError(f"POST {path} → {reply['statusCode']}: {reply['body']}")
    return dict(json.loads(reply["body"]))


def _show(single: dict[str, Any], batch: dict[str, Any], console: Console) -> None:
    console.print(
        f"  POST /v1/models/credit-risk/predict → version {single['version']}: customer "
        f"{single['entity_id']} P(default in 90 days) = {single['score']:.4f}"
    )
    table = Table("id", "customer", "score", "missing / error", title="batch request")
    for item in batch["responses"]:
        error = item.get("error")
        table.add_row(
            str(item.get("id")),
            str(item.get("entity_id")),
            "-" if error else f"{item['score']:.4f}",
            error["code"] if error else ", ".join(item["missing_features"]) or "-",
        )
    console.print(table)


def prediction_log_objects(engine: LocalEngine) -> list[str]:
    assert engine.deployment is not None
    bucket = str(
        engine.deployment[f"{engine.project}-local-serving"].outputs["PredictionLogBucket"]
    )
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket)
    return [f"{bucket}/{item['Key']}" for item in listed.get("Contents", [])]


class _Context:
    """The attributes of a Lambda context object Mangum reads."""

    function_name = "serving"
    aws_request_id = "demo"
    invoked_function_arn = "arn:aws:lambda:ap-northeast-2:123456789012:function:serving"
