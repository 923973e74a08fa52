"""The data lake's partition layout, `<prefix><view>/dt=YYYY-MM-DD/<file>.parquet`, in S3.

Shared by the jobs that read the lake with Feast's file offline store (materialization on the
local engine, training sets): which days a window touches, which objects hold them, and
copying those objects to a local directory with the same layout.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any


def window_days(start: datetime, end: datetime) -> list[str]:
    """The `dt` partitions a window touches (UTC days, both ends included)."""
    day, last = start.date(), end.date()
    days = []
    while day <= last:
        days.append(day.isoformat())
        day += timedelta(days=1)
    return days


def partition_files(s3: Any, bucket: str, prefix: str, view: str, days: set[str]) -> list[str]:
    """The view's Parquet files in `days`, relative to `<prefix><view>/`, sorted."""
    view_prefix = f"{prefix}{view}/"
    found: list[str] = []
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=view_prefix)
    for page in pages:
        for item in page.get("Contents", []):
            relative = item["Key"][len(view_prefix) :]
            partition = relative.split("/", 1)[0]
            if relative.endswith(".parquet") and partition.removeprefix("dt=") in days:
                found.append(relative)
    return sorted(found)


def download_files(
    s3: Any, bucket: str, prefix: str, view: str, files: list[str], target: Path
) -> None:
    """Copy `files` (from `partition_files`) to `target/<view>/<relative path>`."""
    for relative in files:
        path = target / view / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, f"{prefix}{view}/{relative}", str(path))
