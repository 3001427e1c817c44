//! [`Error`]: why a bridged call gave no output.

use std::any::Any;
use std::fmt;
use std::io;
use std::sync::Mutex;
use std::time::Duration;

/// The payload of a panic, as [`std::panic::catch_unwind`] returns it.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// Why a bridged call did not produce its output.
///
/// Returned by [`Bridge::try_run`](crate::Bridge::try_run),
/// [`Bridge::run_timeout`](crate::Bridge::run_timeout) and
/// [`BlockingIter::next_timeout`](crate::BlockingIter::next_timeout). An
/// opaque type: ask it with the `is_*` predicates, take a panic's payload
/// back with [`into_panic`](Error::into_panic).
///
/// `Error` is `Send + Sync + 'static`, so `?` converts it into
/// `anyhow::Error` or `Box<dyn std::error::Error + Send + Sync>`, and it
/// converts into [`io::Error`] (a timeout becomes
/// [`io::ErrorKind::TimedOut`]), which most client errors (`sqlx::Error`,
/// for one) convert from.
///
/// # Examples
///
/// ```
/// use executor_bridge::{Bridge, Pollster};
///
/// let bridge = Bridge::new(Pollster);
/// let err = bridge.try_run(|| async { panic!("boom") }).map(|()| ()).unwrap_err();
/// assert!(err.is_panic());
/// assert_eq!(err.to_string(), "the bridged future panicked: boom");
/// let payload = err.into_panic();
/// assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
/// ```
pub struct Error {
    repr: Repr,
}

enum Repr {
    /// The payload sits behind a mutex only so that `Error` is `Sync`; it is
    /// never locked by two parties.
    Panic {
        payload: Mutex<Payload>,
        message: Option<String>,
    },
    Timeout(Duration),
    Thread(io::Error),
    Runtime(io::Error),
    Lost,
    /// A failure an earlier call reported, told again.
    Earlier(String),
}

impl Error {
    pub(crate) fn panic(payload: Payload) -> Self {
        let message = payload_message(&*payload).map(str::to_owned);
        Error {
            repr: Repr::Panic {
                payload: Mutex::new(payload),
                message,
            },
        }
    }

    pub(crate) fn timeout(after: Duration) -> Self {
        Error {
            repr: Repr::Timeout(after),
        }
    }

    pub(crate) fn thread(cause: io::Error) -> Self {
        Error {
            repr: Repr::Thread(cause),
        }
    }

    pub(crate) fn runtime(cause: io::Error) -> Self {
        Error {
            repr: Repr::Runtime(cause),
        }
    }

    pub(crate) fn lost() -> Self {
        Error { repr: Repr::Lost }
    }

    pub(crate) fn failed_earlier(why: &str) -> Self {
        Error {
            repr: Repr::Earlier(why.to_owned()),
        }
    }

    /// Whether the future (or its factory, or its destructor) panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic { .. })
    }

    /// Whether a deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self.repr, Repr::Timeout(_))
    }

    /// Whether a loop thread could not be started (the system refused a
    /// thread, or the runtime's `spawn_loop` hook failed).
    pub fn is_spawn(&self) -> bool {
        matches!(self.repr, Repr::Thread(_))
    }

    /// Whether the runtime could not be started, or refused the call.
    pub fn is_runtime(&self) -> bool {
        matches!(self.repr, Repr::Runtime(_))
    }

    /// The panic's message, if it panicked with a `&str` or a `String` (as
    /// `panic!` does).
    pub fn panic_message(&self) -> Option<&str> {
        match &self.repr {
            Repr::Panic { message, .. } => message.as_deref(),
            _ => None,
        }
    }

    /// The panic payload, intact, for [`std::panic::resume_unwind`].
    ///
    /// # Panics
    ///
    /// Panics with "called `Error::into_panic` on an error that is not a
    /// panic: ..." if [`is_panic`](Error::is_panic) is false; use
    /// [`try_into_panic`](Error::try_into_panic) to check first.
    #[track_caller]
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        match self.try_into_panic() {
            Ok(payload) => payload,
            Err(other) => {
                panic!("called `Error::into_panic` on an error that is not a panic: {other}")
            }
        }
    }

    /// The panic payload if this is a panic, the error itself otherwise.
    ///
    /// # Errors
    ///
    /// Gives `self` back if it is not a panic.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, Error> {
        match self.repr {
            Repr::Panic { payload, .. } => {
                Ok(payload.into_inner().unwrap_or_else(|p| p.into_inner()))
            }
            repr => Err(Error { repr }),
        }
    }

    /// Resumes the panic if this is one; otherwise panics with the error's
    /// message. The infallible methods end here.
    #[track_caller]
    pub(crate) fn raise(self) -> ! {
        match self.try_into_panic() {
            Ok(payload) => std::panic::resume_unwind(payload),
            Err(other) => panic!("executor-bridge: {other}"),
        }
    }
}

/// The message of a panic payload, if it is a `&str` or a `String`.
pub(crate) fn payload_message(payload: &(dyn Any + Send)) -> Option<&str> {
    match payload.downcast_ref::<&'static str>() {
        Some(s) => Some(s),
        None => payload.downcast_ref::<String>().map(String::as_str),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Panic {
                message: Some(msg), ..
            } => write!(f, "the bridged future panicked: {msg}"),
            Repr::Panic { message: None, .. } => f.write_str("the bridged future panicked"),
            Repr::Timeout(d) => write!(f, "deadline of {d:?} elapsed"),
            Repr::Thread(e) => write!(f, "failed to start a loop thread: {e}"),
            Repr::Runtime(e) => write!(f, "the runtime failed: {e}"),
            Repr::Lost => f.write_str("the loop thread went away without an answer"),
            Repr::Earlier(why) => write!(f, "failed in an earlier call: {why}"),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Panic { message, .. } => {
                f.debug_struct("Panic").field("message", message).finish()
            }
            Repr::Timeout(d) => f.debug_tuple("Timeout").field(d).finish(),
            Repr::Thread(e) => f.debug_tuple("Spawn").field(e).finish(),
            Repr::Runtime(e) => f.debug_tuple("Runtime").field(e).finish(),
            Repr::Lost => f.write_str("Lost"),
            Repr::Earlier(why) => f.debug_tuple("Earlier").field(why).finish(),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.repr {
            Repr::Thread(e) | Repr::Runtime(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    /// A timeout becomes [`io::ErrorKind::TimedOut`]; a failure to start a
    /// thread or the runtime keeps the kind of its cause; anything else is
    /// [`io::ErrorKind::Other`]. The bridge's error stays the source.
    fn from(err: Error) -> io::Error {
        let kind = match &err.repr {
            Repr::Timeout(_) => io::ErrorKind::TimedOut,
            Repr::Thread(e) | Repr::Runtime(e) => e.kind(),
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, err)
    }
}
