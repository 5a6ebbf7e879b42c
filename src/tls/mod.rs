//! TLS for control and data connections (RFC 4217): rustls configs built from
//! PEM files, the policies around them, and how many tickets each kind of
//! connection hands out. Which session a data connection may resume is
//! [`resumption`]'s business.
//!
//! Tickets: a control connection hands out two when its handshake is done. A
//! data connection that resumed one of ours hands out one more, because
//! clients on OpenSSL (curl) and rustls use each TLS 1.3 ticket once and
//! would have none left for the next transfer. The exception is an upload
//! whose command came before the client's handshake: clients that do that
//! (Go's rclone, suppaftp) write the file and close without reading, and a
//! ticket left unread in their socket turns the close into a reset that cuts
//! off the end of the file. Clients that handshake before the command (curl,
//! aioftp) read the connection until they close it.

pub mod resumption;

use std::fmt;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{CipherSuite, ServerConfig};
use tokio_rustls::TlsAcceptor;

use resumption::{ControlTickets, DataTickets};

/// TLS 1.3 tickets a control connection hands out after its handshake.
const CONTROL_TICKETS: usize = 2;

/// When TLS is required (`[tls] required`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsPolicy {
    /// TLS is offered, never required.
    Optional,
    /// `USER` is refused until `AUTH TLS` has protected the control connection.
    Login,
    /// As `Login`, and transfers are refused until `PROT P` protects the data connection.
    Data,
}

/// The lowest TLS version accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MinVersion {
    /// TLS 1.2 and 1.3.
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// Why a certificate or key could not be used; the config layer names the key.
#[derive(Debug, thiserror::Error)]
pub enum TlsLoadError {
    /// The certificate file is unreadable or holds no certificate.
    #[error("{0}")]
    Certificate(String),
    /// The key file is unreadable, open to other users, or holds no private key.
    #[error("{0}")]
    PrivateKey(String),
    /// rustls refused the pair (for example, the key does not match the certificate).
    #[error("{0}")]
    Config(String),
}

/// TLS settings in force: the server's certificate and the policies around it.
#[derive(Clone)]
pub struct TlsSettings {
    control: Arc<ServerConfig>,
    data: Arc<ServerConfig>,
    /// When TLS is required.
    pub required: TlsPolicy,
    /// Whether a data connection must resume its control connection's TLS session.
    pub require_session_reuse: bool,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// Addresses of the implicit-TLS control listeners.
    pub implicit_listen: Vec<SocketAddr>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("required", &self.required)
            .field("require_session_reuse", &self.require_session_reuse)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("implicit_listen", &self.implicit_listen)
            .finish_non_exhaustive()
    }
}

