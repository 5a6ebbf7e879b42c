//! Checks the parsed file in full and turns it into runtime values.
//!
//! Every problem is recorded against its key path and checking goes on, so one
//! run of `aioftpd check-config` shows them all. Nothing here binds a port or
//! starts a task: the result is plain data (plus opened storage handles), so a
//! reload can build it, and drop it if it fails, without disturbing the server.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::schema::{
    FileConfig, LoginSection, PassiveSection, PermissionEntry, ServerSection, TlsSection, UnitText,
    UserEntry,
};
use super::units::{ByteSize, HumanDuration, PortRange};
use crate::auth::UserLimits;
use crate::auth::{PasswordHash, Permission, User};
use crate::path::VirtualPath;
use crate::settings::{Limits, LoginProtection, PassiveSettings, SessionSettings, Settings};
use crate::storage::{FsStorage, MemoryStorage, Storage, TimedStorage, UploadSync};
use crate::throttle::Rate;
use crate::tls::{MinVersion, TlsLoadError, TlsPolicy, TlsSettings};

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

/// One problem, before it is placed on a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Problem {
    /// Key path such as `users[1].base_path`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// A validated config, converted.
pub(super) struct Built {
    pub settings: Settings,
    pub named: Vec<(User, PasswordHash)>,
    pub anonymous: Option<User>,
    /// `server.sync_uploads`, already given to each fs storage.
    pub sync: UploadSync,
}

/// Records problems and lets checking continue.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    /// The value if `result` is `Ok`, else records the error under `key` and gives `None`.
    fn check<T>(&mut self, key: impl Into<String>, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.add(key, message)).ok()
    }

    fn count(&self) -> usize {
        self.0.len()
    }
}

/// Validates `file`; relative `base_path`s are taken from `config_dir`.
pub(super) fn build(file: &FileConfig, config_dir: &Path) -> Result<Built, Vec<Problem>> {
    let mut problems = Problems::default();
    let listen = listen_addresses(&file.server, &mut problems);
    let session = session_settings(&file.server, &mut problems);
    let passive = passive_settings(&file.passive, &mut problems);
    let limits = limits(&file.server, &mut problems);
    let login = login_protection(&file.login, &mut problems);
    let tls = file
        .tls
        .as_ref()
        .and_then(|section| tls_settings(section, &listen, config_dir, &mut problems));
    let sync = upload_sync(&file.server, &mut problems);
    let shutdown_timeout = timeout(
        "server.shutdown_timeout",
        &file.server.shutdown_timeout,
        MAX_WAIT_TIMEOUT,
        &mut problems,
    )
    .unwrap_or(Settings::default().shutdown_timeout);
    let (mut named, mut anonymous) =
        users(&file.users, tls.is_some(), config_dir, sync, &mut problems);
    if problems.count() > 0 {
        return Err(problems.0);
    }
    let users = named
        .iter_mut()
        .map(|(user, _)| user)
        .chain(anonymous.as_mut());
    for user in users {
        bound_storage(user, session.storage_timeout);
    }
    Ok(Built {
        settings: Settings {
            listen,
            session,
            passive,
            tls,
            limits,
            login,
            shutdown_timeout,
        },
        named,
        anonymous,
        sync,
    })
}

fn listen_addresses(server: &ServerSection, problems: &mut Problems) -> Vec<SocketAddr> {
    let written = match &server.listen {
        Some(list) => list.clone(),
        None => vec![DEFAULT_LISTEN.to_owned()],
    };
    if written.is_empty() {
        problems.add(
            "server.listen",
            "must name at least one address, such as \"0.0.0.0:21\"",
        );
    }
    addresses("server.listen", &written, &[], problems)
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
        // Port 0 asks the OS for a fresh port each time, so it may repeat.
        let fresh_port = addr.port() == 0;
        if seen.contains(&addr) && !fresh_port {
            problems.add(key, format!("{addr} is listed twice"));
        } else if taken.contains(&addr) && !fresh_port {
            problems.add(key, format!("{addr} is already in server.listen"));
        } else {
            seen.push(addr);
        }
    }
    seen
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

