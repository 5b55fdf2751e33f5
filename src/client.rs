//! [`Client`] and [`ClientBuilder`]: where Redis is, timeouts, the pool, and
//! the per-client threads (release listener, watchdog) shared by its locks.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::cluster::{ClusterConfig, ClusterNode};
use crate::backend::redlock::Redlock;
use crate::backend::sentinel::{SentinelConfig, SentinelNode};
use crate::backend::single::SingleNode;
use crate::backend::{Backend, OneNodeBackend, WaitForReplicas};
use crate::election::Election;
use crate::error::{Error, Result};
use crate::info::{FencedWrite, LockInfo};
use crate::keys::{validate_prefix, DEFAULT_FENCE_RETENTION};
use crate::lock::{Lock, LockOptions};
use crate::multi::{MultiLock, MAX_MULTI_LOCK_NAMES};
use crate::pubsub::Subscriber;
use crate::rwlock::RwLock;
use crate::semaphore::Semaphore;
use crate::shared::ClientShared;
use crate::tls::{Tls, TlsSettings};
use crate::watchdog::Watchdog;

/// Default time allowed to connect (TCP connect plus handshake).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time allowed for Redis to answer one command.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "latchkey";

/// How many locks [`Client::list_locks`] inspects per round trip.
const LIST_BATCH: usize = 500;

const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// A connection to Redis shared by any number of locks and threads.
///
/// Cloning is cheap and gives another handle to the same pool, listener and
/// watchdog. A Client is `Send + Sync`.
///
/// ```
/// # fn main() -> latchkey::Result<()> {
/// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
/// let client = latchkey::Client::open(&url)?;
/// let guard = client.lock("nightly-report")?.acquire()?;
/// println!("fencing token {}", guard.fencing_token());
/// guard.release()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<ClientShared>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.inner.backend.describe())
            .field("prefix", &self.inner.prefix)
            .finish()
    }
}

/// Options for a [`Client`], starting from a Redis URL.
///
/// ```
/// use std::time::Duration;
/// let builder = latchkey::Client::builder("redis://127.0.0.1:6379")
///     .connect_timeout(Duration::from_millis(500))
///     .command_timeout(Duration::from_secs(1))
///     .prefix("myapp");
/// # let _ = builder;
/// ```
#[derive(Clone)]
pub struct ClientBuilder {
    /// One URL for a single server; several for Redlock masters or
    /// sentinels.
    urls: Vec<String>,
    mode: Mode,
    master_password: Option<String>,
    master_db: Option<i64>,
    wait: Option<WaitForReplicas>,
    connect_timeout: Duration,
    command_timeout: Duration,
    prefix: String,
    pool_size: usize,
    /// How long a read of a reply spins before it sleeps.
    spin: Duration,
    fence_retention: Duration,
    /// Redlock only: how long a restarted master stays out of quorums;
    /// `None` for the largest ttl in use.
    restart_delay: Option<Duration>,
    /// What `rediss://` URLs trust and show (see the `tls_*` methods).
    tls: TlsSettings,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field(
                "urls",
                &self.urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>(),
            )
            .field("mode", &self.mode)
            .field(
                "master_password",
                &self.master_password.as_ref().map(|_| "***"),
            )
            .field("master_db", &self.master_db)
            .field("wait_for_replicas", &self.wait)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("prefix", &self.prefix)
            .field("pool_size", &self.pool_size)
            .field("spin", &self.spin)
            .field("fence_retention", &self.fence_retention)
            .field("restart_delay", &self.restart_delay)
            .field("tls", &self.tls)
            .finish()
    }
}

/// Which deployment the URLs describe.
#[derive(Clone, Debug)]
enum Mode {
    Single,
    Redlock,
    Sentinel { master_name: String },
    Cluster,
}

impl ClientBuilder {
    /// After each successful acquire, wait until `replicas` replicas have
    /// the lock (Redis `WAIT`), at most `timeout`; if fewer confirm, the
    /// lock is released again and the acquire fails with `Timeout`. Every
    /// renewal (and [`Guard::extend`](crate::Guard::extend)) counts only
    /// once the replicas confirmed it too; one they did not leaves the
    /// lease its earlier validity and is tried again. Narrows what a
    /// failover can lose (single server, Sentinel or Cluster; not Redlock).
    /// On a Cluster the `WAIT` goes to the master serving the lock's slot,
    /// in the same round trip as the acquire, and counts that master's
    /// replicas: `replicas` is per master, so every master needs that many.
    ///
    /// ```
    /// let b = latchkey::Client::builder("redis://127.0.0.1")
    ///     .wait_for_replicas(1, std::time::Duration::from_millis(100));
    /// # let _ = b;
    /// ```
    pub fn wait_for_replicas(mut self, replicas: usize, timeout: Duration) -> Self {
        self.wait = Some(WaitForReplicas { replicas, timeout });
        self
    }

    /// The password of the master found through Sentinel (the sentinel URLs
    /// carry the sentinels' own credentials, if any).
    ///
    /// ```
    /// let b = latchkey::Client::sentinel_builder(&["redis://127.0.0.1:26379"], "mymaster")
    ///     .master_password("s3cret");
    /// assert!(!format!("{b:?}").contains("s3cret"));
    /// ```
    pub fn master_password(mut self, password: impl Into<String>) -> Self {
        self.master_password = Some(password.into());
        self
    }

    /// The database number on the master found through Sentinel (default 0).
    /// Only a Sentinel client has a master to apply it to: for one server
    /// or Redlock, the database is part of each URL (`redis://host/2`), and
    /// [`build`](ClientBuilder::build) refuses the option.
    ///
    /// ```
    /// let b = latchkey::Client::sentinel_builder(&["redis://127.0.0.1:26379"], "mymaster").master_db(2);
    /// assert!(b.build().is_ok());
    /// let single = latchkey::Client::builder("redis://127.0.0.1").master_db(2);
    /// assert_eq!(single.build().unwrap_err().kind(), latchkey::ErrorKind::InvalidArgument);
    /// ```
    pub fn master_db(mut self, db: i64) -> Self {
        self.master_db = Some(db);
        self
    }

