//! Runtime settings: validated values the server runs on.
//!
//! Produced by [`crate::config`] from a TOML file (or the embedded default),
//! or built directly by a program that embeds the server. Plain data: no
//! sockets, no tasks, so a reload can build a new set and swap it in.
//!
//! Built in code, settings are not range-checked as a config file is: a
//! duration too long to add to the clock (`Duration::MAX`) is taken as
//! "never", it does not panic a session.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::proxy_protocol::TrustedProxies;
use crate::throttle::Rate;
use crate::tls::TlsSettings;

/// Everything a running server needs besides its users.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Addresses of the plain (explicit) control listeners.
    pub listen: Vec<SocketAddr>,
    /// Per-session behaviour.
    pub session: SessionSettings,
    /// Passive-mode data connections.
    pub passive: PassiveSettings,
    /// FTPS, when a certificate is configured.
    pub tls: Option<TlsSettings>,
    /// Connection caps and server-wide bandwidth limits.
    pub limits: Limits,
    /// Brute-force protection.
    pub login: LoginProtection,
    /// How long shutdown waits for running transfers before closing them.
    pub shutdown_timeout: Duration,
    /// Listeners behind a load balancer that speaks the PROXY protocol.
    pub proxy: Option<ProxySettings>,
    /// One line per finished upload or download (`[transfer_log]`).
    pub transfer_log: Option<crate::transfer_log::Settings>,
    /// Where `/metrics` and `/healthz` are served (`[metrics] listen`).
    pub metrics: Option<SocketAddr>,
    /// Programs and URLs told of events (`[[hooks]]`).
    pub hooks: Vec<crate::hooks::HookSettings>,
    /// What may refuse an upload before it starts (`[pre_upload]`).
    pub pre_upload: Option<crate::hooks::PreUploadSettings>,
}

/// `[proxy_protocol]`: control listeners whose connections come from
/// trusted proxies, each starting with a PROXY header naming the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxySettings {
    /// Where such connections come in.
    pub listen: Vec<SocketAddr>,
    /// The proxies' addresses; a connection from elsewhere is refused.
    pub trusted: Arc<TrustedProxies>,
}

/// A control listener the settings ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenerSpec {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Implicit FTPS: TLS from the first byte (`[tls] implicit_listen`).
    pub implicit_tls: bool,
    /// Connections come from a trusted proxy, a PROXY header first
    /// (`[proxy_protocol] listen`).
    pub proxied: bool,
}

impl Settings {
    /// Every control listener these settings ask for, plain (`listen`)
    /// first, then implicit-TLS ones, then those behind a proxy: the one
    /// place that decides the set, for the first bind and for every reload.
    pub fn listeners(&self) -> Vec<ListenerSpec> {
        let spec = |implicit_tls, proxied| {
            move |&addr: &SocketAddr| ListenerSpec {
                addr,
                implicit_tls,
                proxied,
            }
        };
        let implicit = self.tls.iter().flat_map(|tls| &tls.implicit_listen);
        let proxied = self.proxy.iter().flat_map(|proxy| &proxy.listen);
        self.listen
            .iter()
            .map(spec(false, false))
            .chain(implicit.map(spec(true, false)))
            .chain(proxied.map(spec(false, true)))
            .collect()
    }
}

/// Connection caps and server-wide bandwidth limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Control connections open at once, server-wide.
    pub max_connections: usize,
    /// Control connections open at once from one address.
    pub max_connections_per_ip: usize,
    /// All downloads together.
    pub download: Option<Rate>,
    /// All uploads together.
    pub upload: Option<Rate>,
    /// Each connection's downloads.
    pub download_per_connection: Option<Rate>,
    /// Each connection's uploads.
    pub upload_per_connection: Option<Rate>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            max_connections_per_ip: 32,
            download: None,
            upload: None,
            download_per_connection: None,
            upload_per_connection: None,
        }
    }
}

