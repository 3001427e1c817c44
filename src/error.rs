//! The error type of the bridge.

use std::any::Any;
use std::fmt;
use std::io;
use std::sync::Mutex;
use std::time::Duration;

/// The payload of a panic, as given to [`std::panic::resume_unwind`].
pub type PanicPayload = Box<dyn Any + Send + 'static>;

/// Why a bridged call did not produce its output.
///
/// Returned by [`Bridge::try_run`](crate::Bridge::try_run),
/// [`Bridge::run_timeout`](crate::Bridge::run_timeout) and the other fallible
/// methods. Small and inspectable: use the `is_*` predicates, or
/// [`into_panic`](Error::into_panic) to get a panic's payload back intact.
///
/// `Error` is `Send + Sync + 'static`, so it converts into `anyhow::Error` or
/// `Box<dyn std::error::Error + Send + Sync>` with `?`.
///
/// # Examples
///
/// ```
/// use executor_bridge::{Bridge, Pollster};
///
/// let bridge = Bridge::new(Pollster);
/// let err = bridge
///     .try_run(|| async { panic!("boom") })
///     .map(|()| ())
///     .unwrap_err();
/// assert!(err.is_panic());
/// assert_eq!(err.to_string(), "the bridged future panicked: boom");
/// let payload = err.into_panic();
/// assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
/// ```
#[non_exhaustive]
pub enum Error {
    /// The future, its factory closure, or its destructor panicked. The
    /// payload is kept intact; take it with [`Error::into_panic`].
    Panic(Panic),
    /// The deadline of [`Bridge::run_timeout`](crate::Bridge::run_timeout) or
    /// [`BlockingIter::next_timeout`](crate::BlockingIter::next_timeout) passed.
    /// The duration is the one that was asked for.
    Timeout(Duration),
    /// A loop thread could not be started (for example an absurd stack size,
    /// or the process is out of threads).
    Spawn(io::Error),
    /// The runtime could not be started (for example building a tokio runtime
    /// failed).
    Runtime(io::Error),
    /// The loop thread running the call went away without an answer. This
    /// only happens if a [`Runtime`](crate::Runtime) implementation aborts the
    /// thread or drops the work handed to it.
    Lost,
}

/// A panic payload carried across threads.
///
/// The payload sits behind a [`Mutex`] only so that [`Error`] is `Sync`; it
/// is never locked by two parties.
pub struct Panic {
    payload: Mutex<PanicPayload>,
    message: Option<String>,
}

impl Panic {
    pub(crate) fn new(payload: PanicPayload) -> Self {
        let message = payload_message(&*payload).map(str::to_owned);
        Panic {
            payload: Mutex::new(payload),
            message,
        }
    }

    /// The panic's message, if the payload is a `&str` or a `String` (as
    /// `panic!` makes it).
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// The payload, ready for [`std::panic::resume_unwind`].
    pub fn into_payload(self) -> PanicPayload {
        match self.payload.into_inner() {
            Ok(payload) => payload,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The message of a panic payload, if it is a `&str` or a `String`.
pub(crate) fn payload_message(payload: &(dyn Any + Send)) -> Option<&str> {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        Some(s)
    } else {
        payload.downcast_ref::<String>().map(String::as_str)
    }
}

impl Error {
    pub(crate) fn panic(payload: PanicPayload) -> Self {
        Error::Panic(Panic::new(payload))
    }

    /// Whether the future (or its factory, or its destructor) panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, Error::Panic(_))
    }

    /// Whether a deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout(_))
    }

    /// Whether a loop thread or the runtime could not be started.
    pub fn is_spawn(&self) -> bool {
        matches!(self, Error::Spawn(_) | Error::Runtime(_))
    }

    /// The panic payload, intact, for [`std::panic::resume_unwind`].
    ///
    /// # Panics
    ///
    /// Panics with "called `Error::into_panic` on an error that is not a
    /// panic: ..." if [`is_panic`](Error::is_panic) is false. Use
    /// [`try_into_panic`](Error::try_into_panic) to check first.
    #[track_caller]
    pub fn into_panic(self) -> PanicPayload {
        match self.try_into_panic() {
            Ok(payload) => payload,
            Err(other) => {
                panic!("called `Error::into_panic` on an error that is not a panic: {other}")
            }
        }
    }

    /// The panic payload if this is a panic, the error itself otherwise.
    pub fn try_into_panic(self) -> Result<PanicPayload, Error> {
        match self {
            Error::Panic(p) => Ok(p.into_payload()),
            other => Err(other),
        }
    }

    /// Resumes the panic if this is one, otherwise panics with the error's
    /// message. Used by the infallible methods.
    #[track_caller]
    pub(crate) fn raise(self) -> ! {
        match self {
            Error::Panic(p) => std::panic::resume_unwind(p.into_payload()),
            other => panic!("executor-bridge: {other}"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Panic(p) => match p.message() {
                Some(msg) => write!(f, "the bridged future panicked: {msg}"),
                None => f.write_str("the bridged future panicked"),
            },
            Error::Timeout(d) => write!(f, "deadline of {d:?} elapsed"),
            Error::Spawn(e) => write!(f, "failed to start a loop thread: {e}"),
            Error::Runtime(e) => write!(f, "failed to start the runtime: {e}"),
            Error::Lost => f.write_str("the loop thread went away without an answer"),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Panic(p) => f.debug_tuple("Panic").field(p).finish(),
            Error::Timeout(d) => f.debug_tuple("Timeout").field(d).finish(),
            Error::Spawn(e) => f.debug_tuple("Spawn").field(e).finish(),
            Error::Runtime(e) => f.debug_tuple("Runtime").field(e).finish(),
            Error::Lost => f.write_str("Lost"),
        }
    }
}

impl fmt::Debug for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(msg) => f.debug_struct("Panic").field("message", msg).finish(),
            None => f.debug_struct("Panic").finish_non_exhaustive(),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Spawn(e) | Error::Runtime(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    /// Timeouts become [`io::ErrorKind::TimedOut`], everything else
    /// [`io::ErrorKind::Other`] with the error as its source.
    fn from(err: Error) -> io::Error {
        match err {
            Error::Timeout(_) => io::Error::new(io::ErrorKind::TimedOut, err),
            other => io::Error::other(other),
        }
    }
}
