#!/usr/bin/env python3
"""CDK entry point: `cdk synth -c env=dev|prod|local`.

The only place that reads CDK context and deployment environment variables. It validates
the whole configuration before any construct exists, then builds one environment's stacks.
"""

from __future__ import annotations

import os
import sys

import aws_cdk as cdk

from mlops.config import ConfigError
from stacks.platform import build_environment


def main() -> None:
    app = cdk.App()
    try:
        build_environment(
            app,
            app.node.try_get_context("platform"),
            app.node.try_get_context("env"),
            default_account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
        )
    except ConfigError as error:
        sys.stderr.write(f"error: {error}\n")
        raise SystemExit(2) from None
    app.synth()


if __name__ == "__main__":
    main()
