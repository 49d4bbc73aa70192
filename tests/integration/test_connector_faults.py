"""Faults from the simulator, real broker and registry: drops, stalls, malformed frames, wrong checksums,
trade-id gaps and rejected symbols become reconnects, resyncs, continuity events and dead letters, and
the connector keeps going."""

from __future__ import annotations

from connector.kraken.sim.config import FaultConfig, SimConfig
from connector.kraken.sim.faults import MALFORMED
from connector.kraken.sim.server import SimThread
from schemas.topics import Topic
from tests.integration.conftest import KafkaTest
from tests.integration.helpers import read_all
from tests.integration.test_connector_sim import by_symbol, frames, running_connector, wait_for

SYMBOLS = ("BTC/USD", "ETH/USD")


def test_dropped_socket_reconnects_resyncs_and_misses_no_trade(kafka: KafkaTest) -> None:
    kafka.create_topics(Topic.BOOK, Topic.TRADE, Topic.CONTINUITY, Topic.DEADLETTER)
    thread = SimThread(SimConfig(symbols=SYMBOLS, rate=40.0, seed=3))
    sim = thread.start()
    try:
        with running_connector(
            kafka, sim, KRACKED_SYMBOLS=",".join(SYMBOLS), KRACKED_CHANNELS="book,trade"
        ) as app:
            wait_for(lambda: frames(app, "book") >= 40, what="book frames before the drop")
            assert thread.call(sim.drop_connections, "public") == 2  # reference + data connection
            wait_for(lambda: sum(app.pipeline.reconnects.values()) >= 2, what="both reconnects")  # type: ignore[union-attr]
            after = frames(app, "book")
            wait_for(lambda: frames(app, "book") >= after + 40, what="book frames after the reconnect")
        sent = {s: sim.trades_sent(s) for s in SYMBOLS}
    finally:
        thread.stop()

    continuity = read_all(kafka, Topic.CONTINUITY)
    drops = [r for r in continuity if r["event"] == "disconnect" and "stopping" not in r["detail"]]
    assert len(drops) == 2 and all(r["gap_start"] is not None for r in drops)
    assert [r["event"] for r in continuity].count("resubscribe") == 2
    # the final shutdown is reported too
    assert len([r for r in continuity if r["event"] == "disconnect" and "stopping" in r["detail"]]) == 2
    reconnects = [r for r in continuity if r["event"] == "reconnect"]
    assert {r["symbol"] for r in reconnects} == {None, *SYMBOLS}  # per connection and per symbol
    for r in reconnects:
        assert r["gap_start"] is not None and r["gap_end"] is not None and r["gap_start"] <= r["gap_end"]

    books = by_symbol(read_all(kafka, Topic.BOOK))
    for symbol in SYMBOLS:
        recs = books[symbol]
        epochs = sorted({r["epoch"] for r in recs})
        assert len(epochs) == 2  # resynced: a new snapshot, a new epoch
        first_of_new = next(r for r in recs if r["epoch"] == epochs[1])
        assert first_of_new["type"] == "snapshot"
        assert all(r["checksum_ok"] is True for r in recs if r["epoch"] == epochs[1])
        assert not [r for r in recs if r["checksum_ok"] is False]

    trades = by_symbol(read_all(kafka, Topic.TRADE))
    for symbol in SYMBOLS:
        ids = [r["trade_id"] for r in trades[symbol]]
        assert len(ids) == len(set(ids)), "a trade was published twice"
        assert ids == sorted(ids)
        # up to the last trade read (frames written while the connector shut down are never read)
        assert {t for t in sent[symbol] if t <= ids[-1]} <= set(ids), "a trade the simulator sent is missing"
        # the 50-trade snapshot after the resubscribe refilled the gap: no id missing at all
        assert ids == list(range(ids[0], ids[-1] + 1))


