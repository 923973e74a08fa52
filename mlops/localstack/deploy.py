"""`python -m mlops.localstack deploy`: the `local` environment's stacks on a LocalStack endpoint.

Steps, each printed: check the endpoint answers; synthesize the real app (`env=local`, with
LocalStack's account) into ``cdk.out.localstack/source``; adapt a copy for the tier
(:mod:`mlops.localstack.adapt`) and print every resource left out or replaced; bootstrap and
deploy it with the pinned CDK CLI through ``cdklocal``; write the Step Functions mock
configuration for the deployed training workflow (:mod:`mlops.localstack.mocks`).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.localstack.adapt import Options, Report, adapt_assembly
from mlops.localstack.mocks import build_mock_config, write_mock_config
from mlops.localstack.tiers import SERVICES, Tier

REPO_ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "000000000000"  # LocalStack's account for the access key "test"
ENV_NAME = "local"
DEFAULT_ENDPOINT = "http://localhost:4566"
DEFAULT_MOCK_FILE = REPO_ROOT / "localstack" / "mocks" / "sfn.json"
TRAINING_STACK = "mlops-local-training"


class LocalStackError(RuntimeError):
    """The endpoint does not answer, or a deployment step failed; the message says which."""


@dataclass(frozen=True)
class Target:
    endpoint: str
    tier: Tier
    region: str

    def environ(self) -> dict[str, str]:
        """Variables that point the AWS SDKs, the CDK CLI and cdklocal at the endpoint (with
        :func:`without_aws`, so no profile or session token of the caller's mixes in)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "CDK_DISABLE_VERSION_CHECK": "1",
        }

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service, endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id="test", aws_secret_access_key="test",
        )  # fmt: skip


def without_aws(environ: dict[str, str]) -> dict[str, str]:
    """`environ` without AWS_* variables (credentials, profiles, endpoints of the caller)."""
    return {k: v for k, v in environ.items() if not k.startswith("AWS_")}


def health(endpoint: str, timeout: float = 2.0) -> dict[str, Any]:
    """LocalStack's health document, or LocalStackError naming the endpoint."""
    url = f"{endpoint.rstrip('/')}/_localstack/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            document: dict[str, Any] = json.loads(response.read())
            return document
    except (OSError, ValueError) as error:
        raise LocalStackError(
            f"no LocalStack answers at {endpoint} ({error}); start it with "
            "`docker compose -f localstack/docker-compose.yml up -d` (see docs/localstack.md) "
            "or set LOCALSTACK_ENDPOINT"
        ) from None


def local_region() -> str:
    from mlops.config import load_platform_config, read_cdk_context, select_environment

    context = read_cdk_context(REPO_ROOT / "cdk.json")
    return select_environment(load_platform_config(context["platform"]), ENV_NAME).region


def synthesize(outdir: Path, *, vendored: bool) -> Path:
    """The real app's `local` environment, with LocalStack's account, into `outdir`.

    `vendored`: each function's requirements are installed into its bundle, as for AWS (the
    engine's 'provided' mode relies on its own interpreter's packages, which LocalStack's
    Lambda containers do not have). Tiers that run no Lambda code skip that work."""
    from mlops.config import read_cdk_context
    from stacks.assembly import synthesize_environment

    platform = copy.deepcopy(read_cdk_context(REPO_ROOT / "cdk.json")["platform"])
    platform["environments"][ENV_NAME]["account"] = ACCOUNT
    if vendored:
        platform["environments"][ENV_NAME]["lambda_dependencies"] = "vendored"
    synthesize_environment(ENV_NAME, outdir, bundling=True, overrides={"platform": platform})
    return outdir


def _cdklocal(target: Target, *args: str, log: Callable[[str], None]) -> None:
    binary = REPO_ROOT / "node_modules" / ".bin" / "cdklocal"
    if not binary.is_file():
        raise LocalStackError(f"{binary} is missing: run `make setup` (it installs the pinned CLI)")
    command = [str(binary), *args]
    log(f"==> {' '.join(['cdklocal', *args])}")
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=without_aws(dict(os.environ)) | target.environ(), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    tail: list[str] = []
    for line in process.stdout:
        if "node" in line.lower() and ("version" in line.lower() or "upgrade" in line.lower()):
            continue  # the CLI's Node end-of-life banner
        tail = [*tail[-40:], line.rstrip()]
        if any(mark in line for mark in ("✅", "❌", "_FAILED")):
            log(f"    {line.rstrip()}")
    if process.wait() != 0:
        raise LocalStackError(
            f"cdklocal {args[0]} failed (exit {process.returncode}); its last lines:\n"
            + "\n".join(tail)
        )


