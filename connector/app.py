"""`kracked connector`: wiring and lifecycle of the Kraken → Kafka process.

Start-up: check the broker, create missing topics, register the schemas (a bad broker or registry
exits 2 with one line), open the reference connection (instrument data: pair precisions for the
checksums, the online pairs for `all`), then spread the subscriptions over connections
(`plan_connections`) and run them all in one asyncio loop. One connection's trouble (a rejected
symbol, a refused token, a dropped socket) never stops the others.

Shutdown on SIGTERM/SIGINT (or `stop` in-process): stop reading, close the sockets, flush the
producer (up to `flush_timeout`; whatever is still undelivered then is logged with its count), exit 0.
A fatal producer error (e.g. the idempotent producer fenced) stops the process with exit 1.

In tests: `await ConnectorApp(settings).run(stop_event)` or `run_in_thread(settings)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import threading
from collections.abc import Coroutine, Sequence
from typing import Any

import aiohttp
from prometheus_client import Counter

from connector.kraken.client import (
    Backoff,
    Connection,
    ConnectionOptions,
    ConnectionSpec,
    ConnectLimiter,
    describe,
    plan_connections,
)
from connector.pipeline import Pipeline
from connector.publisher import PRODUCER_OVERRIDES, Publisher
from connector.settings import ConnectorSettings
from kracked import metrics
from kracked.errors import ConfigError
from kracked.kafka import check_broker, ensure_topics, make_producer
from kracked.logs import setup_logging
from schemas.serde import Serde
from schemas.topics import COMPACTED, KRAKEN_CHANNEL_TOPICS, Topic

log = logging.getLogger("kracked.connector")


def topics_for(settings: ConnectorSettings) -> list[Topic]:
    """Topics this run writes: one per published channel, plus continuity and dead letters."""
    topics = [KRAKEN_CHANNEL_TOPICS[c] for c in settings.channels if c in KRAKEN_CHANNEL_TOPICS]
    return [*dict.fromkeys(topics), Topic.CONTINUITY, Topic.DEADLETTER]


class ConnectorApp:
    """One connector process (see module docstring)."""

    def __init__(self, settings: ConnectorSettings) -> None:
        self.settings = settings
        self.publisher: Publisher | None = None
        self.pipeline: Pipeline | None = None
        self.connections: list[Connection] = []
        self.ready = asyncio.Event()  # set once every connection task runs (tests wait on it)
        self._metrics = _Metrics()

    # ----------------------------------------------------------------------------------------- start-up

    def _kafka(self) -> Publisher:
        s = self.settings
        check_broker(s.kafka)
        topics = topics_for(s)
        try:
            ensure_topics(
                s.kafka,
                [t.name_with(s.kafka.topic_prefix) for t in topics],
                s.partitions,
                [t.name_with(s.kafka.topic_prefix) for t in COMPACTED],
            )
        except Exception as exc:  # admin errors are configuration problems here (ACLs, bad cluster)
            raise ConfigError(f"cannot create the connector's topics: {exc}") from None
        serde = Serde(s.kafka.schema_registry_url, s.kafka.topic_prefix)
        holder: list[Publisher] = []
        producer = make_producer(
            s.kafka,
            **PRODUCER_OVERRIDES,
            on_delivery=lambda err, msg: holder[0].on_delivery(err, msg),
            error_cb=lambda err: holder[0].on_error(err),
            stats_cb=lambda stats: holder[0].on_stats(stats),
        )
        publisher = Publisher(producer, serde, s.source)
        holder.append(publisher)
        try:
            publisher.prepare(topics)
        except Exception as exc:  # the registry is unreachable or refuses our schemas
            raise ConfigError(
                f"schema registry at {s.kafka.schema_registry_url} refused or did not answer: {exc}"
            ) from None
        return publisher

    def _options(self) -> ConnectionOptions:
        s = self.settings
        return ConnectionOptions(
            watchdog_seconds=s.watchdog_seconds,
            ping_seconds=s.ping_seconds,
            backoff=Backoff(base=s.backoff_base, cap=s.backoff_cap),
            stable_seconds=s.stable_seconds,
        )

    def _plan(self, symbols: Sequence[str], reference: bool) -> list[ConnectionSpec]:
        s = self.settings
        return plan_connections(
            symbols=symbols,
            channels=s.channels,
            ws_url=s.ws_url,
            ws_auth_url=s.ws_auth_url,
            ws_l3_url=s.ws_l3_url,
            book_depth=s.book_depth,
            level3_depth=s.level3_depth,
            ohlc_intervals=s.ohlc_intervals,
            event_triggers=s.event_triggers,
            trade_snapshot=s.trade_snapshot,
            symbols_per_connection=s.symbols_per_connection,
            reference=reference,
        )

    # ----------------------------------------------------------------------------------------- run

    async def run(self, stop: asyncio.Event) -> int:
        s = self.settings
        loop = asyncio.get_running_loop()
        publisher = self.publisher = await loop.run_in_executor(None, self._kafka)
        pipeline = self.pipeline = Pipeline(
            publisher,
            book_depth=s.book_depth,
            level3_depth=s.level3_depth,
            publish_channels=s.publish_channels,
        )
        # What exists now lives as long as the process: gc.freeze() keeps it out of the collector's
        # generations, so the collections the per-frame allocations trigger walk young objects only
        # (they spent ~6 % of the hot path walking the start-up heap, measured with perf). Garbage is
        # collected first so none of it is frozen.
        gc.collect()
        gc.freeze()
        limiter = ConnectLimiter(s.max_connects, s.connect_window)
        options = self._options()
        exchange_status: dict[str, str] = {}
        tasks: list[asyncio.Task[None]] = []
        session = aiohttp.ClientSession()
        background = [
            asyncio.create_task(self._poll(publisher, stop), name="producer-poll"),
            asyncio.create_task(self._sync_metrics(), name="metrics"),
        ]

        def start(spec: ConnectionSpec) -> None:
            conn = Connection(
                spec,
                pipeline,
                session,
                limiter=limiter,
                options=options,
                credentials=s.credentials,
                rest_url=s.rest_url,
                gate=publisher,
                exchange_status=exchange_status,
            )
            self.connections.append(conn)
            tasks.append(asyncio.create_task(conn.run(stop), name=f"conn-{spec.name}"))

        code = 0
        try:
            data_symbols = list(s.symbols or ())
            data_specs = self._plan(data_symbols, reference=False) if s.symbols is not None else []
            if s.needs_reference or not data_specs:
                start(self._plan([], reference=True)[0])
                waited = await self._wait_instruments(pipeline, stop)
                if s.symbols is None:
                    if not waited:
                        return 0
                    data_symbols = list(pipeline.online_pairs)
                    log.info("symbols=all: %d online pairs", len(data_symbols))
                    data_specs = self._plan(data_symbols, reference=False)
            for spec in data_specs:
                start(spec)
            log.info("connector running: %s", describe([c.spec for c in self.connections]))
            self.ready.set()
            fatal = asyncio.create_task(self._watch_fatal(publisher, stop))
            await stop.wait()
            fatal.cancel()
            if publisher.fatal:
                code = 1
        finally:
            stop.set()
            log.info("stopping: closing %d connections", len(tasks))
            if tasks:
                await asyncio.wait(tasks, timeout=10)
            for t in tasks:
                t.cancel()
            for t in (*tasks, *background):
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            await session.close()
            await publisher.close()
            remaining = await loop.run_in_executor(None, publisher.flush, s.flush_timeout)
            self._metrics.sync(self)
            if remaining:
                log.error(
                    "stopped with %d records not delivered after %.0fs of flushing",
                    remaining,
                    s.flush_timeout,
                )
                code = code or 1
            else:
                log.info("stopped: every record delivered")
        return code

    async def _wait_instruments(self, pipeline: Pipeline, stop: asyncio.Event) -> bool:
        """Wait for the instrument snapshot; without it checksums use inferred precisions."""
        waiter = asyncio.create_task(pipeline.instruments_ready.wait())
        stopper = asyncio.create_task(stop.wait())
        timeout = None if self.settings.symbols is None else self.settings.instrument_timeout
        done, _ = await asyncio.wait({waiter, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stopper.cancel()
        if waiter in done:
            return True
        if not stop.is_set():
            log.warning(
                "no instrument snapshot after %.0fs: book checksums use precisions inferred from snapshots",
                self.settings.instrument_timeout,
            )
        return False

    async def _poll(self, publisher: Publisher, stop: asyncio.Event) -> None:
        while True:
            publisher.poll()
            await asyncio.sleep(0.1)

    async def _watch_fatal(self, publisher: Publisher, stop: asyncio.Event) -> None:
        while not publisher.fatal:
            await asyncio.sleep(0.2)
        log.critical("stopping after a fatal Kafka producer error")
        stop.set()

    async def _sync_metrics(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._metrics.sync(self)


class _Metrics:
    """Prometheus view of the plain counters (synced once a second, never on the hot path)."""

    def __init__(self) -> None:
        self.frames = metrics.counter(
            "kracked_connector_frames_total", "Kraken data frames read", ("channel",)
        )
        self.malformed = metrics.counter(
            "kracked_connector_malformed_frames_total", "Frames that failed to parse"
        )
        self.records = metrics.counter("kracked_connector_records_total", "Records produced", ("topic",))
        self.reconnects = metrics.counter(
            "kracked_connector_reconnects_total", "Reconnections", ("connection",)
        )
        self.mismatches = metrics.counter(
            "kracked_connector_checksum_mismatches_total", "Book checksum mismatches", ("channel",)
        )
        self.gaps = metrics.counter("kracked_connector_trade_id_gaps_total", "Trade-id gaps")
        self.dead = metrics.counter("kracked_connector_dead_letters_total", "Dead letters", ("stage",))
        self.failures = metrics.counter(
            "kracked_connector_delivery_failures_total", "Failed deliveries (retried)"
        )
        self.blocked = metrics.counter(
            "kracked_connector_backpressure_seconds_total", "Time the socket reads were paused by Kafka"
        )
        self.latency = metrics.gauge(
            "kracked_connector_produce_latency_seconds",
            "Produce latency (librdkafka queue time + broker round trip)",
            ("quantile",),
        )
        self.queue = metrics.gauge("kracked_connector_producer_queue", "Records waiting for delivery")
        self.up = metrics.gauge("kracked_connector_connections_up", "Connections currently open")
        self._seen: dict[tuple[str, str], float] = {}

    def _inc(self, counter: Counter, key: str, value: float, *labels: str) -> None:
        last = self._seen.get((key, labels[0] if labels else ""), 0.0)
        if value > last:
            (counter.labels(*labels) if labels else counter).inc(value - last)
        self._seen[(key, labels[0] if labels else "")] = value

    def sync(self, app: ConnectorApp) -> None:
        pipe, pub = app.pipeline, app.publisher
        if pipe is None or pub is None:
            return
        for channel, n in pipe.frames.items():
            self._inc(self.frames, "frames", n, channel)
        self._inc(self.frames, "frames", sum(c.heartbeats for c in app.connections), "heartbeat")
        self._inc(self.frames, "frames", sum(c.pongs for c in app.connections), "pong")
        self._inc(self.malformed, "malformed", pipe.malformed)
        for topic, n in pub.produced.items():
            if n:
                self._inc(self.records, "records", n, topic.value)
        for name, n in pipe.reconnects.items():
            self._inc(self.reconnects, "reconnects", n, name)
        for channel, n in pipe.checksum_mismatches.items():
            self._inc(self.mismatches, "mismatch", n, channel)
        self._inc(self.gaps, "gaps", pipe.trade_gaps)
        for stage, n in pub.dead_letters.items():
            self._inc(self.dead, "dead", n, stage)
        self._inc(self.failures, "failures", pub.delivery_failures)
        self._inc(self.blocked, "blocked", pub.blocked_seconds)
        for q, v in pub.latency.items():
            self.latency.labels(q).set(v)
        self.queue.set(pub.in_flight())
        self.up.set(sum(1 for c in app.connections if c._ws is not None))


# ------------------------------------------------------------------------------------------------ entry points


def _install_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    def on_signal(signame: str) -> None:
        if not stop.is_set():
            log.info("%s received: stopping", signame)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig.name)


async def _main_async(settings: ConnectorSettings) -> int:
    stop = asyncio.Event()
    _install_signals(asyncio.get_running_loop(), stop)
    return await ConnectorApp(settings).run(stop)


def _run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop  # installed with ccxt; a faster event loop for the socket-heavy hot path
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return int(uvloop.run(coro))


def main(argv: Sequence[str] | None = None) -> int:
    """`kracked connector [flags]` (ConfigError → exit 2 with one line, via kracked.cli)."""
    settings = ConnectorSettings.from_env(argv=list(argv or ()))
    setup_logging(settings.log_level)
    log.info(
        "kracked connector: channels=%s symbols=%s book_depth=%d topic_prefix=%r credentials=%s",
        ",".join(settings.channels),
        "all" if settings.symbols is None else ",".join(settings.symbols),
        settings.book_depth,
        settings.kafka.topic_prefix,
        "set" if settings.credentials else "none",
    )
    metrics.serve(settings.metrics_port)
    return _run(_main_async(settings))


class ConnectorThread:
    """Run a connector in a background thread with its own loop (tests, benchmarks)."""

    def __init__(self, settings: ConnectorSettings) -> None:
        self.app = ConnectorApp(settings)
        self.result: int | None = None
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name="connector", daemon=True)

    def _main(self) -> None:
        async def body() -> int:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._started.set()
            return await self.app.run(self._stop)

        try:
            self.result = asyncio.run(body())
        except BaseException as exc:
            self.error = exc
            self._started.set()

    def start(self, timeout: float = 60.0) -> ConnectorApp:
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError("connector thread did not start")
        return self.app

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until every connection task is started (or raise the start-up error)."""
        deadline = threading.Event()
        for _ in range(int(timeout * 20)):
            if self.error is not None:
                raise self.error
            if self.app.ready.is_set():
                return
            if not self._thread.is_alive():
                raise RuntimeError(f"connector exited early with {self.result}")
            deadline.wait(0.05)
        raise TimeoutError("connector not ready")

    def stop(self, timeout: float = 60.0) -> int | None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.result
