// The README is the crate documentation, so its examples run as doctests.
// They use every runtime, so they are compiled with all the runtime features;
// other builds get a pointer to it instead.
#![cfg_attr(
    all(feature = "tokio", feature = "smol", feature = "async-std"),
    doc = include_str!("../README.md")
)]
#![cfg_attr(
    not(all(feature = "tokio", feature = "smol", feature = "async-std")),
    doc = "Call async code from blocking code, from any calling context. The full guide \
           is README.md, built as these docs with `--all-features`."
)]
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bridge;
mod context;
mod error;
mod iter;
mod pool;
mod read;
mod runtime;
mod scoped;
mod wait;

#[path = "../adapters/mod.rs"]
mod adapters;

pub use bridge::{Bridge, Builder};
pub use error::{Error, Panic, PanicPayload};
pub use iter::BlockingIter;
pub use read::BlockingReader;
pub use runtime::{Runtime, Task};

pub use adapters::pollster;
pub use adapters::pollster::Pollster;

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use adapters::tokio::{self, Tokio};

#[cfg(feature = "smol")]
#[cfg_attr(docsrs, doc(cfg(feature = "smol")))]
pub use adapters::smol::{self, Smol};

#[cfg(feature = "async-std")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-std")))]
pub use adapters::async_std::{self, AsyncStd};
