//! `ReplayCore`: `kracked replay --through book,bars` over raw Kafka batches, without the interpreter
//! per record. Python reads batches of messages per partition span and hands them over whole
//! (`push`); this core decodes the Avro values, merges the spans in the documented replay order
//! (`consumers/replay/domain.py`: event time, then topic order, partition, offset), runs what
//! `BookService` (L2) and `BarsService` do for each record on the replay's virtual clock, and returns
//! the encoded `kracked.book.top` / `kracked.bars` values ready to produce (`take`). Continuity events
//! (rare) are returned as record dicts for the Python encoder.
//!
//! The service rules mirrored here are those of `consumers/book/service.py` (publish after each top
//! change or on a cadence, a `valid=false` top when a book becomes invalid, continuity events) and
//! `consumers/windowed.py` (watermark moved at every crossing of a window end, closed at the end of
//! the input as the engine's final `tick` does). The books and bars themselves are the pure cores in
//! `book_keeper.rs` and `bar_builder.rs`.

use std::collections::{HashMap, VecDeque};

use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::bar_builder::{Bar, BarBuilder, TradeInput};
use crate::book_keeper::{BookInput, Keeper, Outcome, Transition, Verdict};
use crate::replay_avro::{
    read_book, read_trade, text, write_bar, write_top, BookBody, TopHead, TradeBody,
};

/// The engine's "end of input" clock (`consumers/replay/engine.py::END_OF_INPUT_US`).
const END_OF_INPUT_US: i64 = 1 << 62;
/// `take()` is due once this many outputs are waiting (bounded memory between produce calls).
const OUTPUT_BATCH: usize = 20_000;

pub const OUT_BOOK_TOP: u8 = 0;
pub const OUT_BARS: u8 = 1;
pub const OUT_CONTINUITY: u8 = 2;

enum Rec {
    Book(BookBody),
    Trade(TradeBody),
}

struct Item {
    event_us: i64,
    offset: i64,
    /// The consumed value itself (no copy): the Avro body starts after the 5-byte header.
    value: Py<PyBytes>,
    rec: Rec,
}

struct Stream {
    topic_index: i64,
    book: bool, // kraken.book, else kraken.trade
    name: String,
    partition: i64,
    end: i64,
    header: Vec<u8>,
    queue: VecDeque<Item>,
    finished: bool,
}

struct Continuity {
    event: &'static str,
    symbol: String,
    expected: Option<i64>,
    received: Option<i64>,
    epoch: Option<i64>,
    detail: String,
    ts: i64,
    origin: String,
}

enum Output {
    Value(u8, String, Vec<u8>),
    Continuity(Continuity),
}

/// Where a published top's source fields come from (the record that produced it).
#[derive(Clone)]
struct Source {
    stream: usize,
    offset: i64,
    ts_event: Option<i64>,
    ts_recv: i64,
}

struct BookSvc {
    keeper: Keeper,
    top_n: usize,
    cadence_us: i64,
    header: Vec<u8>,
    last_pub: HashMap<String, i64>,
    pending: Vec<(String, Source)>, // in first-pending order, as the reference's dict
}

struct BarsSvc {
    builder: BarBuilder,
    header: Vec<u8>,
    grace_us: i64,
    idle_delay_us: i64,
    step_us: i64,
    next_close: i64,
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl BookSvc {
    fn handle(
        &mut self,
        streams: &[Stream],
        out: &mut Vec<Output>,
        src: Source,
        symbol: &str,
        input: &BookInput,
    ) {
        let result = self.keeper.process(input);
        let (verdict, transition) = (result.verdict, result.transition);
        if transition != Transition::None || verdict != Verdict::Ok {
            if transition == Transition::BecameInvalid
                || (verdict == Verdict::Mismatch && transition == Transition::None)
            {
                out.push(Output::Continuity(continuity(
                    &streams[src.stream],
                    &src,
                    symbol,
                    &result,
                )));
                if transition == Transition::BecameInvalid {
                    self.publish(streams, out, &src, symbol, false);
                }
                return;
            }
            if matches!(transition, Transition::Recovered | Transition::BecameValid) {
                out.push(Output::Continuity(continuity(
                    &streams[src.stream],
                    &src,
                    symbol,
                    &result,
                )));
            }
        }
        if !(result.valid && result.top_changed) {
            return;
        }
        if self.cadence_us > 0 {
            let ts = src.ts_recv;
            if ts - self.last_pub.get(symbol).copied().unwrap_or(0) < self.cadence_us {
                match self.pending.iter_mut().find(|(s, _)| s == symbol) {
                    Some(entry) => entry.1 = src,
                    None => self.pending.push((symbol.to_string(), src)),
                }
                return;
            }
            self.last_pub.insert(symbol.to_string(), ts);
            self.pending.retain(|(s, _)| s != symbol);
        }
        self.publish(streams, out, &src, symbol, true);
    }

    fn tick(&mut self, streams: &[Stream], out: &mut Vec<Output>, now: i64) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        for (symbol, src) in pending {
            if now - self.last_pub.get(&symbol).copied().unwrap_or(0) >= self.cadence_us {
                if self.keeper.book(&symbol).is_some() && self.keeper.is_valid(&symbol) {
                    self.last_pub.insert(symbol.clone(), now);
                    self.publish(streams, out, &src, &symbol, true);
                }
            } else {
                self.pending.push((symbol, src));
            }
        }
    }

