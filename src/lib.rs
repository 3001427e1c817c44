#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bridge;
mod carry;
mod context;
mod ending;
mod error;
mod io;
mod iter;
mod local;
mod pool;
mod read;
mod relay;
mod runtime;
mod scoped;
mod sink;
mod wait;
mod write;

#[path = "../adapters/mod.rs"]
mod adapters;

pub mod guide;

pub use bridge::{Bridge, Builder};
pub use error::Error;
pub use io::BlockingIo;
pub use iter::BlockingIter;
pub use read::BlockingReader;
pub use runtime::Runtime;
pub use sink::{BlockingSink, SendError, SinkStream};
pub use write::BlockingWriter;

pub use adapters::pollster::Pollster;

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use adapters::tokio::Tokio;

#[cfg(feature = "smol")]
#[cfg_attr(docsrs, doc(cfg(feature = "smol")))]
pub use adapters::smol::{Smol, SmolExecutor};

#[cfg(feature = "async-std")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-std")))]
pub use adapters::async_std::AsyncStd;

pub(crate) use carry::Carry;