def write_training_mocks(target: Target, mock_file: Path) -> str:
    """Write the mock configuration for the deployed training workflow; returns its ARN."""
    stack = target.client("cloudformation").describe_stacks(StackName=TRAINING_STACK)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    arn = str(outputs["StateMachineArn"])
    described = target.client("stepfunctions").describe_state_machine(stateMachineArn=arn)
    config = build_mock_config(
        described["name"], json.loads(described["definition"]), region=target.region
    )
    write_mock_config(mock_file, config)
    return arn


def deploy(
    target: Target,
    *,
    workdir: Path,
    mock_file: Path,
    redis_url: str,
    log: Callable[[str], None] = print,
) -> Report:
    """Synthesize, adapt, bootstrap, deploy; returns the adaptation report."""
    started = time.monotonic()
    document = health(target.endpoint)
    log(f"==> LocalStack {document.get('version', '?')} ({document.get('edition', '?')}) at "
        f"{target.endpoint}, tier {target.tier.value}")  # fmt: skip
    vendored = "lambda" in SERVICES[target.tier]
    log("==> synthesizing the local environment (env=local, account 000000000000"
        + (", function requirements vendored: the first run downloads them" if vendored else "")
        + ")")  # fmt: skip
    source = synthesize(workdir / "source", vendored=vendored)
    report = adapt_assembly(
        source, workdir / target.tier.value, Options(tier=target.tier, redis_url=redis_url)
    )
    log(report.text())
    assembly = str(workdir / target.tier.value)
    _cdklocal(target, "bootstrap", f"aws://{ACCOUNT}/{target.region}", "--app", assembly, log=log)
    _cdklocal(
        target, "deploy", "--app", assembly, "--all", "--require-approval", "never",
        "--progress", "events", log=log,
    )  # fmt: skip
    arn = write_training_mocks(target, mock_file)
    log(f"==> mock configuration for {arn.rsplit(':', 1)[1]} written to {mock_file}")
    log(f"==> deployed {len(report.stacks)} stacks in {time.monotonic() - started:.0f} s; "
        f"{len(report.left_out())} resources left out, listed above")  # fmt: skip
    return report


def main(argv: list[str] | None = None) -> int:
    import argparse

    from mlops.localstack.tiers import parse_tier

    parser = argparse.ArgumentParser(prog="python -m mlops.localstack", description=__doc__)
    parser.add_argument("command", choices=["deploy", "plan", "core"],
                        help="deploy; plan (print the adaptation only); core (run the "
                        "open-source core in-process, no Docker, on --port)")  # fmt: skip
    parser.add_argument("--port", type=int, default=4566, help="core: the port to listen on")
    parser.add_argument("--tier", default=os.environ.get("LOCALSTACK_TIER", "hobby"),
                        help="core | hobby (free) | base | ultimate (default: $LOCALSTACK_TIER "
                        "or hobby)")  # fmt: skip
    parser.add_argument(
        "--endpoint", default=os.environ.get("LOCALSTACK_ENDPOINT", DEFAULT_ENDPOINT)
    )
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "cdk.out.localstack")
    mocks = Path(os.environ.get("LOCALSTACK_SFN_MOCKS", DEFAULT_MOCK_FILE))
    parser.add_argument("--mock-file", type=Path, default=mocks)
    parser.add_argument("--redis-url", default="redis://redis:6379/0",
                        help="The Redis that replaces ElastiCache below the base tier, as the "
                        "functions reach it (the compose service `redis`)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        tier = parse_tier(args.tier)
        target = Target(endpoint=args.endpoint, tier=tier, region=local_region())
        if args.command == "core":
            from mlops.localstack import core

            core.serve(args.port, args.workdir / "core", args.mock_file)
            return 0
        if args.command == "plan":
            source = synthesize(args.workdir / "source", vendored=False)
            report = adapt_assembly(
                source, args.workdir / tier.value, Options(tier=tier, redis_url=args.redis_url)
            )
            sys.stdout.write(report.text() + "\n")
            return 0
        deploy(target, workdir=args.workdir, mock_file=args.mock_file, redis_url=args.redis_url)
    except (LocalStackError, ValueError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    return 0
