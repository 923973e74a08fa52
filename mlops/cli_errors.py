"""How every `mlops` command ends on an error: the message in red on stderr, then the exit code
(2: bad input, reported before anything changed; 1: the operation failed)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from botocore.exceptions import BotoCoreError, ClientError


def usage_error(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


def failure(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(1)


@contextmanager
def aws_errors() -> Iterator[None]:
    """An AWS refusal (permissions, throttling, a missing resource) as a message and exit 1."""
    try:
        yield
    except (ClientError, BotoCoreError) as error:
        failure(f"AWS refused the request: {error}")
