"""The base class of every platform stack."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from constructs import Construct

from mlops.config import EnvironmentConfig


class PlatformStack(Stack):
    """A stack whose availability zones come from the typed configuration.

    Overriding `availability_zones` keeps synthesis free of AWS lookups even when the
    account is known (CDK would otherwise call EC2 DescribeAvailabilityZones and cache the
    answer in cdk.context.json), so `cdk synth` works offline for every environment.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, env_config: EnvironmentConfig, **kwargs: Any
    ) -> None:
        self._configured_azs = list(env_config.network.availability_zones)
        super().__init__(scope, construct_id, **kwargs)
        self.env_config = env_config

    @property
    def availability_zones(self) -> list[str]:
        return self._configured_azs


def retrain_role_name(prefix: str) -> str:
    """The monitoring stack's retraining role, `<project>-<env>-retrain`: named so the training
    stack's code bucket can reserve its prefix for it without referencing the other stack."""
    return f"{prefix}-retrain"


def model_id(model: str) -> str:
    """A model name as a construct-id part: `credit-risk` -> `CreditRisk`."""
    return model.title().replace("-", "")
