"""The credit-risk feature repo: one entity, two feature views, one feature service.

Names and dtypes are the warehouse contract of `pipelines.sample_data`. Only the batch source
depends on where the offline store lives: Parquet read by the file offline store locally, a Glue
table queried through Athena on AWS. Both point at the same layout
(`<root>/<view>/dt=YYYY-MM-DD/part-0.parquet`), so the entity, schemas, TTLs and the feature
service are built from the same module-level constants for every environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.data_source import DataSource
from feast.infra.offline_stores.contrib.athena_offline_store.athena_source import AthenaSource
from feast.types import Float64, Int64, PrimitiveFeastType

from pipelines.sample_data import (
    ENTITY,
    PROFILE_FEATURES,
    PROFILE_VIEW,
    TIMESTAMP,
    TRANSACTION_FEATURES,
    TRANSACTION_VIEW,
)

SERVICE_NAME = "credit_risk_v1"
PARTITION_COLUMN = "dt"
PROFILE_TTL = timedelta(days=7)
TRANSACTION_TTL = timedelta(days=2)

_INTEGER_FEATURES = frozenset(
    {
        "age",
        "months_since_first_credit",
        "num_credit_lines",
        "late_payments_12m",
        "txn_count_7d",
        "txn_count_30d",
        "distinct_merchants_30d",
    }
)

CUSTOMER = Entity(
    name="customer",
    join_keys=[ENTITY],
    value_type=ValueType.INT64,
    description="A Kakao Pay customer (credit applicant).",
)


def _dtype(name: str) -> PrimitiveFeastType:
    return Int64 if name in _INTEGER_FEATURES else Float64


def schema(view: str) -> list[Field]:
    """The Feast schema of `view`, in the warehouse's column order."""
    names = {PROFILE_VIEW: PROFILE_FEATURES, TRANSACTION_VIEW: TRANSACTION_FEATURES}[view]
    return [Field(name=name, dtype=_dtype(name)) for name in names]


TTLS: Mapping[str, timedelta] = {PROFILE_VIEW: PROFILE_TTL, TRANSACTION_VIEW: TRANSACTION_TTL}
VIEWS: tuple[str, ...] = (PROFILE_VIEW, TRANSACTION_VIEW)


@dataclass(frozen=True)
class FeatureRepo:
    """Everything `FeatureStore.apply` needs, for one choice of batch sources."""

    entity: Entity
    profile: FeatureView
    transactions: FeatureView
    service: FeatureService

    @property
    def views(self) -> tuple[FeatureView, FeatureView]:
        return (self.profile, self.transactions)

    def objects(self) -> list[Entity | FeatureView | FeatureService]:
        """The objects to pass to `FeatureStore.apply`."""
        return [self.entity, self.profile, self.transactions, self.service]


def file_sources(data_root: str) -> dict[str, DataSource]:
    """Parquet written by `pipelines.sample_data.write_parquet` under `data_root` (path or s3://).

    The source path is the view's directory: the file offline store reads it as one dataset and
    discovers the Hive partitions itself (the `dt` column is never selected).
    """
    root = data_root.rstrip("/")
    return {
        view: FileSource(name=f"{view}_parquet", path=f"{root}/{view}", timestamp_field=TIMESTAMP)
        for view in VIEWS
    }


def athena_sources(database: str, data_source: str = "AwsDataCatalog") -> dict[str, DataSource]:
    """Glue tables named after the views, partitioned by `dt` (pruned by Feast's Athena queries)."""
    return {
        view: AthenaSource(
            name=f"{view}_athena",
            table=view,
            database=database,
            data_source=data_source,
            timestamp_field=TIMESTAMP,
            date_partition_column=PARTITION_COLUMN,
        )
        for view in VIEWS
    }


def build_repo(sources: Mapping[str, DataSource]) -> FeatureRepo:
    """The feature repo over `sources` (one per view name, see `file_sources`/`athena_sources`)."""
    missing = sorted(set(VIEWS) - set(sources))
    if missing:
        raise ValueError(f"no batch source for feature views {missing}")
    views = {
        view: FeatureView(
            name=view,
            entities=[CUSTOMER],
            ttl=TTLS[view],
            schema=schema(view),
            source=sources[view],
            online=True,
            description=f"Daily {view.replace('_', ' ')} snapshot from the warehouse batch.",
        )
        for view in VIEWS
    }
    service = FeatureService(
        name=SERVICE_NAME,
        features=[views[PROFILE_VIEW], views[TRANSACTION_VIEW]],
        description="Features of the credit-risk (probability of default) model, version 1.",
    )
    return FeatureRepo(CUSTOMER, views[PROFILE_VIEW], views[TRANSACTION_VIEW], service)
