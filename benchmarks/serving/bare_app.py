"""The framework ceiling: FastAPI on the proxy's predict route, reading the body and returning a
constant response of the same shape -- no parsing, no Redis, no model."""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request, Response

_BODY = orjson.dumps(
    {"model": "credit-risk", "version": "bench", "request_id": "0" * 32, "id": None,
     "entity_id": 1, "score": 0.5, "missing_features": []}
)  # fmt: skip

app = FastAPI(title="ceiling")


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/models/{model}/predict")
async def predict(request: Request) -> Response:
    await request.body()
    return Response(_BODY, media_type="application/json")
