"""Bounded load test: the proxy at a fixed fraction of its measured capacity, for a fixed time.

    python -m benchmarks.serving.soak --duration 60 --fraction 0.8

Setup as `benchmarks.serving.compare` (a private redis-server, `serving.local.prepare`, the
proxy under uvicorn with one worker as the EKS image runs it). First the capacity is measured
with wrk (16 connections); then `hey` (apt-get install -y hey) offers `fraction` of it at a
constant rate for `duration` seconds: eight processes, each posting another customer, at an
eighth of the rate each. The run passes when every response is a 200 and no request failed;
the exit status says so (0 pass, 1 fail), so it can gate a release.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path
from tempfile import TemporaryDirectory

import orjson

from benchmarks.serving import _servers as srv
from benchmarks.serving._load import run_wrk
from features.local_redis import LocalRedis
from serving.local import MODEL, prepare

_PREDICT = f"/v1/models/{MODEL}/predict"
_PROCESSES = 8
_STATUS = re.compile(r"\[(\d{3})\]\s+(\d+) responses")
_PERCENTILE = re.compile(r"(\d+)% in ([\d.]+) secs")
_ERRORS = re.compile(r"Error distribution:\n((?:\s+\[\d+\].*\n?)+)")


def _hey(url: str, entity: int, rate: float, duration: int) -> subprocess.Popen[str]:
    binary = shutil.which("hey")
    if binary is None:
        raise SystemExit("hey is not on PATH (apt-get install -y hey)")
    body = orjson.dumps({"entity_id": entity}).decode()
    per_worker = max(1, round(rate / 2))  # hey's -q is per worker; two workers per process
    command = [binary, "-z", f"{duration}s", "-c", "2", "-q", str(per_worker), "-m", "POST",
               "-T", "application/json", "-d", body, url]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _parse(output: str) -> tuple[dict[int, int], dict[int, float], int]:
    statuses = {int(code): int(count) for code, count in _STATUS.findall(output)}
    latency = {int(q): float(s) * 1000 for q, s in _PERCENTILE.findall(output)}
    errors = _ERRORS.search(output)
    failed = sum(int(n) for n in re.findall(r"\[(\d+)\]", errors.group(1))) if errors else 0
    return statuses, latency, failed


def run(duration: int, fraction: float, customers: int, redis_timeout_ms: int | None) -> int:
    with TemporaryDirectory() as scratch_dir, LocalRedis(Path(scratch_dir) / "redis") as redis:
        scratch = Path(scratch_dir)
        local = prepare(scratch / "serving", redis.url, customers=customers)
        settings = local.settings().model_dump(
            include={"spec_file", "redis_url", "model_source", "model_dir", "refresh_seconds"}
        )
        env = {f"MLOPS_SERVING_{k.upper()}": str(v) for k, v in settings.items()}
        if redis_timeout_ms is not None:
            env["MLOPS_SERVING_REDIS_TIMEOUT_MS"] = str(redis_timeout_ms)
        port = srv.port()
        probe = orjson.dumps({"entity_id": local.entity_ids[0]})
        with srv.serve(srv.proxy_command(port), port, probe=_PREDICT, probe_body=probe, env=env,
                       log=scratch / "proxy.log") as running:  # fmt: skip
            url = running.url(_PREDICT)
            bodies = [orjson.dumps({"entity_id": i}).decode() for i in local.entity_ids[:200]]
            capacity = run_wrk(url, bodies, scratch, duration=8, warmup=2, connections=16).rps
            target = capacity * fraction
            sys.stderr.write(f"capacity {capacity:,.0f} req/s; offering {target:,.0f} req/s "
                             f"for {duration} s\n")  # fmt: skip
            processes = [
                _hey(url, local.entity_ids[i], target / _PROCESSES, duration)
                for i in range(_PROCESSES)
            ]
            outputs = [process.communicate()[0] for process in processes]
    return _report(outputs, capacity, target, duration)


def _report(outputs: list[str], capacity: float, target: float, duration: int) -> int:
    statuses: dict[int, int] = {}
    failed = 0
    p50s, p99s = [], []
    for output in outputs:
        codes, latency, errors = _parse(output)
        for code, count in codes.items():
            statuses[code] = statuses.get(code, 0) + count
        failed += errors
        p50s.append(latency.get(50, float("nan")))
        p99s.append(latency.get(99, float("nan")))
    total = sum(statuses.values())
    bad = total - statuses.get(200, 0) + failed
    lines = [
        "| capacity (wrk, c16) | offered | achieved | duration | responses | non-200 + failed "
        "| p50 ms (median of processes) | p99 ms (worst process) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {capacity:,.0f} req/s | {target:,.0f} req/s | {total / duration:,.0f} req/s "
        f"| {duration} s | {total:,} | {bad} | {sorted(p50s)[len(p50s) // 2]:.2f} "
        f"| {max(p99s):.2f} |",
    ]
    seen = ", ".join(f"{code}: {count:,}" for code, count in sorted(statuses.items()))
    lines.append(f"\nstatus codes: {seen}; failed requests (no response): {failed}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0 if bad == 0 and total > 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--duration", type=int, default=60, help="seconds at the offered rate")
    parser.add_argument("--fraction", type=float, default=0.8, help="of the measured capacity")
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument(
        "--redis-timeout-ms", type=int, default=None, help="default: the app's (20 ms)"
    )
    args = parser.parse_args(argv)
    if not 0 < args.fraction <= 1 or args.duration < 1:
        parser.error("--fraction must be in (0, 1] and --duration at least 1")
    return run(args.duration, args.fraction, args.customers, args.redis_timeout_ms)


if __name__ == "__main__":
    raise SystemExit(main())
