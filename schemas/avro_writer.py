"""Compiled Avro writers: one generated Python function per schema, byte-identical to fastavro.

Shared by the connector (one record per frame) and the consumers (`schemas.serde`).

The connector encodes one record per frame, so the encoder is on the hot path. fastavro's
`schemaless_writer` re-resolves the schema on every call and goes through generic dispatch for each
field (about 9 µs for a book update); a function generated once from the parsed `.avsc`, with every
field written inline, takes about a third of that. Only what kracked's schemas use is compiled:
records, arrays, maps, `["null", X]` unions, string, bytes, int, long, boolean and logical types
carried by those (timestamp-micros). Anything else (enums, fixed, floats, wider unions, recursive
types) falls back to fastavro, so `compile_writer` always returns a correct writer. A unit test checks
the bytes against fastavro for every schema in `schemas/avro/`.

Values are checked as Avro requires (a string must be `str`, a boolean `bool`, ints must fit 64 bits);
a violation raises `AvroWriteError` (the caller dead-letters the input).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any

import fastavro

Writer = Callable[[Mapping[str, Any]], bytes]


class AvroWriteError(ValueError):
    """A record that does not fit its schema."""


# ------------------------------------------------------------------------------------ varint (zigzag)

_ONE_BYTE = [bytes((i,)) for i in range(128)]
_TWO_BYTES = [bytes(((i & 0x7F) | 0x80, i >> 7)) for i in range(128, 16384)]
# 14 low bits as two varint bytes that both carry the continuation bit
_CONTINUED = [bytes(((i & 0x7F) | 0x80, (i >> 7) | 0x80)) for i in range(16384)]
_HIGH: dict[int, bytes] = {}
_BIG: dict[int, bytes] = {}
_LIMIT = 1 << 64
_SMALL_LIMIT = 16384


def _varint(z: int) -> bytes:
    """Base-128 varint of a non-negative (already zigzagged) integer."""
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def encode_long(n: int) -> bytes:
    """Avro long/int: zigzag then base-128 varint.

    Small values come from tables. Large ones (timestamps, epochs, checksums) are cached whole (one
    market event puts the same timestamp on several records; epochs and interval starts repeat) and
    otherwise built from a table for the low 28 bits plus a cached high part.
    """
    hit = _BIG.get(n)
    if hit is not None:
        return hit
    z = n << 1 if n >= 0 else ((-n) << 1) - 1
    if z < 128:
        return _ONE_BYTE[z]
    if z < 16384:
        return _TWO_BYTES[z - 128]
    if z < 268435456:
        return _varint(z)
    if z >= _LIMIT:
        raise AvroWriteError(f"{n} does not fit an Avro long")
    high = z >> 28
    tail = _HIGH.get(high)
    if tail is None:
        if len(_HIGH) >= 65536:
            _HIGH.clear()
        tail = _HIGH[high] = _varint(high)
    out = _CONTINUED[z & 0x3FFF] + _CONTINUED[(z >> 14) & 0x3FFF] + tail
    if len(_BIG) >= 4096:
        _BIG.clear()
    _BIG[n] = out
    return out


# encodings of 0..16383 (string lengths, precisions, depths...): one list index in generated code
_SMALL = [encode_long(i) for i in range(_SMALL_LIMIT)]


def collect_named(schema: Any, namespace: str | None, named: dict[str, Any]) -> None:
    """Every named type (record, enum, fixed) of a parsed schema by full and short name.

    Shared by the generated writers and readers (`schemas.avro_reader`).
    """
    if isinstance(schema, list):
        for branch in schema:
            collect_named(branch, namespace, named)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            name = schema["name"]
            ns = schema.get("namespace", namespace)
            full = name if "." in name or not ns else f"{ns}.{name}"
            named[full] = schema
            named.setdefault(name, schema)
            if kind in ("record", "error"):
                for field in schema["fields"]:
                    collect_named(field["type"], ns, named)
        elif kind == "array":
            collect_named(schema["items"], namespace, named)
        elif kind == "map":
            collect_named(schema["values"], namespace, named)
        elif isinstance(kind, dict | list):
            collect_named(kind, namespace, named)


# ------------------------------------------------------------------------------------ code generation


class _Unsupported(Exception):
    pass


class _Gen:
    """Python source of a writer. `fast` assumes every field is present and every string shorter
    than 16384 bytes (one table lookup for its length); a KeyError or IndexError then hands the
    record to the careful writer, which handles defaults and any length."""

    def __init__(self, schema: Any, fast: bool = False) -> None:
        self.fast = fast
        self.lines: list[str] = []
        self.named: dict[str, Any] = {}
        self.consts: dict[str, Any] = {}
        self.counter = 0
        self.stack: list[str] = []
        self._collect(schema, None)

    def var(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def const(self, value: Any) -> str:
        name = f"K{len(self.consts)}"
        self.consts[name] = value
        return name

    def _collect(self, schema: Any, namespace: str | None) -> None:
        collect_named(schema, namespace, self.named)

    def emit(self, line: str, indent: int) -> None:
        self.lines.append("    " * indent + line)

    def write(self, schema: Any, value: str, indent: int) -> None:
        """Emit code appending the encoding of the expression `value` (a plain variable name)."""
        if isinstance(schema, str):
            if schema in self.named:
                if schema in self.stack:
                    raise _Unsupported("recursive type")
                self.stack.append(schema)
                self.write(self.named[schema], value, indent)
                self.stack.pop()
                return
            self._primitive(schema, value, indent)
            return
        if isinstance(schema, list):
            if len(schema) == 2 and "null" in schema:
                other = schema[1] if schema[0] == "null" else schema[0]
                null_index, other_index = (0, 1) if schema[0] == "null" else (1, 0)
                self.emit(f"if {value} is None:", indent)
                self.emit(f"o += {self.const(encode_long(null_index))}", indent + 1)
                self.emit("else:", indent)
                self.emit(f"o += {self.const(encode_long(other_index))}", indent + 1)
                self.write(other, value, indent + 1)
                return
            raise _Unsupported("union other than [null, X]")
        kind = schema.get("type")
        if kind in ("record", "error"):
            for field in schema["fields"]:
                fv = self.var("f")
                if "default" in field and not self.fast:
                    self.emit(
                        f"{fv} = {value}.get({field['name']!r}, {self.const(field['default'])})", indent
                    )
                else:
                    self.emit(f"{fv} = {value}[{field['name']!r}]", indent)
                self.write(field["type"], fv, indent)
            return
        if kind == "array":
            item = self.var("i")
            self.emit(f"if {value}:", indent)
            self.emit(f"o += L(len({value}))", indent + 1)
            self.emit(f"for {item} in {value}:", indent + 1)
            self.write(schema["items"], item, indent + 2)
            self.emit("o += Z", indent)
            return
        if kind == "map":
            key, item = self.var("k"), self.var("m")
            self.emit(f"if {value}:", indent)
            self.emit(f"o += L(len({value}))", indent + 1)
            self.emit(f"for {key}, {item} in {value}.items():", indent + 1)
            self._primitive("string", key, indent + 2)
            self.write(schema["values"], item, indent + 2)
            self.emit("o += Z", indent)
            return
        if kind in ("enum", "fixed"):
            raise _Unsupported(kind)
        if isinstance(kind, str):
            # a primitive with attributes, e.g. {"type": "long", "logicalType": "timestamp-micros"}:
            # kracked passes the underlying value (ints for timestamps)
            logical = schema.get("logicalType")
            if logical is not None and logical not in ("timestamp-micros", "timestamp-millis"):
                raise _Unsupported(f"logical type {logical}")
            if kind == "long" and logical is not None:
                # timestamps are never small: straight to the cached/computed encoding
                c = self.var("c")
                self.emit(f"if {value}.__class__ is not int: raise E('not an int: %r' % ({value},))", indent)
                self.emit(f"{c} = G({value})", indent)
                self.emit(f"o += {c} if {c} is not None else L({value})", indent)
                return
            self._primitive(kind, value, indent)
            return
        self.write(kind, value, indent)

    def _primitive(self, kind: str, value: str, indent: int) -> None:
        if kind == "string":
            b, n = self.var("s"), self.var("n")
            self.emit(f"{b} = {value}.encode()", indent)
            if self.fast:
                self.emit(f"o += S[len({b})]", indent)
            else:
                self.emit(f"{n} = len({b})", indent)
                self.emit(f"o += S[{n}] if {n} < {_SMALL_LIMIT} else L({n})", indent)
            self.emit(f"o += {b}", indent)
        elif kind in ("long", "int"):
            self.emit(f"if {value}.__class__ is not int: raise E('not an int: %r' % ({value},))", indent)
            self.emit(f"if 0 <= {value} < {_SMALL_LIMIT}:", indent)
            self.emit(f"o += S[{value}]", indent + 1)
            if kind == "int":
                self.emit(f"elif -2147483648 <= {value} <= 2147483647:", indent)
                self.emit(f"o += L({value})", indent + 1)
                self.emit("else:", indent)
                self.emit(f"raise E('%r does not fit an Avro int' % ({value},))", indent + 1)
                return
            self.emit("else:", indent)
            c = self.var("c")
            self.emit(f"{c} = G({value})", indent + 1)
            self.emit(f"o += {c} if {c} is not None else L({value})", indent + 1)
        elif kind == "boolean":
            self.emit(f"o += T if {value} is True else F if {value} is False else B({value})", indent)
        elif kind == "bytes":
            self.emit(f"if {value}.__class__ is not bytes: {value} = bytes({value})", indent)
            self.emit(f"o += L(len({value}))", indent)
            self.emit(f"o += {value}", indent)
        elif kind == "null":
            self.emit(f"if {value} is not None: raise E('not null: %r' % ({value},))", indent)
        else:
            raise _Unsupported(kind)


def _not_bool(value: Any) -> bytes:
    raise AvroWriteError(f"not a boolean: {value!r}")


def compile_writer(schema: Any, header: bytes = b"") -> Writer:
    """A function record -> header + Avro body, for a schema parsed by `fastavro.parse_schema`.

    Falls back to fastavro for features the generator does not handle. Any bad value raises
    AvroWriteError.
    """
    try:
        careful = _Gen(schema)
        careful.emit("def careful(r):", 0)
        careful.emit("try:", 1)
        careful.emit("o = bytearray(H)", 2)
        careful.write(schema, "r", 2)
        careful.emit("return bytes(o)", 2)
        careful.emit("except E:", 1)
        careful.emit("raise", 2)
        careful.emit(
            "except (KeyError, TypeError, AttributeError, ValueError, UnicodeEncodeError) as exc:", 1
        )
        careful.emit("raise E(f'{type(exc).__name__}: {exc}') from None", 2)
        gen = _Gen(schema, fast=True)
        gen.consts = careful.consts  # one constant table for both functions
        gen.emit("def write(r):", 0)
        gen.emit("try:", 1)
        gen.emit("o = bytearray(H)", 2)
        gen.write(schema, "r", 2)
        gen.emit("return bytes(o)", 2)
        gen.emit("except (KeyError, IndexError):", 1)
        gen.emit("return careful(r)  # a missing optional field or a long string", 2)
        gen.emit("except E:", 1)
        gen.emit("raise", 2)
        gen.emit("except (TypeError, AttributeError, ValueError, UnicodeEncodeError) as exc:", 1)
        gen.emit("raise E(f'{type(exc).__name__}: {exc}') from None", 2)
    except _Unsupported:
        return _fastavro_writer(schema, header)
    source = "\n".join([*careful.lines, "", *gen.lines])
    namespace: dict[str, Any] = {
        "H": header,
        "L": encode_long,
        "G": _BIG.get,
        "S": _SMALL,
        "Z": b"\x00",
        "T": b"\x01",
        "F": b"\x00",
        "B": _not_bool,
        "E": AvroWriteError,
        **gen.consts,
    }
    exec(compile(source, f"<avro writer {_name(schema)}>", "exec"), namespace)
    write: Writer = namespace["write"]
    write.__doc__ = source  # readable when debugging
    return write


def _fastavro_writer(schema: Any, header: bytes) -> Writer:
    def write(record: Mapping[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(header)
        try:
            fastavro.schemaless_writer(buf, schema, record)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise AvroWriteError(f"{type(exc).__name__}: {exc}") from None
        return buf.getvalue()

    return write


def _name(schema: Any) -> str:
    return str(schema.get("name", "?")) if isinstance(schema, dict) else "?"
