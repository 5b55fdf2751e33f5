//! One Redis server, reached through a small pool of synchronous connections.
//!
//! Every connection gets the command timeout as its read and write timeout
//! (the redis crate applies the connect timeout to the handshake only), so a
//! stopped server costs a caller at most that timeout. A connection that saw
//! an I/O error or a timeout is never reused: its next reply could belong to
//! the command that timed out.

use std::time::Duration;

use parking_lot::Mutex;
use redis::{ConnectionLike, Value};

use super::{Backend, Call, PubSubEndpoint};
use crate::error::{Error, Result};

pub(crate) struct SingleNode {
    client: redis::Client,
    connect_timeout: Duration,
    command_timeout: Duration,
    /// Idle connections and the process they were opened in: after a fork
    /// the child must not use its parent's sockets (the two would interleave
    /// commands on one stream), so it starts with an empty pool.
    idle: Mutex<(u32, Vec<redis::Connection>)>,
    max_idle: usize,
    description: String,
}

/// A connection on loan from the pool, and whether it was used before (a
/// reused connection may have been closed by a server restart since).
struct Loan {
    conn: redis::Connection,
    reused: bool,
}

impl SingleNode {
    pub(crate) fn new(
        client: redis::Client,
        connect_timeout: Duration,
        command_timeout: Duration,
        max_idle: usize,
    ) -> Self {
        let description = describe_addr(client.get_connection_info().addr());
        SingleNode {
            client,
            connect_timeout,
            command_timeout,
            idle: Mutex::new((std::process::id(), Vec::new())),
            max_idle,
            description,
        }
    }

    fn borrow(&self, what: &str) -> Result<Loan> {
        {
            let mut idle = self.idle.lock();
            let pid = std::process::id();
            if idle.0 != pid {
                // Closing the inherited descriptors in the child leaves the
                // parent's connections alone.
                *idle = (pid, Vec::new());
            }
            if let Some(conn) = idle.1.pop() {
                return Ok(Loan { conn, reused: true });
            }
        }
        let conn = self
            .client
            .get_connection_with_timeout(self.connect_timeout)
            .and_then(|conn| {
                conn.set_read_timeout(Some(self.command_timeout))?;
                conn.set_write_timeout(Some(self.command_timeout))?;
                Ok(conn)
            })
            .map_err(|e| {
                Error::from_redis(&format!("{what} (connecting to {})", self.description), &e)
            })?;
        Ok(Loan {
            conn,
            reused: false,
        })
    }

    fn give_back(&self, conn: redis::Connection) {
        let mut idle = self.idle.lock();
        if idle.0 == std::process::id() && idle.1.len() < self.max_idle {
            idle.1.push(conn);
        }
    }

    /// Runs `op` on a pooled connection. A reused connection that turns out
    /// to be closed (the server restarted) is replaced and `op` runs once more
    /// on a fresh one; the scripts are written so that running twice is safe.
    fn with_connection<T>(
        &self,
        what: &str,
        mut op: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        loop {
            let mut loan = self.borrow(what)?;
            match op(&mut loan.conn) {
                Ok(value) => {
                    self.give_back(loan.conn);
                    return Ok(value);
                }
                Err(err) if is_broken(&err) => {
                    // Its siblings in the pool were most likely closed by the
                    // same event; drop them all rather than fail on each.
                    self.idle.lock().1.clear();
                    if loan.reused && !err.is_timeout() {
                        continue;
                    }
                    return Err(Error::from_redis(
                        &format!("{what} (on {})", self.description),
                        &err,
                    ));
                }
                Err(err) => {
                    self.give_back(loan.conn);
                    return Err(Error::from_redis(what, &err));
                }
            }
        }
    }
}

/// Whether a connection must be thrown away after this error.
fn is_broken(err: &redis::RedisError) -> bool {
    err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_unrecoverable_error()
}

fn is_noscript(value: &Value) -> bool {
    matches!(value, Value::ServerError(e) if e.code() == "NOSCRIPT")
}

fn evalsha_cmd(call: &Call<'_>) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(call.script.script.get_hash()).arg(call.keys.len());
    for key in &call.keys {
        cmd.arg(*key);
    }
    for arg in &call.args {
        cmd.arg(arg.as_slice());
    }
    cmd
}

fn server_error_to_result(what: &str, script: &str, value: Value) -> Result<Value> {
    match value {
        Value::ServerError(err) => {
            let err: redis::RedisError = err.into();
            Err(Error::from_redis(
                &format!("{what} (script {script})"),
                &err,
            ))
        }
        other => Ok(other),
    }
}

impl Backend for SingleNode {
    fn eval(&self, what: &str, call: &Call<'_>) -> Result<Value> {
        let cmd = evalsha_cmd(call);
        let value = self.with_connection(what, |conn| {
            let value = conn.req_command(&cmd)?;
            if !is_noscript(&value) {
                return Ok(value);
            }
            // The server forgot our scripts (restart or SCRIPT FLUSH).
            call.script.script.load(conn)?;
            conn.req_command(&cmd)
        })?;
        server_error_to_result(what, call.script.name, value)
    }

    fn eval_many(&self, what: &str, calls: &[Call<'_>]) -> Result<Vec<Result<Value>>> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for call in calls {
            pipe.add_command(evalsha_cmd(call));
        }
        let packed = pipe.get_packed_pipeline();
        let values = self.with_connection(what, |conn| {
            let values = conn.req_packed_commands(&packed, 0, calls.len())?;
            if !values.iter().any(is_noscript) {
                return Ok(values);
            }
            for call in calls {
                call.script.script.load(conn)?;
            }
            conn.req_packed_commands(&packed, 0, calls.len())
        })?;
        Ok(values
            .into_iter()
            .zip(calls)
            .map(|(value, call)| server_error_to_result(what, call.script.name, value))
            .collect())
    }

    fn pubsub_endpoint(&self) -> PubSubEndpoint {
        PubSubEndpoint {
            info: self.client.get_connection_info().clone(),
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
        }
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

/// "redis at 127.0.0.1:6379" or "redis at unix:/run/redis.sock"; never a password.
pub(crate) fn describe_addr(addr: &redis::ConnectionAddr) -> String {
    match addr {
        redis::ConnectionAddr::Tcp(host, port) => format!("redis at {host}:{port}"),
        redis::ConnectionAddr::TcpTls { host, port, .. } => format!("redis (TLS) at {host}:{port}"),
        redis::ConnectionAddr::Unix(path) => format!("redis at unix:{}", path.display()),
        _ => "redis".to_string(),
    }
}
