"""The contract between the connector and the consumers: Avro schemas, the topic catalog, the wire serde.

Nothing here does I/O except `serde`/`registry` talking to the schema registry. The connector and every
consumer import this package and never each other.
"""
