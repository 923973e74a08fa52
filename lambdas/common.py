"""What every training-workflow Lambda shares: typed input/config errors and S3 URIs.

Step Functions names a Lambda task failure after the exception's class name, so the
exceptions here are part of the state machine's contract (`Catch` / `Retry` match on them):

- `InvalidInputError`: the event does not match the Lambda's contract (a wiring bug in the
  state machine, never worth retrying);
- `ConfigurationError`: the function's environment lacks a setting (a deployment bug).

Deliberately free of third-party imports beyond pydantic, so each function's bundle needs
only its own `requirements.txt`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


class InvalidInputError(ValueError):
    """The event does not match the function's input contract."""


class ConfigurationError(RuntimeError):
    """A required setting is missing or malformed in the function's environment."""


def _summarise(error: ValidationError) -> str:
    parts = [
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in error.errors()
    ]
    return "; ".join(parts)


def parse_event(model: type[ModelT], event: Any) -> ModelT:
    """Validate `event` against `model`, raising `InvalidInputError` that names every field."""
    try:
        return model.model_validate(event)
    except ValidationError as error:
        raise InvalidInputError(f"invalid {model.__name__}: {_summarise(error)}") from None


def load_settings(settings: type[ModelT]) -> ModelT:
    """Instantiate a pydantic-settings class (reads the environment now, not at import)."""
    try:
        return settings()
    except ValidationError as error:
        raise ConfigurationError(
            f"{settings.__name__} is incomplete: {_summarise(error)}"
        ) from None


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` → (bucket, key); ValueError for anything else."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or not key:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    return bucket, key
