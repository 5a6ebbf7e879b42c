//! The first stage of loading: checks the parsed file in full and turns it
//! into plain values ([`Checked`]): addresses, durations, rates, rules, and
//! the paths of directories and PEM files, none of them opened yet; the
//! second stage (`config::build`) opens those.
//!
//! Every problem is recorded against its key path and checking goes on, so one
//! run of `aioftpd check-config` shows them all; the second stage adds its own
//! to the same list before any is returned.
//!
//! | file | checks |
//! |---|---|
//! | `server.rs` | `[server]` |
//! | `login.rs` | `[login]` |
//! | `passive.rs` | `[passive]` |
//! | `proxy.rs` | `[proxy_protocol]` |
//! | `tls.rs` | `[tls]` |
//! | `users.rs` | `[[users]]` |
//! | `s3.rs` | a user's `s3` table (`storage = "s3"`) |
//! | `users_database.rs` | `[users_database]` |
//! | `auth_hook.rs` | `[auth_hook]` |
//! | `hooks.rs` | `[[hooks]]` and `[pre_upload]` |
//!
//! This file holds what the sections share: the problem list, the duration
//! bounds, and the parsers of counts, rates, durations and addresses.

mod auth_hook;
mod hooks;
mod login;
mod passive;
mod proxy;
mod s3;
mod server;
mod tls;
mod users;
mod users_database;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;

use super::schema::{FileConfig, TransferLogSection, UnitText};
use super::units::{ByteSize, HumanDuration};
use crate::auth::{PasswordHash, Permission, UserLimits};
use crate::path::VirtualPath;
use crate::quota::Quota;
use crate::settings::Settings;
use crate::storage::UploadSync;
use crate::throttle::Rate;
use crate::tls::{MinVersion, TlsPolicy};

use auth_hook::auth_hook;
use hooks::{hooks, pre_upload};
use login::login_protection;
use passive::passive_settings;
use proxy::proxy_settings;
pub(in crate::config) use s3::s3_spec;
use server::{limits, listen_addresses, session_settings, upload_sync};
use tls::tls_settings;
use users::users;
use users_database::users_database;

pub(in crate::config) use auth_hook::HookSpec;
pub(in crate::config) use users::check_entry;
pub(in crate::config) use users_database::DatabaseSpec;

/// Smallest accepted `block_size`: below this, transfers spend their time in syscalls.
const MIN_BLOCK_SIZE: ByteSize = ByteSize(4 * ByteSize::KIB.0);

/// Largest accepted `block_size`: above this, each transfer pins too much memory.
const MAX_BLOCK_SIZE: ByteSize = ByteSize(16 * ByteSize::MIB.0);

/// Where the daemon listens when `server.listen` is omitted.
const DEFAULT_LISTEN: &str = "0.0.0.0:21";

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

// The longest value each duration key accepts (docs/configuration.md lists
// them). Past these a value is a mistake, not a policy, and added to the
// clock a value near `u64::MAX` seconds would overflow it.

/// `idle_timeout`: a week keeps a session open over a long weekend.
const MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(7 * DAY.as_secs());

/// `login_timeout`, `data_timeout`, `socket_timeout`, `storage_timeout`,
/// `shutdown_timeout`: each bounds a wait on a client, a disk or the last
/// transfers; a day is far beyond any that is still going to end.
const MAX_WAIT_TIMEOUT: Duration = DAY;

/// `handshake_timeout`: a TLS handshake is a few round trips.
const MAX_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// `failure_delay`: each failed `PASS` holds its connection this long; the
/// per-address budget, not a longer delay, is what stops a patient guesser.
const MAX_FAILURE_DELAY: Duration = Duration::from_secs(60);

/// `failure_window`, `block_duration`: a block of a year is as good as a ban.
const MAX_BLOCK_DURATION: Duration = Duration::from_secs(365 * DAY.as_secs());

/// `credential_cache`: it spares argon2 on reconnects; a day covers a working
/// day's reconnects without keeping a verified password around for longer.
const MAX_CREDENTIAL_CACHE: Duration = DAY;