def test_malformed_frames_wrong_checksums_gaps_and_a_rejected_symbol(kafka: KafkaTest) -> None:
    kafka.create_topics(Topic.BOOK, Topic.TRADE, Topic.CONTINUITY, Topic.DEADLETTER)
    faults = FaultConfig(
        malformed_every=37,
        bad_checksum_every=23,
        trade_gap_every=29,
        reject_symbols=frozenset({"SOL/USD"}),
        reject_error="Currency pair not supported SOL/USD",
    )
    cfg = SimConfig(symbols=(*SYMBOLS, "SOL/USD"), rate=60.0, seed=5, faults=faults)
    with SimThread(cfg) as sim:
        with running_connector(
            kafka, sim, KRACKED_SYMBOLS="BTC/USD,ETH/USD,SOL/USD", KRACKED_CHANNELS="book,trade"
        ) as app:
            pipe = app.pipeline
            assert pipe is not None
            wait_for(
                lambda: (
                    pipe.malformed >= 3 and pipe.checksum_mismatches["book"] >= 3 and pipe.trade_gaps >= 3
                ),
                what="several faults of each kind",
            )
            seen = frames(app, "book")
            wait_for(lambda: frames(app, "book") >= seen + 30, what="frames after the faults")
        withheld = {s: list(sim.stats.trade_ids_withheld.get(s, [])) for s in SYMBOLS}

    dead = read_all(kafka, Topic.DEADLETTER)
    assert len(dead) >= 3 and {d["stage"] for d in dead} == {"parse"}
    assert {d["raw"] for d in dead} <= {raw for _, raw in MALFORMED}  # the bytes exactly as sent
    assert all(d["source"] == "connector" and d["error"] for d in dead)

    continuity = read_all(kafka, Topic.CONTINUITY)
    mismatches = [c for c in continuity if c["event"] == "checksum_mismatch"]
    resubscribes = [c for c in continuity if c["event"] == "resubscribe" and c["symbol"] is not None]
    assert len(mismatches) >= 3
    assert [(c["channel"], c["symbol"]) for c in resubscribes] == [
        (c["channel"], c["symbol"]) for c in mismatches
    ]
    assert all(c["expected"] != c["received"] and c["epoch"] for c in mismatches)

    books = by_symbol(read_all(kafka, Topic.BOOK))
    assert "SOL/USD" not in books
    checked = 0
    for mismatch in mismatches:
        recs = books[mismatch["symbol"]]
        if mismatch["epoch"] == max(r["epoch"] for r in recs):
            continue  # the connector stopped before this resubscribe's snapshot arrived
        # after each mismatch a new snapshot with a higher epoch verifies again
        later = [r for r in recs if r["epoch"] > mismatch["epoch"] and r["type"] == "snapshot"]
        assert later and later[0]["checksum_ok"] is True
        checked += 1
    assert checked >= len(mismatches) - len(SYMBOLS) and checked >= 1
    assert sum(1 for recs in books.values() for r in recs if r["checksum_ok"] is False) == len(mismatches)

    trades = by_symbol(read_all(kafka, Topic.TRADE))
    gaps = [c for c in continuity if c["event"] == "trade_id_gap"]
    assert len(gaps) >= 3 and all(c["expected"] < c["received"] for c in gaps)
    for symbol in SYMBOLS:
        covered = {i for c in gaps if c["symbol"] == symbol for i in range(c["expected"], c["received"])}
        last = max(r["trade_id"] for r in trades[symbol]) if trades.get(symbol) else -1
        # every withheld trade id before the last trade read was reported (a gap shows at the next trade)
        assert {t for t in withheld[symbol] if t < last} <= covered

    rejected = [c for c in continuity if c["event"] == "subscribe_rejected"]
    assert {(c["channel"], c["symbol"]) for c in rejected} == {("book", "SOL/USD"), ("trade", "SOL/USD")}
    assert all("Currency pair not supported" in c["detail"] for c in rejected)


def test_stalled_feed_trips_the_watchdog(kafka: KafkaTest) -> None:
    kafka.create_topics(Topic.BOOK, Topic.CONTINUITY, Topic.DEADLETTER)
    thread = SimThread(SimConfig(symbols=("BTC/USD",), rate=20.0, seed=9))
    sim = thread.start()
    try:
        with running_connector(
            kafka, sim, KRACKED_SYMBOLS="BTC/USD", KRACKED_CHANNELS="book", KRACKED_WATCHDOG_SECONDS="0.5"
        ) as app:
            wait_for(lambda: frames(app, "book") >= 10, what="book frames")
            thread.call(sim.stall, 3.0, "public")
            wait_for(lambda: sum(app.pipeline.reconnects.values()) >= 1, what="a reconnect")  # type: ignore[union-attr]
            n = frames(app, "book")
            wait_for(lambda: frames(app, "book") >= n + 10, what="frames after the reconnect")
    finally:
        thread.stop()
    continuity = read_all(kafka, Topic.CONTINUITY)
    stale = [c for c in continuity if c["event"] == "stale_feed"]
    assert stale and all(c["gap_start"] is not None for c in stale)
    assert "no frame for 0.5s" in stale[0]["detail"]
    epochs = {r["epoch"] for r in read_all(kafka, Topic.BOOK)}
    assert len(epochs) >= 2
