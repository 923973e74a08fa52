"""The bundle manifest: parsing, schema validation with readable errors, normalisation.

The contract is `manifest.v1.schema.json` (JSON Schema 2020-12) next to this module. This
module turns jsonschema's findings into one line per problem that names the field path and
what is wrong (`resources.training.instance_count: -1 is less than the minimum of 1`), so a
data scientist can fix every problem of a manifest in one pass.
"""

from __future__ import annotations

import copy
import json
import posixpath
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

SCHEMA_PATH = Path(__file__).with_name("manifest.v1.schema.json")
MANIFEST_NAMES = ("manifest.yaml", "manifest.yml", "manifest.json")
STEPS = ("preprocessing", "training", "evaluation")
DEFAULT_VOLUME_GB = 30
DEFAULT_REPORT = "evaluation.json"


@cache
def manifest_schema() -> dict[str, Any]:
    """The v1 schema as a dict (read once per process)."""
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return schema


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(manifest_schema())


def parse_manifest(name: str, data: bytes) -> tuple[dict[str, Any] | None, list[str]]:
    """Parse YAML or JSON manifest bytes; (mapping, []) or (None, [reason])."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, [f"{name}: not UTF-8 text (byte {error.start})"]
    try:
        document = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
    except json.JSONDecodeError as error:
        return None, [f"{name}: not valid JSON (line {error.lineno}): {error.msg}"]
    except yaml.YAMLError as error:
        return None, [f"{name}: not valid YAML{_yaml_position(error)}: {_yaml_problem(error)}"]
    if not isinstance(document, dict):
        kind = "empty" if document is None else f"a {type(document).__name__}"
        return None, [f"{name}: must be a mapping of manifest fields, but it is {kind}"]
    key_errors = list(_non_string_keys(document, ""))
    return (None, key_errors) if key_errors else (document, [])


def _yaml_position(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""


def _yaml_problem(error: yaml.YAMLError) -> str:
    problem = getattr(error, "problem", None)
    return str(problem) if problem else str(error).splitlines()[0]


def _non_string_keys(value: Any, path: str) -> Iterator[str]:
    """YAML allows `1: x` or `true: x`; JSON and the schema only know string keys."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                yield f"{path or '(manifest)'}: key {key!r} must be a string (quote it)"
            else:
                yield from _non_string_keys(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _non_string_keys(item, f"{path}[{index}]")


def schema_errors(document: dict[str, Any]) -> list[str]:
    """Every schema violation of `document`, one readable line each, sorted by field path."""
    errors = _validator().iter_errors(document)
    return sorted(set(_flatten(errors)))


def _flatten(errors: Iterable[ValidationError]) -> Iterator[str]:
    for error in errors:
        if error.validator == "oneOf" and error.context:
            yield from _one_of(error)
        else:
            yield _describe(error)


def _one_of(error: ValidationError) -> Iterator[str]:
    """`input` is either a dataset or a feature service: report against the form meant."""
    instance = error.instance
    path = _path(error)
    if not isinstance(instance, dict):
        yield f"{path}: must be a mapping with either `dataset` or `feature_service`"
        return
    if "dataset" in instance and "feature_service" in instance:
        yield f"{path}: use either `dataset` or `feature_service` (with entity, label), not both"
        return
    branch = 0 if "dataset" in instance else 1 if "feature_service" in instance else None
    if branch is None:
        yield (
            f"{path}: must have either `dataset` (a path under the datasets/ prefix) or "
            "`feature_service` with `entity` and `label`"
        )
        return
    yield from _flatten(e for e in error.context or [] if e.relative_schema_path[0] == branch)


def _path(error: ValidationError) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path]
    return "".join(parts).lstrip(".") or "(manifest)"


def _describe(error: ValidationError) -> str:
    path = _path(error)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "pattern":
        text = schema.get("x-error", f"does not match {error.validator_value}")
        return f"{path}: {error.instance!r} {text}"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = sorted(schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        return f"{path}: unknown field(s) {', '.join(unknown)} (allowed: {', '.join(known)})"
    if error.validator == "const":
        return f"{path}: must be {error.validator_value!r}, got {error.instance!r}"
    if error.validator == "type" and error.validator_value == "string" and _is_number(error):
        return f"{path}: {error.instance!r} is not of type {error.validator_value!r} (quote it?)"
    return f"{path}: {error.message}"


def _is_number(error: ValidationError) -> bool:
    return isinstance(error.instance, int | float) and not isinstance(error.instance, bool)


def normalise(document: dict[str, Any]) -> dict[str, Any]:
    """A schema-valid manifest with defaults filled in and bundle paths normalised."""
    manifest = copy.deepcopy(document)
    for step in STEPS:
        resources = manifest["resources"][step]
        resources.setdefault("volume_gb", DEFAULT_VOLUME_GB)
        for name in ("instance_count", "volume_gb", "max_runtime_seconds"):
            resources[name] = int(resources[name])
        manifest["entry_points"][step] = posixpath.normpath(manifest["entry_points"][step])
    model = manifest["model"]
    if "requirements" in model:
        model["requirements"] = posixpath.normpath(model["requirements"])
    manifest["evaluation"].setdefault("report", DEFAULT_REPORT)
    return manifest