/// `users_database.cache_lifetime`: past an hour, a disabled account could
/// still log in for longer than anyone waits for it to be refused.
const MAX_CACHE_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// `users_database.timeout`: a login waits this long at most for the
/// database; a minute is already past any client's patience.
const MAX_DATABASE_TIMEOUT: Duration = Duration::from_secs(60);

/// One problem, before it is placed on a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Problem {
    /// Key path such as `users[1].base_path`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// The file checked, as plain values: nothing opened, nothing loaded.
pub(in crate::config) struct Checked {
    /// The settings but TLS, which `tls` describes.
    pub settings: Settings,
    pub tls: Option<TlsSpec>,
    /// The named users whose entries are wholly valid, and the anonymous one.
    pub named: Vec<(UserSpec, PasswordHash)>,
    pub anonymous: Option<UserSpec>,
    /// The storage each entry names, by entry, also for entries with other
    /// problems, so a missing directory is reported beside them.
    pub storages: Vec<Option<StorageSpec>>,
    /// `server.sync_uploads`, for each fs storage.
    pub sync: UploadSync,
    /// `[users_database]`, if the file has one.
    pub database: Option<DatabaseSpec>,
    /// `[auth_hook]`, if the file has one.
    pub hook: Option<HookSpec>,
}

/// A user's account as checked: a [`crate::auth::User`] but for its storage, which
/// `storages[entry]` describes.
pub(in crate::config) struct UserSpec {
    pub entry: usize,
    pub login: Option<String>,
    pub home: VirtualPath,
    pub permissions: Vec<Permission>,
    pub tls_required: Option<TlsPolicy>,
    pub max_connections: Option<usize>,
    pub limits: UserLimits,
    pub quota: Quota,
}

/// Where an entry's files live.
pub(in crate::config) enum StorageSpec {
    /// A directory on disk, as written (relative to the config's directory).
    Fs { key: String, written: PathBuf },
    /// A tree in memory.
    Memory,
    /// Objects under a prefix of an S3 bucket.
    S3(S3Spec),
}

/// A user's `s3` table as checked: what [`crate::storage::s3::S3Config`]
/// needs but the access key, which `credentials_file` (relative to the
/// config's directory) or else the environment holds.
pub(in crate::config) struct S3Spec {
    /// The table's key path (`users[0].s3`), for the problems of opening it.
    pub key: String,
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub prefix: String,
    pub credentials_file: Option<PathBuf>,
    pub part_size: usize,
    pub parts_in_flight: usize,
}

/// `[tls]` as checked: the PEM files' paths and the policies; `None` where
/// a key was wrong (already recorded).
pub(in crate::config) struct TlsSpec {
    pub certificate: Option<PathBuf>,
    pub private_key: Option<PathBuf>,
    pub min_version: Option<MinVersion>,
    pub required: Option<TlsPolicy>,
    pub require_session_reuse: bool,
    pub handshake_timeout: Option<Duration>,
    pub implicit_listen: Vec<SocketAddr>,
}

/// Records problems and lets checking continue.
#[derive(Default)]
pub(in crate::config) struct Problems(pub Vec<Problem>);

impl Problems {
    pub(in crate::config) fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    /// The value if `result` is `Ok`, else records the error under `key` and gives `None`.
    pub(in crate::config) fn check<T>(
        &mut self,
        key: impl Into<String>,
        result: Result<T, String>,
    ) -> Option<T> {
        result.map_err(|message| self.add(key, message)).ok()
    }

    fn count(&self) -> usize {
        self.0.len()
    }
}