    /// `BookService._publish` of the symbol's current top (nothing before its first snapshot).
    fn publish(
        &mut self,
        streams: &[Stream],
        out: &mut Vec<Output>,
        src: &Source,
        symbol: &str,
        checksum_ok: bool,
    ) {
        let valid = self.keeper.is_valid(symbol);
        let Some(book) = self.keeper.book(symbol) else {
            return;
        };
        let stream = &streams[src.stream];
        let head = TopHead {
            symbol,
            depth: self.top_n as i64,
            checksum: book.checksum() as i64,
            checksum_ok,
            valid: valid && checksum_ok,
            epoch: book.epoch,
            price_precision: book.price_precision as i64,
            qty_precision: book.qty_precision as i64,
            ts_event: src.ts_event,
            ts_recv: src.ts_recv,
            source_topic: &stream.name,
            source_partition: stream.partition,
            source_offset: src.offset,
        };
        let (bids, asks) = book.top(self.top_n);
        let value = write_top(&self.header, &head, bids.into_iter(), asks.into_iter());
        out.push(Output::Value(OUT_BOOK_TOP, symbol.to_string(), value));
    }
}

/// `BookService._continuity` (the record and the log line's origin).
fn continuity(stream: &Stream, src: &Source, symbol: &str, result: &Outcome) -> Continuity {
    let epoch_text = result.epoch.map_or("None".to_string(), |e| e.to_string());
    let opt = |v: Option<i64>| v.map_or("None".to_string(), |v| v.to_string());
    let (event, detail) = if result.verdict == Verdict::Mismatch {
        (
            "checksum_mismatch",
            format!(
                "kraken.book epoch {epoch_text}: Kraken {}, computed {}; invalid until the next snapshot",
                opt(result.expected),
                opt(result.computed)
            ),
        )
    } else if result.valid {
        (
            "snapshot_reset",
            format!("kraken.book: book verified from the snapshot of epoch {epoch_text}"),
        )
    } else {
        let mut detail = format!("kraken.book: {}", result.verdict.value());
        if let Some(error) = result.error.as_deref().filter(|e| !e.is_empty()) {
            detail.push_str(&format!(" ({error})"));
        }
        ("book_invalid", detail)
    };
    Continuity {
        event,
        symbol: symbol.to_string(),
        expected: result.expected,
        received: result.computed,
        epoch: result.epoch,
        detail,
        ts: src.ts_recv,
        origin: format!("{}[{}]@{}", stream.name, stream.partition, src.offset),
    }
}

impl BarsSvc {
    /// `WindowedService.handle` with `BarsService.add`.
    fn handle(&mut self, out: &mut Vec<Output>, trade: &TradeInput) -> Result<(), String> {
        let closed = self.builder.add_trade(trade)?;
        self.emit(out, closed);
        let ts = trade.ts_event;
        if ts >= self.next_close {
            let closed = self.builder.advance(ts)?;
            self.emit(out, closed);
            self.next_close =
                ((ts - self.grace_us).div_euclid(self.step_us) + 1) * self.step_us + self.grace_us;
        }
        Ok(())
    }

    fn emit(&self, out: &mut Vec<Output>, bars: Vec<Bar>) {
        for bar in bars {
            let value = write_bar(&self.header, &bar);
            out.push(Output::Value(OUT_BARS, bar.symbol, value));
        }
    }
}

