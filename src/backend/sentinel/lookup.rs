//! Asking the sentinels where the master is. Every sentinel is asked at
//! once, and the answer with the highest configuration epoch wins: a
//! sentinel that has not heard of a failover yet still names the old
//! master (with the old epoch), and trusting the first answer moved a
//! client back to a deposed master that was still granting locks
//! (`tests/sentinel_attack2.rs`). Only the sentinel that ran a failover
//! knows it at first (the others learn it from its next hello, within
//! about 2 s), so a majority of answers is not enough: the lookup waits
//! for every sentinel, at most a connect and a command timeout (a stopped
//! sentinel costs that much; lookups happen at the first command and
//! after a failover only).

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::backend::single::{connect_admin, describe_addr};
use crate::error::{Error, ErrorKind, Result};
use crate::tls::Tls;

/// Where a sentinel says the master is, and under which configuration epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Found {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) epoch: u64,
}

/// Asks every sentinel about `master_name`; the highest epoch among the
/// answers that came within the time.
pub(super) fn ask_sentinels(
    sentinels: &[redis::Client],
    tls: Option<Arc<Tls>>,
    master_name: &str,
    connect_timeout: Duration,
    command_timeout: Duration,
) -> Result<Found> {
    let (tx, rx) = mpsc::channel();
    for sentinel in sentinels {
        let (sentinel, name, answers) = (sentinel.clone(), master_name.to_string(), tx.clone());
        let tls = tls.clone();
        let asked = crate::thread::spawn("latchkey-sentinel-lookup", move || {
            crate::signals::mask_for_this_thread();
            let answer = ask_one(
                &sentinel,
                tls.as_deref(),
                &name,
                connect_timeout,
                command_timeout,
            );
            let who = describe_addr(sentinel.get_connection_info().addr());
            let _ = answers.send((who, answer));
        });
        if let Err(e) = asked {
            let _ = tx.send((
                "a sentinel".into(),
                Err(format!("cannot start a thread: {e}")),
            ));
        }
    }
    drop(tx);
    let deadline = Instant::now() + connect_timeout + command_timeout;
    let mut answers: Vec<Found> = Vec::new();
    let mut failures = Vec::new();
    while answers.len() + failures.len() < sentinels.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((_, Ok(found))) => answers.push(found),
            Ok((who, Err(why))) => failures.push(format!("{who}: {why}")),
            Err(_) => break,
        }
    }
    answers
        .into_iter()
        .max_by_key(|found| found.epoch)
        .ok_or_else(|| {
            if failures.is_empty() {
                failures.push("no answer in time".into());
            }
            Error::new(
                ErrorKind::Connection,
                format!(
                    "no sentinel could say where master '{master_name}' is ({})",
                    failures.join("; ")
                ),
            )
        })
}

fn ask_one(
    sentinel: &redis::Client,
    tls: Option<&Tls>,
    master_name: &str,
    connect_timeout: Duration,
    command_timeout: Duration,
) -> std::result::Result<Found, String> {
    // A sentinel that does not know AUTH quotes its arguments (the
    // password): `without_arguments` cuts them.
    let mut conn = connect_admin(sentinel, tls, connect_timeout)
        .map_err(|e| crate::error::without_arguments(&e))?;
    conn.set_read_timeout(Some(command_timeout))
        .map_err(|e| crate::error::without_arguments(&e))?;
    // The address from GET-MASTER-ADDR-BY-NAME: during a failover the
    // sentinel running it names the promoted replica there, while MASTER
    // still shows the old address (with the new epoch) until it is over.
    let (address, fields): (Option<(String, u16)>, Vec<String>) = redis::pipe()
        .cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(master_name)
        .cmd("SENTINEL")
        .arg("MASTER")
        .arg(master_name)
        .query(&mut conn)
        .map_err(|e| {
            if e.to_string().contains("No such master") {
                format!("does not know a master named '{master_name}'")
            } else {
                crate::error::without_arguments(&e)
            }
        })?;
    let (host, port) =
        address.ok_or_else(|| format!("does not know a master named '{master_name}'"))?;
    Ok(Found {
        host,
        port,
        epoch: config_epoch(&fields),
    })
}

/// The `config-epoch` of a `SENTINEL MASTER` answer (field/value pairs);
/// 0 when it does not say (such answers rank lowest).
fn config_epoch(fields: &[String]) -> u64 {
    fields
        .chunks(2)
        .find(|kv| kv.len() == 2 && kv[0] == "config-epoch")
        .and_then(|kv| kv[1].parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<String> {
        pairs
            .iter()
            .flat_map(|(k, v)| [k.to_string(), v.to_string()])
            .collect()
    }

    #[test]
    fn reads_the_epoch_from_a_master_description() {
        let answer = fields(&[
            ("name", "mymaster"),
            ("ip", "10.0.0.2"),
            ("port", "6380"),
            ("config-epoch", "7"),
        ]);
        assert_eq!(config_epoch(&answer), 7);
        assert_eq!(config_epoch(&fields(&[("ip", "h")])), 0);
        assert_eq!(config_epoch(&fields(&[("config-epoch", "x")])), 0);
        assert_eq!(config_epoch(&["config-epoch".to_string()]), 0);
    }
}
