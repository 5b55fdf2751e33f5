//! The one error type of latchkey, and the kinds that the C ABI turns into
//! status codes.

use std::fmt;

/// What kind of failure an [`Error`] is.
///
/// Each kind maps to one fixed C status code (see `latchkey.h`), so the four
/// languages classify failures identically.
///
/// ```
/// use latchkey::{Error, ErrorKind};
/// let e = Error::new(ErrorKind::Timeout, "lock 'a' was not acquired within 1 s");
/// assert_eq!(e.kind(), ErrorKind::Timeout);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller passed something unusable: an empty name, a zero TTL, a bad URL.
    InvalidArgument,
    /// The lock was not acquired before the deadline (someone else held it,
    /// or, with `wait_for_replicas`, too few replicas confirmed in time).
    Timeout,
    /// A release or extend found that this owner does not hold the lock (it
    /// expired, or someone force-unlocked it).
    NotHeld,
    /// The lease was lost while it was supposed to be held: renewal found the
    /// key gone or owned by someone else, or could not reach Redis in time.
    Lost,
    /// The wait was cancelled through a [`CancelToken`](crate::CancelToken).
    Cancelled,
    /// Redis could not be reached, the connection broke, or Redis did not
    /// answer within the command timeout (stopped or overloaded). A command
    /// timeout is a `Connection` error, never a [`Timeout`](ErrorKind::Timeout).
    Connection,
    /// Redis answered with an error.
    Server,
    /// Redlock: too few masters answered for the outcome to be known (fewer
    /// than N/2+1); the others are down, paused or unreachable. Also: too
    /// few of those that answered count yet, being younger than the restart
    /// delay (`ClientBuilder::redlock_restart_delay`); the message says so.
    NoQuorum,
    /// Redis refused the credentials: a wrong user name or password
    /// (`WRONGPASS`), or none given to a server that requires one
    /// (`NOAUTH`). Retrying will not help; fix the URL.
    Auth,
    /// The client was closed ([`Client::close`](crate::Client::close)): an
    /// acquire that was waiting, or that started afterwards, ends with this.
    Closed,
}

impl ErrorKind {
    /// A short, stable name for the kind, as used by every binding.
    ///
    /// ```
    /// assert_eq!(latchkey::ErrorKind::NotHeld.name(), "not held");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::Timeout => "timeout",
            ErrorKind::NotHeld => "not held",
            ErrorKind::Lost => "lease lost",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Connection => "connection error",
            ErrorKind::Server => "redis error",
            ErrorKind::NoQuorum => "no quorum",
            ErrorKind::Auth => "authentication failed",
            ErrorKind::Closed => "closed",
        }
    }
}

/// A latchkey failure: a kind plus a message that says what happened and,
/// where it helps, what to do about it.
///
/// ```
/// use latchkey::{Client, ErrorKind};
/// let err = Client::open("not a url").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidArgument);
/// assert!(err.to_string().contains("URL"));
/// ```
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    /// The deployment answered, but could not serve the request for now
    /// (a Cluster slot in migration, Redlock masters younger than the
    /// restart delay): worth waiting out even on an acquire's first
    /// attempt, unlike a server that never answered (a wrong address fails
    /// at once).
    answered_busy: bool,
}

