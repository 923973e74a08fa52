"""The two-hop path: features from `feast serve`, then a score from the proxy's /infer.

A uvicorn factory (`app`) for a gateway that, per `POST /predict {"entity_id": n}`, asks
`BENCH_FEAST_URL` for the feature service's values, orders them as the model's signature
(`BENCH_SIGNATURE`, a signature.json) and posts them to `BENCH_INFER_URL`. This is the shape of
a deployment that serves features and models separately; the gateway is the caller's own code.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import FastAPI, Request, Response

_JSON = {"content-type": "application/json"}


def app() -> FastAPI:
    feast_url = os.environ["BENCH_FEAST_URL"]
    infer_url = os.environ["BENCH_INFER_URL"]
    service = os.environ["BENCH_FEATURE_SERVICE"]
    entity = os.environ["BENCH_ENTITY"]
    signature = json.loads(Path(os.environ["BENCH_SIGNATURE"]).read_text(encoding="utf-8"))
    order = [str(f["name"]) for f in signature["features"]]
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    client = httpx.AsyncClient(limits=limits, timeout=5.0)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await client.aclose()

    gateway = FastAPI(title="two-hop", lifespan=lifespan)

    @gateway.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @gateway.post("/predict")
    async def predict(request: Request) -> Response:
        entity_id = orjson.loads(await request.body())["entity_id"]
        query = {"feature_service": service, "entities": {entity: [entity_id]}}
        features = (await client.post(feast_url, content=orjson.dumps(query), headers=_JSON)).json()
        row = _row(features, order)
        scored = await client.post(
            infer_url, content=orjson.dumps({"instances": [row]}), headers=_JSON
        )
        score = scored.json()["scores"][0]
        return Response(orjson.dumps({"entity_id": entity_id, "score": score}))

    return gateway


def _row(response: dict[str, Any], order: list[str]) -> list[float | None]:
    names = response["metadata"]["feature_names"]
    values = {
        name: result["values"][0] for name, result in zip(names, response["results"], strict=True)
    }
    return [values.get(name) for name in order]
