"""BentoML serving the same ONNX model with the same Redis read, in its own virtualenv.

BentoML is not a project dependency: `ensure_venv` creates `.bench-venvs/bentoml` (gitignored)
with uv on first use, pinned to versions checked to work -- onnxruntime, redis and numpy at the
project's own versions, so only the serving framework differs. The service source below is
written to the run's work directory and served with `bentoml serve`; it imports
`features.redis_plan` (redis-py only) from the repo, reads the same spec file and signature,
and does the same pipelined HMGET + decode + ONNX run per request as the proxy.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.serving._servers import REPO

VENV = REPO / ".bench-venvs" / "bentoml"
UV = REPO / ".tools" / "bin" / "uv"
PINS = ("bentoml==1.4.39", "onnxruntime==1.31.1", "redis==7.4.1", "numpy==2.4.6")

SERVICE = """
import json
import os
from pathlib import Path

import bentoml
import numpy as np
import onnxruntime as ort
import redis.asyncio as aioredis

from features.redis_plan import PlanReader, RedisPlan

MODEL = "credit-risk"


@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class CreditRisk:
    def __init__(self) -> None:
        spec = json.loads(Path(os.environ["BENCH_SPEC_FILE"]).read_text())["models"][MODEL]
        self.plan = RedisPlan.from_dict(spec["plan"])
        model_dir = Path(os.environ["BENCH_MODEL_DIR"])
        signature = json.loads((model_dir / "signature.json").read_text())
        features = [f["name"] for f in signature["features"]]
        self.columns = np.array([self.plan.outputs.index(f) for f in features], dtype=np.intp)
        self.input = signature["inputs"][0]["name"]
        score = signature.get("score") or {}
        self.output = score.get("output") or signature["outputs"][0]["name"]
        self.column = score.get("column")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(model_dir / "model.onnx"), sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        self.redis = aioredis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
        self.reader = PlanReader()

    @bentoml.api
    async def predict(self, entity_id: int) -> dict:
        pipe = self.redis.pipeline(transaction=False)
        for key in self.plan.keys([entity_id]):
            pipe.hmget(key, self.plan.fields)
        stored = self.reader.decode(self.plan, await pipe.execute())
        values = np.array(stored, dtype=np.float64).reshape(1, -1)
        matrix = values[:, self.columns].astype(np.float32)
        result = np.asarray(self.session.run([self.output], {self.input: matrix})[0])
        if self.column is not None:
            result = result[:, self.column]
        return {"entity_id": entity_id, "score": float(result.reshape(-1)[0])}
"""


def ensure_venv() -> tuple[Path, bool]:
    """The venv's `bentoml` executable, and whether this call created the venv."""
    binary = VENV / "bin" / "bentoml"
    if binary.exists():
        return binary, False
    sys.stderr.write(f"creating {VENV} (BentoML, first run only)\n")
    subprocess.run([str(UV), "venv", "-q", "-p", "3.11", str(VENV)], check=True)
    subprocess.run(
        [str(UV), "pip", "install", "-q", "--python", str(VENV / "bin" / "python"), *PINS],
        check=True,
    )
    return binary, True


def write_service(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "service.py").write_text(SERVICE, encoding="utf-8")
    return directory
