"""Property-based fuzzing of the whole API from its own OpenAPI document: no input is a 5xx.

schemathesis generates cases for every operation of `/openapi.json`, valid ones and ones that
break the schema; half the cases of the model routes target the served model, so they reach
feature reads and scoring rather than the unknown-model 404. The app reads the shared Redis
with a long timeout: a 503 from a loaded machine would be noise here (Redis faults are
test_faults.py's).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from serving.app import create_app
from serving.local import MODEL, LocalServing
from serving.runtime import build_runtime

pytestmark = pytest.mark.integration
logger = logging.getLogger(__name__)

EXAMPLES = 400
MINIMUM_CASES = 1_000
# Shrinking a 5xx can take minutes; the unshrunk case and its curl line are enough to act on.
NO_SHRINKING = (Phase.explicit, Phase.reuse, Phase.generate)


def fuzz_operation(operation: Any, counts: Counter[str]) -> None:
    strategy = st.tuples(
        st.one_of([operation.as_strategy(mode) for mode in GenerationMode]), st.booleans()
    )

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=NO_SHRINKING, suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(strategy)
    def run(drawn: tuple[Any, bool]) -> None:
        case, served = drawn
        if served and "model" in (case.path_parameters or {}):
            case.path_parameters["model"] = MODEL
        counts[operation.label] += 1
        response = case.call()
        case.validate_response(response, checks=[not_a_server_error])

    run()


def test_no_generated_request_is_a_server_error(local_serving: LocalServing) -> None:
    app = create_app(build_runtime(local_serving.settings(redis_timeout_ms=2_000)))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    counts: Counter[str] = Counter()
    for result in schema.get_all_operations():
        fuzz_operation(result.ok(), counts)  # type: ignore[union-attr]  # Err raises on .ok()
    logger.info("fuzzed %d cases: %s", sum(counts.values()), dict(counts))
    assert len(counts) == 6
    assert sum(counts.values()) >= MINIMUM_CASES
