"""Compiled Avro readers: one generated Python function per schema, equal in output to fastavro.

The read twin of `schemas.avro_writer`, used by `schemas.serde` to decode the consumers' input.
`fastavro.schemaless_reader` needs a file object (a `BytesIO` per record) and dispatches on the
schema for every field: about 7 µs for a `kraken.book` update. A function generated once from the
parsed schema reads the bytes in place with every field inlined and builds each record as one dict
display, in about a third of that.

Only what kracked's schemas use is compiled: records, arrays, maps, `["null", X]` unions, string,
bytes, int, long, boolean, null, and `timestamp-micros`/`timestamp-millis` longs, which are returned
as plain ints (the decode contract of `schemas.serde`: timestamps are int µs). Anything else (enums,
fixed, floats, wider unions, other logical types, recursive types) falls back to fastavro (with the
timestamp logical types removed, so the result has the same shape), so `compile_reader` always
returns a correct reader. For every schema in `schemas/avro/` a unit test checks the output against
fastavro reading the same bytes with `strip_timestamps(schema)`.

A reader is stricter than fastavro on broken input: truncated data, a varint longer than 10 bytes, a
negative length, a union index out of range, invalid UTF-8 and bytes left over after the record all
raise `AvroReadError` (a `ValueError`); nothing else escapes.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import fastavro

from schemas.avro_writer import collect_named

Reader = Callable[[bytes, int], Any]
"""`reader(data, pos)` → the value encoded in `data[pos:]`, which it must span exactly."""


class AvroReadError(ValueError):
    """Bytes that are not a value of the reader's schema (truncated, corrupt or with trailing bytes)."""


# ------------------------------------------------------------------------------------ varint (zigzag)

# a one-byte varint (< 0x80), zigzag-decoded
_ZIGZAG = tuple((b >> 1) ^ -(b & 1) for b in range(128))
# a one-byte length: negative lengths become one past any buffer, so the end check fails on them
_BAD_LENGTH = 1 << 62
_LENGTH = tuple(n if n >= 0 else _BAD_LENGTH for n in _ZIGZAG)
_MAX_VARINT = 10  # a 64-bit long needs at most ten 7-bit groups


def read_long(data: bytes, pos: int) -> tuple[int, int]:
    """Avro long at `pos` (zigzag varint): (value, position after it). IndexError when truncated."""
    b = data[pos]
    if b < 0x80:
        return _ZIGZAG[b], pos + 1
    n = b & 0x7F
    b = data[pos + 1]
    n |= (b & 0x7F) << 7
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), pos + 2
    b = data[pos + 2]
    n |= (b & 0x7F) << 14
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), pos + 3
    b = data[pos + 3]
    n |= (b & 0x7F) << 21
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), pos + 4
    shift = 28
    pos += 4
    while True:
        b = data[pos]
        n |= (b & 0x7F) << shift
        pos += 1
        if b < 0x80:
            return (n >> 1) ^ -(n & 1), pos
        shift += 7
        if shift >= 7 * _MAX_VARINT:
            raise AvroReadError("varint longer than 10 bytes")


# Timestamps are 8-byte varints whose top five bytes change only every ~2 s (2**21 µs): their value
# is cached by those bytes, leaving three bytes to combine (about a third faster than the loop).
_HIGH_CACHE: dict[bytes, int] = {}
_LOW_21 = (1 << 21) - 1


def read_timestamp(data: bytes, pos: int) -> tuple[int, int]:
    """`read_long` for values that are usually 8-byte varints (µs timestamps of this century)."""
    high = _HIGH_CACHE.get(data[pos + 3 : pos + 8])
    if high is not None:
        a, b, c = data[pos], data[pos + 1], data[pos + 2]
        if a > 0x7F and b > 0x7F and c > 0x7F:
            n = high | (a & 0x7F) | ((b & 0x7F) << 7) | ((c & 0x7F) << 14)
            return (n >> 1) ^ -(n & 1), pos + 8
    value, end = read_long(data, pos)
    if end - pos == 8:
        if len(_HIGH_CACHE) >= 4096:
            _HIGH_CACHE.clear()
        z = (value << 1) ^ (value >> 63)  # back to the zigzag form
        _HIGH_CACHE[data[pos + 3 : pos + 8]] = z & ~_LOW_21
    return value, end


def read_length(data: bytes, pos: int) -> tuple[int, int]:
    """A string/bytes length; negative lengths become one past any buffer (the end check then fails)."""
    n, pos = read_long(data, pos)
    return (n if n >= 0 else _BAD_LENGTH), pos


# ------------------------------------------------------------------------------------ code generation


class _Unsupported(Exception):
    pass


_TIMESTAMPS = ("timestamp-micros", "timestamp-millis", "local-timestamp-micros", "local-timestamp-millis")