/// `server.sync_uploads`: which uploads the fs backend flushes to the disk.
fn upload_sync(server: &ServerSection, problems: &mut Problems) -> UploadSync {
    let parsed = match server.sync_uploads.as_deref().map(str::trim) {
        None => return UploadSync::default(),
        Some("always") => Ok(UploadSync::Always),
        Some("replaced") => Ok(UploadSync::Replaced),
        Some("never") => Ok(UploadSync::Never),
        Some(other) => Err(format!(
            "unknown value {other:?}: expected \"always\", \"replaced\" or \"never\""
        )),
    };
    problems
        .check("server.sync_uploads", parsed)
        .unwrap_or_default()
}

/// `[tls]`: loads the certificate and key (relative paths from the config's
/// directory) and reads the policies.
fn tls_settings(
    section: &TlsSection,
    listen: &[SocketAddr],
    config_dir: &Path,
    problems: &mut Problems,
) -> Option<TlsSettings> {
    let required = match &section.required {
        None => Some(TlsPolicy::Optional),
        Some(written) => problems.check("tls.required", tls_policy(written)),
    };
    let min_version = match section.min_version.as_deref().map(str::trim) {
        None | Some("1.2") => Some(MinVersion::Tls12),
        Some("1.3") => Some(MinVersion::Tls13),
        Some(other) => {
            problems.add(
                "tls.min_version",
                format!("unsupported version {other:?}: expected \"1.2\" or \"1.3\""),
            );
            None
        }
    };
    let implicit_listen = addresses(
        "tls.implicit_listen",
        section.implicit_listen.as_deref().unwrap_or_default(),
        listen,
        problems,
    );
    let handshake_timeout = timeout(
        "tls.handshake_timeout",
        &section.handshake_timeout,
        MAX_HANDSHAKE_TIMEOUT,
        problems,
    );
    let mut file = |key: &str, written: &Option<String>| match written {
        Some(path) if !path.trim().is_empty() => Some(config_dir.join(path)),
        _ => {
            problems.add(key, "required in [tls]: the path of a PEM file");
            None
        }
    };
    let certificate = file("tls.certificate", &section.certificate);
    let private_key = file("tls.private_key", &section.private_key);
    // The files are checked even when min_version is wrong; the version only
    // shapes the rustls config, which is thrown away then.
    let loaded = TlsSettings::load(
        &certificate?,
        &private_key?,
        min_version.unwrap_or(MinVersion::Tls12),
    )
    .map_err(|err| match err {
        TlsLoadError::PrivateKey(message) => problems.add("tls.private_key", message),
        TlsLoadError::Certificate(message) | TlsLoadError::Config(message) => {
            problems.add("tls.certificate", message)
        }
    })
    .ok()?;
    min_version?;
    let mut settings = loaded;
    settings.required = required?;
    settings.require_session_reuse = section.require_session_reuse.unwrap_or(true);
    settings.handshake_timeout = handshake_timeout.unwrap_or(settings.handshake_timeout);
    settings.implicit_listen = implicit_listen;
    Some(settings)
}