    /// Time allowed to connect and handshake (default 2 s).
    ///
    /// ```
    /// let b = latchkey::Client::builder("redis://127.0.0.1").connect_timeout(std::time::Duration::from_secs(1));
    /// # let _ = b;
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for each command's reply (default 2 s). A stopped server
    /// makes a call fail after this long instead of hanging.
    ///
    /// ```
    /// let b = latchkey::Client::builder("redis://127.0.0.1").command_timeout(std::time::Duration::from_millis(300));
    /// # let _ = b;
    /// ```
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The prefix of every key (default `latchkey`).
    ///
    /// ```
    /// let b = latchkey::Client::builder("redis://127.0.0.1").prefix("billing");
    /// # let _ = b;
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How many idle connections the pool keeps (default 8). More threads
    /// may use the client at once; extra connections are closed after use.
    ///
    /// ```
    /// let b = latchkey::Client::builder("redis://127.0.0.1").pool_size(16);
    /// # let _ = b;
    /// ```
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// How long a thread waiting for a reply from Redis keeps asking the
    /// socket before it sleeps until the reply (default: `LATCHKEY_SPIN_US`
    /// microseconds from the environment, else zero, which turns spinning
    /// off; at most 10 ms). A thread woken by the reply costs a scheduler
    /// wake-up, which on a loaded virtual machine can cost more than the
    /// round trip; spinning (yielding the CPU between looks, so a server on
    /// the same machine is not kept from replying) saves it at the price
    /// of the CPU spent asking. Each server's connections spin only while
    /// its replies come within the limit (a slower server is probed now
    /// and then), at most one fewer threads of the process than it has
    /// cores spin at once, and the renewal thread never spins. See
    /// BENCHMARKS.md for what it saves and costs on a given machine.
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = latchkey::Client::builder("redis://127.0.0.1").spin(Duration::ZERO);
    /// # let _ = b;
    /// ```
    pub fn spin(mut self, limit: Duration) -> Self {
        self.spin = limit;
        self
    }

    /// How long a lock name's fencing counter stays in Redis after its last
    /// acquire (default one day; 1 s to 365 days). After that a free name
    /// leaves no key behind; fencing tokens keep increasing regardless,
    /// because each token is at least the server's clock in microseconds
    /// (see the README's safety section for the clock assumption).
    ///
    /// ```
    /// let b = latchkey::Client::builder("redis://127.0.0.1")
    ///     .fence_retention(std::time::Duration::from_secs(3600));
    /// # let _ = b;
    /// ```
    pub fn fence_retention(mut self, retention: Duration) -> Self {
        self.fence_retention = retention;
        self
    }

    /// Redlock only: how long a master stays out of every quorum after it
    /// (re)started. A master without persistence (or with a late `fsync`)
    /// comes back empty and would grant again locks it had granted before;
    /// two such restarts make a second quorum for a lock still held. The
    /// Redlock paper's answer is a delayed restart: a restarted master does
    /// not vote until every lock it may have granted has expired.
    ///
    /// The default is the largest ttl this client has asked for: a master
    /// whose current run is younger (`INFO server`'s uptime less a second,
    /// as it counts whole seconds; a run id that changed since the client
    /// last saw the old run counts from then) grants nothing that counts,
    /// and neither does a master that does not say how long it has run
    /// (`INFO` refused). So for one ttl after most masters of a deployment
    /// started, no lock is granted: an acquire waits, and one that stops
    /// waiting (or a `try_acquire`) fails with `NoQuorum`, saying why.
    ///
    /// When clients use different ttls, set the delay on every client to
    /// the largest ttl any client uses: with the default, a client with a
    /// short ttl counts a restarted master again while another client's
    /// longer lease, granted before the restart, still runs. `Duration::ZERO`
    /// lets every master vote as soon as it answers: only for masters that
    /// keep their keys across restarts (`appendfsync always`), or whose
    /// operators delay their restarts themselves.
    ///
    /// ```
    /// use std::time::Duration;
    /// let client = latchkey::Client::redlock_builder(&["redis://a", "redis://b", "redis://c"])
    ///     .redlock_restart_delay(Duration::from_secs(60))
    ///     .build()
    ///     .unwrap();
    /// # let _ = client;
    /// let err = latchkey::Client::builder("redis://a")
    ///     .redlock_restart_delay(Duration::ZERO)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), latchkey::ErrorKind::InvalidArgument);
    /// ```
    pub fn redlock_restart_delay(mut self, delay: Duration) -> Self {
        self.restart_delay = Some(delay);
        self
    }

