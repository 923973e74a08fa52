"""The model proxy's HTTP API (FastAPI). Contract: docs/serving.md.

`create_app(runtime)` serves a `ServingRuntime`; `app_from_env()` is the uvicorn factory
(`uvicorn --factory serving.app:app_from_env`), and `serving.lambda_handler` wraps the same app
with Mangum. Status codes: 404 unknown model (or, for a single prediction, unknown entity), 413
body too large, 422 invalid body (FastAPI's error shape, field by field), 503 when the model has
no servable version or Redis does not answer (with Retry-After). Responses are serialised with
orjson; the predict body is parsed by hand (orjson + pydantic per item) so a batch's bad items
fail alone. With MLOPS_SERVING_METRICS=emf every request to a model endpoint also writes one
CloudWatch EMF line (serving.metrics); handlers report the version that answered with `served_by`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from serving import api_models as m
from serving.metrics import RequestMetrics, RequestMetricsMiddleware, accepted_request_id, served_by
from serving.model import LoadedModel
from serving.predict import (
    RequestInvalid,
    invalid_item,
    json_safe,
    parse_predict_body,
    score_items,
)
from serving.runtime import FeatureStoreUnavailable, ServingRuntime, build_runtime
from serving.settings import metrics_settings_from_env, settings_from_env
from serving.spec import ModelSpec

MAX_BODY_BYTES = 8 * 1024 * 1024
_JSON = "application/json"
# Why a configured model serves nothing when no version was ever rejected: its source names none
# (no approved version has rolled out: no champion pointer, nothing in the registry or directory).
NO_CHAMPION = "no champion yet (no approved version has been rolled out)"


class HttpError(Exception):
    def __init__(self, status: int, detail: str, code: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.code = status, detail, code


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=_JSON, headers=headers)


def _request_id(request: Request) -> str:
    return accepted_request_id(request.headers.get("x-request-id")) or uuid.uuid4().hex


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    known: dict[int, dict[str, Any]] = {
        404: {"model": m.ErrorResponse, "description": "Unknown model (or entity)."},
        413: {"model": m.ErrorResponse, "description": "Body too large."},
        422: {"model": m.ValidationErrorResponse, "description": "Invalid body (see `loc`)."},
        503: {"model": m.ErrorResponse, "description": "No servable version, or Redis down."},
    }
    return {code: known[code] for code in codes}


def create_app(
    runtime: ServingRuntime, *, manage_runtime: bool = True, metrics: RequestMetrics | None = None
) -> FastAPI:
    """The app over `runtime`; with `manage_runtime` its lifespan starts and stops it.

    `metrics` None: as MLOPS_SERVING_METRICS(_NAMESPACE) say (off unless set), which is how the
    Lambda handler, building the app from a runtime, gets them."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_runtime:
            runtime.start()
        yield
        if manage_runtime:
            await runtime.stop()

    app = FastAPI(title="Model proxy", version="1", lifespan=lifespan)
    app.state.runtime = runtime
    if metrics is None:
        metrics = RequestMetrics.from_settings(metrics_settings_from_env())
    if metrics.enabled:
        app.add_middleware(RequestMetricsMiddleware, metrics=metrics, models=runtime.spec.models)

    @app.exception_handler(HttpError)
    async def _http_error(_: Request, exc: HttpError) -> Response:
        headers = {"Retry-After": "1"} if exc.status == 503 else None
        return _json({"detail": exc.detail, "code": exc.code}, exc.status, headers)

    @app.exception_handler(RequestInvalid)
    async def _invalid(_: Request, exc: RequestInvalid) -> Response:
        return _json({"detail": exc.errors}, 422)

    @app.exception_handler(FeatureStoreUnavailable)
    async def _unavailable(_: Request, exc: FeatureStoreUnavailable) -> Response:
        detail = f"online feature store unavailable: {exc}"
        return _json(
            {"detail": detail, "code": "feature_store_unavailable"}, 503, {"Retry-After": "1"}
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        return _json({"detail": jsonable_errors(exc.errors())}, 422)

    def served(name: str) -> tuple[ModelSpec, LoadedModel]:
        spec = runtime.spec.models.get(name)
        if spec is None:
            served_names = sorted(runtime.spec.models)
            raise HttpError(404, f"unknown model {name!r}; served: {served_names}", "unknown_model")
        model = runtime.manager.get(name)
        if model is None:
            why = runtime.manager.rejected.get(name, NO_CHAMPION)
            raise HttpError(
                503, f"model {name!r} has no servable version: {why}", "model_unavailable"
            )
        return spec, model

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get(
        "/ready",
        tags=["ops"],
        response_model=m.ReadyResponse,
        responses={503: {"model": m.ReadyResponse}},
    )
    async def ready() -> Response:
        """Readiness: every configured model has a version loaded and Redis answers."""
        models = {
            name: (
                loaded.version
                if (loaded := runtime.manager.get(name))
                else "not loaded: " + runtime.manager.rejected.get(name, NO_CHAMPION)
            )
            for name in runtime.spec.models
        }
        redis_state = await runtime.ping()
        ok = redis_state == "ok" and all(runtime.manager.get(n) for n in runtime.spec.models)
        return _json({"ready": ok, "models": models, "redis": redis_state}, 200 if ok else 503)

    @app.get("/v1/models", tags=["models"], response_model=m.ModelsResponse)
    async def list_models() -> Response:
        """Every served model's version and signature; configured models not served, and why."""
        rejected = runtime.manager.rejected
        infos = [
            model_info(runtime.spec.models[name], model, rejected.get(name))
            for name, model in runtime.manager.loaded.items()
        ]
        unavailable = {
            name: rejected.get(name, NO_CHAMPION)
            for name in runtime.spec.models
            if runtime.manager.get(name) is None
        }
        return _json({"models": infos, "unavailable": unavailable})

    @app.get(
        "/v1/models/{model}",
        tags=["models"],
        response_model=m.ModelInfo,
        responses=_errors(404, 503),
    )
    async def get_model(model: str, request: Request) -> Response:
        """The served version, when it was loaded, its inputs and signature."""
        spec, loaded = served(model)
        served_by(request, loaded.version)
        return _json(model_info(spec, loaded, runtime.manager.rejected.get(model)))

    @app.post(
        "/v1/models/{model}/predict",
        tags=["predict"],
        responses={
            200: {
                "content": {
                    _JSON: {
                        "schema": {
                            "oneOf": [
                                {"$ref": "#/components/schemas/PredictResponse"},
                                {"$ref": "#/components/schemas/BatchPredictResponse"},
                            ]
                        }
                    }
                }
            },
            **_errors(404, 413, 422, 503),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    _JSON: {
                        "schema": {
                            "oneOf": [
                                {"$ref": "#/components/schemas/PredictItem"},
                                {"$ref": "#/components/schemas/BatchPredictRequest"},
                            ]
                        }
                    }
                },
            }
        },
    )
    async def predict(model: str, request: Request) -> Response:
        """Score one entity (`PredictItem`) or a batch (`{"requests": [...]}`) from its online
        features. A single unknown entity is a 404; in a batch it is that item's error."""
        started = time.perf_counter()
        spec, loaded = served(model)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise HttpError(413, f"body over {MAX_BODY_BYTES} bytes", "too_large")
        parsed = parse_predict_body(body, spec, runtime.max_batch_size)
        request_id = _request_id(request)
        valid = [item for item in parsed.items if isinstance(item, m.PredictItem)]
        scored = iter(
            await score_items(runtime, loaded, spec, valid, request_id=request_id, started=started)
        )
        head = {"model": model, "version": loaded.version, "request_id": request_id}
        headers = {"X-Request-ID": request_id, "X-Model-Version": loaded.version}
        if not parsed.batch:
            result = next(scored)
            if "error" in result:
                raise HttpError(404, result["error"]["message"], result["error"]["code"])
            served_by(request, loaded.version, predictions=1, request_id=request_id)
            return _json({**head, **result}, headers=headers)
        responses = [
            next(scored) if isinstance(item, m.PredictItem) else invalid_item(item)
            for item in parsed.items
        ]
        scored_count = sum("score" in r for r in responses)
        served_by(request, loaded.version, predictions=scored_count, request_id=request_id)
        return _json({**head, "responses": responses}, headers=headers)

    @app.post(
        "/v1/models/{model}/infer",
        tags=["predict"],
        response_model=m.InferResponse,
        responses=_errors(404, 422, 503),
    )
    async def infer(model: str, body: m.InferRequest, request: Request) -> Response:
        """Score feature vectors you assembled yourself (signature order, see GET
        /v1/models/{model}); no feature store read, not logged for drift."""
        _, loaded = served(model)
        width = len(loaded.features)
        wrong = [i for i, row in enumerate(body.instances) if len(row) != width]
        if wrong or len(body.instances) > runtime.max_batch_size:
            raise RequestInvalid(
                infer_errors(wrong, width, len(body.instances), runtime.max_batch_size)
            )
        matrix = np.array(body.instances, dtype=np.float64).astype(np.float32)
        scores = loaded.score(matrix).tolist()
        request_id = _request_id(request)
        served_by(request, loaded.version, predictions=len(scores), request_id=request_id)
        return _json(
            {"model": model, "version": loaded.version, "request_id": request_id, "scores": scores}
        )

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def infer_errors(wrong: list[int], width: int, count: int, limit: int) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = [
        {
            "type": "wrong_length",
            "loc": ["body", "instances", i],
            "msg": f"expected {width} values (the signature's features)",
            "input": None,
        }
        for i in wrong
    ]
    if count > limit:
        errors.append(
            {
                "type": "too_long",
                "loc": ["body", "instances"],
                "msg": f"at most {limit} instances, got {count}",
                "input": count,
            }
        )
    return errors


