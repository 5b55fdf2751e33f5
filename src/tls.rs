//! TLS for the library's own sockets: the request connections and the
//! release listener's, with rustls (feature `tls`, on by default).
//!
//! A client uses TLS when its URLs say `rediss://`; the builder's `tls_*`
//! options say what to trust (the system's CA store unless a CA file is
//! given), which client certificate to show (mutual TLS), which name to
//! expect in the server's certificate, and, loudly named, whether to skip
//! verification altogether.
//!
//! One [`TlsStream`] is shared by a reader and writers (the release
//! listener reads on its own thread while waiters subscribe): the rustls
//! state sits behind a lock that is never held while waiting for the
//! socket, so a writer is never stuck behind a reader that waits for a
//! message.

use std::path::PathBuf;

#[cfg(not(feature = "tls"))]
use crate::error::{Error, Result};

/// What a client's TLS options ask for (see the builder's `tls_*` methods).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    pub(crate) ca_file: Option<PathBuf>,
    /// Certificate chain file and private key file, both PEM.
    pub(crate) client_cert: Option<(PathBuf, PathBuf)>,
    pub(crate) server_name: Option<String>,
    pub(crate) insecure_skip_verify: bool,
}

impl TlsSettings {
    /// Whether any TLS option was set.
    pub(crate) fn any(&self) -> bool {
        *self != TlsSettings::default()
    }
}

#[cfg(feature = "tls")]
pub(crate) use with_rustls::{Tls, TlsStream};

/// Without the `tls` feature nothing can make a [`Tls`]: the types exist,
/// empty, so that the socket code reads the same in both builds.
#[cfg(not(feature = "tls"))]
pub(crate) enum Tls {}

/// See [`Tls`] (no value of it exists in this build).
#[cfg(not(feature = "tls"))]
pub(crate) enum TlsStream {}

#[cfg(not(feature = "tls"))]
impl Tls {
    pub(crate) fn new(_: &TlsSettings) -> Result<std::sync::Arc<Tls>> {
        Err(Error::invalid(
            "this build of latchkey has no TLS (the cargo feature `tls` is off): \
             rediss:// URLs and the tls_* options need it",
        ))
    }

    pub(crate) fn connect(
        &self,
        _: std::net::TcpStream,
        _: &str,
        _: std::time::Duration,
    ) -> std::io::Result<TlsStream> {
        match *self {}
    }
}

#[cfg(not(feature = "tls"))]
impl TlsStream {
    pub(crate) fn read(&self, _: &mut [u8], _: &mut dyn std::io::Read) -> std::io::Result<usize> {
        match *self {}
    }
    pub(crate) fn write_all(&self, _: &[u8]) -> std::io::Result<()> {
        match *self {}
    }
    pub(crate) fn socket(&self) -> &std::net::TcpStream {
        match *self {}
    }
    pub(crate) fn closed_or_out_of_step(&self) -> bool {
        match *self {}
    }
}

