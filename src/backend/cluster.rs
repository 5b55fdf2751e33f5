//! Redis Cluster: every key of a lock shares one hash tag, so each script
//! touches one slot and runs on the master that owns it. The slot map comes
//! from `CLUSTER SLOTS`; how a script follows its slot through migrations
//! and failovers (`MOVED`, `ASK`, `TRYAGAIN`, a master gone) is in
//! [`route`].
//!
//! Release messages: Redis Cluster broadcasts a `PUBLISH` to every node, so
//! each release would cost a message to every node of the cluster. On Redis
//! 7 and later the release scripts publish with `SPUBLISH` instead (passed
//! to them as their last argument), which stays on the shard of the lock's
//! slot, and waiters listen with `SSUBSCRIBE` on the slot's master. Older
//! servers keep `PUBLISH`, heard on any node.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::sync::Mutex;
use redis::{IntoConnectionInfo, Value};

use super::single::{describe_addr, server_error_to_result, SingleNode};
use super::{Call, EndpointSource, Runner, ShardRouter};
use crate::error::{Error, ErrorKind, Result};
use crate::fork::PerProcess;
use crate::scripts;

mod route;

use route::WaitFor;

const SLOTS: u16 = 16384;

/// The CRC16 (XMODEM) of the cluster specification.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of a key: of its hash tag (the text between the first `{` and
/// the next `}`, if not empty), else of the whole key.
pub(crate) fn slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter()
            .position(|&b| b == b'}')
            .filter(|&close| close > 0)
            .map(|close| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % SLOTS
}

type Addr = (String, u16);

pub(crate) struct ClusterNode {
    inner: Arc<Inner>,
}

struct Inner {
    seeds: Vec<Addr>,
    settings: redis::RedisConnectionInfo,
    connect_timeout: Duration,
    command_timeout: Duration,
    pool_size: usize,
    /// The spin limit of each node's reads (see `backend::wire`).
    spin: Duration,
    tls: Option<Arc<crate::tls::Tls>>,
    /// (first slot, last slot, master) ranges, sorted.
    slots: PerProcess<Mutex<Vec<(u16, u16, Addr)>>>,
    nodes: PerProcess<Mutex<HashMap<Addr, Arc<SingleNode>>>>,
    /// Which node the release listener tries next.
    next_listener: AtomicUsize,
    /// Whether releases use sharded pub/sub, once a node told its version.
    sharded: PerProcess<Mutex<Option<bool>>>,
}

pub(crate) struct ClusterConfig {
    pub(crate) seeds: Vec<redis::Client>,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) pool_size: usize,
    pub(crate) spin: Duration,
    /// Set when the seeds are `rediss://`: every node is reached over TLS.
    pub(crate) tls: Option<Arc<crate::tls::Tls>>,
}

impl ClusterNode {
    pub(crate) fn new(config: ClusterConfig) -> Result<Self> {
        let mut seeds = Vec::new();
        let mut settings = None;
        for seed in &config.seeds {
            let info = seed.get_connection_info();
            match info.addr() {
                redis::ConnectionAddr::Tcp(host, port) => seeds.push((host.clone(), *port)),
                _ => {
                    return Err(Error::invalid(
                        "cluster seeds must be redis://host:port URLs",
                    ))
                }
            }
            settings.get_or_insert_with(|| info.redis_settings().clone());
        }
        Ok(ClusterNode {
            inner: Arc::new(Inner {
                seeds,
                settings: settings.unwrap_or_default(),
                connect_timeout: config.connect_timeout,
                command_timeout: config.command_timeout,
                pool_size: config.pool_size,
                spin: config.spin,
                tls: config.tls,
                slots: PerProcess::new(|| Mutex::new(Vec::new()), |_| {}),
                nodes: PerProcess::new(|| Mutex::new(HashMap::new()), |_| {}),
                next_listener: AtomicUsize::new(0),
                sharded: PerProcess::new(|| Mutex::new(None), |_| {}),
            }),
        })
    }
}

