"""Read verified order books from `kracked.book.top` (Ctrl-C to stop).

An unverified book (`valid` false after a checksum mismatch) is reported, never used as data.
"""

from __future__ import annotations

from confluent_kafka import Consumer

from kracked.kafka import consumer_config
from kracked.settings import KafkaSettings
from schemas.serde import Serde
from schemas.topics import Topic


def main() -> None:
    settings = KafkaSettings.from_env()
    serde = Serde(settings.schema_registry_url, settings.topic_prefix)
    consumer = Consumer(consumer_config(settings, "example-book-top", **{"auto.offset.reset": "latest"}))
    consumer.subscribe([Topic.BOOK_TOP.name_with(settings.topic_prefix)])
    try:
        while True:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            top = serde.decode(Topic.BOOK_TOP, msg.value())
            if not top["valid"]:
                print(f"{top['symbol']}: book unverified (epoch {top['epoch']}), waiting for a new snapshot")
                continue
            bid, ask = top["bids"][0], top["asks"][0]
            print(
                f"{top['symbol']} epoch {top['epoch']}: {bid['qty']} @ {bid['price']} | {ask['price']} x {ask['qty']}"
            )
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
