"""Avro values in the Confluent wire format: magic byte 0, 4-byte big-endian schema id, schemaless body.

The schema id comes from the registry (subject `<topic>-value`, TopicNameStrategy, so any Confluent
client and Kafka UI read our topics). The body is written by a writer generated from the parsed local
schema (`schemas.avro_writer`): byte-identical to fastavro, faster than `AvroSerializer`, and
byte-compatible with it (a test checks that `AvroDeserializer` reads our frames). Values written with
our own schema id are read by a reader generated the same way (`schemas.avro_reader`, output equal to
fastavro's); values of any other id resolve the writer's schema (looked up by id and cached) against
our local reader schema with fastavro, so records written by an older schema still decode.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from functools import cache
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from schemas.avro_reader import AvroReadError, Reader, compile_reader
from schemas.avro_writer import Writer, compile_writer
from schemas.topics import Topic, schema_dir

MAGIC = 0
_HEADER = struct.Struct(">bI")


class SerdeError(Exception):
    """A value that cannot be encoded or decoded; the message says why (it goes to the dead-letter topic)."""


@cache
def load_schema_text(topic: Topic) -> str:
    """The `.avsc` text of a topic, as shipped in `schemas/avro/`."""
    return (schema_dir() / topic.schema_file).read_text()


@cache
def parsed_schema(topic: Topic) -> Any:
    return fastavro.parse_schema(json.loads(load_schema_text(topic)))


def strip_timestamps(schema: Any) -> Any:
    """The schema with `timestamp-*` logical types removed (plain longs).

    Decoded records carry timestamps as int microseconds, the form every kracked module computes
    with; Avro schema resolution ignores logical types, so this never changes what can be read.
    """
    if isinstance(schema, dict):
        if str(schema.get("logicalType", "")).startswith(("timestamp-", "local-timestamp-")):
            return {k: strip_timestamps(v) for k, v in schema.items() if k != "logicalType"}
        return {k: strip_timestamps(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [strip_timestamps(x) for x in schema]
    return schema


@cache
def reader_schema(topic: Topic) -> Any:
    return fastavro.parse_schema(strip_timestamps(json.loads(load_schema_text(topic))))


@cache
def compiled_reader(topic: Topic) -> Reader:
    """The generated reader of a topic's own schema (timestamps as int µs, like `reader_schema`)."""
    return compile_reader(parsed_schema(topic))


def registry_client(url: str) -> SchemaRegistryClient:
    # The client's default is no timeout at all: a registry that stops answering one request would
    # hang a service (seen once in a test run). 30 s per request; the client retries transient errors.
    return SchemaRegistryClient({"url": url, "timeout": 30})


class Codec:
    """Encode/decode the values of one topic (under its prefixed name) in the Confluent wire format."""

    def __init__(self, topic: Topic, registry: SchemaRegistryClient, prefix: str = "") -> None:
        self.topic = topic
        self.topic_name = topic.name_with(prefix)
        self.registry = registry
        self.schema = parsed_schema(topic)
        self.reader = reader_schema(topic)
        self._schema_id: int | None = None
        self._header = b""
        self._writers: dict[int, Any] = {}
        self._write: Writer | None = None
        # set once our schema id is known: values whose header is ours skip fastavro entirely
        self._read: Reader | None = None
        self._read_header = b"\xff"  # never a Confluent header until then

    @property
    def subject(self) -> str:
        return f"{self.topic_name}-value"

    def schema_id(self) -> int:
        """Register (or look up) our schema under the topic's subject once, then reuse the id."""
        if self._schema_id is None:
            schema = Schema(load_schema_text(self.topic), "AVRO")
            self._schema_id = int(self.registry.register_schema(self.subject, schema))
            self._header = _HEADER.pack(MAGIC, self._schema_id)
            self._writers[self._schema_id] = self.reader
        return self._schema_id

    def header(self) -> bytes:
        """The Confluent wire-format header of our schema (magic byte + schema id), for native code
        that writes or reads the body itself."""
        self.schema_id()
        return self._header

    def encode(self, record: Mapping[str, Any]) -> bytes:
        write = self._write
        if write is None:
            self.schema_id()
            # one generated writer per schema: byte-identical to fastavro, about three times faster
            write = self._write = compile_writer(self.schema, self._header)
        try:
            return write(record)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise SerdeError(f"cannot encode {self.topic_name} record: {exc}") from exc

    def decode(self, data: bytes | None) -> dict[str, Any]:
        read = self._read
        if read is not None and data is not None and data[:5] == self._read_header:
            try:
                record: dict[str, Any] = read(data, 5)
            except AvroReadError as exc:
                raise SerdeError(f"{self.topic_name}: corrupt Avro body ({exc})") from exc
            return record
        return self._decode_any(data)

    def _decode_any(self, data: bytes | None) -> dict[str, Any]:
        """Any schema id: ours (then the compiled reader is set up) or a foreign one via fastavro."""
        if not data or len(data) < 5:
            raise SerdeError(f"{self.topic_name}: value of {0 if not data else len(data)} bytes is not Avro")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise SerdeError(f"{self.topic_name}: magic byte {magic} is not the Confluent wire format")
        writer = self._writer_schema(schema_id)
        if writer is self.reader and self._read is None and self.reader.get("type") in ("record", "error"):
            self._read = compiled_reader(self.topic)
            self._read_header = _HEADER.pack(MAGIC, schema_id)
            return self.decode(data)
        try:
            if writer is self.reader:
                record = fastavro.schemaless_reader(io.BytesIO(data[5:]), writer, None)
            else:
                record = fastavro.schemaless_reader(io.BytesIO(data[5:]), writer, self.reader)
        except Exception as exc:  # fastavro raises many types on corrupt input
            raise SerdeError(f"{self.topic_name}: corrupt Avro body ({type(exc).__name__}: {exc})") from exc
        if not isinstance(record, dict):
            raise SerdeError(f"{self.topic_name}: decoded value is not a record")
        return record

    def _writer_schema(self, schema_id: int) -> Any:
        writer = self._writers.get(schema_id)
        if writer is None:
            if self._schema_id is None:
                self.schema_id()
            if schema_id == self._schema_id:
                return self.reader
            try:
                text = self.registry.get_schema(schema_id).schema_str
            except Exception as exc:
                raise SerdeError(f"{self.topic_name}: unknown schema id {schema_id} ({exc})") from exc
            writer = fastavro.parse_schema(strip_timestamps(json.loads(text or "null")))
            self._writers[schema_id] = writer
        return writer


class Serde:
    """One registry client and one `Codec` per topic, created on first use."""

    def __init__(self, registry_url: str, prefix: str = "") -> None:
        self.registry = registry_client(registry_url)
        self.prefix = prefix
        self._codecs: dict[Topic, Codec] = {}

    def codec(self, topic: Topic) -> Codec:
        codec = self._codecs.get(topic)
        if codec is None:
            codec = self._codecs[topic] = Codec(topic, self.registry, self.prefix)
        return codec

    def encode(self, topic: Topic, record: Mapping[str, Any]) -> bytes:
        return self.codec(topic).encode(record)

    def decode(self, topic: Topic, data: bytes | None) -> dict[str, Any]:
        return self.codec(topic).decode(data)
