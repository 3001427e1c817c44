//! The crate's tests, second binary (see `main.rs`): the loop threads and
//! their faults, tracing, the Tokio adapter, and the both-ways types (IO,
//! readers, writers, sinks) with their invariants.

#[path = "common.rs"]
mod common;

#[path = "faults.rs"]
mod faults;
#[path = "invariants.rs"]
mod invariants;
#[path = "io.rs"]
mod io;
#[path = "pool.rs"]
mod pool;
#[path = "read.rs"]
mod read;
#[path = "realworld.rs"]
mod realworld;
#[cfg(feature = "tracing")]
#[path = "spans.rs"]
mod spans;
#[path = "stress.rs"]
mod stress;
#[cfg(feature = "tokio")]
#[path = "tokio_adapter.rs"]
mod tokio_adapter;
