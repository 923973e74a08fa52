"""Request and response models of the serving API (the OpenAPI schema is generated from them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Int64 = Annotated[int, Field(strict=True, ge=-(2**63), le=2**63 - 1)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
CallerId = Annotated[str, Field(max_length=128, description="Echoed back; yours to correlate.")]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PredictItem(_Request):
    """Score one entity: its stored features are read from the online store."""

    id: CallerId | None = None
    entity_id: Int64 = Field(description="The model's entity key, e.g. a customer_id.")
    request_features: dict[str, Finite] | None = Field(
        default=None,
        description="Values of the model's request-time features (see GET /v1/models/{model}); "
        "exactly those names, finite numbers.",
    )


class BatchPredictRequest(_Request):
    """Score many entities in one call; each item succeeds or fails on its own."""

    requests: list[PredictItem] = Field(
        min_length=1, description="At most the configured maximum batch size."
    )


class InferRequest(_Request):
    """Score feature vectors the caller assembled, in the signature's feature order."""

    instances: list[list[Finite | None]] = Field(
        min_length=1, description="One vector per row; null = missing (the model sees NaN)."
    )


class ItemError(BaseModel):
    code: Literal["invalid_request", "entity_not_found"]
    message: str
    fields: list[dict[str, Any]] | None = Field(
        default=None, description="Field-level validation errors (invalid_request)."
    )


class Prediction(BaseModel):
    id: str | None = None
    entity_id: int | None = None
    score: float | None = Field(default=None, description="Set unless `error` is.")
    missing_features: list[str] = Field(
        default_factory=list, description="Stored features absent or expired (scored as NaN)."
    )
    error: ItemError | None = None


class PredictResponse(Prediction):
    model: str
    version: str
    request_id: str


class BatchPredictResponse(BaseModel):
    model: str
    version: str
    request_id: str
    responses: list[Prediction] = Field(description="In request order.")


class InferResponse(BaseModel):
    model: str
    version: str
    request_id: str
    scores: list[float]


class ModelInfo(BaseModel):
    name: str
    version: str
    package_arn: str | None
    source: str
    loaded_at: datetime
    load_ms: float
    feature_service: str
    entity: str
    features: list[str] = Field(description="The model's inputs, in tensor order.")
    request_features: list[str]
    signature: dict[str, Any]
    champion_rejected: str | None = Field(
        default=None,
        description="Set when the registry's current champion failed its checks; this (older) "
        "version keeps serving until a servable one is approved.",
    )


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    unavailable: dict[str, str] = Field(description="Configured models not being served, and why.")


class ReadyResponse(BaseModel):
    ready: bool
    models: dict[str, str] = Field(description="Model -> version served, or why not.")
    redis: str


class ErrorResponse(BaseModel):
    detail: str
    code: str | None = None


class ValidationErrorResponse(BaseModel):
    detail: list[dict[str, Any]]
