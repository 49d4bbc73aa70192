"""connector.avro_writer: compiled writers produce fastavro's exact bytes for every kracked schema."""

from __future__ import annotations

import io
import random
from typing import Any

import fastavro
import pytest

from schemas.avro_writer import AvroWriteError, compile_writer, encode_long
from schemas.serde import parsed_schema
from schemas.topics import Topic


def _fastavro(schema: Any, record: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    return buf.getvalue()


@pytest.mark.parametrize(
    "n",
    [
        0,
        1,
        -1,
        63,
        64,
        -64,
        -65,
        127,
        128,
        8191,
        8192,
        16383,
        16384,
        2**20,
        2**21,
        2**27,
        2**28,
        2**31,
        -(2**31),
        2**62,
        2**63 - 1,
        -(2**63),
        1739146963211991,
        4294967295,
    ],
)
def test_encode_long_matches_avro(n: int) -> None:
    assert encode_long(n) == _fastavro("long", n)
    assert encode_long(n) == _fastavro("long", n)  # the cached path too


def test_encode_long_rejects_values_beyond_64_bits() -> None:
    with pytest.raises(AvroWriteError):
        encode_long(2**63)
    with pytest.raises(AvroWriteError):
        encode_long(-(2**63) - 1)


def _sample(schema: Any, named: dict[str, Any], rng: random.Random) -> Any:
    if isinstance(schema, str):
        if schema in named:
            return _sample(named[schema], named, rng)
        return _primitive(schema, rng)
    if isinstance(schema, list):
        others = [s for s in schema if s != "null"]
        return None if rng.random() < 0.3 else _sample(others[0], named, rng)
    kind = schema["type"]
    if kind == "record":
        return {f["name"]: _sample(f["type"], named, rng) for f in schema["fields"]}
    if kind == "array":
        return [_sample(schema["items"], named, rng) for _ in range(rng.randint(0, 3))]
    if kind == "map":
        return {f"k{i}é": _sample(schema["values"], named, rng) for i in range(rng.randint(0, 3))}
    return _primitive(kind, rng)


def _primitive(kind: str, rng: random.Random) -> Any:
    choices: dict[str, list[Any]] = {
        "string": ["", "BTC/USD", "0.10000000", "1e-08", "é€😀", "x" * 300, "y" * 20_000],
        "long": [0, -5, 2**40, 1_739_146_963_211_991, 2**63 - 1, -(2**63), 4_294_967_295],
        "int": [0, 1, -1000, 2**31 - 1, -(2**31)],
        "boolean": [True, False],
        "bytes": [b"", b"\x00raw\xff", bytes(range(256)) * 100],
    }
    return rng.choice(choices[kind])


@pytest.mark.parametrize("topic", list(Topic))
def test_every_schema_compiles_and_matches_fastavro_byte_for_byte(topic: Topic) -> None:
    schema = parsed_schema(topic)
    write = compile_writer(schema, b"\x00\x00\x00\x00\x07")
    assert "def write" in (write.__doc__ or ""), "fell back to fastavro"
    rng = random.Random(topic.value)
    named = dict(schema.get("__named_schemas", {}))
    for _ in range(300):
        record = _sample(schema, named, rng)
        assert write(record) == b"\x00\x00\x00\x00\x07" + _fastavro(schema, record)


def test_missing_optional_fields_take_their_default() -> None:
    schema = parsed_schema(Topic.CONTINUITY)
    write = compile_writer(schema)
    record = {"event": "connect", "source": "connector", "detail": "x", "ts": 5}
    assert write(record) == _fastavro(schema, record)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event", 5),  # not a string
        ("ts", "5"),  # not an int
        ("ts", 2**64),  # does not fit
        ("ts", True),  # bool is not an Avro long
        ("epoch", 1.5),
    ],
)
def test_bad_values_raise_avro_write_error(field: str, value: Any) -> None:
    write = compile_writer(parsed_schema(Topic.CONTINUITY))
    record = {"event": "connect", "source": "connector", "detail": "x", "ts": 5, field: value}
    with pytest.raises(AvroWriteError):
        write(record)


def test_missing_required_field_raises() -> None:
    write = compile_writer(parsed_schema(Topic.TRADE))
    with pytest.raises(AvroWriteError, match="KeyError"):
        write({"symbol": "BTC/USD"})


def test_int_range_and_boolean_checks() -> None:
    write = compile_writer(parsed_schema(Topic.BOOK))
    good = {
        "symbol": "BTC/USD",
        "type": "update",
        "bids": [],
        "asks": [],
        "checksum": 1,
        "price_precision": 1,
        "qty_precision": 8,
        "depth": 10,
        "epoch": 1,
        "checksum_ok": True,
        "ts_event": None,
        "ts_recv": 1,
    }
    assert write(good)
    with pytest.raises(AvroWriteError, match="Avro int"):
        write({**good, "depth": 2**31})
    with pytest.raises(AvroWriteError, match="boolean"):
        write({**good, "checksum_ok": "yes"})


def test_unsupported_schemas_fall_back_to_fastavro() -> None:
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "R",
            "fields": [
                {"name": "x", "type": "double"},
                {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
            ],
        }
    )
    write = compile_writer(schema, b"H")
    assert write({"x": 1.5, "e": "B"}) == b"H" + _fastavro(schema, {"x": 1.5, "e": "B"})
    with pytest.raises(AvroWriteError):
        write({"x": "nope", "e": "C"})
