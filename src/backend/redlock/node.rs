//! What Redlock needs from one master: write requests and read their
//! replies in two steps (so every master is written to before any reply is
//! read), run one script, answer a probe, and say who it is. A
//! [`SingleNode`] in production; an in-memory node in the unit tests.

use std::time::{Duration, Instant};

use crate::backend::single::{self, SingleNode};
use crate::backend::{Call, EndpointSource, Runner};
use crate::error::{Error, ErrorKind, Result};

/// A master's current run, as `INFO server` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerRun {
    /// `run_id`: a new one at every start of the server.
    pub(crate) id: String,
    /// How long the run has lasted at least: `uptime_in_seconds` less one
    /// second. The server counts whole seconds of its wall clock since
    /// its start (rounded down at both ends), so a server 0.54 s old can
    /// say 1 (seen on redis-server 7.0.15): the raw figure may exceed the
    /// truth by almost a second, and a restarted master would count that
    /// much early.
    pub(crate) uptime: Duration,
}

impl ServerRun {
    /// Reads `run_id` and `uptime_in_seconds` from the text of `INFO server`.
    pub(crate) fn parse(info: &str) -> Result<ServerRun> {
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let id = field("run_id");
        let uptime = field("uptime_in_seconds").and_then(|s| s.parse::<u64>().ok());
        match (id, uptime) {
            (Some(id), Some(uptime)) if !id.is_empty() => Ok(ServerRun {
                id: id.to_string(),
                uptime: Duration::from_secs(uptime.saturating_sub(1)),
            }),
            _ => Err(Error::new(
                ErrorKind::Server,
                "INFO server gave no run_id or uptime_in_seconds",
            )),
        }
    }
}

/// One Redlock master.
pub(crate) trait MasterNode: Send + Sync + 'static {
    /// Requests written to the master whose replies are still to be read.
    type InFlight<'a>
    where
        Self: 'a;

    /// Whether a request can be written without connecting first (Redlock
    /// connects the others on threads of their own, all at once).
    fn has_idle(&self) -> bool;

    /// Writes `calls` (pipelined). Never fails: a failure to connect or
    /// write is reported by [`receive`](Self::receive).
    fn send<'a>(&self, calls: &'a [Call<'a>]) -> Self::InFlight<'a>;

    /// Reads the replies of [`send`](Self::send), one per call, waiting at
    /// most until `deadline` and never longer than the command timeout.
    /// Errors say which master failed and how; Redlock adds the operation.
    fn receive(
        &self,
        in_flight: Self::InFlight<'_>,
        deadline: Option<Instant>,
    ) -> Result<Vec<Result<redis::Value>>>;

    /// Runs one script (the recovery thread's clean-ups).
    fn eval(&self, call: &Call<'_>) -> Result<redis::Value>;

    /// Checks that the master answers (the recovery thread's probe).
    fn ping(&self) -> Result<()>;

    /// How many connections to the master were opened so far: a new one
    /// may reach a server that restarted (and lost its keys) since.
    fn connections_opened(&self) -> u64;

    /// The master's current run (`INFO server`).
    fn server_run(&self) -> Result<ServerRun>;

    /// The server, in a form where two spellings of one server compare
    /// equal: no server may vote twice.
    fn server_identity(&self) -> String;

    /// Visits the keys matching `pattern` with `SCAN` (see
    /// [`Runner::scan`]); a node that cannot says so.
    fn scan(&self, _pattern: &[u8], _visit: &mut dyn FnMut(&[u8]) -> bool) -> Result<()> {
        Err(Error::invalid(format!(
            "{} cannot list its keys",
            self.describe()
        )))
    }

    /// Where to listen for release messages of this master.
    fn pubsub_source(&self) -> EndpointSource;

    /// The master, for messages; never with a password.
    fn describe(&self) -> String;
}

impl MasterNode for SingleNode {
    type InFlight<'a> = single::InFlight<'a>;

    #[inline]
    fn has_idle(&self) -> bool {
        SingleNode::has_idle(self)
    }

    #[inline]
    fn send<'a>(&self, calls: &'a [Call<'a>]) -> single::InFlight<'a> {
        SingleNode::send(self, calls)
    }

    #[inline]
    fn receive(
        &self,
        in_flight: single::InFlight<'_>,
        deadline: Option<Instant>,
    ) -> Result<Vec<Result<redis::Value>>> {
        SingleNode::receive(self, in_flight, deadline)
    }

    fn eval(&self, call: &Call<'_>) -> Result<redis::Value> {
        Runner::eval(self, call)
    }

    fn ping(&self) -> Result<()> {
        SingleNode::ping(self)
    }

    fn connections_opened(&self) -> u64 {
        SingleNode::connections_opened(self)
    }

    fn server_run(&self) -> Result<ServerRun> {
        ServerRun::parse(&self.info("server")?)
    }

    fn server_identity(&self) -> String {
        SingleNode::server_identity(self)
    }

    fn scan(&self, pattern: &[u8], visit: &mut dyn FnMut(&[u8]) -> bool) -> Result<()> {
        Runner::scan(self, pattern, visit)
    }

    fn pubsub_source(&self) -> EndpointSource {
        Runner::pubsub_source(self)
    }

    fn describe(&self) -> String {
        Runner::describe(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `uptime_in_seconds` may exceed the run's age by almost a second
    /// (whole seconds of the wall clock at both ends): the age counted is
    /// one second less, never below zero.
    #[test]
    fn the_age_of_a_run_is_its_uptime_in_seconds_less_one() {
        let run = ServerRun::parse("# Server\r\nrun_id:abc\r\nuptime_in_seconds:7\r\n").unwrap();
        assert_eq!(run.id, "abc");
        assert_eq!(run.uptime, Duration::from_secs(6));
        let fresh = ServerRun::parse("run_id:abc\nuptime_in_seconds:0\n").unwrap();
        assert_eq!(fresh.uptime, Duration::ZERO);
        for broken in [
            "",
            "run_id:\nuptime_in_seconds:1",
            "run_id:a\nuptime_in_seconds:x",
        ] {
            assert_eq!(
                ServerRun::parse(broken).unwrap_err().kind(),
                ErrorKind::Server
            );
        }
    }
}