class _Gen:
    """Python source of a reader: `d` is the buffer, `p` the position, `L` its length."""

    def __init__(self, schema: Any) -> None:
        self.lines: list[str] = []
        self.named: dict[str, Any] = {}
        self.counter = 0
        self.stack: list[str] = []
        self._collect(schema, None)

    def var(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def _collect(self, schema: Any, namespace: str | None) -> None:
        collect_named(schema, namespace, self.named)
        # fastavro keeps the named types of a parsed schema here as well
        if isinstance(schema, dict):
            for full, named in (schema.get("__named_schemas") or {}).items():
                self.named.setdefault(full, named)

    def emit(self, line: str, indent: int) -> None:
        self.lines.append("    " * indent + line)

    def _resolve(self, schema: Any) -> Any:
        """The definition behind a name (recursion is not compiled)."""
        if isinstance(schema, str) and schema in self.named:
            if schema in self.stack:
                raise _Unsupported("recursive type")
            return self.named[schema]
        return schema

    def min_width(self, schema: Any) -> int:
        """Fewest bytes a value takes (0 for null and empty records): bounds array/map block counts."""
        if isinstance(schema, str):
            if schema in self.named:
                if schema in self.stack:
                    return 1
                self.stack.append(schema)
                try:
                    return self.min_width(self.named[schema])
                finally:
                    self.stack.pop()
            return 0 if schema == "null" else 1
        if isinstance(schema, list):
            return 1
        kind = schema.get("type")
        if kind in ("record", "error"):
            return sum(self.min_width(f["type"]) for f in schema["fields"])
        if isinstance(kind, str) and kind not in ("array", "map", "enum", "fixed"):
            return self.min_width(kind)
        return 1

    def read(self, schema: Any, target: str, indent: int) -> None:
        """Emit code that reads one value of `schema` at `p` into the variable `target`."""
        if isinstance(schema, str):
            if schema in self.named:
                resolved = self._resolve(schema)
                self.stack.append(schema)
                self.read(resolved, target, indent)
                self.stack.pop()
                return
            self._primitive(schema, target, indent)
            return
        if isinstance(schema, list):
            if len(schema) == 2 and "null" in schema:
                other = schema[1] if schema[0] == "null" else schema[0]
                # union index as its zigzag varint byte: branch 0 is 0x00, branch 1 is 0x02
                other_byte, null_byte = (2, 0) if schema[0] == "null" else (0, 2)
                b = self.var("u")
                self.emit(f"{b} = d[p]", indent)
                self.emit("p += 1", indent)
                self.emit(f"if {b} == {other_byte}:", indent)
                self.read(other, target, indent + 1)
                self.emit(f"elif {b} == {null_byte}:", indent)
                self.emit(f"{target} = None", indent + 1)
                self.emit("else:", indent)
                self.emit(f"raise E('union index byte %d out of range' % {b})", indent + 1)
                return
            raise _Unsupported("union other than [null, X]")
        kind = schema.get("type")
        if kind in ("record", "error"):
            names = []
            for field in schema["fields"]:
                fv = self.var("f")
                self.read(field["type"], fv, indent)
                names.append(f"{field['name']!r}: {fv}")
            self.emit(f"{target} = {{{', '.join(names)}}}", indent)
            return
        if kind in ("array", "map"):
            self._blocks(schema, kind, target, indent)
            return
        if kind in ("enum", "fixed"):
            raise _Unsupported(kind)
        if isinstance(kind, str):
            # a primitive with attributes, e.g. {"type": "long", "logicalType": "timestamp-micros"}
            logical = schema.get("logicalType")
            if logical is not None and (logical not in _TIMESTAMPS or kind != "long"):
                raise _Unsupported(f"logical type {logical}")
            if logical is not None:
                self.emit(f"{target}, p = RT(d, p)", indent)
                return
            self._primitive(kind, target, indent)
            return
        self.read(kind, target, indent)

    def _blocks(self, schema: Any, kind: str, target: str, indent: int) -> None:
        """Arrays and maps: blocks of `count` items (a negative count is followed by the block's size
        in bytes), ended by a zero count. Counts are bounded by the bytes left, so corrupt counts fail
        fast instead of looping."""
        items = schema["items"] if kind == "array" else schema["values"]
        width = self.min_width(items)
        if width == 0:
            raise _Unsupported(f"{kind} of zero-width items")
        count, index, value = self.var("c"), self.var("j"), self.var("v")
        self.emit(f"{target} = {'[]' if kind == 'array' else '{}'}", indent)
        self._long(count, indent)
        self.emit(f"while {count}:", indent)
        self.emit(f"if {count} < 0:", indent + 1)
        self.emit(f"{count} = -{count}", indent + 2)
        self.emit("p = RL(d, p)[1]", indent + 2)
        self.emit(f"if {count} * {width} > L - p:", indent + 1)
        self.emit(f"raise E('{kind} block of %d items overruns the data' % {count})", indent + 2)
        self.emit(f"for {index} in range({count}):", indent + 1)
        if kind == "array":
            self.read(items, value, indent + 2)
            self.emit(f"{target}.append({value})", indent + 2)
        else:
            key = self.var("k")
            self._primitive("string", key, indent + 2)
            self.read(items, value, indent + 2)
            self.emit(f"{target}[{key}] = {value}", indent + 2)
        self._long(count, indent + 1)

    def _long(self, target: str, indent: int) -> None:
        b = self.var("b")
        self.emit(f"{b} = d[p]", indent)
        self.emit(f"if {b} < 128:", indent)
        self.emit(f"{target} = ZZ[{b}]", indent + 1)
        self.emit("p += 1", indent + 1)
        self.emit("else:", indent)
        self.emit(f"{target}, p = RL(d, p)", indent + 1)

    def _span(self, start: str, indent: int) -> None:
        """Read a length at `p`: the value's bytes are then `d[start:p]` (p moved past them)."""
        b = self.var("b")
        self.emit(f"{b} = d[p]", indent)
        self.emit(f"if {b} < 128:", indent)
        self.emit(f"{start} = p + 1", indent + 1)
        self.emit(f"p = {start} + LN[{b}]", indent + 1)
        self.emit("else:", indent)
        n = self.var("n")
        self.emit(f"{n}, {start} = RN(d, p)", indent + 1)
        self.emit(f"p = {start} + {n}", indent + 1)

    def _primitive(self, kind: str, target: str, indent: int) -> None:
        if kind in ("string", "bytes"):
            start = self.var("s")
            self._span(start, indent)
            # an overrun leaves p past the end: the next read or the final check raises
            if kind == "string":
                self.emit(f"{target} = d[{start}:p].decode()", indent)
            else:
                self.emit(f"{target} = bytes(d[{start}:p])", indent)
        elif kind in ("long", "int"):
            self._long(target, indent)
        elif kind == "boolean":
            # fastavro reads any non-zero byte as true
            self.emit(f"{target} = d[p] != 0", indent)
            self.emit("p += 1", indent)
        elif kind == "null":
            self.emit(f"{target} = None", indent)
        else:
            raise _Unsupported(kind)


def compile_reader(schema: Any) -> Reader:
    """A function (data, pos) → value for a schema parsed by `fastavro.parse_schema`.

    The value must end exactly at the end of `data` (Confluent frames hold one value after a 5-byte
    header: `reader(frame, 5)`). Timestamps come back as int. Falls back to fastavro for features the
    generator does not handle. Any malformed input raises AvroReadError.
    """
    try:
        gen = _Gen(schema)
        gen.emit("def read(d, p):", 0)
        gen.emit("try:", 1)
        gen.emit("L = len(d)", 2)
        gen.read(schema, "r", 2)
        gen.emit("except E:", 1)
        gen.emit("raise", 2)
        gen.emit("except (IndexError, ValueError, TypeError, OverflowError, MemoryError) as exc:", 1)
        gen.emit("raise E(f'corrupt or truncated Avro data ({type(exc).__name__}: {exc})') from None", 2)
        gen.emit("if p != L:", 1)
        gen.emit("raise E(f'Avro value ends at byte {p} of {L}' if p < L else 'truncated Avro data')", 2)
        gen.emit("return r", 1)
    except _Unsupported:
        return _fastavro_reader(schema)
    source = "\n".join(gen.lines)
    namespace: dict[str, Any] = {
        "ZZ": _ZIGZAG,
        "LN": _LENGTH,
        "RL": read_long,
        "RN": read_length,
        "RT": read_timestamp,
        "E": AvroReadError,
    }
    exec(compile(source, f"<avro reader {_name(schema)}>", "exec"), namespace)
    read: Reader = namespace["read"]
    read.__doc__ = source  # readable when debugging
    return read


def _fastavro_reader(schema: Any) -> Reader:
    plain = _strip_timestamps(schema)

    def read(data: bytes, pos: int) -> Any:
        buf = io.BytesIO(data)
        buf.seek(pos)
        try:
            value = fastavro.schemaless_reader(buf, plain, None)
        except Exception as exc:  # fastavro raises many types on corrupt input
            raise AvroReadError(f"corrupt or truncated Avro data ({type(exc).__name__}: {exc})") from None
        if buf.tell() != len(data):
            raise AvroReadError(f"Avro value ends at byte {buf.tell()} of {len(data)}")
        return value

    return read


def _strip_timestamps(schema: Any) -> Any:
    """The schema (parsed or not) with timestamp logical types removed: fastavro then returns ints."""
    if isinstance(schema, dict):
        if schema.get("logicalType") in _TIMESTAMPS:
            return {k: _strip_timestamps(v) for k, v in schema.items() if k != "logicalType"}
        return {k: _strip_timestamps(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_strip_timestamps(x) for x in schema]
    return schema


def _name(schema: Any) -> str:
    return str(schema.get("name", "?")) if isinstance(schema, dict) else "?"
