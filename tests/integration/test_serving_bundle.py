"""The vendored bundles that carry ONNX Runtime -- the serving function's and the approval hook's
(which loads a version as serving does before rolling it out) -- build for the configured Lambda
Python and fit Lambda's 250 MB unzipped limit (onnxruntime and numpy are most of each).

Measured on this machine class (pip cache warm, python 3.14): ~7 s to build, 135.7 MB
unzipped, 44.9 MB zipped.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mlops.config import load_platform_config, read_cdk_context
from stacks.constructs.python_function import LambdaSource, build_bundle
from stacks.constructs.serving_lambda import SOURCE
from stacks.registry import HOOK_SOURCE
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration
LAMBDA_UNZIPPED_LIMIT = 250 * 2**20  # bytes: function code and layers, unzipped


def _lambda_python() -> str:
    config = load_platform_config(read_cdk_context(REPO_ROOT / "cdk.json")["platform"])
    pythons = {env.lambda_python for env in config.environments.values()}
    assert len(pythons) == 1, f"environments differ in lambda_python: {pythons}"
    return pythons.pop()


@pytest.mark.parametrize(
    ("source", "entry"),
    [(SOURCE, "serving/lambda_handler.py"), (HOOK_SOURCE, "lambdas/approval_hook/handler.py")],
    ids=["serving", "approval-hook"],
)
def test_the_vendored_bundle_fits_lambda(tmp_path: Path, source: LambdaSource, entry: str) -> None:
    python = _lambda_python()
    started = time.perf_counter()
    build_bundle(source, tmp_path, python, "vendored")
    seconds = time.perf_counter() - started
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    size = sum(path.stat().st_size for path in files)
    tag = f"cpython-{python.replace('.', '')}-x86_64-linux-gnu"
    assert any(tag in path.name for path in (tmp_path / "onnxruntime").rglob("*.so")), tag
    assert (tmp_path / entry).is_file()
    assert (tmp_path / "serving/model.py").is_file()
    assert (tmp_path / "features/redis_plan.py").is_file()
    assert size < LAMBDA_UNZIPPED_LIMIT, f"{size / 2**20:.1f} MiB (built in {seconds:.0f} s)"
