//! The crate's tests, in two binaries over one directory, so that the two
//! compile side by side: this one, the calls (every entry point from every
//! calling context, streams, deadlines, the matrix); `pool_io.rs`, the loop
//! threads, faults and the both-ways types. Each module is one subject; the
//! adapters and the calling contexts come from `common`.

mod common;

mod contexts;
mod custom;
mod matrix;
#[cfg(all(feature = "tokio", feature = "smol", feature = "async-std"))]
mod regressions;
mod run;
mod seed;
mod smoke;
mod streams;
