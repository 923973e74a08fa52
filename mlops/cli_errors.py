"""How every `mlops` command ends on an error: the message in red on stderr, then the exit code
(2: bad input, reported before anything changed; 1: the operation failed)."""

from __future__ import annotations

from typing import NoReturn

import typer


def usage_error(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


def failure(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(1)