    /// For `rediss://` URLs: trust the CA certificates in this PEM file
    /// instead of the system's CA store. The file is read when the client
    /// is built; a missing or unreadable file fails the build, naming it.
    ///
    /// ```
    /// let err = latchkey::Client::builder("rediss://redis.internal")
    ///     .tls_ca_file("/no/such/ca.pem")
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), latchkey::ErrorKind::InvalidArgument);
    /// assert!(err.to_string().contains("/no/such/ca.pem"));
    /// ```
    pub fn tls_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls.ca_file = Some(path.into());
        self
    }

    /// For `rediss://` URLs: show this client certificate (PEM chain) and
    /// private key (PEM) to servers that ask for one (mutual TLS,
    /// `tls-auth-clients yes`).
    ///
    /// ```
    /// let err = latchkey::Client::builder("redis://127.0.0.1")
    ///     .tls_client_cert("client.crt", "client.key")
    ///     .build()
    ///     .unwrap_err();
    /// // TLS options with a plain redis:// URL would be ignored: refused.
    /// assert_eq!(err.kind(), latchkey::ErrorKind::InvalidArgument);
    /// ```
    pub fn tls_client_cert(
        mut self,
        cert_file: impl Into<std::path::PathBuf>,
        key_file: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.tls.client_cert = Some((cert_file.into(), key_file.into()));
        self
    }

    /// For `rediss://` URLs: the name the server's certificate must carry,
    /// when it differs from the host in the URL (e.g. connecting by IP
    /// address to a server whose certificate names its DNS name).
    ///
    /// ```
    /// let b = latchkey::Client::builder("rediss://10.0.0.7:6380")
    ///     .tls_server_name("redis.internal");
    /// # let _ = b;
    /// ```
    pub fn tls_server_name(mut self, name: impl Into<String>) -> Self {
        self.tls.server_name = Some(name.into());
        self
    }

    /// For `rediss://` URLs: **accept any server certificate**. The
    /// connection is encrypted, but to whoever answers: anyone on the path
    /// can pose as the server. For tests against a throwaway server only;
    /// never in production.
    ///
    /// ```
    /// let b = latchkey::Client::builder("rediss://127.0.0.1:6380")
    ///     .tls_insecure_skip_verify(true);
    /// # let _ = b;
    /// ```
    pub fn tls_insecure_skip_verify(mut self, skip: bool) -> Self {
        self.tls.insecure_skip_verify = skip;
        self
    }

    /// The TLS configuration for `url`: made once if any URL is
    /// `rediss://`; `None` for the others.
    fn tls_for(&self, url: &str, made: &mut Option<Arc<Tls>>) -> Result<Option<Arc<Tls>>> {
        if !is_tls_url(url) {
            return Ok(None);
        }
        if made.is_none() {
            *made = Some(Tls::new(&self.tls)?);
        }
        Ok(made.clone())
    }

    /// Refuses TLS options that no URL would use.
    fn check_tls_options(&self) -> Result<()> {
        if self.tls.any() && !self.urls.iter().any(|url| is_tls_url(url)) {
            return Err(Error::invalid(
                "TLS options were given but no URL is rediss://: use rediss://host:port \
                 for a server that speaks TLS",
            ));
        }
        Ok(())
    }

    /// Checks the options and makes the client. No connection is opened
    /// yet: the first command connects, so a client can be made before
    /// Redis is up.
    ///
    /// ```
    /// let client = latchkey::Client::builder("redis://127.0.0.1:6379").build().unwrap();
    /// # let _ = client;
    /// let err = latchkey::Client::builder("redis://127.0.0.1:6379").prefix("").build().unwrap_err();
    /// assert_eq!(err.kind(), latchkey::ErrorKind::InvalidArgument);
    /// ```
    pub fn build(self) -> Result<Client> {
        check_timeout("connect timeout", self.connect_timeout)?;
        check_timeout("command timeout", self.command_timeout)?;
        self.check_mode_options()?;
        self.check_tls_options()?;
        validate_prefix(&self.prefix)?;
        if self.fence_retention < Duration::from_secs(1)
            || self.fence_retention > Duration::from_secs(365 * 24 * 3600)
        {
            return Err(Error::invalid(format!(
                "the fence retention must be between 1 s and 365 days; got {:?}",
                self.fence_retention
            )));
        }
        if self.spin > crate::backend::MAX_SPIN {
            return Err(Error::invalid(format!(
                "the spin limit must be at most {:?}; got {:?}",
                crate::backend::MAX_SPIN,
                self.spin
            )));
        }
        if self.pool_size == 0 || self.pool_size > 1024 {
            return Err(Error::invalid("the pool size must be between 1 and 1024"));
        }
        if let Some(wait) = self.wait {
            if matches!(self.mode, Mode::Redlock) {
                return Err(Error::invalid(
                    "wait_for_replicas applies to a single server, Sentinel or Cluster (where it \
                     waits for the replicas of the lock's master), not to Redlock",
                ));
            }
            if wait.replicas == 0 || wait.replicas > 64 {
                return Err(Error::invalid("wait_for_replicas needs 1 to 64 replicas"));
            }
            check_timeout("replica wait timeout", wait.timeout)?;
        }
        if self.restart_delay.is_some() && !matches!(self.mode, Mode::Redlock) {
            return Err(Error::invalid(
                "redlock_restart_delay applies to Redlock only (a single server, Sentinel or \
                 Cluster has no quorum for a restarted master to join)",
            ));
        }
        if let Some(delay) = self.restart_delay {
            if delay > Duration::from_secs(365 * 24 * 3600) {
                return Err(Error::invalid(format!(
                    "the Redlock restart delay must be at most 365 days; got {delay:?}"
                )));
            }
        }
        if let Mode::Sentinel { master_name } = self.mode.clone() {
            return self.build_sentinel(master_name);
        }
        if matches!(self.mode, Mode::Cluster) {
            return self.build_cluster();
        }
        let mut tls = None;
        let nodes = self
            .urls
            .iter()
            .map(|url| {
                Ok(SingleNode::new(
                    parse_url(url)?,
                    self.connect_timeout,
                    self.command_timeout,
                    self.pool_size,
                    self.spin,
                )
                .with_tls(self.tls_for(url, &mut tls)?))
            })
            .collect::<Result<Vec<_>>>()?;
        let backend: Arc<dyn Backend> = if matches!(self.mode, Mode::Redlock) {
            // Checks the number of masters and that they are all different.
            Arc::new(Redlock::new(nodes, self.command_timeout)?.restart_delay(self.restart_delay))
        } else {
            match nodes.into_iter().next() {
                Some(node) => Arc::new(OneNodeBackend::new(node, self.wait)),
                None => return Err(Error::invalid("no Redis URL given")),
            }
        };
        Ok(Client::with_backend(
            backend,
            self.prefix,
            self.fence_retention,
        ))
    }

    fn build_cluster(self) -> Result<Client> {
        if self.urls.is_empty() {
            return Err(Error::invalid("give at least one cluster node URL"));
        }
        let seeds = self
            .urls
            .iter()
            .map(|u| parse_url(u))
            .collect::<Result<Vec<_>>>()?;
        let with_db = self
            .urls
            .iter()
            .zip(&seeds)
            .find(|(_, seed)| seed.get_connection_info().redis_settings().db() != 0);
        if let Some((url, _)) = with_db {
            return Err(Error::invalid(format!(
                "Redis Cluster has only database 0; remove the database number from '{}'",
                redact_url(url)
            )));
        }
        let node = ClusterNode::new(ClusterConfig {
            seeds,
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
            pool_size: self.pool_size,
            spin: self.spin,
            tls: self.one_tls_for_all("cluster seed")?,
        })?;
        Ok(Client::with_backend(
            Arc::new(OneNodeBackend::new(node, self.wait)),
            self.prefix,
            self.fence_retention,
        ))
    }

    fn build_sentinel(self, master_name: String) -> Result<Client> {
        if master_name.is_empty() {
            return Err(Error::invalid("the Sentinel master name must not be empty"));
        }
        if self.urls.is_empty() {
            return Err(Error::invalid("give at least one sentinel URL"));
        }
        let sentinels = self
            .urls
            .iter()
            .map(|u| parse_url(u))
            .collect::<Result<Vec<_>>>()?;
        let mut master_settings =
            redis::RedisConnectionInfo::default().set_db(self.master_db.unwrap_or(0));
        if let Some(password) = &self.master_password {
            master_settings = master_settings.set_password(password);
        }
        let node = SentinelNode::new(SentinelConfig {
            sentinels,
            master_name,
            master_settings,
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
            pool_size: self.pool_size,
            spin: self.spin,
            tls: self.one_tls_for_all("sentinel")?,
        });
        Ok(Client::with_backend(
            Arc::new(OneNodeBackend::new(node, self.wait)),
            self.prefix,
            self.fence_retention,
        ))
    }
}

impl ClientBuilder {
    /// Sentinel and Cluster: every URL `rediss://` (then the nodes they
    /// name are reached over TLS too) or none.
    fn one_tls_for_all(&self, what: &str) -> Result<Option<Arc<Tls>>> {
        let tls_urls = self.urls.iter().filter(|url| is_tls_url(url)).count();
        if tls_urls == 0 {
            return Ok(None);
        }
        if tls_urls < self.urls.len() {
            return Err(Error::invalid(format!(
                "every {what} URL must be rediss:// or none: the nodes they lead to are \
                 reached the same way"
            )));
        }
        Ok(Some(Tls::new(&self.tls)?))
    }

    /// Refuses options that the deployment would silently ignore.
    fn check_mode_options(&self) -> Result<()> {
        let deployment = match &self.mode {
            Mode::Sentinel { .. } => {
                if let Some(db) = self.master_db.filter(|db| *db < 0) {
                    return Err(Error::invalid(format!(
                        "master_db must not be negative; got {db}"
                    )));
                }
                return Ok(());
            }
            Mode::Single => "one server",
            Mode::Redlock => "Redlock",
            Mode::Cluster => "Redis Cluster",
        };
        let where_instead = "give the password and database in the URL \
                             (redis://[user:password@]host[:port][/db])";
        if self.master_password.is_some() {
            return Err(Error::invalid(format!(
                "master_password applies only to a Sentinel client, not to {deployment}; \
                 {where_instead}"
            )));
        }
        if self.master_db.is_some() {
            return Err(Error::invalid(format!(
                "master_db applies only to a Sentinel client, not to {deployment}; {where_instead}"
            )));
        }
        Ok(())
    }
}