impl Error {
    /// Makes an error of the given kind with a message.
    ///
    /// ```
    /// let e = latchkey::Error::new(latchkey::ErrorKind::Lost, "gone");
    /// assert_eq!(e.message(), "gone");
    /// ```
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            answered_busy: false,
        }
    }

    /// The kind of failure.
    ///
    /// ```
    /// let e = latchkey::Error::new(latchkey::ErrorKind::Cancelled, "stop");
    /// assert_eq!(e.kind(), latchkey::ErrorKind::Cancelled);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The human-readable message, without the kind.
    ///
    /// ```
    /// let e = latchkey::Error::new(latchkey::ErrorKind::Timeout, "too slow");
    /// assert_eq!(e.message(), "too slow");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    /// The same error, its message prefixed with what the caller was doing
    /// ("acquiring lock 'x': ..."). Added on the way up, where an error is
    /// handed out: the paths that succeed format nothing.
    pub(crate) fn context(self, what: impl fmt::Display) -> Self {
        Error {
            kind: self.kind,
            message: format!("{what}: {}", self.message),
            answered_busy: self.answered_busy,
        }
    }

    /// Marks an error of a server that answered but cannot serve the
    /// request for now (see `answered_busy`).
    pub(crate) fn answered_busy(mut self) -> Self {
        self.answered_busy = true;
        self
    }

    /// Whether the server answered but could not serve the request for now.
    pub(crate) fn is_answered_busy(&self) -> bool {
        self.answered_busy
    }

    /// Classifies a redis-crate error. `what` says what we were doing or where
    /// ("on redis at 127.0.0.1:6379"), so the message reads "what: ...". The redis crate never puts a
    /// password into its error text, but a server's reply may quote the
    /// arguments of a command it does not know (AUTH included): those are
    /// cut (see `without_arguments`).
    pub(crate) fn from_redis(what: &str, err: &redis::RedisError) -> Self {
        if is_auth_failure(err) {
            let hint = if err.code() == Some("NOAUTH") {
                "the server requires a password and none was given; put it in the URL \
                 (redis://[user:]password@host)"
            } else {
                "the server refused the user name or password; check them in the URL \
                 (percent-encode any / @ : % # ? in them)"
            };
            let err = without_arguments(err);
            return Error::new(ErrorKind::Auth, format!("{what}: {err}; {hint}"));
        }
        let text = without_arguments(err);
        if is_missing_database(err) {
            let err = &text;
            return Error::invalid(format!(
                "{what}: {err}; the database number in the URL does not exist on this server \
                 (a server has as many databases as its `databases` setting, 16 by default, \
                 numbered from 0)"
            ));
        }
        // A command timeout is a connection problem, not a lock held past
        // the caller's deadline: callers that treat Timeout as "busy, try
        // later" must not mistake a stopped Redis for a held lock.
        let kind = if err.is_timeout()
            || err.is_io_error()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || matches!(
                err.kind(),
                redis::ErrorKind::AuthenticationFailed | redis::ErrorKind::Io
            ) {
            ErrorKind::Connection
        } else {
            ErrorKind::Server
        };
        let hint = if err.is_timeout() {
            "; Redis did not answer within the command timeout (is it overloaded or stopped?)"
        } else if kind == ErrorKind::Connection {
            "; check that Redis is running and reachable"
        } else {
            permission_hint(&text)
        };
        Error::new(kind, format!("{what}: {text}{hint}"))
    }
}

/// A redis-crate error's text without the arguments a server may quote:
/// Redis answers an unknown command with "unknown command 'AUTH', with args
/// beginning with: 'user' 'password'" (AUTH renamed or disabled, a proxy
/// that lacks it), which would put the password into our message.
pub(crate) fn without_arguments(err: &redis::RedisError) -> String {
    const QUOTED: &str = "with args beginning with:";
    let text = err.to_string();
    match text.find(QUOTED) {
        Some(at) => format!("{}(arguments not shown)", &text[..at]),
        None => text,
    }
}

/// What to add to a server error that says the Redis user lacks a
/// permission (NOPERM for a command, a key or a channel; inside a script,
/// "The user executing the script can't ..."): which user, and where the
/// permissions latchkey needs are listed. Empty for any other error.
pub(crate) fn permission_hint(text: &str) -> &'static str {
    if text.contains("NOPERM")
        || text.contains("NoPerm")
        || text.contains("user executing the script can't")
    {
        "; the Redis user of the URL lacks a permission latchkey needs \
         (the README's \"Redis ACL\" section gives the rule)"
    } else {
        ""
    }
}

/// WRONGPASS (the redis crate reports it as `AuthenticationFailed`) or
/// NOAUTH (a command sent without the password the server requires).
fn is_auth_failure(err: &redis::RedisError) -> bool {
    err.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(err.code(), Some("NOAUTH" | "WRONGPASS"))
}

/// The SELECT of the URL's database failed at connection time (Redis
/// answers "ERR DB index is out of range"; the redis crate's own handshake
/// says it "refused to switch database").
fn is_missing_database(err: &redis::RedisError) -> bool {
    let text = err.to_string();
    text.contains("DB index is out of range") || text.contains("refused to switch database")
}

// Kind and message only, as a user sees an error: the internal mark
// (`answered_busy`) changes how long an acquire waits, not what failed.
impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for Error {}

// Kind and message only: what a user reads in an `unwrap()`'s panic.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

impl std::error::Error for Error {}

/// The result type of every fallible latchkey call.
pub type Result<T> = std::result::Result<T, Error>;