impl Inner {
    fn node(&self, addr: &Addr) -> Result<Arc<SingleNode>> {
        let mut nodes = self.nodes.get().lock();
        if let Some(node) = nodes.get(addr) {
            return Ok(node.clone());
        }
        let info = redis::ConnectionAddr::Tcp(addr.0.clone(), addr.1)
            .into_connection_info()
            .map_err(|e| Error::from_redis("building a cluster node's address", &e))?
            .set_redis_settings(self.settings.clone());
        let client = redis::Client::open(info)
            .map_err(|e| Error::from_redis("opening a cluster node", &e))?;
        let node = Arc::new(
            SingleNode::new(
                client,
                self.connect_timeout,
                self.command_timeout,
                self.pool_size,
                self.spin,
            )
            .with_tls(self.tls.clone()),
        );
        nodes.insert(addr.clone(), node.clone());
        Ok(node)
    }

    /// The master that owns `slot`, loading the slot map if needed.
    fn master_for(&self, slot: u16) -> Result<Addr> {
        if let Some(addr) = self.lookup(slot) {
            return Ok(addr);
        }
        self.refresh()?;
        self.lookup(slot).ok_or_else(|| {
            Error::new(
                ErrorKind::Server,
                format!("no cluster node serves slot {slot} (is the cluster fully set up?)"),
            )
        })
    }

    fn lookup(&self, slot: u16) -> Option<Addr> {
        self.slots
            .get()
            .lock()
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot))
            .map(|(_, _, addr)| addr.clone())
    }

    /// Reloads the slot map from the first node that answers.
    fn refresh(&self) -> Result<()> {
        let mut candidates: Vec<Addr> = self
            .slots
            .get()
            .lock()
            .iter()
            .map(|(_, _, a)| a.clone())
            .collect();
        candidates.extend(self.seeds.iter().cloned());
        candidates.dedup();
        let mut failures = Vec::new();
        for addr in candidates {
            match self.ask_slots(&addr) {
                Ok(map) if !map.is_empty() => {
                    *self.slots.get().lock() = map;
                    return Ok(());
                }
                Ok(_) => failures.push(format!("{}:{} serves no slots", addr.0, addr.1)),
                Err(e) => failures.push(format!("{}:{}: {e}", addr.0, addr.1)),
            }
        }
        Err(Error::new(
            ErrorKind::Connection,
            format!(
                "no cluster node gave its slot map ({})",
                failures.join("; ")
            ),
        ))
    }

    fn ask_slots(&self, addr: &Addr) -> redis::RedisResult<Vec<(u16, u16, Addr)>> {
        let _masked = crate::signals::mask();
        let info = redis::ConnectionAddr::Tcp(addr.0.clone(), addr.1)
            .into_connection_info()?
            .set_redis_settings(self.settings.clone());
        let client = redis::Client::open(info)?;
        let mut conn =
            super::single::connect_admin(&client, self.tls.as_deref(), self.connect_timeout)?;
        conn.set_read_timeout(Some(self.command_timeout))?;
        let ranges: Vec<Value> = redis::cmd("CLUSTER").arg("SLOTS").query(&mut conn)?;
        let mut map = Vec::new();
        for range in ranges {
            let Value::Array(fields) = range else {
                continue;
            };
            let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(master))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                continue;
            };
            let host = match master.first() {
                Some(Value::BulkString(h)) if !h.is_empty() => {
                    String::from_utf8_lossy(h).into_owned()
                }
                // An empty host means "the node you asked".
                _ => addr.0.clone(),
            };
            let Some(Value::Int(port)) = master.get(1) else {
                continue;
            };
            let (Ok(first), Ok(last), Ok(port)) = (
                u16::try_from(*first),
                u16::try_from(*last),
                u16::try_from(*port),
            ) else {
                continue;
            };
            map.push((first, last, (host, port)));
        }
        map.sort();
        Ok(map)
    }

    /// Whether releases are published with `SPUBLISH` (every server is
    /// Redis 7 or later, asked once of the first node that answers; until
    /// one answers, plain `PUBLISH`).
    fn sharded_releases(&self) -> bool {
        self.sharded_releases_known().unwrap_or(false)
    }

    /// Like [`sharded_releases`](Self::sharded_releases), but `None` while
    /// no node has answered: the release listener must not settle on plain
    /// pub/sub that releases may not use.
    fn sharded_releases_known(&self) -> Option<bool> {
        if let Some(known) = *self.sharded.get().lock() {
            return Some(known);
        }
        // Asked without holding the lock: a fork in the middle of a slow
        // answer must not leave the child a lock nobody will release.
        let mut candidates: Vec<Addr> = self
            .slots
            .get()
            .lock()
            .iter()
            .map(|(_, _, a)| a.clone())
            .collect();
        candidates.extend(self.seeds.iter().cloned());
        for addr in candidates {
            if let Ok(major) = self.major_version(&addr) {
                *self.sharded.get().lock() = Some(major >= 7);
                return Some(major >= 7);
            }
        }
        None
    }

    fn major_version(&self, addr: &Addr) -> Result<u32> {
        let node = self.node(addr)?;
        let info = node.info("server")?;
        info.lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .and_then(|v| v.trim().split('.').next()?.parse().ok())
            .ok_or_else(|| Error::new(ErrorKind::Server, "INFO server gave no redis_version"))
    }

    /// Routes `slot` to `addr` (a `MOVED` named it) after reading the
    /// slot map again: a node that has not heard of a failover yet may
    /// still give the old map, and asking the old master again would only
    /// be answered `MOVED` again.
    fn moved(&self, slot: u16, addr: Option<Addr>) {
        let _ = self.refresh();
        let Some(addr) = addr else {
            return;
        };
        let mut map = self.slots.get().lock();
        match map
            .iter()
            .position(|(first, last, _)| (*first..=*last).contains(&slot))
        {
            Some(pos) => {
                let (first, last, owner) = map[pos].clone();
                if owner == addr {
                    return;
                }
                let mut pieces = Vec::with_capacity(3);
                if first < slot {
                    pieces.push((first, slot - 1, owner.clone()));
                }
                pieces.push((slot, slot, addr));
                if slot < last {
                    pieces.push((slot + 1, last, owner));
                }
                map.splice(pos..=pos, pieces);
            }
            None => {
                map.push((slot, slot, addr));
                map.sort();
            }
        }
    }
}