fn session_settings(server: &ServerSection, problems: &mut Problems) -> SessionSettings {
    let defaults = SessionSettings::default();
    let banner = match &server.banner {
        Some(banner) if banner.chars().any(char::is_control) => {
            problems.add(
                "server.banner",
                "must be one line of text without control characters",
            );
            defaults.banner
        }
        Some(banner) => banner.clone(),
        None => defaults.banner,
    };
    let wait = |key: &str, written: &Option<UnitText>, problems: &mut Problems| {
        timeout(key, written, MAX_WAIT_TIMEOUT, problems)
    };
    let idle_timeout = timeout(
        "server.idle_timeout",
        &server.idle_timeout,
        MAX_IDLE_TIMEOUT,
        problems,
    )
    .unwrap_or(defaults.idle_timeout);
    let login_timeout = wait("server.login_timeout", &server.login_timeout, problems)
        .unwrap_or(defaults.login_timeout);
    let socket_timeout = wait("server.socket_timeout", &server.socket_timeout, problems)
        .unwrap_or(defaults.socket_timeout);
    let storage_timeout = wait("server.storage_timeout", &server.storage_timeout, problems)
        .unwrap_or(defaults.storage_timeout);
    let data_timeout = wait("server.data_timeout", &server.data_timeout, problems)
        .unwrap_or(defaults.data_timeout);
    let block_size = block_size(&server.block_size, problems).unwrap_or(defaults.block_size);
    SessionSettings {
        banner,
        idle_timeout,
        data_timeout,
        block_size,
        atomic_uploads: server.atomic_uploads.unwrap_or(defaults.atomic_uploads),
        login_timeout,
        socket_timeout,
        storage_timeout,
    }
}

/// `[server]` caps and bandwidth limits.
fn limits(server: &ServerSection, problems: &mut Problems) -> Limits {
    let defaults = Limits::default();
    Limits {
        max_connections: count("server.max_connections", server.max_connections, problems)
            .unwrap_or(defaults.max_connections),
        max_connections_per_ip: count(
            "server.max_connections_per_ip",
            server.max_connections_per_ip,
            problems,
        )
        .unwrap_or(defaults.max_connections_per_ip),
        download: rate("server.download_limit", &server.download_limit, problems),
        upload: rate("server.upload_limit", &server.upload_limit, problems),
        download_per_connection: rate(
            "server.download_limit_per_connection",
            &server.download_limit_per_connection,
            problems,
        ),
        upload_per_connection: rate(
            "server.upload_limit_per_connection",
            &server.upload_limit_per_connection,
            problems,
        ),
    }
}

/// `[login]`.
fn login_protection(login: &LoginSection, problems: &mut Problems) -> LoginProtection {
    let defaults = LoginProtection::default();
    let failures = |key: &str, written: Option<u64>, problems: &mut Problems| {
        count(key, written, problems).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    };
    LoginProtection {
        // Zero is allowed here: it turns the delay off.
        failure_delay: duration(
            "login.failure_delay",
            &login.failure_delay,
            MAX_FAILURE_DELAY,
            problems,
        )
        .unwrap_or(defaults.failure_delay),
        max_failures_per_connection: failures(
            "login.max_failures_per_connection",
            login.max_failures_per_connection,
            problems,
        )
        .unwrap_or(defaults.max_failures_per_connection),
        max_failures_per_ip: failures(
            "login.max_failures_per_ip",
            login.max_failures_per_ip,
            problems,
        )
        .unwrap_or(defaults.max_failures_per_ip),
        failure_window: timeout(
            "login.failure_window",
            &login.failure_window,
            MAX_BLOCK_DURATION,
            problems,
        )
        .unwrap_or(defaults.failure_window),
        block_duration: timeout(
            "login.block_duration",
            &login.block_duration,
            MAX_BLOCK_DURATION,
            problems,
        )
        .unwrap_or(defaults.block_duration),
        // "0s" turns the cache off.
        credential_cache: duration(
            "login.credential_cache",
            &login.credential_cache,
            MAX_CREDENTIAL_CACHE,
            problems,
        )
        .map_or(defaults.credential_cache, |d| (!d.is_zero()).then_some(d)),
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

/// A written block size, if present and within bounds.
fn block_size(written: &Option<UnitText>, problems: &mut Problems) -> Option<usize> {
    let key = "server.block_size";
    let size = problems.check(key, parse::<ByteSize>(written.as_ref()?))?;
    if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&size) {
        problems.add(
            key,
            format!(
                "{size} is out of range: must be between {MIN_BLOCK_SIZE} and {MAX_BLOCK_SIZE}"
            ),
        );
        return None;
    }
    // Within 16MiB, so it fits a usize on every supported platform.
    usize::try_from(size.0).ok()
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

fn passive_settings(passive: &PassiveSection, problems: &mut Problems) -> PassiveSettings {
    let ports = passive
        .ports
        .as_ref()
        .and_then(|text| problems.check("passive.ports", parse::<PortRange>(text)))
        .map(|range| range.0);
    let public_address = passive.public_address.as_ref().and_then(|text| {
        let parsed = match text.trim().parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) if ip.is_unspecified() => Err(format!(
                "{text:?} cannot be announced: give the address clients connect to"
            )),
            Ok(IpAddr::V4(ip)) => Ok(IpAddr::V4(ip)),
            Ok(IpAddr::V6(_)) => Err(format!(
                "{text:?} is IPv6: PASV replies carry IPv4 addresses only (EPSV needs no address)"
            )),
            Err(_) => Err(format!("invalid IPv4 address {text:?}")),
        };
        problems.check("passive.public_address", parsed)
    });
    PassiveSettings {
        ports,
        public_address,
    }
}

