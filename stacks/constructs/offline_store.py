"""The offline feature store: a Parquet data lake in S3, its Glue catalog and an Athena workgroup.

Layout (the one `pipelines.sample_data.write_parquet` writes and `features.repo.definitions`
reads): `s3://<data lake>/offline/<view>/dt=YYYY-MM-DD/part-0.parquet`. Each view is an external
Glue table partitioned by the string column `dt`, with partition projection, so a new day's
partition is queryable the moment its files land (no crawler, no `MSCK REPAIR TABLE`) and
Feast's Athena queries (`date_partition_column: dt`) prune partitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlops.config import FeatureStoreConfig
from pipelines.sample_data import (
    ENTITY,
    PROFILE_FEATURES,
    PROFILE_VIEW,
    TIMESTAMP,
    TRANSACTION_FEATURES,
    TRANSACTION_VIEW,
)
from stacks.constructs.secure_bucket import SecureBucket

PARTITION_COLUMN = "dt"
OFFLINE_PREFIX = "offline"
REGISTRY_KEY = "feast/registry.db"

# Integer-valued features of the warehouse contract (int64 in Parquet, bigint in Athena);
# every other feature is float64/double. Tests pin this against Feast's schema and the
# sample data's dtypes, so a new feature cannot silently get the wrong Glue type.
INTEGER_FEATURES = frozenset(
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
VIEW_FEATURES: Mapping[str, tuple[str, ...]] = {
    PROFILE_VIEW: PROFILE_FEATURES,
    TRANSACTION_VIEW: TRANSACTION_FEATURES,
}

_PARQUET = glue.CfnTable.StorageDescriptorProperty(
    input_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    output_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    serde_info=glue.CfnTable.SerdeInfoProperty(
        serialization_library="org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
        parameters={"serialization.format": "1"},
    ),
)


def glue_columns(view: str) -> list[tuple[str, str]]:
    """(name, Athena type) of `view`'s columns in file order; `dt` is the partition key."""
    features = [(n, "bigint" if n in INTEGER_FEATURES else "double") for n in VIEW_FEATURES[view]]
    return [(ENTITY, "bigint"), (TIMESTAMP, "timestamp"), *features]


def _table_parameters(location: str, start: date) -> dict[str, str]:
    """Parquet classification and partition projection of `dt` (daily, `start` until today)."""
    key = f"projection.{PARTITION_COLUMN}"
    return {
        "classification": "parquet",
        "EXTERNAL": "TRUE",
        "parquet.compression": "SNAPPY",
        "projection.enabled": "true",
        f"{key}.type": "date",
        f"{key}.format": "yyyy-MM-dd",
        f"{key}.range": f"{start.isoformat()},NOW",
        f"{key}.interval": "1",
        f"{key}.interval.unit": "DAYS",
        "storage.location.template": f"{location}{PARTITION_COLUMN}=${{{PARTITION_COLUMN}}}/",
    }


class OfflineFeatureStore(Construct):
    """Data-lake bucket (also holding the Feast registry), Glue tables, Athena workgroup.

    Contract: `database_name` and `workgroup_name` are what `features.store.AwsStoreSettings`
    takes; `registry_uri` is Feast's S3 registry path; Athena results land encrypted with the
    data key in a separate bucket whose objects expire (results are re-computable).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: FeatureStoreConfig,
        name: str,
        data_key: kms.IKey,
        access_logs: s3.IBucket,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket = SecureBucket(
            self, "DataLake", encryption_key=data_key, access_logs=access_logs,
            removal_policy=removal_policy,
            noncurrent_days=config.noncurrent_version_retention_days,
        ).bucket  # fmt: skip
        self.bucket.add_lifecycle_rule(
            id="offline-features-to-intelligent-tiering",
            prefix=f"{OFFLINE_PREFIX}/",
            transitions=[
                s3.Transition(
                    storage_class=s3.StorageClass.INTELLIGENT_TIERING,
                    transition_after=Duration.days(config.intelligent_tiering_after_days),
                )
            ],
        )
        self.results_bucket = SecureBucket(
            self, "AthenaResults", encryption_key=data_key, access_logs=access_logs,
            removal_policy=removal_policy, versioned=False,
        ).bucket  # fmt: skip
        self.results_bucket.add_lifecycle_rule(
            id="expire-query-results",
            expiration=Duration.days(config.athena_results_retention_days),
            abort_incomplete_multipart_upload_after=Duration.days(1),
        )
        self.database_name = name.replace("-", "_")
        database = glue.CfnDatabase(
            self, "Database", catalog_id=self._account(),
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name,
                description="Offline feature store: daily Parquet snapshots per feature view",
            ),
        )  # fmt: skip
        self.tables = {
            view: self._table(view, database, config.partition_projection_start)
            for view in VIEW_FEATURES
        }
        self.workgroup = self._workgroup(config, name, data_key, removal_policy)
        self.workgroup_name = name
        self.registry_uri = self.bucket.s3_url_for_object(REGISTRY_KEY)

    def _account(self) -> str:
        return Stack.of(self).account

    def view_location(self, view: str) -> str:
        return self.bucket.s3_url_for_object(f"{OFFLINE_PREFIX}/{view}/")

    def _table(self, view: str, database: glue.CfnDatabase, start: date) -> glue.CfnTable:
        location = self.view_location(view)
        columns = [glue.CfnTable.ColumnProperty(name=n, type=t) for n, t in glue_columns(view)]
        table = glue.CfnTable(
            self,
            f"{view.title().replace('_', '')}Table",
            catalog_id=self._account(),
            database_name=self.database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=view,
                description=f"Feature view {view}: one row per customer per day",
                table_type="EXTERNAL_TABLE",
                parameters=_table_parameters(location, start),
                partition_keys=[glue.CfnTable.ColumnProperty(name=PARTITION_COLUMN, type="string")],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=location,
                    columns=columns,
                    input_format=_PARQUET.input_format,
                    output_format=_PARQUET.output_format,
                    serde_info=_PARQUET.serde_info,
                    compressed=False,
                    stored_as_sub_directories=False,
                ),
            ),
        )
        # The table names its database by a literal name, not a Ref: order it explicitly.
        table.add_dependency(database)
        return table

    def _workgroup(
        self, config: FeatureStoreConfig, name: str, data_key: kms.IKey, policy: RemovalPolicy
    ) -> athena.CfnWorkGroup:
        """Settings are enforced: a client cannot send results elsewhere or unencrypted."""
        return athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=name,
            description="Feast offline-store queries over the feature data lake",
            recursive_delete_option=policy is RemovalPolicy.DESTROY,
            state="ENABLED",
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=config.athena_bytes_scanned_cutoff_per_query,
                requester_pays_enabled=False,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version=config.athena_engine_version
                ),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=self.results_bucket.s3_url_for_object("results/"),
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_KMS", kms_key=data_key.key_arn
                    ),
                ),
            ),
        )