fn slot_of(call: &Call<'_>) -> u16 {
    call.keys.first().map_or(0, |key| slot(key))
}

/// Whether `call` runs a script that publishes a release message (these
/// take `SPUBLISH` as an optional last argument).
fn publishes(call: &Call<'_>) -> bool {
    if std::ptr::eq(scripts::acquire(), call.script) {
        return call.args.len() == super::script_calls::FAIR_ACQUIRE_ARGS;
    }
    [
        scripts::release(),
        scripts::reentrant_release(),
        scripts::force_unlock(),
        scripts::announce_free(),
        scripts::leave_queue(),
        scripts::permit_release(),
        scripts::election_announce(),
        scripts::election_resign(),
        scripts::rw_write_release(),
        scripts::rw_downgrade(),
    ]
    .iter()
    .any(|script| std::ptr::eq(*script, call.script))
}

impl ClusterNode {
    /// `call`, with `SPUBLISH` as its last argument when it publishes a
    /// release and releases are sharded.
    fn routed<'a>(&self, call: &Call<'a>) -> Option<Call<'a>> {
        if !publishes(call) || !self.inner.sharded_releases() {
            return None;
        }
        let mut args = call.args.clone();
        args.push(std::borrow::Cow::Borrowed(b"SPUBLISH"));
        Some(Call {
            script: call.script,
            keys: call.keys.clone(),
            args,
        })
    }
}

