"""The open-source LocalStack core, in-process, without Docker: the `core` tier the tests use.

localstack-core 2026.3.0 needs Python 3.13 (it imports ``warnings.deprecated``) while the
project runs on 3.11, so it gets its own virtualenv under ``.tools/localstack-core``, made
from a Python 3.13 found on this machine (``LOCALSTACK_CORE_PYTHON``, ``python3.13`` on the
PATH, or a pyenv install). It serves only the services the core tier deploys; Lambda and
DynamoDB are absent (their runtimes are downloaded at run time, which this setup avoids).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from features.local_redis import free_port
from mlops.localstack.deploy import LocalStackError, health, without_aws

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV = REPO_ROOT / ".tools" / "localstack-core"
# Pinned together: newer cbor2/pyopenssl/twisted releases break this localstack-core.
REQUIREMENTS = (
    "localstack-core[runtime]==2026.3.0",
    "cbor2<6",
    "pyopenssl==25.3.0",
    "localstack-twisted==25.5.0",
)
SERVICES = (
    "cloudformation,cloudwatch,ec2,events,iam,kms,logs,s3,scheduler,secretsmanager,sns,sqs,"
    "ssm,stepfunctions,sts"
)
START_TIMEOUT_S = 120


def find_python() -> str | None:
    """A Python 3.13 interpreter, or None."""
    candidates = [
        os.environ.get("LOCALSTACK_CORE_PYTHON"),
        shutil.which("python3.13"),
        *sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.13*/bin/python3.13")),
    ]
    return next((c for c in candidates if c and _is_python_313(c)), None)


def _is_python_313(candidate: str) -> bool:
    """True if `candidate` runs and is 3.13 (a pyenv shim on the PATH may be neither)."""
    try:
        done = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 13))"],
            capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
    except OSError:
        return False
    return done.stdout.strip() == "True"


def ensure_venv(python: str) -> Path:
    """The core's virtualenv with the pinned packages (installed once; ~1 min from PyPI)."""
    marker = VENV / ".installed"
    wanted = "\n".join(REQUIREMENTS)
    if marker.is_file() and marker.read_text() == wanted:
        return VENV / "bin" / "python"
    sys.stdout.write(f"==> installing LocalStack core into {VENV} (Python 3.13: {python})\n")
    subprocess.run([python, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run(
        [str(VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
         *REQUIREMENTS],
        check=True,
    )  # fmt: skip
    marker.write_text(wanted)
    return VENV / "bin" / "python"


def serve(port: int, workdir: Path, mock_file: Path) -> None:
    """Run the core in the foreground until interrupted (`python -m mlops.localstack core`)."""
    python = find_python()
    if python is None:
        raise LocalStackError(
            "the in-process core needs a Python 3.13 (localstack-core 2026.3.0 imports "
            "warnings.deprecated); install one or set LOCALSTACK_CORE_PYTHON"
        )
    core = start(ensure_venv(python), workdir, mock_file, port)
    sys.stdout.write(
        f"==> LocalStack core (tier core) at {core.endpoint}; log: {core.log_file}\n"
        f"    deploy: make localstack-deploy LOCALSTACK_TIER=core "
        f"LOCALSTACK_ENDPOINT={core.endpoint}\n"
    )
    try:
        core.process.wait()
    except KeyboardInterrupt:
        core.stop()


@dataclass
class CoreProcess:
    endpoint: str
    process: subprocess.Popen[bytes]
    log_file: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start(python: Path, workdir: Path, mock_file: Path, port: int | None = None) -> CoreProcess:
    """Start the core (on a free port by default); returns once its health endpoint answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_file = workdir / "localstack.log"
    environ = without_aws(dict(os.environ)) | {
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "SERVICES": SERVICES,
        "SFN_MOCK_CONFIG": str(mock_file),
        "LOCALSTACK_VOLUME_DIR": str(workdir / "volume"),
        "DISABLE_EVENTS": "1",  # no usage analytics: there is no internet here
        "SKIP_SSL_CERT_DOWNLOAD": "1",
    }
    with log_file.open("wb") as sink:
        process = subprocess.Popen(
            [str(python), "-m", "localstack.runtime.main"],
            cwd=workdir,  # never the repository root: its localstack/ directory is not the package
            env=environ, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    core = CoreProcess(endpoint=f"http://127.0.0.1:{port}", process=process, log_file=log_file)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalStackError(
                f"LocalStack core exited ({process.returncode}); see {log_file}:\n"
                + log_file.read_text(errors="replace")[-2000:]
            )
        try:
            health(core.endpoint, timeout=1)
            return core
        except LocalStackError:
            time.sleep(0.5)
    core.stop()
    raise LocalStackError(
        f"LocalStack core did not answer within {START_TIMEOUT_S} s; see {log_file}"
    )