fn parse<T: FromStr<Err = String>>(text: &UnitText) -> Result<T, String> {
    text.0.parse::<T>()
}

type NamedUsers = Vec<(User, PasswordHash)>;

fn users(
    entries: &[UserEntry],
    tls_configured: bool,
    config_dir: &Path,
    sync: UploadSync,
    problems: &mut Problems,
) -> (NamedUsers, Option<User>) {
    if entries.is_empty() {
        problems.add(
            "users",
            "no [[users]] entries: nobody could log in; add one (an entry without `login` allows anonymous access)",
        );
    }
    let mut named = Vec::new();
    let mut anonymous: Option<User> = None;
    // Set even when that entry has other errors, so a second one is still caught.
    let mut first_anonymous: Option<usize> = None;
    let mut logins: HashMap<String, usize> = HashMap::new();
    for (index, entry) in entries.iter().enumerate() {
        let prefix = format!("users[{index}]");
        let before = problems.count();
        let login = entry.login.clone();
        match &login {
            Some(login) => check_login(&prefix, index, login, &mut logins, problems),
            None => match first_anonymous {
                Some(first) => problems.add(
                    &prefix,
                    format!("a second anonymous user (no `login`): users[{first}] is already the anonymous user"),
                ),
                None => first_anonymous = Some(index),
            },
        }
        let hash = password(&prefix, &login, entry.password.as_deref(), problems);
        let user = user(
            &prefix,
            login,
            entry,
            tls_configured,
            config_dir,
            sync,
            problems,
        );
        if problems.count() > before {
            continue;
        }
        match (user, hash) {
            (Some(user), Some(hash)) if user.login.is_some() => named.push((user, hash)),
            (Some(user), None) if user.login.is_none() => anonymous = Some(user),
            _ => {}
        }
    }
    (named, anonymous)
}

fn check_login(
    prefix: &str,
    index: usize,
    login: &str,
    logins: &mut HashMap<String, usize>,
    problems: &mut Problems,
) {
    let key = format!("{prefix}.login");
    if login.is_empty() {
        problems.add(
            key,
            "must not be empty (omit `login` for the anonymous user)",
        );
    } else if login.chars().any(|c| c.is_whitespace() || c.is_control()) {
        problems.add(key, "must not contain whitespace or control characters");
    } else if let Some(first) = logins.get(login) {
        problems.add(
            key,
            format!("{login:?} is already the login of users[{first}]"),
        );
    } else {
        logins.insert(login.to_owned(), index);
    }
}

