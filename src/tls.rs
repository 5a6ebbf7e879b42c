//! TLS for control and data connections (RFC 4217): rustls configs built from
//! PEM files, and the session stores that tie a data connection's TLS
//! resumption to the control connection that issued the session.
//!
//! Every control connection gets its own session store; a data connection may
//! resume only a session from that store, or from the store of a sibling
//! control connection of the same user from the same address (clients such as
//! rclone share one session cache across their connections).
//!
//! TLS 1.3 clients such as curl (OpenSSL) and rustls use a ticket once, so each
//! data connection must hand out a fresh one, which this server does on
//! downloads and listings, and only after a resumed handshake (a full handshake
//! must not mint a ticket that would pass the next reuse check). Uploads get no
//! tickets: Go's TLS client never reads from an upload connection, and unread
//! ticket bytes at close turn the client's FIN into a reset that truncates the file.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::StoresServerSessions;
use rustls::{CipherSuite, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Sessions one control connection keeps for its data connections to resume.
const SESSIONS_PER_CONNECTION: usize = 16;

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
    /// The key file is unreadable or holds no private key.
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
    download: Arc<ServerConfig>,
    upload: Arc<ServerConfig>,
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

impl TlsSettings {
    /// Reads the certificate chain and key (PEM) and builds the rustls configs.
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
        let key = PrivateKeyDer::from_pem_file(private_key).map_err(|e| {
            TlsLoadError::PrivateKey(format!(
                "cannot read a private key from {}: {e}",
                private_key.display()
            ))
        })?;
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
        control.session_storage = Arc::new(NoSessions);
        // OpenSSL-based clients (curl, lftp, Python) list AES-256-GCM first;
        // the server's order makes them use AES-128-GCM.
        control.ignore_client_order = true;
        let mut download = control.clone();
        download.send_tls13_tickets = 1;
        let mut upload = control.clone();
        upload.send_tls13_tickets = 0;
        Ok(TlsSettings {
            control: Arc::new(control),
            download: Arc::new(download),
            upload: Arc::new(upload),
            required: TlsPolicy::Optional,
            require_session_reuse: true,
            handshake_timeout: Duration::from_secs(10),
            implicit_listen: Vec::new(),
        })
    }

    /// An acceptor for a control connection whose sessions go to `store`.
    pub fn control_acceptor(&self, store: Arc<SessionStore>) -> TlsAcceptor {
        let mut config = (*self.control).clone();
        config.session_storage = store;
        TlsAcceptor::from(Arc::new(config))
    }

    /// An acceptor for a data connection that may resume sessions from
    /// `stores` only (its own control connection's first); a download's fresh
    /// ticket goes to that first store.
    pub fn data_acceptor(&self, stores: Vec<Arc<SessionStore>>, upload: bool) -> TlsAcceptor {
        let base = if upload { &self.upload } else { &self.download };
        let mut config = (**base).clone();
        config.session_storage = Arc::new(ResumableFrom {
            stores,
            resumed: AtomicBool::new(false),
        });
        TlsAcceptor::from(Arc::new(config))
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

/// The TLS sessions issued on one control connection (TLS 1.2 session IDs and
/// TLS 1.3 tickets alike, kept server-side), bounded, oldest dropped first.
#[derive(Debug, Default)]
pub struct SessionStore {
    sessions: Mutex<VecDeque<(Vec<u8>, Vec<u8>)>>,
}

impl SessionStore {
    fn find(&self, key: &[u8]) -> Option<Vec<u8>> {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }
}

impl StoresServerSessions for SessionStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if sessions.len() >= SESSIONS_PER_CONNECTION {
            sessions.pop_front();
        }
        sessions.push_back((key, value));
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.find(key)
    }

    /// TLS 1.3 asks to take a ticket once; an FTP client resumes the same
    /// session for every data connection, and data connections get no fresh
    /// tickets, so the ticket stays for the control connection's lifetime.
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.find(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// One data connection's view of the session stores: it may resume from
/// `stores`, and once it has, the tickets it issues go to the first of them.
#[derive(Debug)]
struct ResumableFrom {
    stores: Vec<Arc<SessionStore>>,
    resumed: AtomicBool,
}

impl StoresServerSessions for ResumableFrom {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        match self.stores.first() {
            Some(own) if self.resumed.load(Ordering::Acquire) => own.put(key, value),
            _ => false,
        }
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let found = self.stores.iter().find_map(|store| store.find(key));
        if found.is_some() {
            self.resumed.store(true, Ordering::Release);
        }
        found
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.get(key)
    }

    fn can_cache(&self) -> bool {
        self.resumed.load(Ordering::Acquire)
    }
}

/// The base configs' store: never used, since every acceptor gets its own.
#[derive(Debug)]
struct NoSessions;

impl StoresServerSessions for NoSessions {
    fn put(&self, _key: Vec<u8>, _value: Vec<u8>) -> bool {
        false
    }
    fn get(&self, _key: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn take(&self, _key: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn can_cache(&self) -> bool {
        false
    }
}

/// A logged-in user and the address it connected from.
type UserAtAddress = (String, IpAddr);

/// The session stores of logged-in TLS control connections, by user and client address.
#[derive(Debug, Default)]
pub struct SessionRegistry {
    stores: Mutex<HashMap<UserAtAddress, Vec<Weak<SessionStore>>>>,
}

impl SessionRegistry {
    /// Records that `store` belongs to `user` connected from `ip`.
    pub fn register(&self, user: &str, ip: IpAddr, store: &Arc<SessionStore>) {
        let mut stores = self.stores.lock().unwrap_or_else(PoisonError::into_inner);
        let list = stores
            .entry((user.to_owned(), ip.to_canonical()))
            .or_default();
        list.retain(|weak| weak.strong_count() > 0);
        list.push(Arc::downgrade(store));
    }

    /// The live stores of `user`'s control connections from `ip`.
    pub fn siblings(&self, user: &str, ip: IpAddr) -> Vec<Arc<SessionStore>> {
        let mut stores = self.stores.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (user.to_owned(), ip.to_canonical());
        let Some(list) = stores.get_mut(&key) else {
            return Vec::new();
        };
        list.retain(|weak| weak.strong_count() > 0);
        let live: Vec<_> = list.iter().filter_map(Weak::upgrade).collect();
        if live.is_empty() {
            stores.remove(&key);
        }
        live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_keeps_its_newest_sessions_and_take_does_not_consume() {
        let store = SessionStore::default();
        for i in 0..SESSIONS_PER_CONNECTION + 2 {
            assert!(store.put(vec![i as u8], vec![i as u8; 2]));
        }
        assert_eq!(store.get(&[0]), None, "oldest dropped");
        let last = [SESSIONS_PER_CONNECTION as u8 + 1];
        assert_eq!(store.take(&last), Some(vec![last[0]; 2]));
        assert_eq!(store.take(&last), Some(vec![last[0]; 2]));
    }

    #[test]
    fn data_connections_resume_only_from_their_stores() {
        let mine = Arc::new(SessionStore::default());
        let other = Arc::new(SessionStore::default());
        mine.put(b"mine".to_vec(), b"1".to_vec());
        other.put(b"other".to_vec(), b"2".to_vec());
        let view = ResumableFrom {
            stores: vec![mine.clone()],
            resumed: AtomicBool::new(false),
        };
        assert!(
            !view.put(b"minted".to_vec(), b"0".to_vec()),
            "no tickets before a resumption"
        );
        assert_eq!(view.get(b"other"), None);
        assert_eq!(view.get(b"mine"), Some(b"1".to_vec()));
        assert!(view.put(b"fresh".to_vec(), b"3".to_vec()));
        assert_eq!(
            mine.get(b"fresh"),
            Some(b"3".to_vec()),
            "a fresh ticket lands in the own store"
        );
        assert_eq!(mine.get(b"minted"), None);
    }

    #[test]
    fn siblings_are_the_same_user_from_the_same_address_while_alive() {
        let registry = SessionRegistry::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = Arc::new(SessionStore::default());
        let b = Arc::new(SessionStore::default());
        registry.register("alice", ip, &a);
        registry.register("alice", ip, &b);
        registry.register("bob", ip, &Arc::new(SessionStore::default()));
        assert_eq!(registry.siblings("alice", ip).len(), 2);
        assert!(registry
            .siblings("alice", "127.0.0.2".parse().unwrap())
            .is_empty());
        drop(b);
        assert_eq!(registry.siblings("alice", ip).len(), 1);
        assert!(
            registry.siblings("bob", ip).is_empty(),
            "bob's store was dropped"
        );
    }
}
