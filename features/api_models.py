"""Request and response bodies of the feature API (`features.api`).

They are the contract: FastAPI validates requests against them and publishes them in the OpenAPI
document, so unknown fields are rejected (`extra="forbid"`) rather than silently ignored, and
entity ids must be JSON integers within int64 (Feast's entity key type): `"1000001"` or `1.0`
is an error, not a coercion.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DEFAULT_MAX_ENTITIES = 1000
DEFAULT_REDIS_TIMEOUT = 0.25  # seconds per Redis socket operation

EntityId = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX)]
# What Feast's value conversion yields for the scalar and list types a view may declare
# (bytes features are not served: JSON has no bytes).
Scalar = bool | int | float | str | datetime | None
FeatureValue = Scalar | list[Scalar]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeatureRequest(_Model):
    """Which features, for which entities. Exactly one of `feature_service` and `features`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"feature_service": "credit_risk_v1", "entities": {"customer_id": [1000001]}},
                {
                    "features": ["customer_profile:age", "customer_transactions:txn_count_7d"],
                    "entities": {"customer_id": [1000001, 1000002]},
                    "full_feature_names": True,
                },
            ]
        },
    )

    feature_service: Annotated[StrictStr, Field(min_length=1)] | None = Field(
        default=None, description="A feature service name (`GET /v1/feature-services`)."
    )
    features: Annotated[list[StrictStr], Field(min_length=1)] | None = Field(
        default=None, description="Feature refs `<view>:<feature>`, in the order wanted."
    )
    entities: dict[StrictStr, Annotated[list[EntityId], Field(min_length=1)]] = Field(
        description="One join key (e.g. `customer_id`) mapped to the ids to read, in order; "
        "repeats are answered repeatedly."
    )
    full_feature_names: StrictBool = Field(
        default=False, description="Name features `<view>__<feature>` instead of `<feature>`."
    )

    @model_validator(mode="after")
    def _one_feature_spec(self) -> FeatureRequest:
        if (self.feature_service is None) == (self.features is None):
            raise PydanticCustomError(
                "feature_spec_count",
                "give exactly one of 'feature_service' (a service name) or 'features' "
                "(a list of '<view>:<feature>' refs)",
            )
        return self


class EntityResult(_Model):
    entity_id: int = Field(description="The requested id (value of the response's entity_key).")
    found: bool = Field(
        description="True iff at least one requested feature has a value for this entity "
        "after the views' TTLs are applied; false means every feature is null."
    )
    features: dict[str, FeatureValue] = Field(
        description="Every name of feature_names; null when the entity has no value in time."
    )


class FeatureResponse(_Model):
    feature_service: str | None = Field(description="As requested (null for a refs request).")
    features: list[str] | None = Field(description="As requested (null for a service request).")
    entity_key: str = Field(description="The join key the ids belong to, e.g. customer_id.")
    feature_names: list[str] = Field(description="The keys of every result's `features`.")
    results: list[EntityResult] = Field(description="One per requested id, in request order.")


class FeatureServiceInfo(_Model):
    name: str
    description: str
    entity_key: str | None = Field(description="Null if its views do not share one join key.")
    features: list[str] = Field(description="Its feature refs `<view>:<feature>`, in order.")


class FeatureServicesResponse(_Model):
    feature_services: list[FeatureServiceInfo]


class Materialization(_Model):
    """The last successful materialization of a view (`features.materialize.Freshness`)."""

    start: datetime
    end: datetime = Field(description="Event times up to this one are online.")
    rows: int
    rejected_rows: int
    finished_at: datetime


class ViewFreshness(_Model):
    view: str
    ttl_seconds: float | None = Field(description="Values older than this read as null.")
    materialization: Materialization | None = Field(description="Null if never materialized.")


class FreshnessResponse(_Model):
    views: list[ViewFreshness]


class Status(_Model):
    status: str


class ErrorItem(BaseModel):
    """One problem with the request, in the shape FastAPI uses for its own validation errors."""

    type: str = Field(description="e.g. missing, int_type, unknown_feature_service")
    loc: list[str | int] = Field(description='Where, e.g. ["body", "entities", "customer_id"].')
    msg: str
    input: Any = None
    ctx: dict[str, Any] | None = Field(
        default=None, description="Details, e.g. `valid`: the accepted names; `max`: a limit."
    )


class ValidationErrorResponse(BaseModel):
    detail: list[ErrorItem]


class UnavailableResponse(BaseModel):
    detail: str


class FeatureApiSettings(BaseSettings):
    """`app_from_env`'s settings: variables `MLOPS_FEATURE_API_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_FEATURE_API_", extra="ignore")

    repo_path: str = Field(min_length=1, description="directory holding feature_store.yaml")
    redis_url: str | None = Field(default=None, description="default: the store's online store")
    max_entities: int = Field(default=DEFAULT_MAX_ENTITIES, ge=1)
    redis_timeout: float = Field(default=DEFAULT_REDIS_TIMEOUT, gt=0)
    enforce_ttl: bool = True