/// The password hash of a named user; `None` for the anonymous user or on error.
fn password(
    prefix: &str,
    login: &Option<String>,
    written: Option<&str>,
    problems: &mut Problems,
) -> Option<PasswordHash> {
    let key = format!("{prefix}.password");
    match (login, written) {
        (Some(_), None) => {
            problems.add(
                key,
                "required for a named user: an argon2 hash from `aioftpd hash-password`",
            );
            None
        }
        (Some(_), Some(text)) if !text.starts_with('$') => {
            problems.add(
                key,
                "plain-text passwords are refused: store an argon2 hash, created with `aioftpd hash-password`",
            );
            None
        }
        (Some(_), Some(text)) => problems.check(key, PasswordHash::parse(text)),
        (None, Some(_)) => {
            problems.add(
                key,
                "the anonymous user takes no password (any is accepted); remove it, or add a `login`",
            );
            None
        }
        (None, None) => None,
    }
}

/// The user's account; `None` when something in it is wrong (already recorded).
fn user(
    prefix: &str,
    login: Option<String>,
    entry: &UserEntry,
    tls_configured: bool,
    config_dir: &Path,
    sync: UploadSync,
    problems: &mut Problems,
) -> Option<User> {
    let tls_key = format!("{prefix}.tls_required");
    let tls_required = match entry.tls_required.as_deref() {
        None => Some(None),
        Some(_) if !tls_configured => {
            problems.add(tls_key, "needs a [tls] section with a certificate");
            None
        }
        Some(written) => problems.check(tls_key, tls_policy(written)).map(Some),
    };
    let storage = storage(prefix, entry, config_dir, sync, problems);
    let home_key = format!("{prefix}.home");
    let home = match entry.home.as_deref() {
        None => Some(VirtualPath::root()),
        Some(home) => problems.check(home_key, virtual_path(home)),
    };
    let permissions = permissions(prefix, entry.permissions.as_deref(), problems);
    // Every key is checked before a `?` below can end the entry early.
    let max_connections = count(
        &format!("{prefix}.max_connections"),
        entry.max_connections,
        problems,
    );
    let limits = UserLimits {
        download: rate(
            &format!("{prefix}.download_limit"),
            &entry.download_limit,
            problems,
        ),
        upload: rate(
            &format!("{prefix}.upload_limit"),
            &entry.upload_limit,
            problems,
        ),
        download_per_connection: rate(
            &format!("{prefix}.download_limit_per_connection"),
            &entry.download_limit_per_connection,
            problems,
        ),
        upload_per_connection: rate(
            &format!("{prefix}.upload_limit_per_connection"),
            &entry.upload_limit_per_connection,
            problems,
        ),
    };
    Some(User {
        login,
        home: home?,
        permissions: permissions?,
        storage: storage?,
        tls_required: tls_required?,
        max_connections,
        limits,
    })
}

fn virtual_path(written: &str) -> Result<VirtualPath, String> {
    if written.starts_with('/') {
        Ok(VirtualPath::new(written))
    } else {
        Err(format!(
            "{written:?} must be an absolute virtual path starting with \"/\""
        ))
    }
}

fn storage(
    prefix: &str,
    entry: &UserEntry,
    config_dir: &Path,
    sync: UploadSync,
    problems: &mut Problems,
) -> Option<Arc<dyn Storage>> {
    let base_key = format!("{prefix}.base_path");
    match entry.storage.as_deref().unwrap_or("fs") {
        "fs" => {
            let Some(written) = entry.base_path.as_deref() else {
                problems.add(base_key, "required for fs storage: the directory to serve");
                return None;
            };
            let storage = problems.check(base_key, open_fs(Path::new(written), config_dir))?;
            Some(Arc::new(storage.with_upload_sync(sync)) as Arc<dyn Storage>)
        }
        "memory" => {
            if entry.base_path.is_some() {
                problems.add(
                    base_key,
                    "not used by memory storage; remove it, or set storage = \"fs\"",
                );
                return None;
            }
            Some(Arc::new(MemoryStorage::new()) as Arc<dyn Storage>)
        }
        other => {
            problems.add(
                format!("{prefix}.storage"),
                format!("unknown storage {other:?}: expected \"fs\" or \"memory\""),
            );
            None
        }
    }
}