fn check_timeout(what: &str, timeout: Duration) -> Result<()> {
    if timeout.is_zero() {
        return Err(Error::invalid(format!(
            "the {what} must be greater than zero"
        )));
    }
    if timeout > MAX_TIMEOUT {
        return Err(Error::invalid(format!(
            "the {what} must be at most 24 hours; got {timeout:?}"
        )));
    }
    Ok(())
}

/// Whether `url` asks for TLS (`rediss://`, in any letter case).
pub(crate) fn is_tls_url(url: &str) -> bool {
    // Decided the way `parse_url` reads the URL (the url crate drops
    // leading and trailing spaces and control characters, and tabs and
    // newlines anywhere): a URL that connects as rediss:// must also get
    // the TLS, never plain text.
    url::Url::parse(url).is_ok_and(|parsed| parsed.scheme() == "rediss")
}

const URL_USAGE: &str = "expected redis[s]://[user:password@]host[:port][/db] or \
     unix:///path/to/socket[?db=N][&user=NAME][&pass=PASSWORD] \
     (percent-encode any / @ : % # ? & in the user name or password)";

/// Checks a Redis URL's syntax and makes the redis-crate client for it. The
/// database number is checked for syntax and sign only: how many databases
/// a server has is its own setting, so a number it lacks is reported at the
/// first connection (see [`Error::from_redis`]).
pub(crate) fn parse_url(url: &str) -> Result<redis::Client> {
    let invalid = |why: &str| {
        Error::invalid(format!(
            "invalid Redis URL '{}': {why}; {URL_USAGE}",
            redact_url(url)
        ))
    };
    let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    if has_stray_at(&parsed) {
        return Err(invalid(
            "an '@' after the host: a password with / # or ? must be percent-encoded",
        ));
    }
    match parsed.scheme() {
        "redis" | "rediss" => {
            match parsed.host_str() {
                Some(host) if !host.is_empty() => {}
                _ => return Err(invalid("no host")),
            }
            if parsed.port() == Some(0) {
                return Err(invalid("port 0"));
            }
            check_db_path(parsed.path()).map_err(|why| invalid(&why))?;
        }
        "unix" | "redis+unix" => {
            if parsed.path().is_empty() || parsed.path() == "/" {
                return Err(invalid("no socket path"));
            }
        }
        other => return Err(invalid(&format!("unknown scheme '{other}'"))),
    }
    if parsed.fragment().is_some() {
        return Err(invalid(
            "a '#' fragment (percent-encode a '#' in a password)",
        ));
    }
    check_query(&parsed).map_err(|why| invalid(&why))?;
    // The redis crate's own complaints may quote a value: give only its
    // fixed description.
    // TLS is ours (see crate::tls): the redis crate, built without its own,
    // is given the plain scheme and only parses the rest.
    let opened = if parsed.scheme() == "rediss" {
        let mut plain = parsed;
        if plain.set_scheme("redis").is_err() {
            return Err(invalid("the scheme"));
        }
        redis::Client::open(plain.as_str())
    } else {
        redis::Client::open(url)
    };
    opened.map_err(|e| match e.detail() {
        None => invalid(&e.to_string()),
        Some(_) => invalid(e.category()),
    })
}

/// The query of a Redis URL: only what the redis crate reads is accepted,
/// so a setting is never ignored without a word (`?password=` used to be).
/// A unix socket URL carries its database, user and password there
/// (`?db=`, `?user=`, `?pass=`); a `redis://` URL carries them in the user
/// info and path. Messages name a parameter only when it is a known one,
/// and never quote a value.
fn check_query(parsed: &url::Url) -> std::result::Result<(), String> {
    let unix = !matches!(parsed.scheme(), "redis" | "rediss");
    let accepted: &[&str] = if unix {
        &["db", "user", "pass", "protocol"]
    } else {
        &["protocol"]
    };
    for (key, value) in parsed.query_pairs() {
        if accepted.contains(&key.as_ref()) {
            if key == "protocol" && !["2", "3", "resp2", "resp3"].contains(&value.as_ref()) {
                return Err("the 'protocol' parameter must be 2 or 3".into());
            }
            continue;
        }
        return Err(match (unix, key.as_ref()) {
            (true, "password") => {
                "'?password=' is not read for a unix socket: give the password as '?pass='".into()
            }
            (false, "password" | "pass") => "a password in the query is not read: \
                 give it in the user info (redis://:password@host or \
                 redis://user:password@host)"
                .into(),
            (false, "user" | "username") => "a user name in the query is not read: \
                 give it in the user info (redis://user:password@host)"
                .into(),
            (false, "db") => {
                "a database in the query is not read: give it as the path (redis://host/2)".into()
            }
            _ => format!(
                "a query parameter this URL does not read (accepted: {})",
                if accepted.len() == 1 {
                    "protocol".to_string()
                } else {
                    accepted.join(", ")
                }
            ),
        });
    }
    Ok(())
}

/// The path of a `redis://` URL: empty, `/`, or `/N` with N a database
/// number (0 or more).
fn check_db_path(path: &str) -> std::result::Result<(), String> {
    let db = path.strip_prefix('/').unwrap_or(path);
    if db.is_empty() {
        return Ok(());
    }
    match db.parse::<i64>() {
        Ok(n) if n >= 0 && db.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        Ok(n) => Err(format!("the database number must not be negative; got {n}")),
        Err(_) => Err(format!("'/{db}' is not a database number")),
    }
}

/// An '@' outside the user info means the user info was cut short by a
/// character that should have been percent-encoded, so part of a password
/// may sit in the host, path, query or fragment.
fn has_stray_at(parsed: &url::Url) -> bool {
    parsed.path().contains('@')
        || parsed.query().is_some_and(|q| q.contains('@'))
        || parsed.fragment().is_some_and(|f| f.contains('@'))
}

