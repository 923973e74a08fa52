"""Feast 0.67's Redis online-store format, produced and read in bulk.

Layout (feast/infra/online_stores/redis.py): one Redis hash per entity, keyed by
``serialize_entity_key(EntityKey, version) + project``; per feature view the hash holds
``_mmh3("<view>:<feature>") -> Value proto bytes`` and ``"_ts:<view>" -> Timestamp proto bytes``.
Views over the same entity share the hash.

Every byte written or read is produced by Feast's own helpers; bulk speed comes from calling them
once per *distinct* value (columns repeat a lot) and from splicing the 8-byte entity id into a
key template that Feast's serializer produced and that is re-verified against it on probes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from feast import FeatureView, RepoConfig, ValueType
from feast.infra.online_stores.helpers import _mmh3, _redis_key, compute_versioned_name
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values
from feast.utils import make_tzaware
from google.protobuf.timestamp_pb2 import Timestamp  # type: ignore[import-untyped]

_IMMUTABLE = (int, float, str, bytes, bool)
_PROBE_IDS = (0, 1, -1, 1_000_001, 2**62 + 12_345, -(2**63))


def entity_key_proto(join_key: str, entity_id: int) -> EntityKeyProto:
    return EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(int64_val=entity_id)])


class EntityKeys:
    """Redis keys of a single int64 join key, exactly as Feast's `_redis_key` builds them."""

    def __init__(self, project: str, join_key: str, serialization_version: int) -> None:
        self.project = project
        self.join_key = join_key
        self.version = serialization_version
        self._template = self._splice_template()

    def feast_key(self, entity_id: int) -> bytes:
        """Feast's own serialization of one key (the reference for the fast path)."""
        return _redis_key(
            self.project,
            entity_key_proto(self.join_key, entity_id),
            entity_key_serialization_version=self.version,
        )

    def _splice_template(self) -> tuple[bytes, bytes] | None:
        """(prefix, suffix) around the little-endian id, or None if Feast's layout is not that."""
        zero, ones = self.feast_key(0), self.feast_key(-1)
        if len(zero) != len(ones):
            return None
        start = next((i for i, (a, b) in enumerate(zip(zero, ones, strict=True)) if a != b), 0)
        prefix, suffix = zero[:start], zero[start + 8 :]
        for probe in _PROBE_IDS:
            if prefix + struct.pack("<q", probe) + suffix != self.feast_key(probe):
                return None
        return prefix, suffix

    @property
    def template(self) -> tuple[bytes, bytes] | None:
        """(prefix, suffix) around the 8-byte little-endian id, verified against Feast."""
        return self._template

    @property
    def fast(self) -> bool:
        """Whether keys are spliced (False means one Feast call per key; still exact)."""
        return self._template is not None

    def keys(self, entity_ids: Sequence[int] | np.ndarray) -> list[bytes]:
        if self._template is None:
            return [self.feast_key(int(entity_id)) for entity_id in entity_ids]
        prefix, suffix = self._template
        raw = np.ascontiguousarray(entity_ids, dtype="<i8").tobytes()
        return [prefix + raw[i : i + 8] + suffix for i in range(0, len(raw), 8)]


def view_name(view: FeatureView, config: RepoConfig) -> str:
    """The name Feast stores a view's fields under (suffixed when view versioning is on)."""
    return str(compute_versioned_name(view, config.registry.enable_online_feature_view_versioning))


def feature_field(stored_view_name: str, feature: str) -> bytes:
    return bytes(_mmh3(f"{stored_view_name}:{feature}"))


def timestamp_field(stored_view_name: str) -> bytes:
    return f"_ts:{stored_view_name}".encode()


def _distinct_encode(values: np.ndarray, value_type: ValueType) -> np.ndarray:
    """Serialized Value protos of `values` (no nulls), one Feast conversion per distinct value.

    Floats are deduplicated by bit pattern so -0.0 and 0.0 keep their own encodings.
    """
    out = np.empty(values.size, dtype=object)
    if values.size == 0:
        return out
    if values.dtype.kind == "f":
        bits = np.ascontiguousarray(values, dtype=np.float64).view(np.int64)
        _, first, inverse = np.unique(bits, return_index=True, return_inverse=True)
        distinct = values[first]
    elif values.dtype.kind in "iub":
        distinct, inverse = np.unique(values, return_inverse=True)
    else:
        distinct, inverse = values, np.arange(values.size)
    protos = python_values_to_proto_values(list(distinct), value_type)
    encoded = np.empty(len(protos), dtype=object)
    encoded[:] = [proto.SerializeToString() for proto in protos]
    out[:] = encoded[inverse.ravel()]
    return out


def encode_column(column: pa.Array | pa.ChunkedArray, value_type: ValueType) -> np.ndarray:
    """Serialized Value protos for every row of an Arrow column (nulls and NaN as Feast: empty)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    floating = pa.types.is_floating(array.type)
    missing = pc.is_null(array, nan_is_null=floating).to_numpy(zero_copy_only=False)
    out = np.empty(len(array), dtype=object)
    if missing.any():
        null_proto = python_values_to_proto_values([None], value_type)[0]
        out[missing] = null_proto.SerializeToString()
    valid = array.filter(pc.invert(pa.array(missing))) if missing.any() else array
    out[~missing] = _distinct_encode(valid.to_numpy(zero_copy_only=False), value_type)
    return out


def encode_timestamps(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Serialized `Timestamp` protos as Feast's `online_write_batch` writes `_ts:<view>`."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    values = pd.to_datetime(array.to_numpy(zero_copy_only=False), utc=True)
    codes, distinct = pd.factorize(values)
    encoded = np.empty(len(distinct), dtype=object)
    encoded[:] = [_timestamp_bytes(moment.to_pydatetime()) for moment in distinct]
    return np.asarray(encoded[codes], dtype=object)


def _timestamp_bytes(moment: datetime) -> bytes:
    proto = Timestamp()
    proto.FromDatetime(make_tzaware(moment))
    return bytes(proto.SerializeToString())


def decode_timestamp_proto(raw: bytes) -> Timestamp:
    proto = Timestamp()
    proto.ParseFromString(raw)
    return proto


@lru_cache(maxsize=8_192)
def decode_timestamp(raw: bytes) -> datetime:
    """The event time of a `_ts:<view>` field (UTC), as Feast's online read computes it."""
    proto = decode_timestamp_proto(raw)
    return datetime.fromtimestamp(proto.seconds + proto.nanos / 1_000_000_000.0, tz=UTC)


class ValueDecoder:
    """Value proto bytes to Python values, as `OnlineResponse.to_dict` converts them.

    Decoded scalars are memoised by their bytes per value type (features repeat across
    entities); each memo is bounded and simply cleared when full.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self._memo: dict[ValueType, dict[bytes, Any]] = {}
        self._max = max_entries

    def decode(self, raw: bytes | None, value_type: ValueType) -> Any:
        if not raw:
            return None
        memo = self._memo.setdefault(value_type, {})
        if raw in memo:
            return memo[raw]
        proto = ValueProto()
        proto.ParseFromString(raw)
        value = feast_value_type_to_python_type(proto, value_type)
        if not isinstance(value, _IMMUTABLE):
            return value
        if len(memo) >= self._max:
            memo.clear()
        memo[raw] = value
        return value
