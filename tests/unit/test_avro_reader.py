"""schemas.avro_reader: compiled readers return fastavro's exact output for every kracked schema, and
reject broken input with AvroReadError (and schemas.serde then with SerdeError)."""

from __future__ import annotations

import io
import json
import random
import struct
from typing import Any

import fastavro
import pytest

from schemas.avro_reader import AvroReadError, compile_reader, read_long, read_timestamp
from schemas.avro_writer import compile_writer, encode_long
from schemas.serde import Codec, SerdeError, parsed_schema, reader_schema
from schemas.topics import Topic

LONGS = [
    0,
    1,
    -1,
    63,
    -64,
    64,
    -65,
    127,
    128,
    8191,
    8192,
    16383,
    16384,
    2**20,
    2**21 - 1,
    2**21,
    2**27,
    2**28,
    2**31 - 1,
    -(2**31),
    2**35,
    2**48,
    2**55,
    2**56,
    2**62,
    2**63 - 1,
    -(2**63),
    -(2**62) - 12345,
    4_294_967_295,
    1_739_146_963_211_991,
    -1_739_146_963_211_991,
]


def _fastavro_read(schema: Any, data: bytes) -> Any:
    return fastavro.schemaless_reader(io.BytesIO(data), schema, None)


def _write(schema: Any, record: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    return buf.getvalue()


@pytest.mark.parametrize("n", LONGS)
def test_read_long_and_timestamp_invert_the_encoding(n: int) -> None:
    data = b"\x07" + encode_long(n) + b"\x09"
    end = 1 + len(encode_long(n))
    assert read_long(data, 1) == (n, end)
    assert read_timestamp(data, 1) == (n, end)
    assert read_timestamp(data, 1) == (n, end)  # the cached path too


def test_timestamp_cache_tells_neighbours_apart() -> None:
    base = 1_739_146_963_211_991
    for n in (base, base + 1, base + 2**21, base - 1, base + 2**30, -base):
        data = encode_long(n)
        assert read_timestamp(data, 0) == (n, len(data))
        assert read_timestamp(data, 0) == (n, len(data))


# ------------------------------------------------------------------------------------ random records


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
        return [_sample(schema["items"], named, rng) for _ in range(rng.choice((0, 0, 1, 3, 12)))]
    if kind == "map":
        return {f"k{i}é€": _sample(schema["values"], named, rng) for i in range(rng.choice((0, 1, 3)))}
    if isinstance(kind, str) and kind not in ("enum", "fixed"):
        return _primitive(kind, rng)
    raise AssertionError(f"unexpected schema {schema!r}")


def _primitive(kind: str, rng: random.Random) -> Any:
    choices: dict[str, list[Any]] = {
        "string": ["", "BTC/USD", "0.10000000", "-12.5", "1e-08", "é€😀", "日本語", "x" * 300, "y" * 20_000],
        "long": LONGS,
        "int": [0, 1, -1, 63, 64, -1000, 2**31 - 1, -(2**31)],
        "boolean": [True, False],
        "bytes": [b"", b"\x00raw\xff", bytes(range(256)) * 100],
    }
    return rng.choice(choices[kind])


def _records(topic: Topic, n: int) -> list[Any]:
    schema = parsed_schema(topic)
    rng = random.Random(topic.value)
    named = dict(schema.get("__named_schemas", {}))
    return [_sample(schema, named, rng) for _ in range(n)]


@pytest.mark.parametrize("topic", list(Topic))
def test_every_schema_compiles_and_reads_what_fastavro_reads(topic: Topic) -> None:
    schema = parsed_schema(topic)
    plain = reader_schema(topic)  # timestamps as plain longs: the decode contract (int µs)
    read = compile_reader(schema)
    assert "def read" in (read.__doc__ or ""), "fell back to fastavro"
    stripped = compile_reader(plain)
    write = compile_writer(schema)
    for record in _records(topic, 300):
        body = write(record)
        expected = _fastavro_read(plain, body)
        assert read(body, 0) == expected
        assert read(b"\x00\x00\x00\x00\x07" + body, 5) == expected
        assert stripped(body, 0) == expected
        assert expected == record  # the samples are exactly representable: nothing lost either way


@pytest.mark.parametrize("topic", list(Topic))
def test_every_truncation_and_trailing_byte_is_rejected(topic: Topic) -> None:
    read = compile_reader(parsed_schema(topic))
    write = compile_writer(parsed_schema(topic))
    for record in _records(topic, 20):
        body = write(record)
        if len(body) > 3000:
            continue
        for cut in range(len(body)):
            with pytest.raises(AvroReadError):
                read(body[:cut], 0)
        with pytest.raises(AvroReadError, match="ends at byte"):
            read(body + b"\x00", 0)


def test_random_corruption_raises_only_avro_read_error() -> None:
    read = compile_reader(parsed_schema(Topic.BOOK))
    write = compile_writer(parsed_schema(Topic.BOOK))
    rng = random.Random(7)
    for record in _records(Topic.BOOK, 50):
        body = bytearray(write(record))
        for _ in range(40):
            broken = bytearray(body)
            for _ in range(rng.randint(1, 4)):
                broken[rng.randrange(len(broken))] = rng.randrange(256)
            try:
                value = read(bytes(broken), 0)
            except AvroReadError:
                continue
            assert isinstance(value, dict)  # a flip may still leave valid Avro: then it decodes


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x0e" + b"BTC/USD"[:3], "truncated"),  # string longer than the data
        (b"\x01BTC", "truncated"),  # negative length
        (b"\xff" * 11, "varint"),  # varint longer than 10 bytes
        (b"\x06abc\x06abc\xc0\xbb\xb0\x0f", "overruns"),  # array block count beyond the data
        (b"\x06abc\x06abc\x02\x04\xff\xfe", "UnicodeDecodeError"),  # invalid UTF-8
    ],
)
def test_corrupt_bytes_give_a_clean_error(data: bytes, why: str) -> None:
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "R",
            "fields": [
                {"name": "a", "type": "string"},
                {"name": "b", "type": "string"},
                {"name": "xs", "type": {"type": "array", "items": "string"}},
            ],
        }
    )
    with pytest.raises(AvroReadError, match=why):
        compile_reader(schema)(data, 0)


