"""The emulator core: moto's threaded server, in this process, on a loopback port.

Why a server and not `mock_aws`: the project's code (handlers, the CLI, SageMaker job
scripts in subprocesses, the serving app) must reach the emulator exactly as it reaches AWS,
through an endpoint URL taken from the environment. A threaded server in this process gives
every caller a real HTTP endpoint while the engine's extensions can still patch moto's
backends, which live in this process's memory.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import boto3

PINNED_MOTO_VERSION = "5.2.5"
DEFAULT_REGION = "ap-northeast-2"
# moto's default account; every ARN the emulator issues carries it.
ACCOUNT_ID = "123456789012"


class EmulatorVersionError(RuntimeError):
    """moto is not the version the engine's extensions were written and tested against."""


def check_moto_version() -> None:
    """Refuse to start on another moto: the extensions patch its internals."""
    installed = version("moto")
    if installed != PINNED_MOTO_VERSION:
        raise EmulatorVersionError(
            f"the local engine needs moto=={PINNED_MOTO_VERSION} (its extensions patch moto "
            f"internals); found moto=={installed}. Run `make setup` to install the locked set."
        )


@dataclass
class Emulator:
    """A running moto server plus the environment that points AWS SDKs at it."""

    region: str = DEFAULT_REGION
    port: int = 0
    _server: Any = field(default=None, init=False, repr=False)
    endpoint_url: str = field(default="", init=False)

    def start(self) -> Emulator:
        check_moto_version()
        from moto.core.config import default_user_config
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer

        # One log line per emulated API call drowns everything else out.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        # Step Functions only records executions unless told to run them.
        default_user_config["stepfunctions"]["execute_state_machine"] = True
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.port = int(port)
        self.endpoint_url = f"http://{host}:{port}"
        self._reset()
        return self

    def _reset(self) -> None:
        """Start empty: moto's backends are process-global and outlive a server, so an
        earlier emulator's buckets, stacks and jobs would otherwise still be here."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            if response.status != 200:
                raise RuntimeError(f"the emulator did not reset: HTTP {response.status}")

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def environ(self) -> dict[str, str]:
        """Variables that point any AWS SDK (and moto's own callbacks) at this emulator."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",  # noqa: S105 - emulator credentials
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            # Step Functions task integrations inside moto call back to this port.
            "MOTO_PORT": str(self.port),
        }

    def apply_environ(self) -> None:
        """Point this process (and every child it starts) at the emulator."""
        os.environ.update(self.environ())

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - emulator credentials
        )


@contextmanager
def running_emulator(region: str = DEFAULT_REGION) -> Iterator[Emulator]:
    """Start an emulator, point this process at it, and restore the environment after."""
    saved = dict(os.environ)
    emulator = Emulator(region=region).start()
    emulator.apply_environ()
    try:
        yield emulator
    finally:
        emulator.stop()
        os.environ.clear()
        os.environ.update(saved)
