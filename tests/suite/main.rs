//! The crate's tests, one binary: each module one subject; the adapters and
//! the calling contexts come from `common`.

mod common;

mod contexts;
mod custom;
mod faults;
mod invariants;
mod io;
mod matrix;
mod pool;
mod read;
mod realworld;
#[cfg(all(feature = "tokio", feature = "smol", feature = "async-std"))]
mod regressions;
mod run;
mod seed;
mod smoke;
#[cfg(feature = "tracing")]
mod spans;
mod streams;
mod stress;
#[cfg(feature = "tokio")]
mod tokio_adapter;