/// Puts `server.storage_timeout` around every operation on the user's storage.
pub(super) fn bound_storage(user: &mut User, limit: Duration) {
    user.storage = Arc::new(TimedStorage::new(user.storage.clone(), limit));
}

/// Opens an fs storage at `written`, relative paths taken from `config_dir`.
pub(super) fn open_fs(written: &Path, config_dir: &Path) -> Result<FsStorage, String> {
    if written.as_os_str().is_empty() {
        return Err("must not be empty".to_owned());
    }
    let resolved: PathBuf = config_dir.join(written);
    // Tell the admin where a relative path led, since it is not where they were standing.
    let shown = if written.is_absolute() {
        String::new()
    } else {
        format!(" (resolved to {})", resolved.display())
    };
    match std::fs::metadata(&resolved) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(format!("not a directory{shown}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("directory does not exist{shown}"))
        }
        Err(e) => return Err(format!("cannot access directory{shown}: {e}")),
    }
    FsStorage::new(&resolved).map_err(|e| format!("cannot open directory{shown}: {e}"))
}

/// The rules as written, or read-only on `/` when the key is omitted.
fn permissions(
    prefix: &str,
    written: Option<&[PermissionEntry]>,
    problems: &mut Problems,
) -> Option<Vec<Permission>> {
    let key = format!("{prefix}.permissions");
    let Some(entries) = written else {
        return Some(vec![Permission {
            path: VirtualPath::root(),
            readable: true,
            writable: false,
        }]);
    };
    if entries.is_empty() {
        problems.add(
            key,
            "is empty, so this user could access nothing; omit it for read-only access to \"/\"",
        );
        return None;
    }
    let before = problems.count();
    let mut rules: Vec<Permission> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let path_key = format!("{key}[{index}].path");
        let Some(path) = problems.check(&path_key, virtual_path(&entry.path)) else {
            continue;
        };
        // Two rules for one path would make "most specific wins" ambiguous.
        if let Some(first) = rules.iter().position(|rule| rule.path == path) {
            problems.add(
                path_key,
                format!("{path} already has a rule in {key}[{first}]"),
            );
            continue;
        }
        rules.push(Permission {
            path,
            readable: entry.readable,
            writable: entry.writable,
        });
    }
    (problems.count() == before).then_some(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(text: &str, dir: &Path) -> Result<Built, Vec<Problem>> {
        let file: FileConfig = toml::from_str(text).expect("test text fits the schema");
        build(&file, dir)
    }

    fn problems(text: &str) -> Vec<(String, String)> {
        let dir = tempfile::tempdir().expect("temp dir");
        match built(text, dir.path()) {
            Ok(_) => Vec::new(),
            Err(problems) => problems.into_iter().map(|p| (p.key, p.message)).collect(),
        }
    }

    fn has(found: &[(String, String)], key: &str, fragment: &str) -> bool {
        found.iter().any(|(k, m)| k == key && m.contains(fragment))
    }

    const ANONYMOUS: &str = "[[users]]\nstorage = \"memory\"\n";

    #[test]
    fn omitted_keys_take_the_documented_defaults() {
        let dir = tempfile::tempdir().expect("temp dir");
        let built = built(ANONYMOUS, dir.path()).unwrap_or_else(|p| panic!("{p:?}"));
        let s = &built.settings;
        assert_eq!(
            s.listen,
            vec!["0.0.0.0:21".parse::<SocketAddr>().expect("addr")]
        );
        assert_eq!(s.session.banner, "aioftpd ready");
        assert_eq!(s.session.idle_timeout.as_secs(), 300);
        assert_eq!(s.session.data_timeout.as_secs(), 30);
        assert_eq!(s.session.block_size, 512 * 1024);
        assert!(s.session.atomic_uploads);
        assert_eq!(s.passive.ports, None);
        assert_eq!(s.passive.public_address, None);
        let anonymous = built.anonymous.expect("anonymous user");
        assert_eq!(anonymous.home, VirtualPath::root());
        assert_eq!(
            anonymous.permissions,
            vec![Permission {
                path: VirtualPath::root(),
                readable: true,
                writable: false
            }]
        );
        assert!(built.named.is_empty());
    }

    #[test]
    fn a_permission_is_readable_not_writable_unless_said() {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = "[[users]]\nstorage = \"memory\"\nhome = \"/pub/../pub\"\npermissions = [{ path = \"/pub\" }, { path = \"/in\", readable = false, writable = true }]\n";
        let user = built(text, dir.path())
            .unwrap_or_else(|p| panic!("{p:?}"))
            .anonymous
            .expect("anonymous user");
        assert_eq!(user.home.as_str(), "/pub");
        assert!(user.permissions[0].readable && !user.permissions[0].writable);
        assert!(!user.permissions[1].readable && user.permissions[1].writable);
    }

    #[test]
    fn server_values_out_of_range_are_refused() {
        let found = problems(
            "[server]\nlisten = []\nblock_size = \"1KiB\"\nidle_timeout = 0\ndata_timeout = \"0s\"\nbanner = \"two\\nlines\"\n[passive]\nports = \"80-90\"\npublic_address = \"::1\"\n[[users]]\nstorage = \"memory\"\n",
        );
        assert!(has(&found, "server.listen", "at least one"));
        assert!(has(&found, "server.block_size", "between 4KiB and 16MiB"));
        assert!(has(&found, "server.idle_timeout", "greater than zero"));
        assert!(has(&found, "server.data_timeout", "greater than zero"));
        assert!(has(&found, "server.banner", "one line"));
        assert!(has(&found, "passive.ports", "below 1024"));
        assert!(has(&found, "passive.public_address", "IPv4"));
        assert_eq!(found.len(), 7, "{found:?}");
        let found =
            problems("[passive]\npublic_address = \"0.0.0.0\"\n[[users]]\nstorage = \"memory\"\n");
        assert!(has(&found, "passive.public_address", "cannot be announced"));
    }

    #[test]
    fn listen_addresses_must_parse_and_not_repeat() {
        let found = problems(
            "[server]\nlisten = [\"0.0.0.0:21\", \"localhost:21\", \"[::]:21\", \"0.0.0.0:21\"]\n[[users]]\nstorage = \"memory\"\n",
        );
        assert!(has(&found, "server.listen[1]", "invalid address"));
        assert!(has(&found, "server.listen[3]", "listed twice"));
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn logins_must_be_unique_and_printable() {
        let hash = crate::auth::hash_password("pw").expect("hash");
        let text = format!(
            "[[users]]\nlogin = \"alice\"\npassword = \"{hash}\"\nstorage = \"memory\"\n\
             [[users]]\nlogin = \"alice\"\npassword = \"{hash}\"\nstorage = \"memory\"\n\
             [[users]]\nlogin = \"\"\npassword = \"{hash}\"\nstorage = \"memory\"\n\
             [[users]]\nlogin = \"bob smith\"\npassword = \"{hash}\"\nstorage = \"memory\"\n\
             [[users]]\nlogin = \"ftp\"\npassword = \"{hash}\"\nstorage = \"memory\"\n"
        );
        let found = problems(&text);
        assert!(has(
            &found,
            "users[1].login",
            "already the login of users[0]"
        ));
        assert!(has(&found, "users[2].login", "must not be empty"));
        assert!(has(&found, "users[3].login", "whitespace"));
        assert_eq!(found.len(), 3, "{found:?}");
    }

    #[test]
    fn anonymous_users_are_unique_and_take_no_password() {
        let found = problems(
            "[[users]]\nstorage = \"memory\"\n[[users]]\nstorage = \"memory\"\npassword = \"x\"\n",
        );
        assert!(has(&found, "users[1]", "already the anonymous user"));
        assert!(has(&found, "users[1].password", "takes no password"));
    }

    #[test]
    fn named_users_need_an_argon2_hash() {
        let found = problems(
            "[[users]]\nlogin = \"a\"\nstorage = \"memory\"\n\
             [[users]]\nlogin = \"b\"\npassword = \"hunter2\"\nstorage = \"memory\"\n\
             [[users]]\nlogin = \"c\"\npassword = \"$2b$12$abcdefghijklmnopqrstuv\"\nstorage = \"memory\"\n",
        );
        assert!(has(&found, "users[0].password", "required"));
        assert!(has(&found, "users[1].password", "aioftpd hash-password"));
        assert!(has(&found, "users[1].password", "plain-text"));
        assert!(has(&found, "users[2].password", "aioftpd hash-password"));
    }

    #[test]
    fn storage_and_base_path_must_agree() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("file.txt");
        std::fs::write(&file, "x").expect("write");
        let text = format!(
            "[[users]]\nlogin = \"a\"\npassword = \"$argon2id$x\"\n\
             [[users]]\nstorage = \"memory\"\nbase_path = \"/tmp\"\n\
             [[users]]\nlogin = \"c\"\nstorage = \"s3\"\n\
             [[users]]\nlogin = \"d\"\nbase_path = {:?}\n\
             [[users]]\nlogin = \"e\"\nbase_path = \"missing\"\n",
            file.display()
        );
        let found: Vec<(String, String)> = match built(&text, dir.path()) {
            Ok(_) => Vec::new(),
            Err(problems) => problems.into_iter().map(|p| (p.key, p.message)).collect(),
        };
        assert!(has(&found, "users[0].base_path", "required for fs storage"));
        assert!(has(
            &found,
            "users[1].base_path",
            "not used by memory storage"
        ));
        assert!(has(&found, "users[2].storage", "unknown storage \"s3\""));
        assert!(has(&found, "users[3].base_path", "not a directory"));
        assert!(has(
            &found,
            "users[4].base_path",
            "directory does not exist (resolved to"
        ));
    }

    #[test]
    fn virtual_paths_must_be_absolute_and_rules_distinct() {
        let found = problems(
            "[[users]]\nstorage = \"memory\"\nhome = \"pub\"\npermissions = [{ path = \"/a\" }, { path = \"b\" }, { path = \"/a/\" }]\n\
             [[users]]\nlogin = \"x\"\npassword = \"$argon2id$x\"\nstorage = \"memory\"\npermissions = []\n",
        );
        assert!(has(
            &found,
            "users[0].home",
            "must be an absolute virtual path"
        ));
        assert!(has(
            &found,
            "users[0].permissions[1].path",
            "must be an absolute"
        ));
        assert!(has(
            &found,
            "users[0].permissions[2].path",
            "already has a rule"
        ));
        assert!(has(&found, "users[1].permissions", "access nothing"));
    }

    #[test]
    fn a_per_user_tls_policy_needs_a_tls_section_and_a_known_value() {
        let found = problems("[[users]]\nstorage = \"memory\"\ntls_required = \"login\"\n");
        assert!(has(&found, "users[0].tls_required", "[tls]"));
        assert_eq!(tls_policy(" data "), Ok(TlsPolicy::Data));
        assert!(tls_policy("always").is_err());
    }

    #[test]
    fn port_zero_may_repeat_since_each_bind_gets_a_fresh_port() {
        let found = problems(
            "[server]\nlisten = [\"127.0.0.1:0\", \"127.0.0.1:0\"]\n[[users]]\nstorage = \"memory\"\n",
        );
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_file_without_users_is_refused() {
        assert!(has(&problems(""), "users", "nobody could log in"));
    }
}
