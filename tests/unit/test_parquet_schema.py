"""Avro → Arrow mapping of the Parquet writer, checked against every `.avsc` in schemas/avro."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from consumers.parquet.arrow_schema import (
    DECIMAL_TYPE,
    TIMESTAMP_US,
    avro_to_arrow,
    decimal_text,
    load_avro_schema,
    table_spec,
)
from consumers.parquet.writer import ParquetWriter
from schemas.topics import schema_dir

AVSC = sorted(schema_dir().glob("*.avsc"))
PRIMITIVE = {
    "string": pa.string(),
    "long": pa.int64(),
    "int": pa.int32(),
    "boolean": pa.bool_(),
    "bytes": pa.binary(),
}


def test_every_topic_has_a_schema_file() -> None:
    # The parametrized tests below run once per file: make sure they do not silently run on none.
    assert len(AVSC) >= 16


def _expected(avro: Any, decimal: bool, named: dict[str, Any]) -> tuple[pa.DataType, bool]:
    """Independent statement of the mapping rules of the brief: (arrow type, nullable)."""
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        assert len(branches) == 1, "kracked schemas only use [null, X] unions"
        return _expected(branches[0], decimal, named)[0], True
    if isinstance(avro, str):
        if avro in PRIMITIVE:
            return (DECIMAL_TYPE if decimal and avro == "string" else PRIMITIVE[avro]), False
        return _expected(named[avro.rsplit(".", 1)[-1]], decimal, named)
    decimal = decimal or bool(avro.get("kracked.decimal"))
    if avro.get("logicalType") == "timestamp-micros":
        return TIMESTAMP_US, False
    kind = avro["type"]
    if kind in PRIMITIVE:
        return _expected(kind, decimal, named)
    if kind == "array":
        item, item_null = _expected(avro["items"], decimal, named)
        return pa.list_(pa.field("item", item, nullable=item_null)), False
    if kind == "map":
        value, value_null = _expected(avro["values"], decimal, named)
        return pa.map_(pa.string(), pa.field("value", value, nullable=value_null)), False
    if kind == "record":
        named[avro["name"]] = avro
        fields = []
        for f in avro["fields"]:
            t, n = _expected(f["type"], bool(f.get("kracked.decimal")), named)
            fields.append(pa.field(f["name"], t, nullable=n))
        return pa.struct(fields), False
    raise AssertionError(f"type not covered by the test: {avro}")


@pytest.mark.parametrize("path", AVSC, ids=lambda p: p.name)
def test_mapping_of_every_avsc(path: Path) -> None:
    avro = load_avro_schema(path)
    schema = avro_to_arrow(avro)
    named: dict[str, Any] = {avro["name"]: avro}
    assert schema.names == [f["name"] for f in avro["fields"]]
    for field in avro["fields"]:
        expected, nullable = _expected(field["type"], bool(field.get("kracked.decimal")), named)
        got = schema.field(field["name"])
        assert got.type.equals(expected), f"{path.name}.{field['name']}: {got.type} != {expected}"
        assert got.nullable == nullable, f"{path.name}.{field['name']} nullable"
    # Decimals are decimal128(38, 18) and times microsecond UTC: never strings, floats or ns.
    marked = [f["name"] for f in avro["fields"] if f.get("kracked.decimal")]
    for name in marked:
        assert schema.field(name).type == DECIMAL_TYPE
    for f in schema:
        assert not pa.types.is_floating(f.type)
        if pa.types.is_timestamp(f.type):
            assert f.type == TIMESTAMP_US


def _sample(avro: Any, decimal: bool, named: dict[str, Any], i: int) -> Any:
    """A value of an Avro type, the way the decoder hands it over (decimals as text, times as ints)."""
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        return None if i % 2 else _sample(branches[0], decimal, named, i)
    if isinstance(avro, str):
        if avro == "string":
            return ["1.5", "89704.90000000", "-0.000000000000000001", "1E-8"][i % 4] if decimal else f"s{i}"
        if avro in ("long", "int"):
            return 7 + i
        if avro == "boolean":
            return bool(i % 2)
        if avro == "bytes":
            return bytes([i % 256, 0, 255])
        return _sample(named[avro.rsplit(".", 1)[-1]], decimal, named, i)
    decimal = decimal or bool(avro.get("kracked.decimal"))
    if avro.get("logicalType") == "timestamp-micros":
        return 1_731_394_244_897_594 + i
    kind = avro["type"]
    if kind == "array":
        return [_sample(avro["items"], decimal, named, i + k) for k in range(2)]
    if kind == "map":
        return {"a": _sample(avro["values"], decimal, named, i)}
    if kind == "record":
        named[avro["name"]] = avro
        return {
            f["name"]: _sample(f["type"], bool(f.get("kracked.decimal")), named, i) for f in avro["fields"]
        }
    return _sample(kind, decimal, named, i)


def _exact(value: Any, arrow_type: pa.DataType) -> Any:
    """What reading the sample back must give (Decimal for decimal text, aware datetime for times)."""
    if value is None:
        return None
    if arrow_type == DECIMAL_TYPE:
        return Decimal(value).quantize(Decimal("1E-18"))
    if pa.types.is_timestamp(arrow_type):
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=value)
    if pa.types.is_list(arrow_type):
        return [_exact(v, arrow_type.value_type) for v in value]
    if pa.types.is_map(arrow_type):
        return [(k, _exact(v, arrow_type.item_type)) for k, v in value.items()]
    if pa.types.is_struct(arrow_type):
        return {f.name: _exact(value[f.name], f.type) for f in arrow_type}
    return value


@pytest.mark.parametrize("path", AVSC, ids=lambda p: p.name)
def test_every_avsc_round_trips_through_parquet(path: Path, tmp_path: Path) -> None:
    avro = load_avro_schema(path)
    spec = table_spec(avro)
    records = [_sample(avro, False, {}, i) for i in range(4)]
    for r in records:
        if "symbol" in r:
            r["symbol"] = "BTC/USD"
    writer = ParquetWriter(tmp_path, schema_for=lambda _topic: avro)
    for offset, record in enumerate(records):
        writer.add("t", 0, offset, record)
    assert writer.flush_all() == [("t", 0, 4)]
    files = sorted(tmp_path.glob("t/*/*/*.parquet"))
    got = [row for f in files for row in pq.ParquetFile(f).read().to_pylist()]
    expected = [{f.name: _exact(r[f.name], f.type) for f in spec.file_schema} for r in records]
    assert len(got) == len(records)

    # Files are per symbol/date folder: compare the rows as a multiset, exactly (Decimal, datetime).
    def key(row: dict[str, Any]) -> str:
        return json.dumps(row, default=str, sort_keys=True)

    assert sorted(got, key=key) == sorted(expected, key=key)


def test_decimal_text_rules() -> None:
    assert decimal_text("89704.9") == "89704.9"
    assert decimal_text("0.00200000") == "0.00200000"
    assert decimal_text("1E-8") == "0.00000001"  # exponent forms are allowed by schemas/README.md
    assert decimal_text("1e+3") == "1000"
    assert decimal_text("1.000000000000000000000000") == "1"  # extra zeros are not extra precision
    assert decimal_text(Decimal("2.50")) == "2.5"
    assert (
        decimal_text("99999999999999999999.999999999999999999") == "99999999999999999999.999999999999999999"
    )
    for bad in ("0.1234567890123456789", "1E-19", "123456789012345678901", "NaN", "Infinity", "abc", ""):
        with pytest.raises(ValueError):
            decimal_text(bad)
    with pytest.raises(ValueError):
        decimal_text(1.5)  # floats never carry prices
    with pytest.raises(ValueError):
        decimal_text(True)


def test_other_avro_types_and_named_references() -> None:
    avro = {
        "type": "record",
        "name": "X",
        "namespace": "t",
        "fields": [
            {"name": "e", "type": {"type": "enum", "name": "Side", "symbols": ["buy", "sell"]}},
            {"name": "e2", "type": "Side"},
            {"name": "m", "type": ["null", {"type": "map", "values": "string"}], "default": None},
            {"name": "fx", "type": {"type": "fixed", "name": "F4", "size": 4}},
            {"name": "u", "type": ["null", "string", "long"], "default": None},
            {"name": "d", "type": {"type": "int", "logicalType": "date"}},
            {"name": "ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
            {"name": "f", "type": "double"},
            {
                "name": "levels",
                "type": {"type": "array", "items": {"type": "string", "kracked.decimal": True}},
            },
            {"name": "unknown_logical", "type": {"type": "string", "logicalType": "made-up"}},
        ],
    }
    schema = avro_to_arrow(avro)
    assert schema.field("e").type == pa.string()
    assert schema.field("e2").type == pa.string()
    assert schema.field("m").type == pa.map_(pa.string(), pa.field("value", pa.string(), nullable=False))
    assert schema.field("m").nullable
    assert schema.field("fx").type == pa.binary(4)
    assert schema.field("u").type == pa.string()  # several branches: JSON text
    assert schema.field("d").type == pa.date32()
    assert schema.field("ms").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("dec").type == pa.decimal128(10, 2)
    assert schema.field("f").type == pa.float64()
    assert schema.field("levels").type.value_type == DECIMAL_TYPE
    assert schema.field("unknown_logical").type == pa.string()
    spec = table_spec(avro)
    assert spec.columns[spec.names.index("u")].to_arrow([None, "x", 5]).to_pylist() == [None, '"x"', "5"]


def test_field_named_date_is_refused() -> None:
    avro = {"type": "record", "name": "X", "fields": [{"name": "date", "type": "string"}]}
    with pytest.raises(ValueError, match="date"):
        table_spec(avro)


def test_extract_checks_decimals_and_applies_defaults() -> None:
    avro = {
        "type": "record",
        "name": "X",
        "fields": [
            {"name": "symbol", "type": "string"},
            {"name": "price", "type": "string", "kracked.decimal": True},
            {"name": "added", "type": "long", "default": 3},
            {"name": "opt", "type": ["null", "string"], "default": None},
        ],
    }
    spec = table_spec(avro)
    assert spec.extract({"symbol": "A/B", "price": "1.5", "added": 1, "opt": "x"}) == ("A/B", "1.5", 1, "x")
    # A record of an older schema version: Avro's defaults fill the fields added since.
    assert spec.extract({"symbol": "A/B", "price": "1e-2"}) == ("A/B", "0.01", 3, None)
    with pytest.raises(ValueError, match="price"):
        spec.extract({"symbol": "A/B", "price": "0.0000000000000000001"})
    with pytest.raises(ValueError, match="symbol"):
        spec.extract({"price": "1"})
    with pytest.raises(ValueError, match="price"):
        spec.extract({"symbol": "A/B", "price": None, "added": 1, "opt": None})