def test_union_index_out_of_range() -> None:
    read = compile_reader(fastavro.parse_schema(["null", "long"]))
    assert read(b"\x00", 0) is None
    assert read(b"\x02\x06", 0) == 3
    with pytest.raises(AvroReadError, match="union index"):
        read(b"\x04\x06", 0)


def test_negative_block_counts_carry_a_byte_size() -> None:
    """Writers may prefix a block with -count and its size in bytes (fastavro reads it, so do we)."""
    schema = fastavro.parse_schema({"type": "map", "values": {"type": "array", "items": "long"}})
    items = encode_long(5) + encode_long(-7)
    block = encode_long(-2) + encode_long(len(items)) + items
    data = (
        encode_long(-1) + encode_long(len(b"\x02k" + block + b"\x00")) + b"\x02k" + block + b"\x00" + b"\x00"
    )
    expected = _fastavro_read(schema, data)
    assert expected == {"k": [5, -7]}
    assert compile_reader(schema)(data, 0) == expected


def test_unsupported_schemas_fall_back_to_fastavro_with_int_timestamps() -> None:
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "R",
            "fields": [
                {"name": "x", "type": "double"},
                {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
                {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            ],
        }
    )
    read = compile_reader(schema)
    assert "def read" not in (read.__doc__ or "")
    body = _write(schema, {"x": 1.5, "e": "B", "ts": 1_739_146_963_211_991})
    assert read(body, 0) == {"x": 1.5, "e": "B", "ts": 1_739_146_963_211_991}
    with pytest.raises(AvroReadError):
        read(body[:-1], 0)
    with pytest.raises(AvroReadError):
        read(body + b"\x00", 0)


# ------------------------------------------------------------------------------------ serde


class _Registry:
    """The two calls `Codec` makes, in memory: our schema is id 7, id 9 an older continuity writer."""

    def __init__(self) -> None:
        self.lookups: list[int] = []

    def register_schema(self, subject: str, schema: Any) -> int:
        return 7

    def get_schema(self, schema_id: int) -> Any:
        self.lookups.append(schema_id)
        if schema_id != 9:
            raise KeyError(schema_id)
        return type("S", (), {"schema_str": json.dumps(_OLD_CONTINUITY)})()


# an older `kracked.continuity`: no symbol/gap/epoch fields yet (the current reader defaults them)
_OLD_CONTINUITY = {
    "type": "record",
    "name": "Continuity",
    "namespace": "kracked",
    "fields": [
        {"name": "event", "type": "string"},
        {"name": "source", "type": "string"},
        {"name": "channel", "type": ["null", "string"], "default": None},
        {"name": "detail", "type": "string"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    ],
}


def _codec(topic: Topic) -> tuple[Codec, _Registry]:
    registry = _Registry()
    return Codec(topic, registry, "t."), registry  # type: ignore[arg-type]


def test_codec_decodes_its_own_frames_with_the_compiled_reader() -> None:
    codec, registry = _codec(Topic.BOOK)
    for record in _records(Topic.BOOK, 50):
        frame = codec.encode(record)
        assert frame[:5] == struct.pack(">bI", 0, 7)
        assert codec.decode(frame) == _fastavro_read(reader_schema(Topic.BOOK), frame[5:]) == record
    assert codec._read is not None
    assert registry.lookups == []


def test_codec_resolves_foreign_writer_ids_with_fastavro() -> None:
    codec, registry = _codec(Topic.CONTINUITY)
    old = {
        "event": "connect",
        "source": "connector",
        "channel": "book",
        "detail": "x",
        "ts": 1_739_146_963_211_991,
    }
    frame = struct.pack(">bI", 0, 9) + _write(fastavro.parse_schema(_OLD_CONTINUITY), old)
    expected = {
        **old,
        "symbol": None,
        "gap_start": None,
        "gap_end": None,
        "expected": None,
        "received": None,
        "epoch": None,
    }
    assert codec.decode(frame) == expected
    assert codec.decode(frame) == expected
    assert registry.lookups == [9]  # looked up once, then cached
    # our own frames still take the compiled path afterwards
    record = {**expected, "symbol": "BTC/USD", "epoch": 3}
    assert codec.decode(codec.encode(record)) == record
    with pytest.raises(SerdeError, match="unknown schema id"):
        codec.decode(struct.pack(">bI", 0, 11) + frame[5:])


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"\x00\x00\x00",
        b"\x01\x00\x00\x00\x07\x00",
        b"\x00\x00\x00\x00\x07\x0eBTC",
        b"\x00\x00\x00\x00\x63",
    ],
)
def test_codec_raises_serde_error_on_broken_values(value: bytes | None) -> None:
    codec, _registry = _codec(Topic.TRADE)
    good = codec.encode(_records(Topic.TRADE, 1)[0])
    assert codec.decode(good)
    with pytest.raises(SerdeError):
        codec.decode(value)
    with pytest.raises(SerdeError):
        codec.decode(good[:-1])
    with pytest.raises(SerdeError):
        codec.decode(good + b"\x00")