/// The URL with every place a secret may sit replaced by `***`: the
/// password (or a lone user name, which may be a password; a user name
/// next to a password is shown, it tells URLs apart), and the whole query and fragment (`?pass=` is how a unix socket URL authenticates; a
/// fragment may hold the end of a password with a raw '#'). For messages,
/// logs and Debug.
///
/// A URL that does not parse cleanly is cut more widely, since a raw
/// / # ? in a password ends the user info early and leaves the rest of
/// the password elsewhere in the text: with an '@' and no '?' or '#',
/// everything before the last '@' is hidden; with a '?' or '#' and no
/// '@' (so no user info), everything after the first of them; with both,
/// everything after the scheme; with none of them, everything after the
/// first ':' after the scheme (a password typed without its '@host').
pub(crate) fn redact_url(url: &str) -> String {
    if let Ok(mut parsed) = url::Url::parse(url) {
        if !has_stray_at(&parsed) && !parsed.cannot_be_a_base() {
            let mut hidden = true;
            if parsed.password().is_some() {
                hidden = parsed.set_password(Some("***")).is_ok();
            } else if !parsed.username().is_empty() {
                // A lone user info may be a password (redis://secret@host).
                hidden = parsed.set_username("***").is_ok();
            }
            if parsed.query().is_some() {
                parsed.set_query(Some("***"));
            }
            if parsed.fragment().is_some() {
                parsed.set_fragment(Some("***"));
            }
            if hidden {
                return parsed.to_string();
            }
        }
    }
    let start = url.find("://").map_or(0, |s| s + 3);
    let (head, rest) = url.split_at(start);
    let at = rest.rfind('@');
    let query = rest.find(['?', '#']);
    match (at, query) {
        // No user info, yet it did not parse: a colon may start a password
        // typed without its '@host' (redis://user:password), which the
        // parser took for a port.
        (None, None) => match rest.find(':') {
            Some(colon) => format!("{head}{}***", &rest[..=colon]),
            None => url.to_string(),
        },
        (Some(at), None) => format!("{head}***{}", &rest[at..]),
        (None, Some(q)) => format!("{head}{}{}***", &rest[..q], &rest[q..=q]),
        (Some(_), Some(_)) => format!("{head}***"),
    }
}

impl Client {
    /// Opens a client with default options. See [`ClientBuilder::build`].
    ///
    /// ```
    /// let client = latchkey::Client::open("redis://127.0.0.1:6379").unwrap();
    /// # let _ = client;
    /// assert!(latchkey::Client::open("http://example").is_err());
    /// ```
    pub fn open(url: &str) -> Result<Client> {
        Client::builder(url).build()
    }

    /// Starts configuring a client for the Redis at `url`.
    ///
    /// ```
    /// let client = latchkey::Client::builder("redis://127.0.0.1:6379").prefix("app").build().unwrap();
    /// # let _ = client;
    /// ```
    pub fn builder(url: &str) -> ClientBuilder {
        ClientBuilder {
            urls: vec![url.to_string()],
            mode: Mode::Single,
            master_password: None,
            master_db: None,
            wait: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            prefix: DEFAULT_PREFIX.to_string(),
            pool_size: 8,
            spin: crate::backend::default_spin(),
            fence_retention: DEFAULT_FENCE_RETENTION,
            restart_delay: None,
            tls: TlsSettings::default(),
        }
    }

    /// Starts configuring a Redlock client over independent masters (an odd
    /// number, at least 3). A lock is held when a quorum (N/2+1) of masters
    /// granted it, and only within `ttl - elapsed - drift`; a master that is
    /// down or slow is a vote against, not a failure.
    ///
    /// ```
    /// let client = latchkey::Client::redlock_builder(&[
    ///     "redis://10.0.0.1:6379",
    ///     "redis://10.0.0.2:6379",
    ///     "redis://10.0.0.3:6379",
    /// ])
    /// .build()
    /// .unwrap();
    /// # let _ = client;
    /// assert!(latchkey::Client::redlock_builder(&["redis://a", "redis://b"]).build().is_err());
    /// ```
    pub fn redlock_builder<S: AsRef<str>>(urls: &[S]) -> ClientBuilder {
        let mut builder = Client::builder("");
        builder.urls = urls.iter().map(|u| u.as_ref().to_string()).collect();
        builder.mode = Mode::Redlock;
        builder
    }

    /// Starts configuring a client for the master that Redis Sentinel calls
    /// `master_name`, found through any of `sentinel_urls`. The client
    /// follows failovers: a command that finds the old master gone or
    /// demoted asks the sentinels again.
    ///
    /// ```
    /// let client = latchkey::Client::sentinel_builder(
    ///     &["redis://10.0.0.1:26379", "redis://10.0.0.2:26379"],
    ///     "mymaster",
    /// )
    /// .build()
    /// .unwrap();
    /// # let _ = client;
    /// ```
    pub fn sentinel_builder<S: AsRef<str>>(
        sentinel_urls: &[S],
        master_name: &str,
    ) -> ClientBuilder {
        let mut builder = Client::builder("");
        builder.urls = sentinel_urls
            .iter()
            .map(|u| u.as_ref().to_string())
            .collect();
        builder.mode = Mode::Sentinel {
            master_name: master_name.to_string(),
        };
        builder
    }

    /// Starts configuring a client for a Redis Cluster, given one or more
    /// of its nodes. Every key of a lock shares a hash tag, so each script
    /// runs on the one master that owns the lock's slot; `MOVED` and `ASK`
    /// are followed, and the slot map is reloaded after a failover.
    ///
    /// ```
    /// let client = latchkey::Client::cluster_builder(&["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
    ///     .build()
    ///     .unwrap();
    /// # let _ = client;
    /// ```
    pub fn cluster_builder<S: AsRef<str>>(seed_urls: &[S]) -> ClientBuilder {
        let mut builder = Client::builder("");
        builder.urls = seed_urls.iter().map(|u| u.as_ref().to_string()).collect();
        builder.mode = Mode::Cluster;
        builder
    }

    /// A client over `backend`, built by the builder (and, in the unit
    /// tests, over in-memory masters).
    pub(crate) fn with_backend(
        backend: Arc<dyn Backend>,
        prefix: String,
        fence_retention: Duration,
    ) -> Client {
        let inner = Arc::new(ClientShared {
            subscribers: backend
                .pubsub_sources()
                .into_iter()
                .map(Subscriber::new)
                .collect(),
            watchdog: Watchdog::new(backend.clone()),
            backend,
            prefix,
            fence_retention,
            closing: Default::default(),
        });
        // Weak: the backend must not keep the client's state alive.
        let weak = Arc::downgrade(&inner);
        inner.backend.on_master_switch(Arc::new(move || {
            if let Some(shared) = weak.upgrade() {
                shared.master_switched();
            }
        }));
        Client { inner }
    }

