//! kracked's native hot paths, for the places where the interpreter's per-item cost is the limit.
//!
//! * `l2`: the connector's `book` channel (frame parse, L2 book, CRC32 verdict, `kraken.book` Avro).
//! * `replay`: `kracked replay --through book,bars` on raw Kafka batches (`book_keeper`, `bar_builder`).
//!
//! Every function has a pure-Python reference in the project (named in each module's doc) and the
//! unit tests require both to agree: same verdicts, byte-identical Avro.

mod avro;
mod bar_builder;
mod book_keeper;
mod decimal;
mod frame;
mod l2;
mod render;
mod replay;
mod replay_avro;
mod time;

use pyo3::prelude::*;

// The hot paths allocate many small, short-lived buffers (levels, rendered text, encoded records):
// mimalloc serves those several times faster than the system allocator (measured on the replay).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[pymodule]
fn kracked_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<l2::L2Verifier>()?;
    m.add_class::<replay::ReplayCore>()?;
    Ok(())
}