#[cfg(feature = "tls")]
mod with_rustls {
    use std::io::{self, Read, Write};
    use std::net::TcpStream;
    use std::os::fd::AsRawFd;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore};

    use super::TlsSettings;
    use crate::error::{Error, Result};
    use crate::sync::Mutex;

    /// A client's TLS configuration, made once when the client is built.
    pub(crate) struct Tls {
        config: Arc<ClientConfig>,
        /// The name to expect instead of the URL's host.
        server_name: Option<ServerName<'static>>,
    }

    impl std::fmt::Debug for Tls {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Tls")
                .field("server_name", &self.server_name)
                .finish_non_exhaustive()
        }
    }

    /// ring: it builds with a C compiler alone (aws-lc-rs, rustls's
    /// default, wants more of the build machine and minutes more of every
    /// cold build). rustls 0.23.48 deprecates it for lacking post-quantum
    /// key exchange; switching is one line here once that matters more.
    #[allow(deprecated)]
    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn read_file(what: &str, path: &Path) -> Result<Vec<u8>> {
        std::fs::read(path).map_err(|e| {
            Error::invalid(format!(
                "cannot read the TLS {what} '{}': {e}",
                path.display()
            ))
        })
    }

    fn certificates(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
        let pem = read_file(what, path)?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| {
                Error::invalid(format!(
                    "the TLS {what} '{}' is not valid PEM: {e}",
                    path.display()
                ))
            })?;
        if certs.is_empty() {
            return Err(Error::invalid(format!(
                "the TLS {what} '{}' holds no PEM certificate",
                path.display()
            )));
        }
        Ok(certs)
    }

    fn roots(settings: &TlsSettings) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        match &settings.ca_file {
            Some(path) => {
                for cert in certificates("CA file", path)? {
                    roots.add(cert).map_err(|e| {
                        Error::invalid(format!(
                            "the TLS CA file '{}' holds a certificate rustls refuses: {e}",
                            path.display()
                        ))
                    })?;
                }
            }
            None => {
                // Unreadable entries of the system store are skipped, as
                // every TLS client does; none at all is an error below.
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(Error::invalid(
                        "no CA certificates found in the system store: give a CA file (tls_ca_file)",
                    ));
                }
            }
        }
        Ok(roots)
    }

    impl Tls {
        /// Reads the files the settings name and makes the configuration;
        /// every problem with them is reported here, naming the file.
        pub(crate) fn new(settings: &TlsSettings) -> Result<Arc<Tls>> {
            let builder = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| Error::invalid(format!("TLS: {e}")))?;
            let builder = if settings.insecure_skip_verify {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
            } else {
                builder.with_root_certificates(roots(settings)?)
            };
            let config = match &settings.client_cert {
                None => builder.with_no_client_auth(),
                Some((cert, key)) => {
                    let chain = certificates("client certificate", cert)?;
                    let key_pem = read_file("client key", key)?;
                    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                        Error::invalid(format!(
                            "the TLS client key '{}' holds no usable PEM private key: {e}",
                            key.display()
                        ))
                    })?;
                    builder.with_client_auth_cert(chain, key).map_err(|e| {
                        Error::invalid(format!(
                            "the TLS client certificate and key do not go together: {e}"
                        ))
                    })?
                }
            };
            let server_name = match &settings.server_name {
                None => None,
                Some(name) => Some(ServerName::try_from(name.clone()).map_err(|_| {
                    Error::invalid(format!("'{name}' is not a valid TLS server name"))
                })?),
            };
            Ok(Arc::new(Tls {
                config: Arc::new(config),
                server_name,
            }))
        }

        /// Runs the handshake over `socket` (connected to `host`) within
        /// `timeout`.
        pub(crate) fn connect(
            &self,
            mut socket: TcpStream,
            host: &str,
            timeout: Duration,
        ) -> io::Result<TlsStream> {
            let name = match &self.server_name {
                Some(name) => name.clone(),
                None => ServerName::try_from(host.to_string()).map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("'{host}' is not a valid TLS server name"),
                    )
                })?,
            };
            let mut conn = ClientConnection::new(Arc::clone(&self.config), name)
                .map_err(|e| io::Error::other(format!("TLS: {e}")))?;
            let deadline = Instant::now() + timeout;
            while conn.is_handshaking() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the TLS handshake did not finish within the connect timeout",
                    ));
                }
                socket.set_read_timeout(Some(left))?;
                socket.set_write_timeout(Some(left))?;
                conn.complete_io(&mut socket).map_err(|e| match e.kind() {
                    // The socket's timeout ran out (EAGAIN): the server
                    // accepted but never finished the handshake.
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the TLS handshake did not finish within the connect timeout \
                         (is the port a TLS port? a plain-text Redis never answers a \
                         TLS handshake)",
                    ),
                    _ => explain_handshake(e),
                })?;
            }
            socket.set_read_timeout(None)?;
            Ok(TlsStream {
                conn: Mutex::new(Inner {
                    tls: conn,
                    unread: Vec::new(),
                }),
                socket,
            })
        }
    }

    /// A handshake failure in words that name the likely cause.
    fn explain_handshake(e: io::Error) -> io::Error {
        let Some(tls) = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        else {
            return e;
        };
        io::Error::new(e.kind(), format!("{}: {tls}", hint(tls)))
    }

    /// The likely cause of a TLS failure, for its message.
    fn hint(tls: &rustls::Error) -> &'static str {
        match tls {
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
                "the server's certificate is not signed by a CA this client trusts \
                 (check the CA file, tls_ca_file)"
            }
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            ) => {
                "the server's certificate is not valid for the host name of the URL \
                 (connect by the name in the certificate, or set tls_server_name)"
            }
            rustls::Error::InvalidCertificate(_) => "the server's certificate was refused",
            // A TLS 1.3 server refuses a missing client certificate after
            // the handshake, on the first read.
            rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired) => {
                "the server requires a client certificate (tls_client_cert)"
            }
            rustls::Error::AlertReceived(_) => {
                "the server refused the TLS connection (does it require a client \
                 certificate? see tls_client_cert)"
            }
            _ => "TLS failed",
        }
    }

    /// One TLS connection, shared by a reader and writers (see the module
    /// documentation).
    pub(crate) struct TlsStream {
        conn: Mutex<Inner>,
        socket: TcpStream,
    }

    /// The rustls state, and bytes read from the socket that rustls would
    /// not take yet: it refuses more while over 16 KiB of plaintext waits
    /// to be read, which a raw read that ends one full record and starts
    /// the next can bring ("received plaintext buffer full").
    struct Inner {
        tls: ClientConnection,
        unread: Vec<u8>,
    }

    fn invalid_data(e: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", hint(&e)))
    }

    impl TlsStream {
        /// Reads decrypted bytes; when none are buffered, reads the
        /// socket's bytes through `raw` (which waits as its caller wants)
        /// without holding the lock. `Ok(0)` is the end of the stream.
        pub(crate) fn read(&self, buf: &mut [u8], raw: &mut dyn Read) -> io::Result<usize> {
            let mut incoming = [0u8; 8192];
            loop {
                {
                    let mut conn = self.conn.lock();
                    match conn.tls.reader().read(buf) {
                        Ok(n) => return Ok(n),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                    if !conn.unread.is_empty() {
                        let unread = std::mem::take(&mut conn.unread);
                        self.feed(&mut conn, &unread)?;
                        continue;
                    }
                }
                let n = raw.read(&mut incoming)?;
                self.take_in(&incoming[..n])?;
            }
        }

        /// Gives rustls bytes read from the socket (none: its end), and
        /// sends what that makes it answer (a key update, an alert).
        fn take_in(&self, bytes: &[u8]) -> io::Result<()> {
            let mut conn = self.conn.lock();
            if conn.unread.is_empty() {
                self.feed(&mut conn, bytes)
            } else {
                // After what rustls has not taken yet.
                conn.unread.extend_from_slice(bytes);
                Ok(())
            }
        }

        /// Gives rustls `bytes` until it holds plaintext to be read; keeps
        /// the rest in `unread` (see [`Inner`]).
        fn feed(&self, conn: &mut Inner, mut bytes: &[u8]) -> io::Result<()> {
            loop {
                conn.tls.read_tls(&mut bytes)?;
                let state = conn.tls.process_new_packets().map_err(invalid_data);
                while conn.tls.wants_write() {
                    conn.tls.write_tls(&mut &self.socket)?;
                }
                let state = state?;
                if bytes.is_empty() {
                    return Ok(());
                }
                if state.plaintext_bytes_to_read() > 0 {
                    conn.unread.extend_from_slice(bytes);
                    return Ok(());
                }
            }
        }

        /// Encrypts and writes all of `bytes` (within the socket's write
        /// timeout).
        pub(crate) fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
            let mut guard = self.conn.lock();
            let conn = &mut guard.tls;
            // rustls takes at most its buffer limit (64 KiB) of plaintext
            // at a time: hand it a piece, send what it made, go on (a
            // pipeline of a thousand renewals is larger than that).
            while !bytes.is_empty() {
                let taken = conn.writer().write(bytes)?;
                bytes = &bytes[taken..];
                if taken == 0 && !conn.wants_write() {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "TLS: the connection takes no more data",
                    ));
                }
                while conn.wants_write() {
                    conn.write_tls(&mut &self.socket)?;
                }
            }
            Ok(())
        }

        /// The socket under the TLS (for timeouts, polling, shutdown).
        pub(crate) fn socket(&self) -> &TcpStream {
            &self.socket
        }

        /// Whether the connection has ended or holds a reply nobody asked
        /// for, found without blocking. Bytes that carry no data (TLS 1.3
        /// session tickets arrive after the handshake) are taken in, not
        /// mistaken for a reply.
        pub(crate) fn closed_or_out_of_step(&self) -> bool {
            let mut incoming = [0u8; 8192];
            loop {
                match crate::net::try_recv(self.socket.as_raw_fd(), &mut incoming) {
                    Ok(None) => break,
                    Ok(Some(0)) | Err(_) => return true,
                    Ok(Some(n)) => {
                        if self.take_in(&incoming[..n]).is_err() {
                            return true;
                        }
                    }
                }
            }
            let mut conn = self.conn.lock();
            if !conn.unread.is_empty() {
                return true;
            }
            let mut probe = [0u8; 1];
            !matches!(conn.tls.reader().read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
        }
    }

    /// The verifier behind `tls_insecure_skip_verify`: accepts any
    /// certificate (the handshake's signatures are still checked, so the
    /// connection is encrypted, but to whoever answered).
    #[derive(Debug)]
    struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

    impl ServerCertVerifier for NoVerification {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> std::result::Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