/// `ReplayCore(...)`: see the module doc. Streams are added with `add_stream` in any order; services
/// are enabled with `with_book` / `with_bars` in the `--through` order (the order of the final ticks).
#[pyclass(module = "kracked_native")]
pub struct ReplayCore {
    streams: Vec<Stream>,
    book: Option<BookSvc>,
    bars: Option<BarsSvc>,
    order: Vec<bool>, // true = book, false = bars
    outputs: Vec<Output>,
    processed: u64,
    finished: bool,
    keys: HashMap<String, Py<PyBytes>>, // Kafka keys (symbols) as bytes, made once each
}

impl ReplayCore {
    fn process(&mut self, py: Python<'_>, index: usize, item: Item) -> Result<(), String> {
        let stream = &self.streams[index];
        self.processed += 1;
        let body = &item.value.bind(py).as_bytes()[5..];
        match &item.rec {
            Rec::Book(b) => {
                let Some(svc) = self.book.as_mut() else {
                    return Ok(());
                };
                if !stream.book {
                    return Ok(());
                }
                let pairs = |levels: &Vec<(crate::replay_avro::Span, crate::replay_avro::Span)>| -> Vec<(&str, &str)> {
                    levels.iter().map(|(p, q)| (text(body, p), text(body, q))).collect()
                };
                let bids = pairs(&b.bids);
                let asks = pairs(&b.asks);
                let symbol = text(body, &b.symbol);
                let input = BookInput {
                    symbol,
                    kind: text(body, &b.kind),
                    bids: &bids,
                    asks: &asks,
                    checksum: b.checksum,
                    price_precision: b.price_precision,
                    qty_precision: b.qty_precision,
                    depth: b.depth,
                    epoch: b.epoch,
                };
                let src = Source {
                    stream: index,
                    offset: item.offset,
                    ts_event: b.ts_event,
                    ts_recv: b.ts_recv,
                };
                svc.handle(&self.streams, &mut self.outputs, src, symbol, &input);
                if svc.cadence_us > 0 {
                    svc.tick(&self.streams, &mut self.outputs, item.event_us);
                }
            }
            Rec::Trade(t) => {
                let Some(svc) = self.bars.as_mut() else {
                    return Ok(());
                };
                let trade = TradeInput {
                    symbol: text(body, &t.symbol),
                    side: text(body, &t.side),
                    price: text(body, &t.price),
                    qty: text(body, &t.qty),
                    trade_id: t.trade_id,
                    ts_event: t.ts_event,
                    partition: stream.partition,
                    offset: item.offset,
                };
                svc.handle(&mut self.outputs, &trade)?;
            }
        }
        Ok(())
    }

    /// The stream whose head comes first in the replay order, or Err(stream) when a stream that is
    /// not finished has nothing buffered (the merge cannot know what comes next without it).
    fn next_stream(&self) -> Result<Option<usize>, usize> {
        let mut best: Option<(usize, (i64, i64, i64, i64))> = None;
        for (i, s) in self.streams.iter().enumerate() {
            match s.queue.front() {
                None if !s.finished => return Err(i),
                None => {}
                Some(head) => {
                    let key = (head.event_us, s.topic_index, s.partition, head.offset);
                    if best.is_none_or(|(_, k)| key < k) {
                        best = Some((i, key));
                    }
                }
            }
        }
        Ok(best.map(|(i, _)| i))
    }
}

/// The `kracked.continuity` record of an event (as `BookService._continuity` builds it) and its origin.
fn continuity_dict(py: Python<'_>, c: Continuity) -> PyResult<(Bound<'_, PyDict>, String)> {
    let d = PyDict::new(py);
    d.set_item("event", c.event)?;
    d.set_item("source", "book")?;
    d.set_item("channel", "book")?;
    d.set_item("symbol", &c.symbol)?;
    d.set_item("gap_start", py.None())?;
    d.set_item("gap_end", py.None())?;
    d.set_item("expected", c.expected)?;
    d.set_item("received", c.received)?;
    d.set_item("epoch", c.epoch)?;
    d.set_item("detail", &c.detail)?;
    d.set_item("ts", c.ts)?;
    Ok((d, c.origin))
}

fn decode(book: bool, body: &[u8]) -> Result<(Rec, i64), String> {
    if book {
        let b = read_book(body)?;
        let event = b.ts_event.unwrap_or(b.ts_recv); // `event_time_us`: ts_event, else ts_recv
        Ok((Rec::Book(b), event))
    } else {
        let t = read_trade(body)?;
        let event = t.ts_event;
        Ok((Rec::Trade(t), event))
    }
}

