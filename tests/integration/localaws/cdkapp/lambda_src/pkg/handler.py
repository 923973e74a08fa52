"""Trigger handler shipped as a CDK file asset; the deploy test checks its bytes arrive intact."""

from __future__ import annotations

import os
from typing import Any

MARKER = "cdkapp-trigger-v1"


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:  # noqa: ARG001
    return {"marker": MARKER, "bucket": os.environ.get("DATA_BUCKET", ""), "event": event}
