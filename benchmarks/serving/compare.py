"""Benchmark: the model proxy against a framework ceiling, BentoML and `feast serve`, plus its
in-process overhead and the Lambda handler -- one command, one run, one model, one Redis.

    .venv/bin/python -m benchmarks.serving.compare --duration 10

Setup: `serving.local.prepare` on a fresh redis-server (sample features materialized, the sample
XGBoost model trained and exported to ONNX). HTTP load: wrk, 1 thread, `--connections`
keep-alive connections, a warm-up run discarded, bodies cycling over 200 customers. Every HTTP
server runs one worker with its access log off; wrk, the servers and Redis share the machine's
cores. Prints markdown tables (HTTP comparisons, tuning, in-process, Lambda).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import orjson

from benchmarks.features._setup import machine
from benchmarks.serving import _bento, inprocess, lambda_bench
from benchmarks.serving import _servers as srv
from benchmarks.serving._load import LoadResult, run_wrk
from features.local_redis import LocalRedis
from features.repo import SERVICE_NAME
from features.store import feature_store_config, write_feature_store_yaml
from pipelines import sample_data as sd
from serving.local import MODEL, LocalServing, prepare

_PREDICT = f"/v1/models/{MODEL}/predict"
_PROBE = b'{"entity_id": %d}'


@dataclass(frozen=True)
class Row:
    name: str
    settings: str
    result: LoadResult  # the median-throughput run
    spread: str  # throughput range over the rounds


@dataclass
class Bench:
    local: LocalServing
    args: argparse.Namespace
    scratch: Path
    ids: list[int]

    @property
    def proxy_env(self) -> dict[str, str]:
        settings = self.local.settings().model_dump(
            include={"spec_file", "redis_url", "model_source", "model_dir", "refresh_seconds"}
        )
        return {f"MLOPS_SERVING_{k.upper()}": str(v) for k, v in settings.items()}

    def bodies(self, make: Callable[[int], dict[str, object]]) -> list[str]:
        return [orjson.dumps(make(i)).decode() for i in self.ids]

    def load(self, url: str, bodies: list[str]) -> LoadResult:
        a = self.args
        return run_wrk(url, bodies, self.scratch, duration=a.duration, warmup=a.warmup,
                       connections=a.connections)  # fmt: skip

    @contextmanager
    def proxy(self, command: list[str], env: dict[str, str] | None = None) -> Iterator[srv.Running]:
        port = int(command[command.index("--port") + 1])
        probe = _PROBE % self.ids[0]
        with srv.serve(command, port, probe=_PREDICT, probe_body=probe,
                       env={**self.proxy_env, **(env or {})},
                       log=self.scratch / f"server-{port}.log") as running:  # fmt: skip
            yield running

    def predict_load(self, running: srv.Running) -> LoadResult:
        return self.load(running.url(_PREDICT), self.bodies(lambda i: {"entity_id": i}))


Scenario = tuple[str, str, Callable[[], LoadResult]]


def _http_scenarios(bench: Bench) -> list[Scenario]:
    def proxy() -> LoadResult:
        with bench.proxy(srv.proxy_command(srv.port())) as running:
            return bench.predict_load(running)

    def bare() -> LoadResult:
        port = srv.port()
        command = srv.uvicorn_command("benchmarks.serving.bare_app:app", port)
        with srv.serve(command, port, probe="/health", log=bench.scratch / "bare.log") as running:
            return bench.predict_load(running)

    feast_settings = "gunicorn+uvicorn worker, -w 1, --max-requests 0, no access log"
    hops = "gateway (uvicorn 1 worker, httpx) -> feast serve (as above) -> proxy /infer"
    return [
        ("proxy (predict, 1 entity)", "uvicorn 1 worker, uvloop+httptools, no access log", proxy),
        ("bare FastAPI (constant)", "same uvicorn settings", bare),
        ("BentoML 1.4.39 (same Redis read + ONNX)", "bentoml serve, workers=1, access log off",
         lambda: _bentoml(bench)),
        ("feast serve, features only (no score)", feast_settings,
         lambda: _feast(bench, two_hop=False)),
        ("two-hop: feast serve + proxy /infer", hops, lambda: _feast(bench, two_hop=True)),
    ]  # fmt: skip


def _bentoml(bench: Bench) -> LoadResult:
    binary, _ = _bento.ensure_venv()
    service = _bento.write_service(bench.scratch / "bento")
    port = srv.port()
    env = {"BENTOML_HOME": str(bench.scratch / "bentoml-home"), "BENTOML_DO_NOT_TRACK": "True",
           "BENCH_SPEC_FILE": str(bench.local.spec_file), "BENCH_REDIS_URL": bench.local.redis_url,
           "BENCH_MODEL_DIR": str(bench.local.model_root / MODEL)}  # fmt: skip
    command = [str(binary), "serve", "service:CreditRisk", "--host", "127.0.0.1",
               "--port", str(port)]  # fmt: skip
    with srv.serve(command, port, probe="/predict", probe_body=_PROBE % bench.ids[0], env=env,
                   cwd=service, log=bench.scratch / "bento.log") as running:  # fmt: skip
        return bench.load(running.url("/predict"), bench.bodies(lambda i: {"entity_id": i}))


def _feast(bench: Bench, *, two_hop: bool) -> LoadResult:
    repo_dir = bench.scratch / "feast-repo"
    config = feature_store_config("local", project=bench.local.project,
                                  registry_path=str(bench.local.workdir / "registry.db"),
                                  redis_url=bench.local.redis_url)  # fmt: skip
    write_feature_store_yaml(config, repo_dir)
    feast = shutil.which("feast", path=str(Path(sys.executable).parent)) or "feast"
    fport = srv.port()
    query = bench.bodies(lambda i: {"feature_service": SERVICE_NAME, "entities": {sd.ENTITY: [i]}})
    with ExitStack() as stack:
        feast_server = stack.enter_context(
            srv.serve(
                srv.feast_command(feast, repo_dir, fport),
                fport,
                probe="/get-online-features",
                probe_body=query[0].encode(),
                log=bench.scratch / "feast.log",
            )  # fmt: skip
        )
        if not two_hop:
            return bench.load(feast_server.url("/get-online-features"), query)
        infer = stack.enter_context(bench.proxy(srv.proxy_command(srv.port())))
        gport = srv.port()
        env = {"BENCH_FEAST_URL": feast_server.url("/get-online-features"),
               "BENCH_INFER_URL": infer.url(f"/v1/models/{MODEL}/infer"),
               "BENCH_FEATURE_SERVICE": SERVICE_NAME, "BENCH_ENTITY": sd.ENTITY,
               "BENCH_SIGNATURE": str(bench.local.model_root / MODEL / "signature.json"),
        }  # fmt: skip
        gateway = srv.uvicorn_command("benchmarks.serving.twohop_app:app", gport)
        gateway.insert(gateway.index("benchmarks.serving.twohop_app:app"), "--factory")
        running = stack.enter_context(
            srv.serve(
                gateway,
                gport,
                probe="/predict",
                probe_body=_PROBE % bench.ids[0],
                env=env,
                log=bench.scratch / "twohop.log",
            )  # fmt: skip
        )
        return bench.load(running.url("/predict"), bench.bodies(lambda i: {"entity_id": i}))


def _tuning_scenarios(bench: Bench) -> list[Scenario]:
    """One change at a time against the proxy row."""
    uv = srv.proxy_command
    cases: list[tuple[str, Callable[[], list[str]], dict[str, str]]] = [
        ("uvicorn --loop asyncio --http h11",
         lambda: uv(srv.port(), "--loop", "asyncio", "--http", "h11", *srv.QUIET), {}),
        ("uvicorn access log on (uvicorn's default, --log-level info)",
         lambda: uv(srv.port(), "--log-level", "info"), {}),
        ("ORT intra-op threads 2 (app: 1)", lambda: srv.variant_command(srv.port()),
         {"BENCH_ORT_THREADS": "2"}),
        ("stdlib json.dumps responses (app: orjson)", lambda: srv.variant_command(srv.port()),
         {"BENCH_JSON": "stdlib"}),
        ("sync redis-py PlanReader in the loop (app: redis.asyncio)",
         lambda: srv.variant_command(srv.port()), {"BENCH_REDIS": "sync"}),
        ("MLOPS_SERVING_REDIS_TIMEOUT_MS=100 (default 20)", lambda: uv(srv.port()),
         {"MLOPS_SERVING_REDIS_TIMEOUT_MS": "100"}),
        ("uvicorn --workers 2", lambda: uv(srv.port(), "--workers", "2", *srv.QUIET), {}),
    ]  # fmt: skip

    def runner(command: Callable[[], list[str]], env: dict[str, str]) -> Callable[[], LoadResult]:
        def run() -> LoadResult:
            with bench.proxy(command(), env) as running:
                return bench.predict_load(running)

        return run

    return [(name, "", runner(command, env)) for name, command, env in cases]


def _rounds(scenarios: list[Scenario], rounds: int) -> list[Row]:
    """Every scenario once per round, rounds interleaved so a noisy minute hits all of them;
    each row keeps its median-throughput run and the throughput range."""
    runs: dict[str, list[LoadResult]] = {name: [] for name, _, _ in scenarios}
    for _ in range(rounds):
        for name, _, run in scenarios:
            runs[name].append(run())
            sys.stderr.write(f"{name}: {runs[name][-1]}\n")
    rows = []
    for name, settings, _ in scenarios:
        ordered = sorted(runs[name], key=lambda r: r.rps)
        spread = f"{ordered[0].rps:,.0f}-{ordered[-1].rps:,.0f}"
        rows.append(Row(name, settings, ordered[len(ordered) // 2], spread))
    return rows


def _http_table(rows: list[Row], base: LoadResult) -> list[str]:
    lines = ["| server | settings | req/s (median) | range | proxy / this | p50 ms | p99 ms "
             "| errors |", "|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for row in rows:
        r = row.result
        lines.append(f"| {row.name} | {row.settings} | {r.rps:,.0f} | {row.spread} "
                     f"| {base.rps / r.rps:.2f}x | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
                     f"| {r.errors} |")  # fmt: skip
    return lines


def _tuning_table(rows: list[Row], base: LoadResult) -> list[str]:
    lines = ["| change (one at a time) | req/s (median) | range | vs proxy row | p50 ms "
             "| p99 ms | errors |", "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for row in rows:
        r = row.result
        lines.append(f"| {row.name} | {r.rps:,.0f} | {row.spread} "
                     f"| {(r.rps / base.rps - 1) * 100:+.0f} % | {r.p50_ms:.2f} "
                     f"| {r.p99_ms:.2f} | {r.errors} |")  # fmt: skip
    return lines


def _inprocess_table(timings: dict[str, inprocess.Timing]) -> list[str]:
    lines = ["| path | p50 ms | p99 ms |", "|---|---:|---:|"]
    lines += [f"| {k} | {t.p50_ms:.3f} | {t.p99_ms:.3f} |" for k, t in timings.items()]
    ratio = timings["proxy 1"].p99_ms / timings["floor 1"].p99_ms
    lines.append(f"\nproxy/floor p99, 1 entity: {ratio:.2f}x (goal <= 2x); proxy batch of 100 "
                 f"p50: {timings['proxy 100'].p50_ms:.2f} ms (goal <= 3 ms)")  # fmt: skip
    return lines


def _lambda_table(result: lambda_bench.LambdaResult) -> list[str]:
    def cell(values: list[float]) -> str:
        return (
            f"{sorted(values)[len(values) // 2]:.0f} (min {min(values):.0f}, max {max(values):.0f})"
        )

    return ["| measure | ms |", "|---|---|",
            f"| `import serving.lambda_handler` (imports + init) | {cell(result.import_ms)} |",
            f"| of which INIT_SECONDS (runtime start, app, Mangum) | {cell(result.init_ms)} |",
            f"| spawn to ready (interpreter start included) | {cell(result.process_ms)} |",
            f"| warm handler() p50 / p99 | {result.warm_p50_ms:.2f} / {result.warm_p99_ms:.2f} "
            f"({result.warm_errors} errors) |"]  # fmt: skip


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _emit(lines: list[str]) -> None:
    """Each section as soon as it is measured, so a failure later keeps what was measured."""
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="discarded wrk run, seconds")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--iterations", type=int, default=2_000, help="in-process samples")
    parser.add_argument("--cold-starts", type=int, default=5)
    parser.add_argument("--lambda-calls", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per row")
    parser.add_argument("--skip-tuning", action="store_true")
    args = parser.parse_args()
    started = time.monotonic()
    load0 = _load()
    with TemporaryDirectory(prefix="serving-bench-") as tmp, LocalRedis(Path(tmp) / "redis") as rs:
        local = prepare(Path(tmp) / "work", rs.url, customers=args.customers)
        ids = random.Random(5).sample(list(local.entity_ids), 200)
        bench = Bench(local, args, Path(tmp), ids)
        _, created = _bento.ensure_venv()
        if created:
            _emit([f"(created {_bento.VENV} for BentoML this run)", ""])
        tuning = [] if args.skip_tuning else _tuning_scenarios(bench)
        rows = _rounds(_http_scenarios(bench) + tuning, args.rounds)
        base = rows[0].result
        _emit(["## HTTP, single-entity predict", "", *_http_table(rows[:5], base), ""])
        if tuning:
            tuning_rows = [rows[0], *rows[5:]]
            _emit(["## Tuning (proxy, one change each)", "",
                   *_tuning_table(tuning_rows, base), ""])  # fmt: skip
        timings = inprocess.measure(local, args.iterations)
        _emit(["## In-process (no HTTP)", "", *_inprocess_table(timings), ""])
        cold = lambda_bench.measure(local, cold_starts=args.cold_starts, calls=args.lambda_calls)
        _emit(["## Lambda handler", "", *_lambda_table(cold), ""])
    _emit([f"wrk -t1 -c{args.connections}, {args.rounds} rounds x {args.duration:.0f} s per row "
           f"(median shown) after "
               f"{args.warmup:.0f} s warm-up; machine: {machine()}, "
               f"{os.cpu_count()} cores shared by wrk, servers and Redis; "
               f"total {time.monotonic() - started:.0f} s; load average at start {load0}, "
               f"at end {_load()}"])  # fmt: skip


if __name__ == "__main__":
    main()