/// Puts the AES-128-GCM suites first. With AES instructions (x86-64's
/// AES-NI, ARMv8's crypto extension) it is the cheapest AEAD rustls offers:
/// on the benchmark machine FTPS downloads took about a quarter less CPU on
/// both ends than with AES-256-GCM, the suite OpenSSL clients ask for first.
/// Every suite stays available, so clients without AES-GCM still connect.
fn fastest_first(mut provider: CryptoProvider) -> CryptoProvider {
    provider.cipher_suites.sort_by_key(|suite| {
        !matches!(
            suite.suite(),
            CipherSuite::TLS13_AES_128_GCM_SHA256
                | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    provider
}

/// Mode bits a private key file must not have: writable by its group or by
/// others, readable by others. Readable by its group stays allowed, for
/// Debian's ssl-cert pattern (a key `0640 root:ssl-cert`).
#[cfg(unix)]
const KEY_MODE_REFUSED: u32 = 0o026;

/// Reads a PEM private key; on Unix, one that others could read or change is refused.
fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsLoadError> {
    let cannot_read = |e: &dyn fmt::Display| {
        TlsLoadError::PrivateKey(format!(
            "cannot read a private key from {}: {e}",
            path.display()
        ))
    };
    let mut file = std::fs::File::open(path).map_err(|e| cannot_read(&e))?;
    let mut pem = Vec::new();
    file.read_to_end(&mut pem).map_err(|e| cannot_read(&e))?;
    #[cfg(unix)]
    refuse_exposed_key(path, &file)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| cannot_read(&e))
}

/// Refuses a key file others may read, or its group or others may write, as
/// OpenSSH refuses such keys: a key others can read is no longer secret, and
/// one they can write lets them choose it. The mode is the open file's, so
/// what is judged is what was read, and a symlink is judged by its target.
#[cfg(unix)]
fn refuse_exposed_key(path: &Path, file: &std::fs::File) -> Result<(), TlsLoadError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file
        .metadata()
        .map_err(|e| {
            TlsLoadError::PrivateKey(format!("cannot read the mode of {}: {e}", path.display()))
        })?
        .permissions()
        .mode()
        & 0o7777;
    if mode & KEY_MODE_REFUSED == 0 {
        return Ok(());
    }
    Err(TlsLoadError::PrivateKey(format!(
        "{path} has mode {mode:04o}: a private key must not be readable by others nor writable by its group or others; run `chmod 600 {path}` (or `chmod 640 {path}` to share it with one group, such as ssl-cert)",
        path = path.display()
    )))
}

impl TlsSettings {
    /// Reads the certificate chain and key (PEM) and builds the rustls configs;
    /// on Unix a key file others may read, or its group or others may write,
    /// is refused.
    pub fn load(
        certificate: &Path,
        private_key: &Path,
        min_version: MinVersion,
    ) -> Result<Self, TlsLoadError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
            .and_then(|iter| iter.collect())
            .map_err(|e| {
                TlsLoadError::Certificate(format!("cannot read {}: {e}", certificate.display()))
            })?;
        if certs.is_empty() {
            return Err(TlsLoadError::Certificate(format!(
                "{} holds no PEM certificate",
                certificate.display()
            )));
        }
        let key = read_private_key(private_key)?;
        Self::from_der(certs, key, min_version)
    }

    /// Builds the configs from a parsed chain and key.
    pub fn from_der(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        min_version: MinVersion,
    ) -> Result<Self, TlsLoadError> {
        let versions: &[&rustls::SupportedProtocolVersion] = match min_version {
            MinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            MinVersion::Tls13 => &[&rustls::version::TLS13],
        };
        // ring's default key-exchange order puts X25519 first, which is what
        // clients send a key share for: no HelloRetryRequest round trip.
        let provider = Arc::new(fastest_first(rustls::crypto::ring::default_provider()));
        let mut control = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| TlsLoadError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| {
                TlsLoadError::Config(format!("certificate and key do not fit together: {e}"))
            })?;
        // OpenSSL-based clients (curl, lftp, Python) list AES-256-GCM first;
        // the server's order makes them use AES-128-GCM.
        control.ignore_client_order = true;
        control.send_tls13_tickets = CONTROL_TICKETS;
        let data = control.clone();
        Ok(TlsSettings {
            control: Arc::new(control),
            data: Arc::new(data),
            required: TlsPolicy::Optional,
            require_session_reuse: true,
            handshake_timeout: Duration::from_secs(10),
            implicit_listen: Vec::new(),
        })
    }

    /// An acceptor for a control connection whose sessions are tagged with `tickets`.
    pub fn control_acceptor(&self, tickets: &ControlTickets) -> TlsAcceptor {
        let mut config = (*self.control).clone();
        tickets.install(&mut config);
        TlsAcceptor::from(Arc::new(config))
    }

    /// The config for a data connection; `upload`: an upload whose command
    /// came before the client's handshake. Sessions go through `tickets`.
    pub fn data_config(&self, upload: bool, tickets: &DataTickets) -> Arc<ServerConfig> {
        let mut config = (*self.data).clone();
        config.send_tls13_tickets = if upload { 0 } else { 1 };
        tickets.install(&mut config);
        Arc::new(config)
    }

    /// Runs a server handshake on `io` within the handshake timeout.
    pub async fn handshake<IO>(
        &self,
        acceptor: TlsAcceptor,
        io: IO,
    ) -> io::Result<tokio_rustls::server::TlsStream<IO>>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        tokio::time::timeout(self.handshake_timeout, acceptor.accept(io))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
    }
}

/// The TLS config of this daemon's HTTPS clients (the S3 backend, hooks,
/// the authentication hook): rustls with ring, the provider the listeners
/// use, and the platform's trusted roots.
pub fn https_client_config() -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(Arc::clone(&provider))
        .map_err(|e| format!("cannot set up TLS certificate verification: {e}"))?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}
