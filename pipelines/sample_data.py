"""Deterministic synthetic warehouse batch for the credit-risk (probability of default) sample.

It stands in for the daily batch the warehouse loads into the offline feature store, so the
whole lifecycle (feature store, training workflow, serving, drift) runs on data that has real
signal without touching anyone's customers. Same arguments and seed give byte-identical frames.

Tables -- names and columns are a contract: the Feast feature views serve exactly these names.

``customer_profile`` (entity ``customer_id`` int64; one row per customer per day;
``event_timestamp`` is 00:00 UTC of the day and describes the state at the end of the day before):
    ``age`` int64, ``income_monthly`` float64 (KRW thousands; ~3 % missing), ``credit_limit``
    float64 (KRW thousands), ``credit_utilization`` float64 in [0, 1.5],
    ``months_since_first_credit`` int64, ``num_credit_lines`` int64, ``late_payments_12m`` int64.
``customer_transactions`` (same entity and daily timestamps; windows end at the snapshot time):
    ``txn_count_7d`` int64, ``txn_amount_7d`` float64, ``txn_count_30d`` int64, ``txn_amount_30d``
    float64, ``avg_txn_amount_30d`` float64 (NaN without transactions), ``night_txn_ratio_30d``
    float64 in [0, 1], ``distinct_merchants_30d`` int64. Amounts are KRW thousands, lognormal.
``credit_labels``: ``customer_id``, ``event_timestamp`` (the credit decision, within the day),
    ``defaulted_90d`` int64 0/1.

The label comes from a known latent logistic model of the features as of the decision (true
income, even where the observed value is missing) plus an unobserved per-customer risk and
noise, which caps what any model can learn: a good model reaches an AUC of about 0.8. Mild time
drift: utilisation creeps up and transaction volume grows over the window, so the latest
(out-of-time) dates look slightly different from the earliest ones.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

ENTITY = "customer_id"
TIMESTAMP = "event_timestamp"
LABEL = "defaulted_90d"
PROFILE_VIEW = "customer_profile"
TRANSACTION_VIEW = "customer_transactions"
LABEL_TABLE = "credit_labels"
PROFILE_FEATURES: tuple[str, ...] = (
    "age",
    "income_monthly",
    "credit_limit",
    "credit_utilization",
    "months_since_first_credit",
    "num_credit_lines",
    "late_payments_12m",
)
TRANSACTION_FEATURES: tuple[str, ...] = (
    "txn_count_7d",
    "txn_amount_7d",
    "txn_count_30d",
    "txn_amount_30d",
    "avg_txn_amount_30d",
    "night_txn_ratio_30d",
    "distinct_merchants_30d",
)
FEATURES: tuple[str, ...] = PROFILE_FEATURES + TRANSACTION_FEATURES

_HISTORY_DAYS = 30  # transaction history before the first snapshot, so 30-day windows are full
_FIRST_CUSTOMER_ID = 1_000_001
_DECISIONS_PER_CUSTOMER_DAY = 0.05
_MEDIAN_INCOME = 3_000.0  # KRW thousands per month


@dataclass(frozen=True)
class SampleData:
    """The three warehouse tables, each sorted by (event_timestamp, customer_id)."""

    profiles: pd.DataFrame
    transactions: pd.DataFrame
    labels: pd.DataFrame


@dataclass(frozen=True)
class _Traits:
    """Per-customer constants; `risk` is the latent, never-observed creditworthiness."""

    risk: np.ndarray
    age: np.ndarray
    birthday: np.ndarray
    income: np.ndarray
    income_missing: np.ndarray
    limit_ratio: np.ndarray
    months: np.ndarray
    lines: np.ndarray
    late: np.ndarray
    late_hazard: np.ndarray
    utilization: np.ndarray
    txn_rate: np.ndarray
    amount_mu: np.ndarray
    night_p: np.ndarray
    novelty: np.ndarray


def generate(
    n_customers: int = 5_000, start: date = date(2024, 1, 1), days: int = 60, seed: int = 7
) -> SampleData:
    """Simulate `days` daily snapshots from `start` for `n_customers`, plus credit decisions."""
    if n_customers < 1 or days < 1:
        raise ValueError(f"need n_customers >= 1 and days >= 1, got {n_customers} and {days}")
    rng = np.random.default_rng(seed)
    traits = _draw_traits(rng, n_customers)
    profile = _simulate_profiles(rng, traits, days)
    txn = _simulate_transactions(rng, traits, days)
    labels = _draw_labels(rng, traits, profile, txn)
    ids = np.arange(_FIRST_CUSTOMER_ID, _FIRST_CUSTOMER_ID + n_customers, dtype=np.int64)
    day_ts = _day_timestamps(start, days)
    return SampleData(
        profiles=_long_frame(ids, day_ts, profile),
        transactions=_long_frame(ids, day_ts, txn),
        labels=_label_frame(ids, day_ts, labels, rng),
    )


def _draw_traits(rng: np.random.Generator, n: int) -> _Traits:
    risk = rng.standard_normal(n)
    age = np.clip(np.rint(rng.normal(41.0, 12.0, n)), 19, 80).astype(np.int64)
    age_curve = 1.0 - 0.012 * np.abs(age - 48)
    income = _MEDIAN_INCOME * age_curve * rng.lognormal(-0.1 * risk, 0.5, n)
    return _Traits(
        risk=risk,
        age=age,
        birthday=rng.integers(0, 365, n),
        income=income,
        income_missing=rng.random(n) < 0.03,
        limit_ratio=rng.lognormal(np.log(2.5), 0.4, n),
        months=np.rint((age - 19) * 12 * rng.beta(2.0, 2.0, n)).astype(np.int64),
        lines=1 + rng.poisson(2.5, n),
        late=rng.poisson(np.exp(-1.8 + 0.8 * risk)),
        late_hazard=0.002 * np.exp(0.9 * risk),
        utilization=np.clip(rng.beta(2.0, 4.0, n) + 0.12 * risk, 0.0, 1.2),
        txn_rate=rng.lognormal(np.log(1.2), 1.0, n),
        amount_mu=np.log(25.0) + 0.4 * np.log(income / _MEDIAN_INCOME),
        night_p=np.clip(rng.beta(1.5, 12.0, n) + 0.04 * risk, 0.0, 0.9),
        novelty=rng.beta(3.0, 3.0, n),
    )


def _simulate_profiles(rng: np.random.Generator, tr: _Traits, days: int) -> dict[str, np.ndarray]:
    """Daily profile snapshots as (customer, day) arrays."""
    n = tr.age.size
    t = np.arange(days)
    util_noise = np.empty((n, days))
    state = rng.normal(0.0, 0.08, n)
    for d in range(days):
        state = 0.9 * state + rng.normal(0.0, 0.035, n)
        util_noise[:, d] = state
    limit_raises = np.cumsum(rng.random((n, days)) < 1 / 120, axis=1)
    limit = tr.income[:, None] * tr.limit_ratio[:, None] * 1.1**limit_raises
    income = np.broadcast_to(np.round(tr.income, -1)[:, None], (n, days)).copy()
    income[tr.income_missing, :] = np.nan
    income[rng.random((n, days)) < 0.005] = np.nan
    return {
        "age": tr.age[:, None] + (tr.birthday[:, None] + t) // 365,
        "income_monthly": income,
        "credit_limit": np.round(limit, -2),
        "credit_utilization": np.clip(tr.utilization[:, None] + util_noise + 0.0015 * t, 0, 1.5),
        "months_since_first_credit": tr.months[:, None] + (tr.birthday[:, None] % 30 + t) // 30,
        "num_credit_lines": tr.lines[:, None] + np.cumsum(rng.random((n, days)) < 0.002, axis=1),
        "late_payments_12m": tr.late[:, None]
        + np.cumsum(rng.random((n, days)) < tr.late_hazard[:, None], axis=1),
    }


def _simulate_transactions(
    rng: np.random.Generator, tr: _Traits, days: int
) -> dict[str, np.ndarray]:
    """Rolling-window aggregates of simulated daily activity, as (customer, day) arrays.

    Activity column j is calendar day `start - _HISTORY_DAYS + j`; the snapshot of day t covers
    activity columns [t, t + 30) for 30-day windows and [t + 23, t + 30) for 7-day windows.
    """
    n, width = tr.age.size, _HISTORY_DAYS + days
    growth = 1.0 + 0.002 * (np.arange(width) - _HISTORY_DAYS)
    counts = rng.poisson(tr.txn_rate[:, None] * growth)
    cell = np.repeat(np.arange(counts.size), counts.ravel())
    amounts = np.exp(tr.amount_mu[cell // width] + 0.9 * rng.standard_normal(cell.size))
    daily_amount = np.bincount(cell, weights=amounts, minlength=counts.size).reshape(n, width)
    night = rng.binomial(counts, tr.night_p[:, None])

    def window(values: np.ndarray, length: int) -> np.ndarray:
        cs = np.concatenate([np.zeros((n, 1)), np.cumsum(values, axis=1)], axis=1)
        end = cs[:, _HISTORY_DAYS : _HISTORY_DAYS + days]
        return np.asarray(end - cs[:, _HISTORY_DAYS - length : _HISTORY_DAYS - length + days])

    count30 = np.rint(window(counts, 30)).astype(np.int64)
    amount30 = np.round(window(daily_amount, 30), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        avg30 = np.where(count30 > 0, np.round(amount30 / count30, 2), np.nan)
        night30 = np.where(count30 > 0, window(night, 30) / count30, 0.0)
    distinct = np.where(
        count30 > 0, 1 + rng.binomial(np.maximum(count30 - 1, 0), tr.novelty[:, None]), 0
    )
    return {
        "txn_count_7d": np.rint(window(counts, 7)).astype(np.int64),
        "txn_amount_7d": np.round(window(daily_amount, 7), 1),
        "txn_count_30d": count30,
        "txn_amount_30d": amount30,
        "avg_txn_amount_30d": avg30,
        "night_txn_ratio_30d": np.round(night30, 4),
        "distinct_merchants_30d": distinct.astype(np.int64),
    }


def _draw_labels(
    rng: np.random.Generator,
    tr: _Traits,
    profile: dict[str, np.ndarray],
    txn: dict[str, np.ndarray],
) -> np.ndarray:
    """Credit decisions as a (customer, day) int array: -1 no decision, else defaulted_90d."""
    logit = (
        -3.45
        + 2.2 * (profile["credit_utilization"] - 0.4)
        + 0.45 * profile["late_payments_12m"]
        - 0.8 * np.log(tr.income / _MEDIAN_INCOME)[:, None]
        + 3.0 * (txn["night_txn_ratio_30d"] - 0.12)
        - 0.03 * (profile["age"] - 40)
        - 0.25 * (np.log1p(profile["months_since_first_credit"]) - 4.5)
        + 0.12 * (profile["num_credit_lines"] - 3)
        + 0.6 * tr.risk[:, None]
        + rng.normal(0.0, 0.4, profile["age"].shape)
    )
    defaulted = rng.random(logit.shape) < 1.0 / (1.0 + np.exp(-logit))
    decided = rng.random(logit.shape) < _DECISIONS_PER_CUSTOMER_DAY
    return np.where(decided, defaulted.astype(np.int64), -1)


def _day_timestamps(start: date, days: int) -> np.ndarray:
    first = np.datetime64(start.isoformat(), "ns")
    return np.asarray(first + np.arange(days) * np.timedelta64(1, "D"))


def _utc(values: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(values).tz_localize("UTC")


def _long_frame(ids: np.ndarray, day_ts: np.ndarray, cols: dict[str, np.ndarray]) -> pd.DataFrame:
    """(customer, day) arrays to rows ordered by day, then customer."""
    n, days = ids.size, day_ts.size
    data: dict[str, object] = {ENTITY: np.tile(ids, days), TIMESTAMP: _utc(np.repeat(day_ts, n))}
    data.update({name: values.T.ravel() for name, values in cols.items()})
    return pd.DataFrame(data)


def _label_frame(
    ids: np.ndarray, day_ts: np.ndarray, labels: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    cust, day = np.nonzero(labels >= 0)
    seconds = rng.integers(0, 86_400, cust.size) * np.timedelta64(1, "s")
    ts = day_ts[day] + seconds
    order = np.lexsort((ids[cust], ts))
    return pd.DataFrame(
        {
            ENTITY: ids[cust][order],
            TIMESTAMP: _utc(ts[order]),
            LABEL: labels[cust, day][order].astype(np.int64),
        }
    )


def training_frame(
    data: SampleData, ttl: timedelta | None = None, with_provenance: bool = False
) -> pd.DataFrame:
    """Labels joined to the latest feature values at or before each label's timestamp.

    The stand-in for the feature store's historical retrieval: point-in-time correct (a feature
    row stamped after the decision is never used) and, like a Feast view's `ttl`, a feature row
    older than `ttl` is treated as missing. Columns: entity, timestamp, FEATURES, label; with
    `with_provenance`, also `<view>__event_timestamp`, the feature row each value came from.
    """
    frame = data.labels.sort_values(TIMESTAMP, kind="stable")
    for view, table, names in (
        (PROFILE_VIEW, data.profiles, PROFILE_FEATURES),
        (TRANSACTION_VIEW, data.transactions, TRANSACTION_FEATURES),
    ):
        right = table[[ENTITY, TIMESTAMP, *names]].sort_values(TIMESTAMP, kind="stable")
        right[f"{view}__{TIMESTAMP}"] = right[TIMESTAMP]
        frame = pd.merge_asof(
            frame,
            right,
            on=TIMESTAMP,
            by=ENTITY,
            direction="backward",
            allow_exact_matches=True,
            tolerance=pd.Timedelta(ttl) if ttl is not None else None,
        )
    provenance = [f"{PROFILE_VIEW}__{TIMESTAMP}", f"{TRANSACTION_VIEW}__{TIMESTAMP}"]
    provenance = provenance if with_provenance else []
    frame = frame[[ENTITY, TIMESTAMP, *FEATURES, LABEL, *provenance]]
    return frame.sort_values([TIMESTAMP, ENTITY], kind="stable").reset_index(drop=True)


def write_parquet(
    data: SampleData, out_dir: Path | str, partition_by_date: bool = True
) -> dict[str, list[Path]]:
    """Write each table under `out_dir/<table>/`, Hive-style `dt=YYYY-MM-DD/part-0.parquet`.

    Timestamps are stored as microseconds (what Athena and Feast's offline stores read); the
    partition column lives in the path only. Returns the written files per table.
    """
    tables = {PROFILE_VIEW: data.profiles, TRANSACTION_VIEW: data.transactions}
    tables[LABEL_TABLE] = data.labels
    written: dict[str, list[Path]] = {}
    for name, frame in tables.items():
        root = Path(out_dir) / name
        if not partition_by_date:
            written[name] = [write_frame(frame, root / "part-0.parquet")]
            continue
        dates = frame[TIMESTAMP].dt.strftime("%Y-%m-%d")
        written[name] = [
            write_frame(part, root / f"dt={day}" / "part-0.parquet")
            for day, part in frame.groupby(dates, sort=True)
        ]
    return written


def write_frame(frame: pd.DataFrame, path: Path) -> Path:
    """Write one frame as a single Parquet file, without the pandas index."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path, coerce_timestamps="us", allow_truncated_timestamps=False)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m pipelines.sample_data --out DIR`: write the tables and the training frame."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2024, 1, 1))
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data = generate(args.customers, args.start, args.days, args.seed)
    files = write_parquet(data, args.out)
    frame = training_frame(data)
    write_frame(frame, args.out / "training_frame" / "part-0.parquet")
    logger.info(
        "wrote %d files under %s; training frame: %d rows, default rate %.3f",
        sum(len(paths) for paths in files.values()) + 1,
        args.out,
        len(frame),
        frame[LABEL].mean(),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
