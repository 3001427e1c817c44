//! One module per runtime, each gated by its feature at the `mod` line: the
//! adapter type implementing [`Runtime`](crate::Runtime).

pub(crate) mod pollster;

#[cfg(feature = "tokio")]
pub(crate) mod tokio;

#[cfg(feature = "smol")]
pub(crate) mod smol;

#[cfg(feature = "async-std")]
pub(crate) mod async_std;
