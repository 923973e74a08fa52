"""The Lambda entry point in a fresh interpreter: runtime built at import from MLOPS_SERVING_*,
then Function URL (API Gateway HTTP API v2) events through `handler(event, context)`."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest

from serving.local import LocalServing
from tests.conftest import REPO_ROOT
from tests.integration.serving.support import PREDICT

pytestmark = pytest.mark.integration
logger = logging.getLogger(__name__)

SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    started = time.perf_counter()
    import serving.lambda_handler as entry
    imported = time.perf_counter() - started

    def event(method, path, body=None):
        return {
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
            "headers": {"content-type": "application/json", "host": "x.lambda-url.on.aws",
                        "x-request-id": "lambda-test"},
            "requestContext": {
                "accountId": "123456789012", "apiId": "x", "domainName": "x.lambda-url.on.aws",
                "domainPrefix": "x", "requestId": "r1", "routeKey": "$default",
                "stage": "$default", "time": "21/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "test"},
            },
            "body": body, "isBase64Encoded": False,
        }

    class Context:
        function_name = "model-proxy"
        aws_request_id = "r1"

    path, body = sys.argv[1], sys.argv[2]
    answers = [entry.handler(event("POST", path, body), Context()),
               entry.handler(event("GET", "/ready"), Context()),
               entry.handler(event("POST", path, body), Context())]
    print(json.dumps({"init_seconds": entry.INIT_SECONDS, "import_seconds": imported,
                      "answers": answers}))
    """
)


def test_lambda_handler_serves_function_url_events(local_serving: LocalServing) -> None:
    settings = local_serving.settings(redis_timeout_ms=250)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLOPS_SERVING_")},
        **{
            f"MLOPS_SERVING_{name.upper()}": str(value)
            for name, value in settings.model_dump(exclude_none=True).items()
            if name in {"spec_file", "redis_url", "model_source", "model_dir", "redis_timeout_ms"}
        },
        "MLOPS_SERVING_REFRESH_SECONDS": "30",
        "PYTHONPATH": str(REPO_ROOT),
    }
    entity = local_serving.entity_ids[0]
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, PREDICT, json.dumps({"entity_id": entity})],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    first, ready, second = out["answers"]
    assert first["statusCode"] == 200, first
    body = json.loads(first["body"])
    assert (body["entity_id"], body["request_id"]) == (entity, "lambda-test")
    assert 0 < body["score"] < 1
    assert first["headers"]["x-model-version"] == body["version"]
    assert json.loads(second["body"])["score"] == body["score"]
    assert ready["statusCode"] == 200
    assert json.loads(ready["body"])["ready"] is True
    logger.info("Lambda INIT_SECONDS=%.3f (import of serving.lambda_handler: %.3f s)",
                out["init_seconds"], out["import_seconds"])  # fmt: skip
