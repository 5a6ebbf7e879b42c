//! The TOML file's shape, as serde structs: what keys exist, nothing more.
//!
//! Every struct denies unknown fields so a typo is an error, not a silently
//! ignored setting. Values that need parsing or checking (units, addresses,
//! paths, passwords) stay as written here, so `validate` can check all of them
//! and report every problem at once instead of stopping at the first.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub passive: PassiveSection,
    pub tls: Option<TlsSection>,
    #[serde(default)]
    pub login: LoginSection,
    #[serde(default)]
    pub users: Vec<UserEntry>,
    pub proxy_protocol: Option<ProxyProtocolSection>,
    pub users_database: Option<UsersDatabaseSection>,
    pub transfer_log: Option<TransferLogSection>,
    pub metrics: Option<MetricsSection>,
    pub auth_hook: Option<AuthHookSection>,
    #[serde(default)]
    pub hooks: Vec<HookEntry>,
    pub pre_upload: Option<PreUploadSection>,
}

/// `[auth_hook]`: an HTTP endpoint that decides logins neither `[[users]]`
/// nor the users database has (docs/users.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuthHookSection {
    pub url: Option<String>,
    pub timeout: Option<UnitText>,
    pub cache_lifetime: Option<UnitText>,
    pub bearer_token_file: Option<String>,
}

/// One `[[hooks]]` entry: a program or URL told of events (docs/hooks.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HookEntry {
    pub events: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    pub url: Option<String>,
    pub timeout: Option<UnitText>,
    pub retries: Option<u64>,
    pub queue: Option<u64>,
    pub concurrency: Option<u64>,
}

/// `[pre_upload]`: the program or URL that may refuse an upload.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PreUploadSection {
    pub command: Option<Vec<String>>,
    pub url: Option<String>,
    pub timeout: Option<UnitText>,
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MetricsSection {
    pub listen: Option<String>,
}

/// `[transfer_log]`: the xferlog (or JSON) file of finished transfers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TransferLogSection {
    pub path: Option<String>,
    pub format: Option<String>,
}

/// `[server]`: listeners and session behaviour.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServerSection {
    pub listen: Option<Vec<String>>,
    pub banner: Option<String>,
    pub idle_timeout: Option<UnitText>,
    pub data_timeout: Option<UnitText>,
    pub block_size: Option<UnitText>,
    pub atomic_uploads: Option<bool>,
    pub sync_uploads: Option<String>,
    pub login_timeout: Option<UnitText>,
    pub shutdown_timeout: Option<UnitText>,
    pub socket_timeout: Option<UnitText>,
    pub storage_timeout: Option<UnitText>,
    pub max_connections: Option<u64>,
    pub max_connections_per_ip: Option<u64>,
    pub download_limit: Option<UnitText>,
    pub upload_limit: Option<UnitText>,
    pub download_limit_per_connection: Option<UnitText>,
    pub upload_limit_per_connection: Option<UnitText>,
    pub hash_max_size: Option<UnitText>,
}

/// `[login]`: brute-force protection.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginSection {
    pub failure_delay: Option<UnitText>,
    pub max_failures_per_connection: Option<u64>,
    pub max_failures_per_ip: Option<u64>,
    pub failure_window: Option<UnitText>,
    pub block_duration: Option<UnitText>,
    pub credential_cache: Option<UnitText>,
}

/// `[passive]`: passive-mode data connections.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PassiveSection {
    pub ports: Option<UnitText>,
    pub public_address: Option<String>,
    pub overrides: Option<Vec<PassiveOverrideEntry>>,
}

/// One `[[passive.overrides]]`: the address announced to some networks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PassiveOverrideEntry {
    pub networks: Option<Vec<String>>,
    pub address: Option<String>,
}

/// `[tls]`: FTPS. Present means TLS is offered.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsSection {
    pub certificate: Option<String>,
    pub private_key: Option<String>,
    pub min_version: Option<String>,
    pub required: Option<String>,
    pub require_session_reuse: Option<bool>,
    pub implicit_listen: Option<Vec<String>>,
    pub handshake_timeout: Option<UnitText>,
}

/// `[proxy_protocol]`: listeners behind a load balancer.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProxyProtocolSection {
    pub listen: Option<Vec<String>>,
    pub trusted: Option<Vec<String>>,
}

/// `[users_database]`: accounts kept in SQLite or PostgreSQL (docs/users.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UsersDatabaseSection {
    pub url: Option<String>,
    pub password_file: Option<String>,
    pub cache_lifetime: Option<UnitText>,
    pub timeout: Option<UnitText>,
}

/// One `[[users]]` entry; without `login` it is the anonymous user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UserEntry {
    pub login: Option<String>,
    pub password: Option<String>,
    pub storage: Option<String>,
    pub base_path: Option<String>,
    pub s3: Option<S3Section>,
    pub home: Option<String>,
    pub permissions: Option<Vec<PermissionEntry>>,
    pub tls_required: Option<String>,
    pub max_connections: Option<u64>,
    pub download_limit: Option<UnitText>,
    pub upload_limit: Option<UnitText>,
    pub download_limit_per_connection: Option<UnitText>,
    pub upload_limit_per_connection: Option<UnitText>,
    pub quota_bytes: Option<UnitText>,
    pub quota_files: Option<u64>,
}

/// A user's `s3 = { ... }` (or `[users.s3]`): the bucket behind `storage = "s3"`.
/// It names the access key's file, never the key itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct S3Section {
    pub endpoint: Option<String>,
    pub bucket: Option<String>,
    pub region: Option<String>,
    pub prefix: Option<String>,
    pub credentials_file: Option<String>,
    pub part_size: Option<UnitText>,
    pub parts_in_flight: Option<u64>,
}

/// One `{ path = "/", readable = true, writable = false }` rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PermissionEntry {
    pub path: String,
    #[serde(default = "readable_by_default")]
    pub readable: bool,
    #[serde(default)]
    pub writable: bool,
}

fn readable_by_default() -> bool {
    true
}

/// A value with a unit, kept as text until `validate` parses it: either a string
/// (`"5m"`, `"128KiB"`, `"50000-50100"`) or a bare integer (`300`, `4096`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct UnitText(pub String);

impl<'de> Deserialize<'de> for UnitText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct UnitTextVisitor;

        impl Visitor<'_> for UnitTextVisitor {
            type Value = UnitText;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string with a unit (such as \"30s\", \"128KiB\", \"50000-50100\") or an integer")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<UnitText, E> {
                Ok(UnitText(text.to_owned()))
            }

            fn visit_i64<E: de::Error>(self, number: i64) -> Result<UnitText, E> {
                Ok(UnitText(number.to_string()))
            }

            fn visit_u64<E: de::Error>(self, number: u64) -> Result<UnitText, E> {
                Ok(UnitText(number.to_string()))
            }
        }

        deserializer.deserialize_any(UnitTextVisitor)
    }
}
