//! TLS for the tests: certificates made by tools/tls_certs.py and
//! redis-servers (and sentinels) with a TLS port of their own.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use super::{RedisServer, TempDir};

/// The test certificates, by file name (see tools/tls_certs.py), removed
/// on drop.
pub struct Certs {
    _dir: TempDir,
    paths: HashMap<String, PathBuf>,
}

impl Certs {
    pub fn make() -> Certs {
        let dir = TempDir::new("tls-certs");
        let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/tls_certs.py");
        let out = Command::new("python3")
            .arg(tool)
            .arg(&dir.0)
            .output()
            .expect("python3 runs tools/tls_certs.py");
        assert!(
            out.status.success(),
            "tools/tls_certs.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let paths = ["ca", "other-ca", "server", "client", "wrong-name"]
            .iter()
            .flat_map(|name| [format!("{name}.crt"), format!("{name}.key")])
            .map(|file| {
                let path = dir.0.join(&file);
                (file, path)
            })
            .collect();
        Certs { _dir: dir, paths }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.paths[file].clone()
    }

    /// The redis-server arguments of a TLS port (`tls-auth-clients` is
    /// `auth_clients`: yes, no, optional), then `extra`.
    pub fn server_args(&self, auth_clients: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--tls-port",
            "auto",
            "--tls-cert-file",
            self.path("server.crt").to_str().unwrap(),
            "--tls-key-file",
            self.path("server.key").to_str().unwrap(),
            "--tls-ca-cert-file",
            self.path("ca.crt").to_str().unwrap(),
            "--tls-auth-clients",
            auth_clients,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// A redis-server with a TLS port that asks for no client certificate,
    /// and `extra` arguments.
    pub fn server_with(&self, extra: &[&str]) -> RedisServer {
        let args = self.server_args("no", extra);
        RedisServer::start_with(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// A redis-server with a TLS port that asks for no client certificate.
    pub fn server(&self) -> RedisServer {
        self.server_with(&[])
    }

    /// A redis-server whose TLS port requires a client certificate.
    pub fn mtls_server(&self) -> RedisServer {
        let args = self.server_args("yes", &[]);
        RedisServer::start_with(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// A sentinel that monitors `master` over TLS and listens on a TLS
    /// port of its own.
    pub fn sentinel(&self, master: &RedisServer) -> RedisServer {
        let lines = [
            "tls-port auto".to_string(),
            format!("tls-cert-file {}", self.path("server.crt").display()),
            format!("tls-key-file {}", self.path("server.key").display()),
            format!("tls-ca-cert-file {}", self.path("ca.crt").display()),
            "tls-auth-clients no".to_string(),
            "tls-replication yes".to_string(),
        ];
        let master_tls = master.tls_port.expect("the master has a TLS port");
        RedisServer::start_sentinel_with(
            master_tls,
            1,
            &lines.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    }
}

/// `rediss://HOST:TLS_PORT` of `server`.
pub fn tls_url(server: &RedisServer, host: &str) -> String {
    let port = server.tls_port.expect("the server has a TLS port");
    format!("rediss://{host}:{port}")
}
