"""Online feature reads without Feast: a precomputed plan of Redis fields, and the read loop.

Feast's Redis layout (features/codec.py) is fixed once the registry is known: the entity key is a
byte template around the 8-byte little-endian id, every feature is a hash field named by a
murmur3 hash, and each view has a `_ts:<view>` field. `features.online` computes a `RedisPlan`
from the registry; this module needs only redis-py to follow it, so the serving app (and its
Lambda package) carries neither Feast nor pandas. Plans are JSON-serialisable (`to_dict`,
`from_dict`) so they can be computed at synth time and shipped as configuration.

Values are Feast `Value` protos; `decode_value` reads the scalar kinds feature views use for
model inputs (int32, int64, float, double, bool, string, bytes) straight from the protobuf wire
format. Other kinds are refused when the plan is built (`SUPPORTED_VALUE_TYPES`), not at read
time. Parity with Feast's own conversion is pinned by tests/integration/features/test_online.py.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

# Feast ValueType names a plan may carry, and the Value proto field each is stored in.
SUPPORTED_VALUE_TYPES = frozenset({"INT32", "INT64", "FLOAT", "DOUBLE", "BOOL", "STRING", "BYTES"})
_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")
_INT64 = struct.Struct("<q")
_NULL_FIELD = 19
# One round trip and one reply for any number of entities: HMGET of the plan's fields per key,
# run inside Redis. Against a pipeline of HMGETs it halves the client's work for a batch of 100
# (docs/benchmarks.md); the server does the same reads. Single-node Redis (as the materializer).
READ_SCRIPT = (
    "local out = {} for i, key in ipairs(KEYS) do "
    "out[i] = redis.call('HMGET', key, unpack(ARGV)) end return out"
)
_MEMO_LIMIT = 100_000


@dataclass(frozen=True)
class ViewPlan:
    """One feature view's fields: its event-time field, TTL and (output name, field) pairs."""

    name: str
    ttl_seconds: float | None
    timestamp_field: bytes
    features: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class RedisPlan:
    """Where one feature spec's values live in Redis, for int64-keyed entities."""

    join_key: str
    key_prefix: bytes
    key_suffix: bytes
    views: tuple[ViewPlan, ...]

    @property
    def fields(self) -> list[bytes]:
        """The HMGET field list: per view, its timestamp field then its features."""
        out: list[bytes] = []
        for view in self.views:
            out.append(view.timestamp_field)
            out.extend(field for _, field in view.features)
        return out

    @property
    def outputs(self) -> list[str]:
        return [name for view in self.views for name, _ in view.features]

    def keys(self, entity_ids: Sequence[int]) -> list[bytes]:
        prefix, suffix = self.key_prefix, self.key_suffix
        return [prefix + _INT64.pack(entity_id) + suffix for entity_id in entity_ids]

    def to_dict(self) -> dict[str, Any]:
        return {
            "join_key": self.join_key,
            "key_prefix": self.key_prefix.hex(),
            "key_suffix": self.key_suffix.hex(),
            "views": [
                {
                    "name": view.name,
                    "ttl_seconds": view.ttl_seconds,
                    "timestamp_field": view.timestamp_field.hex(),
                    "features": [[name, field.hex()] for name, field in view.features],
                }
                for view in self.views
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RedisPlan:
        """The inverse of `to_dict`; raises ValueError naming what is malformed."""
        try:
            views = tuple(
                ViewPlan(
                    name=str(view["name"]),
                    ttl_seconds=None if view["ttl_seconds"] is None else float(view["ttl_seconds"]),
                    timestamp_field=bytes.fromhex(view["timestamp_field"]),
                    features=tuple(
                        (str(name), bytes.fromhex(field)) for name, field in view["features"]
                    ),
                )
                for view in data["views"]
            )
            plan = cls(
                join_key=str(data["join_key"]),
                key_prefix=bytes.fromhex(data["key_prefix"]),
                key_suffix=bytes.fromhex(data["key_suffix"]),
                views=views,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed feature plan: {exc!r}") from exc
        if not views or not plan.outputs:
            raise ValueError("malformed feature plan: no features")
        return plan


class PlanReader:
    """Reads plans' features from one Redis: one script call (`READ_SCRIPT`) per request.

    With `enforce_ttl` a view's values older than its TTL (by `clock`, epoch seconds) are None;
    a never-materialised entity gets None everywhere, as in Feast.
    """

    def __init__(
        self,
        client: redis.Redis | None = None,
        *,
        enforce_ttl: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self._enforce_ttl = enforce_ttl
        self._clock = clock
        self._values: dict[bytes, Any] = {}
        self._times: dict[bytes, float] = {}

    def read(self, plan: RedisPlan, entity_ids: Sequence[int]) -> list[list[Any]]:
        """Per entity, in order: the plan's output values (`plan.outputs` order)."""
        if self.client is None:
            raise RuntimeError("this reader has no Redis client; use decode() on replies")
        if not entity_ids:
            return []
        execute: Callable[..., Any] = self.client.execute_command  # untyped in redis-py
        replies = execute(*read_command(plan, entity_ids))
        return self.decode(plan, replies)

    def decode(self, plan: RedisPlan, replies: Sequence[list[bytes | None]]) -> list[list[Any]]:
        """Rows from HMGET replies of `plan.fields` (for callers that run Redis themselves,
        e.g. with redis.asyncio)."""
        now = self._clock()
        return [self._row(plan, values, now) for values in replies]

    def _row(self, plan: RedisPlan, values: list[bytes | None], now: float) -> list[Any]:
        row: list[Any] = []
        position = 0
        for view in plan.views:
            raw_ts = values[position]
            expired = (
                self._enforce_ttl
                and view.ttl_seconds is not None
                and (raw_ts is None or self._event_time(raw_ts) < now - view.ttl_seconds)
            )
            width = len(view.features)
            if expired:
                row.extend([None] * width)
            else:
                row.extend(self._value(raw) for raw in values[position + 1 : position + 1 + width])
            position += 1 + width
        return row

    def _value(self, raw: bytes | None) -> Any:
        if not raw:
            return None
        memo = self._values
        if raw in memo:
            return memo[raw]
        value = decode_value(raw)
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[raw] = value
        return value

    def _event_time(self, raw: bytes) -> float:
        memo = self._times
        if raw not in memo:
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo[raw] = decode_timestamp_seconds(raw)
        return memo[raw]


def read_command(plan: RedisPlan, entity_ids: Sequence[int]) -> tuple[Any, ...]:
    """The EVAL command reading `plan`'s fields of `entity_ids` (replies as `decode` takes them)."""
    keys = plan.keys(entity_ids)
    return ("EVAL", READ_SCRIPT, len(keys), *keys, *plan.fields)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("malformed varint")


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _fields(data: bytes) -> list[tuple[int, Any]]:
    """(field number, raw value) pairs of a protobuf message; ints for varints and fixed."""
    out: list[tuple[int, Any]] = []
    pos, end = 0, len(data)
    while pos < end:
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > end:
            raise ValueError("truncated protobuf message")
        out.append((number, value))
    return out


_SCALARS: dict[int, Callable[[Any], Any]] = {
    1: bytes,  # bytes_val
    2: lambda raw: raw.decode("utf-8"),  # string_val
    3: _signed,  # int32_val (negative values are sign-extended to 64 bits)
    4: _signed,  # int64_val
    5: lambda raw: _DOUBLE.unpack(raw)[0],  # double_val
    6: lambda raw: _FLOAT.unpack(raw)[0],  # float_val
    7: bool,  # bool_val
}


def decode_value(raw: bytes) -> Any:
    """A serialized Feast `Value` proto as the Python value Feast's online read returns.

    Empty bytes and `null_val` are None; non-scalar kinds raise ValueError (plans never ask for
    them)."""
    value: Any = None
    for number, payload in _fields(raw):
        if number == _NULL_FIELD:
            value = None
        elif number in _SCALARS:
            value = _SCALARS[number](payload)
        else:
            raise ValueError(f"Value proto field {number} is not a scalar this reader supports")
    return value


def decode_timestamp_seconds(raw: bytes) -> float:
    """Epoch seconds of a serialized `google.protobuf.Timestamp` (Feast's `_ts:<view>`)."""
    seconds = nanos = 0
    for number, payload in _fields(raw):
        if number == 1:
            seconds = _signed(payload)
        elif number == 2:
            nanos = payload
    return seconds + nanos / 1_000_000_000.0
