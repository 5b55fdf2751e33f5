//! How a script reaches Redis. Each deployment shape (one node today;
//! Redlock masters, Sentinel and Cluster later) implements [`Backend`], and
//! the lock logic above it does not know which one it talks to.

pub(crate) mod single;

use crate::error::Result;
use crate::scripts::LuaScript;

/// One script invocation: the script, its keys and its arguments.
pub(crate) struct Call<'a> {
    pub(crate) script: &'static LuaScript,
    pub(crate) keys: Vec<&'a [u8]>,
    pub(crate) args: Vec<Vec<u8>>,
}

/// Where the pub/sub listener should connect, with the credentials it needs.
#[derive(Clone)]
pub(crate) struct PubSubEndpoint {
    pub(crate) info: redis::ConnectionInfo,
    pub(crate) connect_timeout: std::time::Duration,
    pub(crate) command_timeout: std::time::Duration,
}

pub(crate) trait Backend: Send + Sync + 'static {
    /// Runs one script. `what` describes the operation for error messages.
    fn eval(&self, what: &str, call: &Call<'_>) -> Result<redis::Value>;

    /// Runs many scripts in one pipelined round trip; one result per call.
    /// The outer error means the round trip itself failed.
    fn eval_many(&self, what: &str, calls: &[Call<'_>]) -> Result<Vec<Result<redis::Value>>>;

    /// Where waiters subscribe to release messages.
    fn pubsub_endpoint(&self) -> PubSubEndpoint;

    /// A description of the server(s) for messages, never with a password.
    fn describe(&self) -> String;
}