impl Runner for ClusterNode {
    fn eval(&self, call: &Call<'_>) -> Result<Value> {
        let routed = self.routed(call);
        let call = routed.as_ref().unwrap_or(call);
        let calls = std::slice::from_ref(call);
        let mut outcome = self.inner.run_in_slot(slot_of(call), calls, None);
        let value = outcome.replies.pop().unwrap_or(Ok(Value::Nil))?;
        server_error_to_result(call.script.name, value)
    }

    fn eval_many(&self, calls: &[Call<'_>]) -> Result<Vec<Result<Value>>> {
        // Renewals of many locks span many slots: one pipeline per slot.
        let mut by_slot: HashMap<u16, Vec<usize>> = HashMap::new();
        for (i, call) in calls.iter().enumerate() {
            by_slot.entry(slot_of(call)).or_default().push(i);
        }
        let mut results: Vec<Option<Result<Value>>> = calls.iter().map(|_| None).collect();
        // A master that failed for one slot fails the others it serves at
        // once: one stopped master costs this round one timeout, not one
        // per slot, so the renewals of healthy masters' slots still come
        // in time.
        let mut failed: HashMap<Addr, Error> = HashMap::new();
        for (slot, indexes) in by_slot {
            let master = self.inner.master_for(slot).ok();
            if let Some(e) = master.as_ref().and_then(|addr| failed.get(addr)) {
                for &i in &indexes {
                    results[i] = Some(Err(e.clone()));
                }
                continue;
            }
            let group: Vec<Call<'_>> = indexes
                .iter()
                .map(|&i| self.routed(&calls[i]).unwrap_or_else(|| calls[i].clone()))
                .collect();
            let outcome = self.inner.run_in_slot(slot, &group, None);
            let unreachable = outcome.unreachable;
            for (&i, reply) in indexes.iter().zip(outcome.replies) {
                if let (Err(e), Some(addr)) = (&reply, master.as_ref().filter(|_| unreachable)) {
                    failed.insert(addr.clone(), e.clone());
                }
                results[i] = Some(
                    reply.and_then(|value| server_error_to_result(calls[i].script.name, value)),
                );
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::new(ErrorKind::Server, "no reply"))))
            .collect())
    }

    fn eval_then_wait(
        &self,
        call: &Call<'_>,
        replicas: usize,
        timeout: Duration,
    ) -> Result<(Value, usize)> {
        // The script and its WAIT go together to the node that serves the
        // slot, following it like any other script: WAIT asks that node's
        // replicas. Routed like every other path (a fair acquire's handoff
        // goes out with SPUBLISH where releases are sharded).
        let routed = self.routed(call);
        let call = routed.as_ref().unwrap_or(call);
        let calls = std::slice::from_ref(call);
        let wait = WaitFor { replicas, timeout };
        let mut outcome = self.inner.run_in_slot(slot_of(call), calls, Some(wait));
        let value = outcome.replies.pop().unwrap_or(Ok(Value::Nil))?;
        Ok((
            server_error_to_result(call.script.name, value)?,
            outcome.confirmed,
        ))
    }

    fn eval_many_then_wait(
        &self,
        calls: &[Call<'_>],
        replicas: usize,
        timeout: Duration,
    ) -> Result<Vec<Result<(Value, usize)>>> {
        // One round trip and one WAIT per master: WAIT counts the replicas
        // of the connection's own writes, so each master's scripts go on
        // one connection with their WAIT. A script whose slot moved is sent
        // again alone, on the path that follows redirections.
        let mut by_master: HashMap<Addr, Vec<usize>> = HashMap::new();
        let mut results: Vec<Option<Result<(Value, usize)>>> = calls.iter().map(|_| None).collect();
        for (i, call) in calls.iter().enumerate() {
            match self.inner.master_for(slot_of(call)) {
                Ok(addr) => by_master.entry(addr).or_default().push(i),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        for (addr, indexes) in by_master {
            let group: Vec<Call<'_>> = indexes
                .iter()
                .map(|&i| self.routed(&calls[i]).unwrap_or_else(|| calls[i].clone()))
                .collect();
            let outcome = self
                .inner
                .node(&addr)
                .and_then(|node| node.eval_values_then_wait(&group, replicas, timeout));
            match outcome {
                Ok((values, confirmed)) => {
                    for (&i, value) in indexes.iter().zip(values) {
                        results[i] = Some(if route::did_not_run_here(&value) {
                            self.eval_then_wait(&calls[i], replicas, timeout)
                        } else {
                            server_error_to_result(calls[i].script.name, value)
                                .map(|v| (v, confirmed))
                        });
                    }
                }
                Err(e) => {
                    // The next round must not go to a dead master too.
                    if e.kind() == ErrorKind::Connection {
                        let _ = self.inner.refresh();
                    }
                    for &i in &indexes {
                        results[i] = Some(Err(e.clone()));
                    }
                }
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::new(ErrorKind::Server, "no reply"))))
            .collect())
    }

    /// Scans every master of the slot map in turn (a replica holds only
    /// copies of its master's keys).
    fn scan(&self, pattern: &[u8], visit: &mut dyn FnMut(&[u8]) -> bool) -> Result<()> {
        if self.inner.slots.get().lock().is_empty() {
            self.inner.refresh()?;
        }
        let mut masters: Vec<Addr> = self
            .inner
            .slots
            .get()
            .lock()
            .iter()
            .map(|(_, _, addr)| addr.clone())
            .collect();
        masters.sort();
        masters.dedup();
        for addr in masters {
            let node = self.inner.node(&addr)?;
            let mut more = true;
            node.scan(pattern, &mut |key| {
                more = visit(key);
                more
            })?;
            if !more {
                break;
            }
        }
        Ok(())
    }

    fn pubsub_source(&self) -> EndpointSource {
        let inner = self.inner.clone();
        let shard_router: ShardRouter = {
            let inner = self.inner.clone();
            Arc::new(move |channel: &[u8], refresh: bool| {
                if refresh {
                    inner.refresh()?;
                }
                let addr = inner.master_for(slot(channel))?;
                Ok(inner.node(&addr)?.endpoint())
            })
        };
        Arc::new(move || {
            // Any node hears every release; take them in turn, so that a
            // dead node is skipped at the next reconnection.
            if inner.slots.get().lock().is_empty() {
                let _ = inner.refresh();
            }
            let mut addrs: Vec<Addr> = inner
                .slots
                .get()
                .lock()
                .iter()
                .map(|(_, _, a)| a.clone())
                .collect();
            addrs.dedup();
            if addrs.is_empty() {
                addrs = inner.seeds.clone();
            }
            let pick = inner.next_listener.fetch_add(1, Ordering::Relaxed) % addrs.len().max(1);
            let addr = addrs
                .get(pick)
                .ok_or_else(|| Error::new(ErrorKind::Connection, "no cluster node known"))?;
            let mut endpoint = inner.node(addr)?.endpoint();
            let sharded = inner.sharded_releases_known().ok_or_else(|| {
                Error::new(
                    ErrorKind::Connection,
                    "no cluster node said which Redis version it runs",
                )
            })?;
            if sharded {
                endpoint.shard_router = Some(shard_router.clone());
            }
            Ok(endpoint)
        })
    }

    fn multi_key_scripts(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        let seeds: Vec<String> = self
            .inner
            .seeds
            .iter()
            .map(|(h, p)| describe_addr(&redis::ConnectionAddr::Tcp(h.clone(), *p)))
            .collect();
        format!("redis cluster (seeds: {})", seeds.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_cluster_specification() {
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        // An empty tag `{}` is no tag: the whole key is hashed (CRC16 of
        // "foo{}{bar}" is 8363 mod 16384), not "bar" (5061).
        assert_eq!(slot(b"foo{}{bar}"), 8363);
        assert_ne!(slot(b"foo{}{bar}"), slot(b"bar"));
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
        assert_eq!(
            slot(b"latchkey:{orders:42}"),
            slot(b"latchkey:{orders:42}:fence")
        );
    }
}
