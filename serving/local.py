"""A complete serving setup on one machine: sample features in Redis and a trained sample model.

`prepare(workdir, redis_url)` generates the sample warehouse, applies the Feast repo, materializes
it into `redis_url` with the platform's materializer, trains the sample bundle with its own
scripts and writes the serving spec (planned from the applied registry) -- so the serving tests,
the benchmarks and `python -m serving.local` all serve a real model over real features.
This module imports Feast and pandas (lazily); the serving app itself never imports it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from serving.settings import ServingSettings

MODEL = "credit-risk"


@dataclass(frozen=True)
class LocalServing:
    workdir: Path
    redis_url: str
    project: str
    spec_file: Path
    model_root: Path  # <model_root>/credit-risk/{model.onnx, signature.json}
    entity_ids: tuple[int, ...]

    def settings(self, **overrides: object) -> ServingSettings:
        values: dict[str, object] = {
            "spec_file": str(self.spec_file),
            "redis_url": self.redis_url,
            "model_source": "directory",
            "model_dir": str(self.model_root),
            "refresh_seconds": 0,
            **overrides,
        }
        return ServingSettings(**values)  # type: ignore[arg-type]


def prepare(
    workdir: Path,
    redis_url: str,
    *,
    customers: int = 2_000,
    days: int = 30,
    num_round: int = 100,
    bundle: str = "credit_risk",
) -> LocalServing:
    from features.materialize import materialize
    from features.repo import build_repo, file_sources
    from features.store import feature_store_config, open_store
    from mlops.config_serving import ServingConfig
    from pipelines import sample_data as sd
    from pipelines.sample_model import train_sample_model
    from serving.spec import build_spec

    workdir.mkdir(parents=True, exist_ok=True)
    today = datetime.now(UTC).date()
    first_day = today - timedelta(days=days - 1)
    data = sd.generate(customers, first_day, days, seed=3)
    sd.write_parquet(data, workdir / "data")
    project = f"serving_{uuid.uuid4().hex[:8]}"
    config = feature_store_config(
        "local", project=project, registry_path=str(workdir / "registry.db"), redis_url=redis_url
    )
    store = open_store(config, workdir)
    store.apply(build_repo(file_sources(str(workdir / "data"))).objects())
    start = datetime.combine(first_day, datetime.min.time(), UTC)
    materialize(store, start, datetime.now(UTC), redis_url=redis_url)
    frame_dir = workdir / "frame"
    sd.write_frame(sd.training_frame(data), frame_dir / "part-0.parquet")
    shutil.rmtree(workdir / "train", ignore_errors=True)  # a re-run trains afresh
    model_dir = train_sample_model(
        bundle, frame_dir, workdir / "train", hyperparameters={"num_round": num_round}
    )
    model_root = workdir / "models"
    (model_root / MODEL).mkdir(parents=True, exist_ok=True)
    for name in ("model.onnx", "signature.json"):
        (model_root / MODEL / name).write_bytes((model_dir / name).read_bytes())
    spec = build_spec(ServingConfig(), project, store=store)
    spec_file = workdir / "spec.json"
    spec_file.write_text(spec.to_json(), encoding="utf-8")
    ids = tuple(int(i) for i in sorted(data.profiles[sd.ENTITY].unique()))
    return LocalServing(workdir, redis_url, project, spec_file, model_root, ids)


def main(argv: Sequence[str] | None = None) -> int:
    """Prepare a workdir and print the environment to serve it with uvicorn."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--customers", type=int, default=2_000)
    args = parser.parse_args(argv)
    local = prepare(args.workdir, args.redis_url, customers=args.customers)
    settings = local.settings()
    lines = [
        f"export MLOPS_SERVING_{name.upper()}={value}"
        for name, value in settings.model_dump(exclude_none=True).items()
        if name in {"spec_file", "redis_url", "model_source", "model_dir", "refresh_seconds"}
    ]
    lines.append("uvicorn --factory serving.app:app_from_env --port 8080")
    lines.append(f"# e.g. customer {local.entity_ids[0]}:")
    lines.append(
        "curl -s localhost:8080/v1/models/credit-risk/predict "
        f"-H 'content-type: application/json' -d '{{\"entity_id\": {local.entity_ids[0]}}}'"
    )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
