"""Registry configuration: the model package groups the platform owns and who else may read them.

Part of `EnvironmentConfig` (`registry:` in an environment of cdk.json). The groups themselves are
the models in `serving.models`: every served model gets its group, its champion pointer and the
approval hook's attention; a group outside that set is foreign to the platform.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class RegistryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cross_account_readers: tuple[str, ...] = Field(
        default=(),
        description="Accounts (12 digits) allowed to list and describe the groups' versions, "
        "e.g. a prod account that deploys what dev registered; empty = no resource policy.",
    )
    hook_memory_mb: int = Field(
        default=1024,
        ge=512,
        le=10_240,
        description="The approval hook loads the model to check it.",
    )

    @field_validator("cross_account_readers")
    @classmethod
    def _accounts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [a for a in value if not (len(a) == 12 and a.isdigit())]
        if bad:
            raise ValueError(f"not 12-digit account ids: {bad}")
        if len(set(value)) != len(value):
            raise ValueError("account ids must not repeat")
        return value