#[pymethods]
impl ReplayCore {
    #[new]
    fn new() -> Self {
        ReplayCore {
            streams: Vec::new(),
            book: None,
            bars: None,
            order: Vec::new(),
            outputs: Vec::new(),
            processed: 0,
            finished: false,
            keys: HashMap::new(),
        }
    }

    /// Run `BookService(top_n, cadence_ms)` on the `kraken.book` streams; `header` = the Confluent
    /// header of `kracked.book.top` under the target prefix.
    fn with_book(&mut self, top_n: usize, cadence_ms: i64, header: Vec<u8>) {
        self.book = Some(BookSvc {
            keeper: Keeper::default(),
            top_n,
            cadence_us: cadence_ms * 1000,
            header,
            last_pub: HashMap::new(),
            pending: Vec::new(),
        });
        self.order.push(true);
    }

    /// Run `BarsService(intervals_s, grace_ms, idle_delay_ms)` on the `kraken.trade` streams.
    fn with_bars(
        &mut self,
        intervals_s: Vec<i64>,
        grace_ms: i64,
        idle_delay_ms: i64,
        header: Vec<u8>,
    ) -> PyResult<()> {
        let builder =
            BarBuilder::new(&intervals_s, grace_ms * 1000).map_err(PyValueError::new_err)?;
        let step = intervals_s.iter().copied().fold(0, gcd) * 1_000_000;
        self.bars = Some(BarsSvc {
            builder,
            header,
            grace_us: grace_ms * 1000,
            idle_delay_us: idle_delay_ms * 1000,
            step_us: step,
            next_close: i64::MIN,
        });
        self.order.push(false);
        Ok(())
    }

    /// A partition span of `kraken.book` (`book=True`) or `kraken.trade`; `header` = the Confluent
    /// header of the values this core decodes itself (others go through `normalize` in `push`).
    /// Returns the stream's index.
    #[allow(clippy::too_many_arguments)]
    fn add_stream(
        &mut self,
        topic_index: i64,
        book: bool,
        name: String,
        partition: i64,
        end: i64,
        header: Vec<u8>,
    ) -> usize {
        self.streams.push(Stream {
            topic_index,
            book,
            name,
            partition,
            end,
            header,
            queue: VecDeque::new(),
            finished: false,
        });
        self.streams.len() - 1
    }

