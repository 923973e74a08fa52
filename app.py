#!/usr/bin/env python3
"""CDK entry point: `cdk synth -c env=dev|prod|local`.

The only place that reads CDK context and deployment environment variables. It validates
the whole configuration before any construct exists, then builds one environment's stacks.
"""

from __future__ import annotations

import os
import sys
import warnings

import aws_cdk as cdk

from mlops.config import ConfigError, load_platform_config, select_environment
from stacks.platform import apply_nag, build_platform

# jsii's runtime type checks cannot check CDK's interface protocols and say so on every
# call; the warnings carry no information about this app.
warnings.filterwarnings("ignore", message="Typeguard cannot check the .* protocol")


def main() -> None:
    app = cdk.App()
    try:
        config = load_platform_config(app.node.try_get_context("platform"))
        env_name = app.node.try_get_context("env")
        env_config = select_environment(config, env_name)
    except ConfigError as error:
        sys.stderr.write(f"error: {error}\n")
        raise SystemExit(2) from None
    build_platform(
        app,
        project=config.project,
        env_name=env_name,
        env_config=env_config,
        account=env_config.account or os.environ.get("CDK_DEFAULT_ACCOUNT"),
    )
    apply_nag(app)
    app.synth()


if __name__ == "__main__":
    main()
