"""Server processes for the HTTP comparisons: start, wait until they answer, stop by pid.

Every server runs one worker process, access log off, bound to 127.0.0.1 on a free port; each
is started, measured and stopped before the next one starts, so none competes with another.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from features.local_redis import free_port

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
QUIET = ("--no-access-log", "--log-level", "warning")


@dataclass(frozen=True)
class Running:
    port: int
    pid: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _ready(url: str, body: bytes | None) -> bool:
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def serve(
    command: Sequence[str], port: int, *, probe: str, probe_body: bytes | None = None,
    env: Mapping[str, str] | None = None, cwd: Path | None = None, log: Path,
    timeout: float = 120.0,
) -> Iterator[Running]:  # fmt: skip
    """Run `command` until `probe` (a path, GET or POST `probe_body`) answers 200, then yield."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(command), env=full_env, cwd=cwd or REPO, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + timeout
            while not _ready(f"http://127.0.0.1:{port}{probe}", probe_body):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{command[0]} did not come up; see {log}")
                time.sleep(0.2)
            yield Running(port, process.pid)
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server and any workers it forked (its own process group, by its pid)."""
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def uvicorn_command(target: str, port: int, *extra: str, factory: bool = False) -> list[str]:
    """One uvicorn worker; `extra` defaults to `QUIET` (access log off, warnings only)."""
    head = [PYTHON, "-m", "uvicorn", *(["--factory"] if factory else []), target]
    flags = extra or QUIET
    return [*head, "--host", "127.0.0.1", "--port", str(port), "--workers", "1", *flags]


def proxy_command(port: int, *extra: str) -> list[str]:
    """The proxy as the EKS image runs it: the uvicorn factory, uvicorn defaults otherwise
    (which pick uvloop + httptools when installed, as they are here)."""
    return uvicorn_command("serving.app:app_from_env", port, *extra, factory=True)


def variant_command(port: int) -> list[str]:
    """The proxy with one setting changed by `benchmarks.serving.variant` (BENCH_* env)."""
    return uvicorn_command("benchmarks.serving.variant:app", port, factory=True)


def feast_command(feast: str, repo_dir: Path, port: int) -> list[str]:
    """`feast serve`, one worker, access log off, and no worker recycling: its default
    `--max-requests 1000` restarts the worker (reloading Feast) every ~1000 requests."""
    return [feast, "-c", str(repo_dir), "serve", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--no-access-log", "--max-requests", "0",
            "--max-requests-jitter", "0"]  # fmt: skip


def port() -> int:
    return free_port()