    /// One consumed batch of a stream (confluent_kafka `Message`s in offset order). Values whose
    /// header is not the stream's go through `normalize(value) -> bytes | None` (re-encoded with the
    /// stream's schema, or None to skip; called as `normalize(value, offset)`). Returns [(offset, reason)] of the values skipped as
    /// unreadable (the caller logs them, as the Python source does).
    fn push<'py>(
        &mut self,
        py: Python<'py>,
        stream: usize,
        messages: &Bound<'py, PyList>,
        normalize: &Bound<'py, PyAny>,
    ) -> PyResult<Vec<(i64, String)>> {
        let mut skipped = Vec::new();
        let s = self
            .streams
            .get_mut(stream)
            .ok_or_else(|| PyValueError::new_err("no such stream"))?;
        let (error, offset_name, value_name) = (
            intern!(py, "error"),
            intern!(py, "offset"),
            intern!(py, "value"),
        );
        for msg in messages.iter() {
            if !msg.call_method0(error)?.is_none() {
                continue;
            }
            let offset: i64 = msg
                .call_method0(offset_name)?
                .extract::<Option<i64>>()?
                .unwrap_or(0);
            if offset >= s.end {
                s.finished = true;
                break;
            }
            let value = msg.call_method0(value_name)?;
            let ours = value.cast::<PyBytes>().ok().filter(|b| {
                let b = b.as_bytes();
                b.len() >= 5 && b[..5] == s.header[..]
            });
            let value = match ours {
                Some(b) => Some(b.clone()),
                None => {
                    // another schema id (or junk): the Python serde resolves it against ours
                    let fixed = normalize.call1((value.clone(), offset))?;
                    fixed
                        .cast_into::<PyBytes>()
                        .ok()
                        .filter(|b| b.as_bytes().len() >= 5)
                }
            };
            if let Some(value) = value {
                match decode(s.book, &value.as_bytes()[5..]) {
                    Ok((rec, event_us)) => s.queue.push_back(Item {
                        event_us,
                        offset,
                        value: value.unbind(),
                        rec,
                    }),
                    Err(e) => skipped.push((offset, format!("corrupt Avro body ({e})"))),
                }
            }
            if offset + 1 >= s.end {
                s.finished = true;
                break;
            }
        }
        Ok(skipped)
    }

    /// The stream has no more records (its span is read).
    fn close_stream(&mut self, stream: usize) {
        if let Some(s) = self.streams.get_mut(stream) {
            s.finished = true;
        }
    }

    /// Replay what the buffered records allow. Returns the index of a stream that needs its next
    /// batch, -1 when every stream is done (call `finish`), or -2 when outputs should be taken first.
    fn run(&mut self, py: Python<'_>) -> PyResult<i64> {
        loop {
            if self.outputs.len() >= OUTPUT_BATCH {
                return Ok(-2);
            }
            let index = match self.next_stream() {
                Err(needed) => return Ok(needed as i64),
                Ok(None) => return Ok(-1),
                Ok(Some(i)) => i,
            };
            let item = self.streams[index].queue.pop_front().expect("a head");
            self.process(py, index, item)
                .map_err(PyValueError::new_err)?;
        }
    }

    /// End of the input: the engine's final `tick(END_OF_INPUT_US, caught_up=True)` per service, in
    /// `--through` order (pending cadence tops published, every open bar closed).
    fn finish(&mut self) -> PyResult<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        for &book in &self.order.clone() {
            if book {
                if let Some(svc) = self.book.as_mut() {
                    svc.tick(&self.streams, &mut self.outputs, END_OF_INPUT_US);
                }
            } else if let Some(svc) = self.bars.as_mut() {
                let closed = svc
                    .builder
                    .advance(END_OF_INPUT_US - svc.idle_delay_us)
                    .map_err(PyValueError::new_err)?;
                svc.emit(&mut self.outputs, closed);
            }
        }
        Ok(())
    }

    /// The outputs so far, in emission order: (kind, key, value) for kind 0 = `kracked.book.top` and
    /// 1 = `kracked.bars` (key and value: bytes), (2, record dict, origin text) for a
    /// `kracked.continuity` event (for tests and callers that produce themselves).
    fn take<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for output in self.outputs.drain(..) {
            match output {
                Output::Value(kind, key, value) => {
                    list.append((
                        kind,
                        PyBytes::new(py, key.as_bytes()),
                        PyBytes::new(py, &value),
                    ))?;
                }
                Output::Continuity(c) => {
                    let (d, origin) = continuity_dict(py, c)?;
                    list.append((OUT_CONTINUITY, d, origin))?;
                }
            }
        }
        Ok(list)
    }

    /// Produce the outputs so far, in emission order, with `producer.produce(topic, value, key)` to
    /// `names[kind]` (kind 0 = `kracked.book.top`, 1 = `kracked.bars`); a full local queue is waited
    /// out with `producer.poll(0.1)`, as `Outbox` does. Continuity events go to `continuity(record
    /// dict, origin text)` (the Python encoder and log line). Returns how many values were produced.
    fn produce<'py>(
        &mut self,
        py: Python<'py>,
        producer: &Bound<'py, PyAny>,
        names: Vec<Bound<'py, PyAny>>,
        continuity: &Bound<'py, PyAny>,
    ) -> PyResult<usize> {
        let produce = producer.getattr(intern!(py, "produce"))?;
        let mut count = 0;
        let outputs = std::mem::take(&mut self.outputs);
        for output in outputs {
            match output {
                Output::Value(kind, key, value) => {
                    let name = names
                        .get(kind as usize)
                        .ok_or_else(|| PyValueError::new_err("no topic name"))?;
                    let key = match self.keys.get(&key) {
                        Some(k) => k.bind(py).clone(),
                        None => {
                            let k = PyBytes::new(py, key.as_bytes());
                            self.keys.insert(key, k.clone().unbind());
                            k
                        }
                    };
                    let args = (name, PyBytes::new(py, &value), key);
                    loop {
                        match produce.call1(args.clone()) {
                            Ok(_) => break,
                            Err(e) if e.is_instance_of::<PyBufferError>(py) => {
                                producer.call_method1("poll", (0.1,))?;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    count += 1;
                }
                Output::Continuity(c) => {
                    let (record, origin) = continuity_dict(py, c)?;
                    continuity.call1((record, origin))?;
                }
            }
        }
        Ok(count)
    }

    /// Records replayed so far.
    #[getter]
    fn processed(&self) -> u64 {
        self.processed
    }
}