/// Checks `file`: every key, every problem recorded in `problems`.
pub(in crate::config) fn check(file: &FileConfig, problems: &mut Problems) -> Checked {
    let has = |list: Option<&Vec<String>>| list.is_some_and(|list| !list.is_empty());
    let others = has(file
        .tls
        .as_ref()
        .and_then(|tls| tls.implicit_listen.as_ref()))
        || has(file.proxy_protocol.as_ref().and_then(|p| p.listen.as_ref()));
    let listen = listen_addresses(&file.server, others, problems);
    let session = session_settings(&file.server, problems);
    let passive = passive_settings(&file.passive, problems);
    let limits = limits(&file.server, problems);
    let login = login_protection(&file.login, problems);
    let tls = file
        .tls
        .as_ref()
        .map(|section| tls_settings(section, &listen, problems));
    let sync = upload_sync(&file.server, problems);
    let shutdown_timeout = timeout(
        "server.shutdown_timeout",
        &file.server.shutdown_timeout,
        MAX_WAIT_TIMEOUT,
        problems,
    )
    .unwrap_or(Settings::default().shutdown_timeout);
    let database = file
        .users_database
        .as_ref()
        .map(|section| users_database(section, problems));
    let hook = file
        .auth_hook
        .as_ref()
        .map(|section| auth_hook(section, problems));
    let others_decide = database.is_some() || hook.is_some();
    let (named, anonymous, storages) = users(&file.users, tls.is_some(), others_decide, problems);
    let mut taken = listen.clone();
    taken.extend(
        tls.iter()
            .flat_map(|tls| tls.implicit_listen.iter().copied()),
    );
    let proxy = file
        .proxy_protocol
        .as_ref()
        .map(|section| proxy_settings(section, &taken, problems));
    let transfer_log = file
        .transfer_log
        .as_ref()
        .and_then(|section| transfer_log(section, problems));
    taken.extend(proxy.iter().flat_map(|proxy| proxy.listen.iter().copied()));
    let metrics = file.metrics.as_ref().and_then(|section| {
        let Some(written) = &section.listen else {
            problems.add(
                "metrics.listen",
                "required: where /metrics is served, such as \"127.0.0.1:9187\"",
            );
            return None;
        };
        let parsed = match written.trim().parse::<SocketAddr>() {
            Ok(addr) if taken.contains(&addr) && addr.port() != 0 => Err(format!(
                "{addr} is already an FTP listener: give the metrics a port of their own"
            )),
            Ok(addr) => Ok(addr),
            Err(_) => Err(format!(
                "invalid address {written:?}: expected \"ip:port\", such as \"127.0.0.1:9187\""
            )),
        };
        problems.check("metrics.listen", parsed)
    });
    let hooks = hooks(&file.hooks, problems);
    let pre_upload = file
        .pre_upload
        .as_ref()
        .and_then(|section| pre_upload(section, problems));
    Checked {
        settings: Settings {
            listen,
            session,
            passive,
            tls: None,
            limits,
            login,
            shutdown_timeout,
            proxy,
            transfer_log,
            metrics,
            hooks,
            pre_upload,
        },
        tls,
        named,
        anonymous,
        storages,
        sync,
        database,
        hook,
    }
}

/// Parses a list of listen addresses; none may repeat, nor appear in `taken`.
fn addresses(
    key: &str,
    written: &[String],
    taken: &[SocketAddr],
    problems: &mut Problems,
) -> Vec<SocketAddr> {
    let mut seen: Vec<SocketAddr> = Vec::new();
    for (index, text) in written.iter().enumerate() {
        let key = format!("{key}[{index}]");
        let Ok(addr) = text.trim().parse::<SocketAddr>() else {
            problems.add(
                key,
                format!("invalid address {text:?}: expected \"ip:port\", IPv6 as \"[::]:21\" (host names are not resolved)"),
            );
            continue;
        };
        // TCP accepts connections on unicast addresses only: bind would fail.
        if addr.ip().is_multicast() || addr.ip() == Ipv4Addr::BROADCAST {
            problems.add(
                key,
                format!("{addr} is a multicast or broadcast address: listen on a unicast one"),
            );
            continue;
        }
        // Port 0 asks the OS for a fresh port each time, so it may repeat.
        let fresh_port = addr.port() == 0;
        if seen.contains(&addr) && !fresh_port {
            problems.add(key, format!("{addr} is listed twice"));
        } else if taken.contains(&addr) && !fresh_port {
            problems.add(
                key,
                format!("{addr} is already a listener (server.listen or tls.implicit_listen)"),
            );
        } else {
            seen.push(addr);
        }
    }
    seen
}