def jsonable_errors(errors: Any) -> list[dict[str, Any]]:
    return [
        {
            k: json_safe(v) if k == "input" else v
            for k, v in e.items()
            if k in ("type", "loc", "msg", "input")
        }
        for e in errors
    ]


def model_info(spec: ModelSpec, model: LoadedModel, rejected: str | None = None) -> dict[str, Any]:
    return {
        "champion_rejected": rejected,
        "name": model.name,
        "version": model.version,
        "package_arn": model.package_arn,
        "source": model.source,
        "loaded_at": model.loaded_at.isoformat(),
        "load_ms": round(model.load_seconds * 1000, 3),
        "feature_service": spec.feature_service,
        "entity": spec.entity,
        "features": list(model.features),
        "request_features": list(spec.request_features),
        "signature": model.signature.raw,
    }


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the hand-parsed predict body's and response's models."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        _, defs = models_json_schema(
            [
                (m.PredictItem, "validation"),
                (m.BatchPredictRequest, "validation"),
                (m.PredictResponse, "serialization"),
                (m.BatchPredictResponse, "serialization"),
            ],
            ref_template="#/components/schemas/{model}",
        )
        schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
        app.openapi_schema = schema
    return app.openapi_schema


def app_from_env() -> FastAPI:
    """The uvicorn factory: settings from MLOPS_SERVING_* (see serving.settings)."""
    return create_app(build_runtime(settings_from_env()))
