"""Feast definitions of the credit-risk feature repo (see `definitions`)."""

from features.repo.definitions import (
    CUSTOMER,
    SERVICE_NAME,
    TTLS,
    VIEWS,
    FeatureRepo,
    athena_sources,
    build_repo,
    file_sources,
    schema,
)

__all__ = [
    "CUSTOMER",
    "SERVICE_NAME",
    "TTLS",
    "VIEWS",
    "FeatureRepo",
    "athena_sources",
    "build_repo",
    "file_sources",
    "schema",
]
