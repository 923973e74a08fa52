"""The model proxy's work per request, without HTTP: validate items, read features, score, log.

`parse_predict_body` turns a JSON body into a single item or a batch. A batch's items are
validated one by one, so one bad item becomes that item's error and the others are still scored;
only a body that is not a batch at all, or one over the size limit, fails as a whole
(`RequestInvalid`, a 422 with FastAPI's error shape).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from pydantic import TypeAdapter, ValidationError

from serving.api_models import BatchPredictRequest, PredictItem
from serving.model import LoadedModel
from serving.runtime import ServingRuntime
from serving.spec import ModelSpec

_ITEM = TypeAdapter(PredictItem)


class RequestInvalid(ValueError):
    """The body as a whole is unusable; `errors` are FastAPI-shaped (type, loc, msg, input)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(e.get("msg")) for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class ParsedBody:
    batch: bool
    items: list[PredictItem | list[dict[str, Any]]]  # a parsed item, or that item's errors


def _error(loc: list[str | int], kind: str, msg: str, given: Any) -> dict[str, Any]:
    return {"type": kind, "loc": ["body", *loc], "msg": msg, "input": given}


def _clean(errors: list[Any], prefix: list[str | int]) -> list[dict[str, Any]]:
    """pydantic errors as JSON-safe dicts located under `body.<prefix>`."""
    return [
        {
            "type": e["type"],
            "loc": ["body", *prefix, *e["loc"]],
            "msg": e["msg"],
            "input": json_safe(e.get("input")),
        }
        for e in errors
    ]


def json_safe(value: Any) -> Any:
    """`value` as orjson can write it: non-finite floats, bytes and out-of-range ints as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestInvalid(
            [_error([], "json_invalid", f"JSON decode error: {exc}", None)]
        ) from exc


def parse_predict_body(body: bytes, spec: ModelSpec, max_batch: int) -> ParsedBody:
    data = parse_json(body)
    if not isinstance(data, dict):
        raise RequestInvalid([_error([], "model_type", "expected a JSON object", data)])
    if "requests" not in data:
        try:
            item = _ITEM.validate_python(data)
        except ValidationError as exc:
            raise RequestInvalid(_clean(exc.errors(), [])) from exc
        problems = request_feature_errors(item, spec, [])
        if problems:
            raise RequestInvalid(problems)
        return ParsedBody(False, [item])
    extra = sorted(set(data) - set(BatchPredictRequest.model_fields))
    raw = data["requests"]
    if extra:
        raise RequestInvalid(
            [
                _error([k], "extra_forbidden", "Extra inputs are not permitted", data[k])
                for k in extra
            ]
        )
    if not isinstance(raw, list) or not raw:
        raise RequestInvalid([_error(["requests"], "list_type", "expected a non-empty list", raw)])
    if len(raw) > max_batch:
        raise RequestInvalid(
            [
                _error(
                    ["requests"],
                    "too_long",
                    f"at most {max_batch} items per batch, got {len(raw)}",
                    len(raw),
                )
            ]
        )
    items: list[PredictItem | list[dict[str, Any]]] = []
    for index, entry in enumerate(raw):
        loc: list[str | int] = ["requests", index]
        try:
            item = _ITEM.validate_python(entry)
        except ValidationError as exc:
            items.append(_clean(exc.errors(), loc))
            continue
        problems = request_feature_errors(item, spec, loc)
        items.append(problems or item)
    return ParsedBody(True, items)


def request_feature_errors(
    item: PredictItem, spec: ModelSpec, loc: list[str | int]
) -> list[dict[str, Any]]:
    given = item.request_features or {}
    expected = spec.request_features
    where = [*loc, "request_features"]
    errors = [
        _error(
            [*where, name],
            "extra_forbidden",
            f"not a request feature of this model; expected {list(expected)}",
            given[name],
        )
        for name in given
        if name not in expected
    ]
    errors += [
        _error([*where, name], "missing", "required request feature", None)
        for name in expected
        if name not in given
    ]
    return errors


def invalid_item(problems: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "error": {
            "code": "invalid_request",
            "message": "; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems),
            "fields": problems,
        }
    }


async def score_items(
    runtime: ServingRuntime,
    model: LoadedModel,
    spec: ModelSpec,
    items: list[PredictItem],
    *,
    request_id: str,
    started: float,
) -> list[dict[str, Any]]:
    """One result per item: `score` + `missing_features`, or an `entity_not_found` error.

    Raises FeatureStoreUnavailable when Redis does not answer."""
    if not items:
        return []
    ids = [item.entity_id for item in items]
    stored = await runtime.fetch(spec.plan, ids)
    matrix = model.assemble(stored, [item.request_features for item in items])
    stored_at = np.flatnonzero(model.stored_columns >= 0)
    missing = np.isnan(matrix[:, stored_at])
    found = ~missing.all(axis=1) if stored_at.size else np.ones(len(items), dtype=bool)
    scores = model.score(matrix[found]) if found.any() else np.empty(0)
    names = [model.features[i] for i in stored_at]
    results: list[dict[str, Any]] = []
    score_iter = iter(scores.tolist())
    latency_ms = (time.perf_counter() - started) * 1000
    for row, item in enumerate(items):
        result: dict[str, Any] = {"id": item.id, "entity_id": item.entity_id}
        if not found[row]:
            result["error"] = {
                "code": "entity_not_found",
                "message": f"no online features for {spec.entity}={item.entity_id} (never "
                "materialized, or older than every view's TTL)",
            }
        else:
            result["score"] = next(score_iter)
            result["missing_features"] = [n for n, m in zip(names, missing[row], strict=True) if m]
            _log(runtime, model, item, matrix[row], result["score"], request_id, latency_ms)
        results.append(result)
    return results


def _log(
    runtime: ServingRuntime,
    model: LoadedModel,
    item: PredictItem,
    row: np.ndarray,
    score: float,
    request_id: str,
    latency_ms: float,
) -> None:
    log = runtime.prediction_log
    if log is None:
        return
    log.log(
        {
            "model": model.name,
            "version": model.version,
            "request_id": request_id,
            "id": item.id,
            "ts": time.time(),
            "latency_ms": round(latency_ms, 3),
            "entity": item.entity_id,
            "features": dict(zip(model.features, row.tolist(), strict=True)),
            "score": score,
        }
    )
