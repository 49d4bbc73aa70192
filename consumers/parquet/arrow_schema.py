"""Avro schema → Arrow schema, and the `TableSpec` the Parquet writer buffers rows with.

Pure: no I/O except `load_avro_schema`. The mapping follows the `schemas/` conventions:

| Avro | Arrow |
|---|---|
| `string` / `enum` / `uuid` | `string` |
| `string` with `"kracked.decimal": true` (on the field or the type) | `decimal128(38, 18)` |
| `long` / `int` | `int64` / `int32` |
| `boolean` · `bytes` · `fixed` · `float` · `double` | `bool` · `binary` · `fixed_size_binary` · `float32` · `float64` |
| `timestamp-micros` / `timestamp-millis` | `timestamp("us"/"ms", tz="UTC")` |
| `local-timestamp-*` · `date` · `time-*` | naive `timestamp` · `date32` · `time32/64` |
| `decimal` logical type (bytes/fixed) | `decimal128(p, s)` (`decimal256` above 38 digits) |
| record · array · map | `struct` · `list` · `map<string, …>` |
| `["null", X]` | X, nullable |
| a union of several non-null branches | `string` holding the value's JSON text (Parquet has no union) |

Decimal text is checked when a record is added (`TableSpec.extract`), so that a value that cannot be
stored exactly (> 18 decimals, > 20 integer digits) fails for that record alone, with a `ValueError`
the service dead-letters, instead of failing a whole file later. Exponent forms (`1E-8`, allowed by
`schemas/README.md`) are rewritten as plain text. Everything else is trusted to the Avro decoder,
which already guarantees the types; text that is not a number at all (which the Avro contract forbids)
is caught when Arrow converts the column and the writer isolates that row (`writer.Rejected`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from operator import itemgetter
from pathlib import Path
from typing import Any

import pyarrow as pa

DECIMAL_PROP = "kracked.decimal"
DECIMAL_TYPE = pa.decimal128(38, 18)
DECIMAL_SCALE = 18
DECIMAL_INT_DIGITS = 20  # 38 digits of precision minus 18 decimals
TIMESTAMP_US = pa.timestamp("us", tz="UTC")

# Fields tried, in order, for the date partition of a record: Kraken's event time first (a trade
# belongs to the day Kraken says it happened), then the connector's receive time, then the start of
# an interval record (bars, spreads), then the production time of kracked's own records, and last any
# other timestamp field in schema order (orders: `ts_signal`, signals: `created_at`). The first
# non-null one wins; a record with none goes to the null date partition.
TIME_FIELDS: tuple[str, ...] = ("ts_event", "ts_recv", "start", "ts")
SYMBOL_FIELD = "symbol"
DATE_COLUMN = "date"  # the Hive partition column the layout adds; no field may use the name

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
# Plain decimal text that fits decimal128(38, 18) as is (no exponent, <= 20 + 18 digits).
_PLAIN_DECIMAL = re.compile(r"-?(?:0|[1-9]\d{0,19})(?:\.\d{1,18})?")

Normalizer = Callable[[Any], Any]
_MISSING = object()


def _fits(value: Any) -> bool:
    """Cheap test that decimal text can be cast to decimal128(38, 18) without loss, if it is a number.

    Text shorter than 20 characters without an exponent cannot hold more than 18 decimals (that takes
    '.' and 19 digits) nor more than 19 integer digits. This is all the hot path checks (a regex costs
    ~300 ns per value on the target machine, which alone would halve the writer's throughput); text
    that is not a number at all breaks the Avro contract and is caught when Arrow casts the column,
    which isolates that row (`writer.Rejected`).
    """
    return type(value) is str and len(value) < 20 and "e" not in value and "E" not in value


def decimal_text(value: Any) -> str:
    """Decimal text that fits decimal128(38, 18) exactly, or ValueError (the full check).

    Plain text is returned as is; anything else (exponent `1E-8`, `+`, trailing zeros beyond 18
    decimals, a `Decimal`) is parsed with `Decimal` and re-rendered without exponent; values that
    would need rounding are refused, never rounded. The writer's hot path first tries `_fits`.
    """
    return _slow_decimal_text(value)


def _slow_decimal_text(value: Any) -> str:
    if type(value) is str and _PLAIN_DECIMAL.fullmatch(value):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError(f"not a decimal text: {value!r}")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise ValueError(f"not a decimal text: {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"not a finite decimal: {value!r}")
    if number.is_zero():
        return "0"
    reduced = number.normalize()
    exponent = reduced.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -DECIMAL_SCALE:
        raise ValueError(f"{value!r} has more than {DECIMAL_SCALE} decimals (decimal128(38, 18))")
    if reduced.adjusted() >= DECIMAL_INT_DIGITS:
        raise ValueError(f"{value!r} has more than {DECIMAL_INT_DIGITS} integer digits (decimal128(38, 18))")
    return format(reduced, "f")


@dataclass(frozen=True)
class ColumnSpec:
    """One top-level column: its final Arrow type and how Python values become it.

    `staging` is the Arrow type the buffered Python values are built as (decimal text as `string`),
    cast to `type` at flush; `normalize` runs per value at add time (decimal checks) and returns the
    value itself when it is already fine, so the common path allocates nothing.
    """

    name: str
    type: pa.DataType
    nullable: bool = True
    staging: pa.DataType | None = None
    normalize: Normalizer | None = None
    as_json: bool = False
    dictionary: bool = False
    default: Any = None
    has_default: bool = False

    @property
    def field(self) -> pa.Field:
        return pa.field(self.name, self.type, nullable=self.nullable)

    def to_arrow(self, values: Sequence[Any]) -> pa.Array:
        """Python values → Arrow array of `type` (ValueError/ArrowException when a value does not fit)."""
        if self.as_json:
            values = [None if v is None else _json_text(v) for v in values]
        array = pa.array(values, type=self.staging if self.staging is not None else self.type)
        if self.staging is not None:
            array = cast_exact(array, self.type)
        if not self.nullable and array.null_count:
            raise ValueError(f"{self.name}: null in a required field")
        return array


class TableSpec:
    """How the records of one dataset become rows: columns, extraction, partition keys.

    `extract(record)` returns a tuple of values in column order (one C call to `itemgetter` in the
    common case), with decimal text checked; the writer buffers those tuples and transposes them to
    columns at flush. `symbol` is a Hive partition column of the layout, so it is taken out of the
    files (`file_schema`): a reader gets it back from the path as `BASE-QUOTE` (DuckDB and pyarrow
    would otherwise see the same name twice, and pandas refuses the clash).
    """

    def __init__(
        self,
        name: str,
        columns: Sequence[ColumnSpec],
        *,
        symbol_field: str | None = SYMBOL_FIELD,
        time_fields: Sequence[str] = TIME_FIELDS,
    ) -> None:
        names = [c.name for c in columns]
        if not names:
            raise ValueError(f"{name}: a dataset needs at least one column")
        if len(set(names)) != len(names):
            raise ValueError(f"{name}: duplicate column names")
        if DATE_COLUMN in names:
            raise ValueError(f"{name}: a field named {DATE_COLUMN!r} would clash with the date partition")
        self.name = name
        self.columns: tuple[ColumnSpec, ...] = tuple(columns)
        self.names: tuple[str, ...] = tuple(names)
        self.symbol_index: int | None = names.index(symbol_field) if symbol_field in names else None
        stamps = [n for n, c in zip(names, columns, strict=True) if pa.types.is_timestamp(c.type)]
        ordered = [f for f in time_fields if f in stamps] + [n for n in stamps if n not in time_fields]
        self.time_indexes: tuple[tuple[int, int], ...] = tuple(
            (names.index(f), _units_per_day(self.columns[names.index(f)].type)) for f in ordered
        )
        self.file_indexes: tuple[int, ...] = tuple(i for i in range(len(names)) if i != self.symbol_index)
        self.arrow_schema = pa.schema([c.field for c in self.columns])
        self.file_schema = pa.schema([self.columns[i].field for i in self.file_indexes])
        self.dictionary_columns: tuple[str, ...] = tuple(
            self.columns[i].name for i in self.file_indexes if self.columns[i].dictionary
        )
        self._getter = itemgetter(*names)
        self._single = len(names) == 1
        # Top-level decimal text is checked inline (one regex call, no Python frame) on the hot path.
        self._decimal_indexes = tuple(
            i for i, c in enumerate(self.columns) if c.normalize is not None and c.type == DECIMAL_TYPE
        )
        self._checks = tuple(
            (i, c.normalize)
            for i, c in enumerate(self.columns)
            if c.normalize is not None and i not in self._decimal_indexes
        )
        # Estimated Arrow bytes per row, refined by the writer from real tables.
        self.row_bytes: float = float(sum(_estimate_bytes(c.type) for c in self.columns))

    def extract(self, record: Mapping[str, Any]) -> tuple[Any, ...]:
        """Record → tuple of column values (decimal text checked); ValueError when it cannot be stored."""
        try:
            values = self._getter(record)
        except KeyError:
            values = self._extract_with_defaults(record)
        except TypeError:
            raise ValueError(
                f"{self.name}: a record must be a mapping, got {type(record).__name__}"
            ) from None
        if self._single:
            values = (values,)
        for i in self._decimal_indexes:
            value = values[i]
            # Inline `_fits` (a call per value costs as much as the test).
            if type(value) is not str or len(value) > 19 or "e" in value or "E" in value:
                values = self._normalize_at(values, i)
        for i, _ in self._checks:
            values = self._normalize_at(values, i)
        return values

    def _normalize_at(self, values: tuple[Any, ...], i: int) -> tuple[Any, ...]:
        value = values[i]
        normalize = self.columns[i].normalize
        if normalize is None:
            return values
        try:
            new = normalize(value)
        except ValueError as exc:
            raise ValueError(f"{self.name}.{self.names[i]}: {exc}") from None
        return values if new is value else (*values[:i], new, *values[i + 1 :])

    def _extract_with_defaults(self, record: Mapping[str, Any]) -> tuple[Any, ...]:
        # A record written with an older schema lacks the fields added since: Avro's rule is to use
        # the field's default, and a field with neither value nor default cannot be stored.
        out = []
        for column in self.columns:
            value = record.get(column.name, _MISSING)
            if value is _MISSING:
                if column.has_default:
                    value = column.default
                elif column.nullable:
                    value = None
                else:
                    raise ValueError(f"{self.name}: missing required field {column.name!r}")
            out.append(value)
        return tuple(out)

    def day_of(self, values: Sequence[Any]) -> int | None:
        """Days since 1970-01-01 (UTC) of the first non-null time field, None when there is none."""
        for i, per_day in self.time_indexes:
            value = values[i]
            if value is None:
                continue
            if type(value) is int:
                return value // per_day
            if isinstance(value, dt.datetime):
                aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
                return (aware - _EPOCH).days
        return None


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _units_per_day(ts_type: pa.DataType) -> int:
    return 86_400 * {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[ts_type.unit]


def _estimate_bytes(t: pa.DataType) -> int:
    if pa.types.is_decimal(t):
        return 16
    if pa.types.is_string(t) or pa.types.is_binary(t):
        return 24
    if pa.types.is_list(t) or pa.types.is_map(t):
        return 256
    if pa.types.is_struct(t):
        return sum(_estimate_bytes(f.type) for f in t)
    width = getattr(t, "bit_width", 64)
    return max(1, width // 8)


def cast_exact(array: pa.Array, target: pa.DataType) -> pa.Array:
    """Cast staging values (decimal text) to `target`, nested types included.

    Arrow's own cast of a struct casts the children's hidden values under null parents too; those are
    empty strings, which cannot become decimals. Children are therefore cast with the parent's nulls
    merged in (`StructArray.flatten`), and lists/maps are rebuilt from their cast values.
    """
    if array.type.equals(target):
        return array
    if pa.types.is_struct(target):
        children = [cast_exact(child, f.type) for child, f in zip(array.flatten(), target, strict=True)]
        mask = array.is_null() if array.null_count else None
        return pa.StructArray.from_arrays(children, fields=list(target), mask=mask)
    if pa.types.is_map(target):
        keys = cast_exact(array.keys, target.key_type)
        items = cast_exact(array.items, target.item_type)
        mask = array.is_null() if array.null_count else None
        return pa.MapArray.from_arrays(array.offsets, keys, items, type=target, mask=mask)
    if pa.types.is_list(target):
        values = cast_exact(array.values, target.value_type)
        mask = array.is_null() if array.null_count else None
        return pa.ListArray.from_arrays(array.offsets, values, type=target, mask=mask)
    return array.cast(target)


def _json_text(value: Any) -> str:
    return json.dumps(value, default=_json_default, separators=(",", ":"), sort_keys=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Decimal | dt.datetime | dt.date | dt.time):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


# --------------------------------------------------------------------------- Avro → Arrow mapping


@dataclass(frozen=True)
class _Mapped:
    type: pa.DataType
    staging: pa.DataType  # same as type when no cast is needed
    normalize: Normalizer | None  # add-time check (decimal text), None when nothing to check
    as_json: bool = False
    dictionary: bool = False


class _Names:
    """Avro named types (records, enums, fixed) seen so far, by full name."""

    def __init__(self) -> None:
        self.types: dict[str, Mapping[str, Any]] = {}

    @staticmethod
    def fullname(name: str, namespace: str | None) -> str:
        return name if "." in name or not namespace else f"{namespace}.{name}"

    def lookup(self, name: str, namespace: str | None) -> Mapping[str, Any] | None:
        return self.types.get(self.fullname(name, namespace)) or self.types.get(name)


def load_avro_schema(path: str | Path) -> dict[str, Any]:
    """Parse an `.avsc` file (plain JSON)."""
    with open(path, encoding="utf-8") as f:
        schema = json.load(f)
    if not isinstance(schema, dict):
        raise ValueError(f"{path}: the top-level Avro schema must be a record")
    return schema


def avro_to_arrow(schema: Mapping[str, Any] | str) -> pa.Schema:
    """The Arrow schema of an Avro record schema (a parsed `.avsc` or its JSON text)."""
    return table_spec(schema).arrow_schema


def table_spec(schema: Mapping[str, Any] | str, name: str | None = None) -> TableSpec:
    """The TableSpec of an Avro record schema; `name` defaults to the record's full name."""
    parsed: Any = json.loads(schema) if isinstance(schema, str) else schema
    if not isinstance(parsed, Mapping) or parsed.get("type") != "record":
        raise ValueError("the top-level Avro schema must be a record")
    names = _Names()
    namespace = parsed.get("namespace")
    full = names.fullname(str(parsed["name"]), namespace)
    names.types[full] = parsed
    namespace = full.rpartition(".")[0] or None
    columns = []
    for field in parsed.get("fields", []):
        nullable, inner = _split_nullable(field["type"])
        mapped = _map_type(inner, names, namespace, bool(field.get(DECIMAL_PROP)), nullable, field["name"])
        columns.append(
            ColumnSpec(
                name=field["name"],
                type=mapped.type,
                nullable=nullable,
                staging=None if mapped.staging.equals(mapped.type) else mapped.staging,
                normalize=mapped.normalize,
                as_json=mapped.as_json,
                dictionary=mapped.dictionary,
                default=field.get("default"),
                has_default="default" in field,
            )
        )
    return TableSpec(name or full, columns)


def _split_nullable(avro: Any) -> tuple[bool, Any]:
    """(nullable, the type without its null branch) for `["null", X]`; unions of more stay unions."""
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        nullable = len(branches) != len(avro)
        if len(branches) == 1:
            return nullable, branches[0]
        if not branches:
            return True, "null"
        return nullable, branches
    return False, avro


def _map_type(
    avro: Any, names: _Names, namespace: str | None, decimal: bool, nullable: bool, where: str
) -> _Mapped:
    if isinstance(avro, list):  # a union of several non-null branches: no Parquet equivalent
        return _Mapped(pa.string(), pa.string(), None, as_json=True)
    if isinstance(avro, str):
        if avro in _PRIMITIVES:
            return _map_primitive(avro, decimal, nullable, where)
        named = names.lookup(avro, namespace)
        if named is None:
            raise ValueError(f"{where}: unknown Avro type {avro!r}")
        return _map_named(named, names, namespace, decimal, nullable, where, defined=True)
    if not isinstance(avro, Mapping):
        raise ValueError(f"{where}: not an Avro type: {avro!r}")
    decimal = decimal or bool(avro.get(DECIMAL_PROP))
    kind = avro.get("type")
    logical = avro.get("logicalType")
    if isinstance(kind, list | Mapping):
        return _map_type(kind, names, namespace, decimal, nullable, where)
    if logical is not None:
        mapped = _map_logical(avro, str(kind), str(logical))
        if mapped is not None:
            return mapped
    if kind in _PRIMITIVES:
        return _map_primitive(str(kind), decimal, nullable, where)
    if kind == "array":
        item_nullable, item = _split_nullable(avro["items"])
        inner = _map_type(item, names, namespace, decimal, item_nullable, where)
        value_field = pa.field("item", inner.type, nullable=item_nullable)
        staging_field = pa.field("item", inner.staging, nullable=item_nullable)
        return _Mapped(
            pa.list_(value_field),
            pa.list_(staging_field),
            _list_normalizer(inner.normalize, nullable) if inner.normalize else None,
            as_json=inner.as_json,
        )
    if kind == "map":
        value_nullable, value = _split_nullable(avro["values"])
        inner = _map_type(value, names, namespace, decimal, value_nullable, where)
        return _Mapped(
            pa.map_(pa.string(), pa.field("value", inner.type, nullable=value_nullable)),
            pa.map_(pa.string(), pa.field("value", inner.staging, nullable=value_nullable)),
            _map_normalizer(inner.normalize, nullable) if inner.normalize else None,
            as_json=inner.as_json,
        )
    if kind in ("record", "enum", "fixed"):
        return _map_named(avro, names, namespace, decimal, nullable, where, defined=False)
    raise ValueError(f"{where}: unsupported Avro type {kind!r}")


def _map_primitive(kind: str, decimal: bool, nullable: bool, where: str) -> _Mapped:
    if kind == "string" and decimal:
        return _Mapped(DECIMAL_TYPE, pa.string(), decimal_normalizer(nullable))
    arrow = {
        "null": pa.null(),
        "boolean": pa.bool_(),
        "int": pa.int32(),
        "long": pa.int64(),
        "float": pa.float32(),
        "double": pa.float64(),
        "bytes": pa.binary(),
        "string": pa.string(),
    }[kind]
    # Symbol-like strings (sides, types, statuses, symbols) repeat a lot: dictionary-encode them;
    # identifiers are unique per row, where a dictionary only costs.
    dictionary = kind == "string" and not where.endswith("id")
    return _Mapped(arrow, arrow, None, dictionary=dictionary)


def _map_logical(avro: Mapping[str, Any], kind: str, logical: str) -> _Mapped | None:
    arrow: pa.DataType | None = None
    if logical == "timestamp-micros" and kind == "long":
        arrow = TIMESTAMP_US
    elif logical == "timestamp-millis" and kind == "long":
        arrow = pa.timestamp("ms", tz="UTC")
    elif logical == "timestamp-nanos" and kind == "long":
        arrow = pa.timestamp("ns", tz="UTC")
    elif logical == "local-timestamp-micros" and kind == "long":
        arrow = pa.timestamp("us")
    elif logical == "local-timestamp-millis" and kind == "long":
        arrow = pa.timestamp("ms")
    elif logical == "date" and kind == "int":
        arrow = pa.date32()
    elif logical == "time-millis" and kind == "int":
        arrow = pa.time32("ms")
    elif logical == "time-micros" and kind == "long":
        arrow = pa.time64("us")
    elif logical == "uuid" and kind == "string":
        arrow = pa.string()
    elif logical == "decimal" and kind in ("bytes", "fixed"):
        precision = int(avro["precision"])
        scale = int(avro.get("scale", 0))
        arrow = pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
    if arrow is None:
        return None  # unknown logical types fall back to the underlying type (Avro spec)
    return _Mapped(arrow, arrow, None)


def _map_named(
    avro: Mapping[str, Any],
    names: _Names,
    namespace: str | None,
    decimal: bool,
    nullable: bool,
    where: str,
    *,
    defined: bool,
) -> _Mapped:
    kind = avro["type"]
    full = names.fullname(str(avro["name"]), avro.get("namespace") or namespace)
    if not defined:
        names.types[full] = avro
    if kind == "enum":
        return _Mapped(pa.string(), pa.string(), None, dictionary=True)
    if kind == "fixed":
        if avro.get("logicalType") == "decimal":
            mapped = _map_logical(avro, "fixed", "decimal")
            if mapped is not None:
                return mapped
        size = int(avro["size"])
        return _Mapped(pa.binary(size), pa.binary(size), None)
    if kind != "record":
        raise ValueError(f"{where}: unsupported named type {kind!r}")
    inner_ns = full.rpartition(".")[0] or None
    fields, staging, checks = [], [], []
    for field in avro.get("fields", []):
        if _refers_to(field["type"], full, names, inner_ns):
            raise ValueError(f"{where}: recursive record {full!r} is not supported")
        f_nullable, f_type = _split_nullable(field["type"])
        mapped = _map_type(
            f_type, names, inner_ns, bool(field.get(DECIMAL_PROP)), f_nullable, f"{where}.{field['name']}"
        )
        if mapped.as_json:
            raise ValueError(f"{where}.{field['name']}: multi-branch unions inside records are not supported")
        fields.append(pa.field(field["name"], mapped.type, nullable=f_nullable))
        staging.append(pa.field(field["name"], mapped.staging, nullable=f_nullable))
        if mapped.normalize is not None:
            checks.append((str(field["name"]), mapped.normalize))
    return _Mapped(
        pa.struct(fields), pa.struct(staging), _struct_normalizer(tuple(checks), nullable) if checks else None
    )


def _refers_to(avro: Any, full: str, names: _Names, namespace: str | None) -> bool:
    if isinstance(avro, str):
        return names.fullname(avro, namespace) == full or avro == full
    if isinstance(avro, list):
        return any(_refers_to(b, full, names, namespace) for b in avro)
    if isinstance(avro, Mapping):
        for key in ("items", "values"):
            if key in avro and _refers_to(avro[key], full, names, namespace):
                return True
    return False


# ------------------------------------------------------------------ add-time checks (decimal text)


def decimal_normalizer(nullable: bool) -> Normalizer:
    """Add-time check of one decimal value: returns it (or its exact plain text), ValueError if unfit."""

    def normalize(value: Any) -> Any:
        if _fits(value):
            return value
        if value is None:
            if nullable:
                return None
            raise ValueError("missing decimal value")
        return _slow_decimal_text(value)

    return normalize


def _null_or_fail(nullable: bool, what: str) -> None:
    if not nullable:
        raise ValueError(f"missing {what}")


def _list_normalizer(inner: Normalizer, nullable: bool) -> Normalizer:
    def normalize(value: Any) -> Any:
        if value is None:
            _null_or_fail(nullable, "list")
            return None
        if isinstance(value, str | bytes | Mapping):
            raise ValueError(f"expected a list, got {type(value).__name__}")
        out: list[Any] | None = None
        for i, item in enumerate(value):
            new = inner(item)
            if new is not item:
                if out is None:
                    out = list(value)
                out[i] = new
        return value if out is None else out

    return normalize


def _map_normalizer(inner: Normalizer, nullable: bool) -> Normalizer:
    def normalize(value: Any) -> Any:
        if value is None:
            _null_or_fail(nullable, "map")
            return None
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a map, got {type(value).__name__}")
        out: dict[Any, Any] | None = None
        for key, item in value.items():
            new = inner(item)
            if new is not item:
                if out is None:
                    out = dict(value)
                out[key] = new
        return value if out is None else out

    return normalize


def _struct_normalizer(checks: tuple[tuple[str, Normalizer], ...], nullable: bool) -> Normalizer:
    def normalize(value: Any) -> Any:
        if value is None:
            _null_or_fail(nullable, "record")
            return None
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a record, got {type(value).__name__}")
        out: dict[str, Any] | None = None
        for name, check in checks:
            item = value.get(name)
            try:
                new = check(item)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
            if new is not item:
                if out is None:
                    out = dict(value)
                out[name] = new
        return value if out is None else out

    return normalize