/// Brute-force protection for `PASS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginProtection {
    /// How long a failed `PASS` waits before its `530`.
    pub failure_delay: Duration,
    /// Failed logins one connection may make before it is closed with `421`.
    pub max_failures_per_connection: u32,
    /// Failed logins one address may make within `failure_window` before it is blocked.
    pub max_failures_per_ip: u32,
    /// The window over which an address's failures are counted.
    pub failure_window: Duration,
    /// How long a blocked address stays blocked.
    pub block_duration: Duration,
    /// How long a verified password is remembered so the next login skips
    /// argon2; `None` turns the cache off.
    pub credential_cache: Option<Duration>,
}

impl Default for LoginProtection {
    fn default() -> Self {
        LoginProtection {
            failure_delay: Duration::from_secs(1),
            max_failures_per_connection: 3,
            max_failures_per_ip: 10,
            failure_window: Duration::from_secs(600),
            block_duration: Duration::from_secs(900),
            credential_cache: Some(crate::auth::DEFAULT_CREDENTIAL_CACHE),
        }
    }
}

/// How each control session behaves.
#[derive(Clone, Debug)]
pub struct SessionSettings {
    /// First line of the `220` greeting.
    pub banner: String,
    /// Close a session that sends no command for this long while no transfer runs.
    pub idle_timeout: Duration,
    /// How long to wait for a data connection to be made, and for a stalled transfer.
    pub data_timeout: Duration,
    /// Buffer size for file transfers, in bytes.
    pub block_size: usize,
    /// Upload to a temporary file and rename it over the target only on success.
    pub atomic_uploads: bool,
    /// Close a connection that has not logged in after this long.
    pub login_timeout: Duration,
    /// How long a reply may take to be written to the control connection.
    pub socket_timeout: Duration,
    /// How long one storage operation may take before it fails with `451`.
    pub storage_timeout: Duration,
    /// The most bytes one `HASH` (or XCRC, XMD5, ...) reads; 0 turns them off.
    pub hash_max_size: u64,
}

/// Passive-mode data connections.
#[derive(Clone, Debug, Default)]
pub struct PassiveSettings {
    /// Ports to listen on for passive data connections; `None` lets the OS choose.
    pub ports: Option<RangeInclusive<u16>>,
    /// Address announced in `PASV` replies instead of the control connection's local one (NAT).
    pub public_address: Option<IpAddr>,
    /// Addresses announced to clients in given networks instead, the first
    /// that matches (a LAN beside the NAT).
    pub overrides: Vec<PassiveOverride>,
}

/// `PASV` announces `address` to clients in any of `networks`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassiveOverride {
    /// Where the clients are.
    pub networks: Vec<IpNet>,
    /// What they are told to connect to.
    pub address: Ipv4Addr,
}

impl PassiveSettings {
    /// The address `PASV` announces to `client`: the first override whose
    /// networks hold it, else `public_address`; `None`: the control
    /// connection's local address.
    pub fn announced_to(&self, client: IpAddr) -> Option<IpAddr> {
        let client = client.to_canonical();
        self.overrides
            .iter()
            .find(|rule| rule.networks.iter().any(|net| net.contains(&client)))
            .map(|rule| IpAddr::V4(rule.address))
            .or(self.public_address)
    }
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            banner: "aioftpd ready".to_owned(),
            idle_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(30),
            block_size: 512 * 1024,
            atomic_uploads: true,
            login_timeout: Duration::from_secs(60),
            socket_timeout: Duration::from_secs(30),
            storage_timeout: Duration::from_secs(30),
            hash_max_size: 4 << 30,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 2121))],
            session: SessionSettings::default(),
            passive: PassiveSettings::default(),
            tls: None,
            limits: Limits::default(),
            login: LoginProtection::default(),
            shutdown_timeout: Duration::from_secs(60),
            proxy: None,
            transfer_log: None,
            metrics: None,
            hooks: Vec::new(),
            pre_upload: None,
        }
    }
}
