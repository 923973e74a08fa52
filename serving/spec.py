"""The serving spec: which models the app serves and where each one's features live in Redis.

Built where Feast is available -- at synth time by the serving stack, or by tests and the local
engine -- with `build_spec` / `build_spec_json`, and read by the app with `ServingSpec.from_json`,
which needs neither Feast nor pandas. The feature plans come from the same Feast definitions
(features/repo) and the same planner (`features.online.build_plan`) the feature API uses.

Shape (schema_version 1)::

    {"schema_version": 1, "project": "credit_risk",
     "models": {"credit-risk": {"feature_service": "credit_risk_v1", "entity": "customer_id",
                                "request_features": [], "plan": {...RedisPlan.to_dict()}}}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from features.redis_plan import RedisPlan

if TYPE_CHECKING:
    from mlops.config_serving import ServingConfig

SCHEMA_VERSION = 1


class SpecError(ValueError):
    """The serving spec is malformed or inconsistent; the message says where."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    feature_service: str
    entity: str
    request_features: tuple[str, ...]
    plan: RedisPlan

    @property
    def inputs(self) -> tuple[str, ...]:
        """Every name a model signature may use: stored features, then request-time ones."""
        return (*self.plan.outputs, *self.request_features)


@dataclass(frozen=True)
class ServingSpec:
    project: str
    models: Mapping[str, ModelSpec]

    @classmethod
    def from_json(cls, text: str) -> ServingSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"serving spec is not JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
            raise SpecError(f"serving spec must be an object with schema_version {SCHEMA_VERSION}")
        models = data.get("models")
        if not isinstance(models, dict) or not models:
            raise SpecError("serving spec: 'models' must be a non-empty object")
        return cls(str(data.get("project", "")), {n: _model(n, m) for n, m in models.items()})

    def to_json(self) -> str:
        return json.dumps(
            {
                "schema_version": SCHEMA_VERSION,
                "project": self.project,
                "models": {
                    name: {
                        "feature_service": model.feature_service,
                        "entity": model.entity,
                        "request_features": list(model.request_features),
                        "plan": model.plan.to_dict(),
                    }
                    for name, model in self.models.items()
                },
            },
            separators=(",", ":"),
            sort_keys=True,
        )


def _model(name: str, data: Any) -> ModelSpec:
    if not isinstance(data, dict):
        raise SpecError(f"serving spec: models.{name} must be an object")
    try:
        plan = RedisPlan.from_dict(data["plan"])
        model = ModelSpec(
            name=name,
            feature_service=str(data["feature_service"]),
            entity=str(data["entity"]),
            request_features=tuple(str(f) for f in data.get("request_features", ())),
            plan=plan,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError(f"serving spec: models.{name}: {exc}") from exc
    if model.entity != plan.join_key:
        raise SpecError(
            f"serving spec: models.{name}: entity {model.entity!r} is not the feature "
            f"service's join key {plan.join_key!r}"
        )
    clash = sorted(set(model.request_features) & set(plan.outputs))
    if clash:
        raise SpecError(f"serving spec: models.{name}: request features {clash} are also stored")
    return model


def build_spec(config: ServingConfig, feast_project: str, store: Any = None) -> ServingSpec:
    """The spec for `config`'s models, planned from `store`'s registry -- by default the
    project's Feast definitions (features/repo), without applying them anywhere."""
    from features.online import DefinitionsCatalog, build_plan

    catalog = store if store is not None else DefinitionsCatalog(feast_project)
    models = {}
    for name, served in config.models.items():
        plan = build_plan(catalog, served.feature_service)
        models[name] = _model(
            name,
            {
                "feature_service": served.feature_service,
                "entity": served.entity,
                "request_features": list(served.request_features),
                "plan": plan.to_dict(),
            },
        )
    return ServingSpec(feast_project, models)


def build_spec_json(config: ServingConfig, feast_project: str) -> str:
    """`build_spec(...).to_json()`: what the serving stack puts in MLOPS_SERVING_SPEC."""
    return build_spec(config, feast_project).to_json()