/// An address (`10.0.0.2`, `::1`) or a network (`10.0.1.0/24`).
fn network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => text.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
            format!("invalid address or network {text:?}: expected \"10.0.0.2\" or \"10.0.1.0/24\"")
        })?,
    };
    // A network written with host bits ("10.0.1.7/24") is most likely a
    // typo for one address or the network; say which was read.
    if net.network() != net.addr() {
        return Err(format!(
            "{text:?} has host bits set: write the network as \"{}\" or one address without a prefix",
            net.trunc()
        ));
    }
    Ok(net)
}

/// `[transfer_log]`: its file (relative paths are taken from the config's
/// directory at build) and format.
fn transfer_log(
    section: &TransferLogSection,
    problems: &mut Problems,
) -> Option<crate::transfer_log::Settings> {
    let path = match section.path.as_deref().map(str::trim) {
        Some(path) if !path.is_empty() && !path.chars().any(char::is_control) => {
            Some(PathBuf::from(path))
        }
        Some(_) => {
            problems.add(
                "transfer_log.path",
                "must name a file, without control characters",
            );
            None
        }
        None => {
            problems.add(
                "transfer_log.path",
                "required: the file to append to, such as \"/var/log/aioftpd/xferlog\"",
            );
            None
        }
    };
    let format = match section.format.as_deref().map(str::trim) {
        None | Some("xferlog") => Some(crate::transfer_log::Format::Xferlog),
        Some("json") => Some(crate::transfer_log::Format::Json),
        Some(other) => {
            problems.add(
                "transfer_log.format",
                format!("unknown format {other:?}: expected \"xferlog\" or \"json\""),
            );
            None
        }
    };
    Some(crate::transfer_log::Settings {
        path: path?,
        format: format?,
    })
}

/// A `required`/`tls_required` value.
fn tls_policy(written: &str) -> Result<TlsPolicy, String> {
    match written.trim() {
        "none" => Ok(TlsPolicy::Optional),
        "login" => Ok(TlsPolicy::Login),
        "data" => Ok(TlsPolicy::Data),
        other => Err(format!(
            "unknown policy {other:?}: expected \"none\", \"login\" or \"data\""
        )),
    }
}

/// A count that must be at least 1.
fn count(key: &str, written: Option<u64>, problems: &mut Problems) -> Option<usize> {
    match written? {
        0 => {
            problems.add(key, "must be at least 1");
            None
        }
        n => Some(usize::try_from(n).unwrap_or(usize::MAX)),
    }
}

/// A bandwidth limit in bytes per second (`"2MiB"`); omitted or 0 means none.
fn rate(key: &str, written: &Option<UnitText>, problems: &mut Problems) -> Option<Rate> {
    let size = problems.check(key, parse::<ByteSize>(written.as_ref()?))?;
    Rate::new(size.0)
}

/// A written duration, if present, valid and at most `max`.
fn duration(
    key: &str,
    written: &Option<UnitText>,
    max: Duration,
    problems: &mut Problems,
) -> Option<Duration> {
    let duration = problems.check(key, parse::<HumanDuration>(written.as_ref()?))?;
    if duration.0 > max {
        problems.add(
            key,
            format!(
                "{duration} is out of range: must be at most {}",
                HumanDuration(max)
            ),
        );
        return None;
    }
    Some(duration.0)
}

/// A written timeout, if present, valid and at most `max`; zero is refused
/// (it would close everything at once).
fn timeout(
    key: &str,
    written: &Option<UnitText>,
    max: Duration,
    problems: &mut Problems,
) -> Option<Duration> {
    let duration = duration(key, written, max, problems)?;
    if duration.is_zero() {
        problems.add(key, "must be greater than zero");
        return None;
    }
    Some(duration)
}

fn parse<T: FromStr<Err = String>>(text: &UnitText) -> Result<T, String> {
    text.0.parse::<T>()
}

#[cfg(test)]
mod tests;
