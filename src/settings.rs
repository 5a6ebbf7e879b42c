//! Runtime settings: validated values the server runs on.
//!
//! Produced by [`crate::config`] from a TOML file (or the embedded default),
//! or built directly by a program that embeds the server. Plain data: no
//! sockets, no tasks, so a reload can build a new set and swap it in.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

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
}

/// Passive-mode data connections.
#[derive(Clone, Debug, Default)]
pub struct PassiveSettings {
    /// Ports to listen on for passive data connections; `None` lets the OS choose.
    pub ports: Option<RangeInclusive<u16>>,
    /// Address announced in `PASV` replies instead of the control connection's local one (NAT).
    pub public_address: Option<IpAddr>,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            banner: "aioftpd ready".to_owned(),
            idle_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(30),
            block_size: 128 * 1024,
            atomic_uploads: true,
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
        }
    }
}