    /// Closes the client, for every clone of it: every lock still held
    /// through it is released in Redis (in parallel, each release bounded
    /// by the command timeout) and its [`Guard`](crate::Guard) then says it
    /// is not held (`check()` is `Err(NotHeld)`, `lost()` is false: a
    /// close is an ending, not a loss, and no lost-lease callback runs);
    /// every acquire of the client that is waiting returns promptly with
    /// [`ErrorKind::Closed`](crate::ErrorKind::Closed), and so does every
    /// later one; those waits are out of their locks' queues when the close
    /// returns (bounded by the command timeout, like the releases).
    /// Inspection and fenced writes keep working. Closing again does
    /// nothing.
    ///
    /// Errors: a release that Redis did not confirm (the hold is given back
    /// in the background as soon as Redis answers; its guard already says
    /// it is not held). The client is closed all the same.
    ///
    /// ```
    /// # fn main() -> latchkey::Result<()> {
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url)?;
    /// let lock = client.lock("close-example")?;
    /// let guard = lock.acquire()?;
    /// client.close()?;
    /// assert_eq!(guard.check().unwrap_err().kind(), latchkey::ErrorKind::NotHeld);
    /// assert!(!guard.lost());
    /// assert_eq!(lock.acquire().unwrap_err().kind(), latchkey::ErrorKind::Closed);
    /// # Ok(()) }
    /// ```
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }

    /// Whether [`close`](Client::close) was called on this client (or a
    /// clone of it).
    ///
    /// ```
    /// let client = latchkey::Client::open("redis://127.0.0.1").unwrap();
    /// assert!(!client.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.closing.is_closed()
    }

    /// The key prefix of this client.
    ///
    /// ```
    /// let client = latchkey::Client::open("redis://127.0.0.1").unwrap();
    /// assert_eq!(client.prefix(), "latchkey");
    /// ```
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// A lock handle with default options (30 s ttl, auto-renewed, not reentrant).
    ///
    /// ```
    /// let client = latchkey::Client::open("redis://127.0.0.1").unwrap();
    /// let lock = client.lock("orders:42").unwrap();
    /// assert_eq!(lock.name(), "orders:42");
    /// assert!(client.lock("").is_err());
    /// ```
    pub fn lock(&self, name: &str) -> Result<Lock> {
        self.lock_with(name, LockOptions::new())
    }

    /// A lock handle with the given options.
    ///
    /// ```
    /// use std::time::Duration;
    /// let client = latchkey::Client::open("redis://127.0.0.1").unwrap();
    /// let options = latchkey::LockOptions::new().ttl(Duration::from_secs(5)).reentrant(true);
    /// let lock = client.lock_with("jobs", options).unwrap();
    /// # let _ = lock;
    /// ```
    pub fn lock_with(&self, name: &str, options: LockOptions) -> Result<Lock> {
        options.validate()?;
        if options.get_fair() && !self.inner.backend.queues_waiters() {
            return Err(Error::invalid(format!(
                "a fair lock needs one waiter queue, and {} has none (Redlock's masters would each order the waiters their own way)",
                self.inner.backend.describe()
            )));
        }
        let keys = self.inner.keys(name)?;
        Ok(Lock::new(self.inner.clone(), keys, options))
    }

    /// A semaphore of `size` permits (see [`Semaphore`]); each hold's
    /// lease has the default [`LockOptions`].
    ///
    /// ```
    /// let client = latchkey::Client::open("redis://127.0.0.1").unwrap();
    /// let pool = client.semaphore("workers", 8).unwrap();
    /// assert_eq!(pool.size(), 8);
    /// ```
    pub fn semaphore(&self, name: &str, size: u32) -> Result<Semaphore> {
        self.semaphore_with(name, size, LockOptions::new())
    }

    /// A semaphore whose holds' leases have the given options (ttl,
    /// renewal, lost callback; `reentrant` and `fair` are refused).
    ///
    /// ```
    /// use std::time::Duration;
    /// let client = latchkey::Client::open("redis://127.0.0.1").unwrap();
    /// let options = latchkey::LockOptions::new().ttl(Duration::from_secs(5));
    /// let pool = client.semaphore_with("workers", 8, options).unwrap();
    /// assert_eq!(pool.options().get_ttl(), Duration::from_secs(5));
    /// ```
    pub fn semaphore_with(&self, name: &str, size: u32, options: LockOptions) -> Result<Semaphore> {
        self.refuse_independent_masters("a semaphore")?;
        let keys = self.inner.semaphore_keys(name)?;
        Semaphore::new(self.inner.clone(), keys, size, options)
    }

    /// `InvalidArgument` on Redlock, for `what` (a primitive whose state
    /// must live on one master).
    fn refuse_independent_masters(&self, what: &str) -> Result<()> {
        if !self.inner.backend.independent_masters() {
            return Ok(());
        }
        let why = if what == "a semaphore" || what == "a read-write lock" {
            ": a majority per hold does not bound the holders (with 3 masters and \
             2 permits, holders on masters 1+2, 2+3 and 1+3 each have a majority)"
        } else {
            ": its leader and announcement must live on one master"
        };
        Err(Error::invalid(format!(
            "{what} is not supported on Redlock ({}){why}; use one server, Sentinel or Cluster",
            self.inner.backend.describe()
        )))
    }

    /// A multi-lock over `names` (see [`MultiLock`]): taken all together or
    /// not at all, in the order of the names' bytes; duplicates count once.
    ///
    /// ```
    /// let client = latchkey::Client::open("redis://127.0.0.1").unwrap();
    /// let both = client.multi_lock(&["orders:2", "orders:1"]).unwrap();
    /// assert_eq!(both.names(), ["orders:1", "orders:2"]);
    /// ```
    pub fn multi_lock<S: AsRef<str>>(&self, names: &[S]) -> Result<MultiLock> {
        self.multi_lock_with(names, LockOptions::new())
    }

    /// A multi-lock whose locks have the given options (every lock the
    /// same; `reentrant` is refused).
    ///
    /// ```
    /// use std::time::Duration;
    /// let client = latchkey::Client::open("redis://127.0.0.1").unwrap();
    /// let options = latchkey::LockOptions::new().ttl(Duration::from_secs(5));
    /// let both = client.multi_lock_with(&["a", "b"], options).unwrap();
    /// # let _ = both;
    /// ```
    pub fn multi_lock_with<S: AsRef<str>>(
        &self,
        names: &[S],
        options: LockOptions,
    ) -> Result<MultiLock> {
        if names.is_empty() || names.len() > MAX_MULTI_LOCK_NAMES {
            return Err(Error::invalid(format!(
                "a multi-lock takes 1 to {MAX_MULTI_LOCK_NAMES} names; got {}",
                names.len()
            )));
        }
        if options.get_reentrant() {
            return Err(Error::invalid(
                "a multi-lock's locks cannot be reentrant (a nested multi-lock over overlapping names would deadlock with itself)",
            ));
        }
        let mut sorted: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let locks = sorted
            .into_iter()
            .map(|name| self.lock_with(name, options.clone()))
            .collect::<Result<Vec<_>>>()?;
        Ok(MultiLock::new(locks))
    }

    /// A read-write lock (see [`RwLock`]); every hold's lease has the
    /// default [`LockOptions`].
    ///
    /// ```
    /// let client = latchkey::Client::open("redis://127.0.0.1").unwrap();
    /// assert_eq!(client.rwlock("config").unwrap().name(), "config");
    /// ```
    pub fn rwlock(&self, name: &str) -> Result<RwLock> {
        self.rwlock_with(name, LockOptions::new())
    }

    /// A read-write lock whose holds' leases have the given options (ttl,
    /// renewal, lost callback; `reentrant` and `fair` are refused).
    ///
    /// ```
    /// use std::time::Duration;
    /// let client = latchkey::Client::open("redis://127.0.0.1").unwrap();
    /// let options = latchkey::LockOptions::new().ttl(Duration::from_secs(5));
    /// let config = client.rwlock_with("config", options).unwrap();
    /// # let _ = config;
    /// ```
    pub fn rwlock_with(&self, name: &str, options: LockOptions) -> Result<RwLock> {
        self.refuse_independent_masters("a read-write lock")?;
        let (writer, readers) = self.inner.rw_keys(name)?;
        RwLock::new(self.inner.clone(), writer, readers, options)
    }

    /// An election (see [`Election`]); the leaders' leases have the default
    /// [`LockOptions`].
    ///
    /// ```
    /// let client = latchkey::Client::open("redis://127.0.0.1").unwrap();
    /// assert_eq!(client.election("scheduler").unwrap().name(), "scheduler");
    /// ```
    pub fn election(&self, name: &str) -> Result<Election> {
        self.election_with(name, LockOptions::new())
    }

    /// An election whose leaders' leases have the given options (ttl,
    /// renewal, lost callback, fair; `reentrant` is refused). A shorter ttl
    /// replaces a dead leader sooner and renews more often.
    ///
    /// ```
    /// use std::time::Duration;
    /// let client = latchkey::Client::open("redis://127.0.0.1").unwrap();
    /// let options = latchkey::LockOptions::new().ttl(Duration::from_secs(5));
    /// let election = client.election_with("scheduler", options).unwrap();
    /// # let _ = election;
    /// ```
    pub fn election_with(&self, name: &str, options: LockOptions) -> Result<Election> {
        if options.get_fair() && !self.inner.backend.queues_waiters() {
            return Err(Error::invalid(format!(
                "a fair election needs one waiter queue, and {} has none",
                self.inner.backend.describe()
            )));
        }
        self.refuse_independent_masters("an election")?;
        let keys = self.inner.election_keys(name)?;
        Election::new(self.inner.clone(), keys, options)
    }

    /// Who holds `name`, if anyone: owner token, fencing token, remaining
    /// ttl, and the waiters queued for it in the order a release hands the
    /// lock on ([`LockInfo::queue`]: at most [`MAX_REPORTED_WAITERS`](crate::MAX_REPORTED_WAITERS) of
    /// them, [`LockInfo::queue_len`] counts all; always empty for
    /// Redlock). One script, so holder and queue are one snapshot.
    ///
    /// `None` means the lock is free; a free lock's queue is not reported,
    /// even in the rare moments it has queued waiters (a release has just
    /// handed the lock to the next one, which has not taken it yet; or a
    /// holder's lease ran out and its waiters have not looked again yet).
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// if let Some(info) = client.inspect("orders:42").unwrap() {
    ///     println!("held by {} for {:?} more", info.owner_token, info.ttl);
    ///     for waiter in &info.queue {
    ///         println!("next: {} (entry runs out in {:?})", waiter.id, waiter.expires_in);
    ///     }
    /// }
    /// ```
    pub fn inspect(&self, name: &str) -> Result<Option<LockInfo>> {
        let keys = self.inner.keys(name)?;
        self.inner
            .backend
            .inspect(&keys, crate::info::MAX_REPORTED_WAITERS)
    }

    /// Whether `name` is currently held by anyone.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// println!("{}", client.is_locked("orders:42").unwrap());
    /// ```
    pub fn is_locked(&self, name: &str) -> Result<bool> {
        let keys = self.inner.keys(name)?;
        // Without the queue: only whether there is a holder matters.
        Ok(self.inner.backend.inspect(&keys, 0)?.is_some())
    }

    /// The held locks whose names match the glob `pattern` (Redis's
    /// `MATCH` syntax: `*`, `?`, `[abc]`, `[a-z]`, `[^abc]`, `\x`), at
    /// most `limit` of them, sorted by name; what
    /// [`inspect`](Client::inspect) says of each, except that
    /// [`LockInfo::queue`] is left empty ([`LockInfo::queue_len`] still
    /// counts the waiters).
    ///
    /// It walks the lock keys with `SCAN` (a thousand keys per call, never
    /// `KEYS`, so a big database is never blocked), on every master of a
    /// Cluster, then inspects the locks found, many per round trip. A
    /// lock taken or released meanwhile may or may not be listed, and the
    /// scan stops once `limit` held locks are found: which ones those are
    /// is up to the scan's order, not their names. On Redlock every master
    /// is scanned and a lock is listed when a quorum holds it (what
    /// `inspect` says; one lock per round trip there, so slower); masters
    /// that fail are skipped while the others still make a quorum, but a
    /// lock whose holder they leave undecided (its owner has votes, and
    /// the silent masters could make them a quorum) fails the list with
    /// `NoQuorum`, as it fails `inspect`.
    ///
    /// Errors: `InvalidArgument` for a bad pattern (an unclosed `[`, a
    /// trailing `\`); a connection or server error as for `inspect`;
    /// `NoQuorum` on Redlock when too few masters answer.
    ///
    /// ```
    /// # fn main() -> latchkey::Result<()> {
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::builder(&url).prefix("list-doc").build()?;
    /// let first = client.lock("job:1")?.acquire()?;
    /// let second = client.lock("job:2")?.acquire()?;
    /// let _other = client.lock("report")?.acquire()?;
    /// let jobs = client.list_locks("job:*", 100)?;
    /// let names: Vec<&str> = jobs.iter().map(|info| info.name.as_str()).collect();
    /// assert_eq!(names, ["job:1", "job:2"]);
    /// assert_eq!(jobs[0].fencing_token, first.fencing_token());
    /// assert_eq!(jobs[1].owner_token, second.token());
    /// assert_eq!(client.list_locks("*", 1)?.len(), 1);
    /// assert!(client.list_locks("job:[1", 100).is_err());
    /// # Ok(()) }
    /// ```
    pub fn list_locks(&self, pattern: &str, limit: usize) -> Result<Vec<LockInfo>> {
        let glob = crate::glob::Glob::new(pattern)?;
        let mut found: Vec<LockInfo> = Vec::new();
        if limit == 0 {
            return Ok(found);
        }
        let prefix = self.inner.prefix.as_str();
        let backend = &self.inner.backend;
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut pending: Vec<crate::keys::LockKeys> = Vec::new();
        let mut failed: Option<Error> = None;
        // Inspects the names found so far and keeps the held ones.
        let inspect =
            |pending: &mut Vec<crate::keys::LockKeys>, found: &mut Vec<LockInfo>| -> Result<()> {
                // One reply per lock, with the number of waiters but no list.
                for reply in backend.inspect_many(pending, 1)? {
                    if let Some(mut info) = reply? {
                        info.queue.clear();
                        found.push(info);
                    }
                }
                pending.clear();
                Ok(())
            };
        backend.scan(&glob.scan_pattern(prefix), &mut |key| {
            let Some(name) = crate::keys::name_of_lock_key(prefix, key) else {
                return true;
            };
            if !glob.matches(&name) || seen.contains(&name) {
                return true;
            }
            match self.inner.keys(&name) {
                Ok(keys) => pending.push(keys),
                Err(_) => return true,
            }
            seen.insert(name);
            if pending.len() >= LIST_BATCH {
                if let Err(e) = inspect(&mut pending, &mut found) {
                    failed = Some(e);
                    return false;
                }
            }
            found.len() < limit
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        if found.len() < limit {
            inspect(&mut pending, &mut found)?;
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found.truncate(limit);
        Ok(found)
    }

    /// Administrative unlock: deletes the lock whoever holds it and wakes
    /// waiters. The holder finds out at its next renewal (its lease is
    /// reported lost). Returns whether a lock was deleted.
    ///
    /// It looks up the holder first and deletes the lock only if that
    /// holder still has it, so an unlock that reaches Redis late (after a
    /// timeout) never breaks a hold taken after it; it is never sent twice.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// let deleted = client.force_unlock("stuck-job").unwrap();
    /// # let _ = deleted;
    /// ```
    pub fn force_unlock(&self, name: &str) -> Result<bool> {
        let keys = self.inner.keys(name)?;
        let Some(holder) = self.inner.backend.inspect(&keys, 0)? else {
            return Ok(false);
        };
        let holder = crate::backend::script_calls::force_unlock_holder(&holder);
        self.inner.backend.force_unlock(&keys, &holder)
    }

    /// Writes `value` to the resource `resource` only if `fencing_token` is
    /// above the highest token the resource has accepted: a holder that was
    /// paused past its lease (and so has an older token) is refused. A
    /// writer with only a token cannot prove it is the hold that wrote
    /// before, so an equal token is accepted only if the previous write
    /// also came with only that token; a holder that writes several times
    /// uses [`Guard::fenced_write`](crate::Guard::fenced_write), which is
    /// accepted again for the same hold and refused for any other.
    ///
    /// ```
    /// # fn main() -> latchkey::Result<()> {
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url)?;
    /// let guard = client.lock("ledger")?.acquire()?;
    /// let outcome = client.fenced_write("ledger-state", guard.fencing_token(), b"v2")?;
    /// assert!(outcome.written);
    /// # Ok(()) }
    /// ```
    pub fn fenced_write(
        &self,
        resource: &str,
        fencing_token: u64,
        value: &[u8],
    ) -> Result<FencedWrite> {
        self.inner.fenced_write(resource, fencing_token, "", value)
    }

    /// Reads a resource written by [`fenced_write`](Client::fenced_write):
    /// its value and the fencing token that wrote it.
    ///
    /// ```
    /// # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
    /// let client = latchkey::Client::open(&url).unwrap();
    /// if let Some((token, value)) = client.fenced_read("ledger-state").unwrap() {
    ///     println!("{token}: {value:?}");
    /// }
    /// ```
    pub fn fenced_read(&self, resource: &str) -> Result<Option<(u64, Vec<u8>)>> {
        let key = self.fenced_key(resource)?;
        self.inner.backend.fenced_read(&key, resource)
    }

    fn fenced_key(&self, resource: &str) -> Result<Vec<u8>> {
        self.inner.fenced_key(resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("redis://:s3cret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            redact_url("redis://bob:s3cret@host"),
            "redis://bob:***@host"
        );
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
        // Before: a password typed without its '@host' did not parse (it
        // sits where the port goes) and the URL was shown whole.
        assert_eq!(redact_url("redis://bob:s3cret"), "redis://bob:***");
        assert_eq!(redact_url("redis://:s3cret"), "redis://:***");
        assert_eq!(redact_url("redis://s3cret@host"), "redis://***@host");
        // A raw '/' ends the user info early: hide up to the last '@'.
        assert_eq!(
            redact_url("redis://bob:se/cret@host:6379"),
            "redis://***@host:6379"
        );
        assert_eq!(redact_url("redis://se?cret@host"), "redis://***");
        assert_eq!(
            redact_url("unix:///tmp/r.sock?db=1&pass=s3cret"),
            "unix:///tmp/r.sock?***"
        );
        assert_eq!(redact_url("redis://host/?pass=se@cret"), "redis://***");
        assert_eq!(
            redact_url("redis://host:x/?pass=s3cret"),
            "redis://host:x/?***"
        );
        assert_eq!(redact_url("redis://host/#s3cret"), "redis://host/#***");
        assert_eq!(
            redact_url("redis://bob:p%2F%40w@host"),
            "redis://bob:***@host"
        );
    }

    #[test]
    fn bad_urls_never_echo_the_password() {
        let err = Client::open("redis://bob:s3cret@host:notaport").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        let err = Client::open("http://bob:s3cret@host").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        let client = Client::open("redis://bob:s3cret@localhost:1").unwrap();
        assert!(!format!("{client:?}").contains("s3cret"));
        let builder = Client::builder("redis://bob:s3cret@localhost:1");
        assert!(!format!("{builder:?}").contains("s3cret"));
        for url in [
            "unix:///tmp/r.sock?db=x&pass=s3cret",
            "unix:///tmp/r.sock?pass=s3cret&protocol=9",
            "redis://localhost:notaport/?pass=s3cret",
            "redis://localhost/?protocol=s3cret",
        ] {
            let err = Client::open(url).unwrap_err();
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn a_setting_the_url_does_not_read_is_refused() {
        let refused = |url: &str| Client::open(url).unwrap_err().to_string();
        assert!(refused("redis://localhost/?password=s3cret").contains("user info"));
        assert!(refused("unix:///tmp/r.sock?password=s3cret").contains("'?pass='"));
        assert!(refused("redis://localhost/?db=2").contains("path"));
        assert!(!refused("redis://localhost/?s3cret").contains("s3cret"));
        assert!(Client::open("unix:///tmp/r.sock?db=2&user=u&pass=p").is_ok());
        assert!(Client::open("redis://localhost/?protocol=2").is_ok());
    }

    #[test]
    fn bad_options_are_invalid_arguments() {
        let kind = |b: ClientBuilder| b.build().unwrap_err().kind();
        let b = || Client::builder("redis://127.0.0.1");
        assert_eq!(
            kind(b().connect_timeout(Duration::ZERO)),
            crate::ErrorKind::InvalidArgument
        );
        assert_eq!(
            kind(b().command_timeout(Duration::from_secs(1 << 40))),
            crate::ErrorKind::InvalidArgument
        );
        assert_eq!(kind(b().prefix("a}b")), crate::ErrorKind::InvalidArgument);
        assert_eq!(kind(b().pool_size(0)), crate::ErrorKind::InvalidArgument);
    }
}
