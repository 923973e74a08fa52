"""The Lambda handler: cold init in fresh processes, then warm invocations.

Each cold start is a new interpreter (`python -m benchmarks.serving.lambda_bench --child N`)
with the MLOPS_SERVING_* environment set: it times `import serving.lambda_handler` (module
imports + building and starting the runtime: models loaded, Redis client, app, Mangum) and
reports the module's own `INIT_SECONDS` (the part after the imports). The parent times the whole
process from spawn to ready, interpreter start included. The child then calls `handler(event,
context)` N times with a Function URL / API Gateway HTTP API v2 event for POST predict.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.serving._servers import REPO
from serving.local import MODEL, LocalServing

_PATH = f"/v1/models/{MODEL}/predict"


@dataclass(frozen=True)
class LambdaResult:
    import_ms: list[float]  # `import serving.lambda_handler`, per cold start
    init_ms: list[float]  # serving.lambda_handler.INIT_SECONDS, per cold start
    process_ms: list[float]  # spawn to ready, per cold start
    warm_p50_ms: float
    warm_p99_ms: float
    warm_errors: int


def event(entity_id: int) -> dict[str, Any]:
    """A Function URL (payload format 2.0) POST of one predict body."""
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": _PATH, "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "fn.lambda-url.local"},
        "requestContext": {
            "accountId": "anonymous", "apiId": "fn", "domainName": "fn.lambda-url.local",
            "domainPrefix": "fn", "requestId": f"req-{entity_id}", "routeKey": "$default",
            "stage": "$default", "time": "21/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
            "http": {"method": "POST", "path": _PATH, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "bench"},
        },
        "body": json.dumps({"entity_id": entity_id}), "isBase64Encoded": False,
    }  # fmt: skip


class _Context:
    function_name = "serving"
    aws_request_id = "bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def child(calls: int, ids: list[int]) -> None:
    started = time.perf_counter()
    import serving.lambda_handler as lh

    imported = time.perf_counter() - started
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    timings, errors = [], 0
    context = _Context()
    for n in range(calls):
        begin = time.perf_counter()
        reply = lh.handler(event(ids[n % len(ids)]), context)  # type: ignore[arg-type]
        timings.append((time.perf_counter() - begin) * 1000)
        errors += reply["statusCode"] != 200
    warm = timings[min(100, calls // 10) :]
    cuts = statistics.quantiles(warm, n=100, method="inclusive") if len(warm) > 1 else [0.0] * 99
    report = {"import_ms": imported * 1000, "init_ms": lh.INIT_SECONDS * 1000,
              "p50": cuts[49], "p99": cuts[98], "errors": errors}  # fmt: skip
    sys.stdout.write(json.dumps(report) + "\n")


def measure(local: LocalServing, *, cold_starts: int, calls: int) -> LambdaResult:
    env = {**os.environ, "PYTHONPATH": str(REPO), "LOG_LEVEL": "WARNING"}
    env.update({f"MLOPS_SERVING_{k.upper()}": str(v) for k, v in _settings(local).items()})
    ids = ",".join(str(i) for i in local.entity_ids[:500])
    reports, process_ms = [], []
    for n in range(cold_starts):
        count = calls if n == cold_starts - 1 else 1
        command = [sys.executable, "-m", "benchmarks.serving.lambda_bench",
                   "--child", str(count), "--ids", ids]  # fmt: skip
        spawned = time.perf_counter()
        proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the Lambda child did not start")
        process_ms.append((time.perf_counter() - spawned) * 1000)
        out, _ = proc.communicate(timeout=600)
        reports.append(json.loads(out.strip().splitlines()[-1]))
    last = reports[-1]
    return LambdaResult([r["import_ms"] for r in reports], [r["init_ms"] for r in reports],
                        process_ms, last["p50"], last["p99"], last["errors"])  # fmt: skip


def _settings(local: LocalServing) -> dict[str, object]:
    return local.settings().model_dump(
        include={"spec_file", "redis_url", "model_source", "model_dir", "refresh_seconds"}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Lambda handler child process (internal)")
    parser.add_argument("--child", type=int, required=True)
    parser.add_argument("--ids", required=True)
    args = parser.parse_args()
    child(args.child, [int(i) for i in args.ids.split(",")])


if __name__ == "__main__":
    main()
