//! Risky but valid: settings that work as written but that an admin likely
//! did not mean, or that will hurt later.
//!
//! A warning never refuses a config: `check-config` prints them and exits 0,
//! the daemon logs them at start and reload. Only a config that passed
//! validation is looked at, so every value here is known good. Each risk is
//! one [`Risk`] variant with a stable message; docs/configuration.md lists them.

use std::fmt;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::build::Built;
use super::schema::{FileConfig, UserEntry};
use crate::path::VirtualPath;
use crate::tls::TlsPolicy;

/// Logins named in a message before the rest is only counted.
const LOGINS_SHOWN: usize = 3;

/// A risk found in a config file, located as `file:line: key: warning: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The file the risk is in.
    pub file: PathBuf,
    /// The 1-based line of the key, or of its table when the key is not
    /// written (the risk comes from a default).
    pub line: Option<usize>,
    /// The key path, as in [`ConfigIssue`](super::ConfigIssue).
    pub key: String,
    /// What is risky.
    pub risk: Risk,
}

impl fmt::Display for ConfigWarning {
    /// `/etc/aioftpd.toml:30: passive.ports: warning: no passive port range ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}: warning: {}", self.key, self.risk)
    }
}

/// What a config allows that is probably not meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Risk {
    /// The anonymous user may write under a rule: anyone can upload,
    /// overwrite and delete there.
    AnonymousWritable,
    /// Users with passwords may log in without TLS on a listener other than
    /// loopback, so their passwords cross the network in clear.
    CleartextPasswords {
        /// The first such listener.
        listen: SocketAddr,
        /// The users concerned.
        logins: Vec<String>,
    },
    /// A listener other than loopback, but no `passive.ports`: each passive
    /// data connection uses any ephemeral port, which a firewall must allow.
    NoPassiveRange {
        /// The first such listener.
        listen: SocketAddr,
    },
    /// `max_connections_per_ip` is not below `max_connections`: one address
    /// can take every connection and lock everyone else out.
    PerIpCapIneffective {
        /// `server.max_connections_per_ip`.
        per_ip: usize,
        /// `server.max_connections`.
        total: usize,
    },
    /// A user's base directory is writable by every local account.
    WorldWritableBase {
        /// The directory, as resolved.
        dir: PathBuf,
    },
    /// A `[[users]]` login is also a row of the users database: the
    /// file's entry wins, and the row is never used.
    ShadowsDatabaseRow {
        /// The login.
        login: String,
    },
    /// `[auth_hook] url` is plain `http://` to a host other than loopback:
    /// every password the hook checks crosses the network in clear.
    HookInClear {
        /// The URL.
        url: String,
    },
    /// A hook or the pre-upload check posts to a plain `http://` URL off
    /// loopback: events (logins, file names) cross the network in clear,
    /// and anyone on the way can forge the check's answers.
    PlainHttpHook {
        /// The URL, as shown in log lines (without any password).
        url: String,
    },
    /// A permission rule's path names nothing in the user's directory,
    /// likely a typo: the rule then guards nothing.
    RuleMatchesNothing {
        /// The rule's path.
        path: VirtualPath,
        /// The user's base directory, as resolved.
        base: PathBuf,
    },
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Risk::AnonymousWritable => f.write_str(
                "the anonymous user can write here: anyone may upload, overwrite and delete files",
            ),
            Risk::CleartextPasswords { listen, logins } => {
                let shown = logins[..logins.len().min(LOGINS_SHOWN)].join(", ");
                let more = logins.len().saturating_sub(LOGINS_SHOWN);
                let rest = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                write!(
                    f,
                    "passwords cross the network in clear: {shown}{rest} may log in without TLS on {listen}, which is not loopback; require TLS with [tls] required = \"login\" (docs/tls.md)"
                )
            }
            Risk::NoPassiveRange { listen } => write!(
                f,
                "no passive port range while listening on {listen}: passive data connections use any ephemeral port, which a firewall must then allow; set passive.ports and open that range"
            ),
            Risk::PerIpCapIneffective { per_ip, total } => write!(
                f,
                "one address may open {per_ip} connections, no fewer than the server's {total}: a single client can lock everyone else out"
            ),
            Risk::WorldWritableBase { dir } => write!(
                f,
                "{} is writable by every local account, which can then change what this user is served",
                dir.display()
            ),
            Risk::ShadowsDatabaseRow { login } => write!(
                f,
                "{login:?} is also a login in the users database: this entry wins, so that row is never used; remove one of them (docs/users.md)"
            ),
            Risk::HookInClear { url } => write!(
                f,
                "{url} is plain http to a host other than loopback: every password the hook checks crosses the network in clear; use https:// (docs/users.md)"
            ),
            Risk::PlainHttpHook { url } => write!(
                f,
                "{url} is plain HTTP off loopback: events cross the network in clear and a pre-upload answer can be forged on the way; use https (docs/hooks.md)"
            ),
            Risk::RuleMatchesNothing { path, base } => write!(
                f,
                "{path} names nothing in {} (a typo?), so this rule guards nothing",
                base.display()
            ),
        }
    }
}

/// The risks in a validated config, each with the key it is about.
pub(super) fn check(file: &FileConfig, built: &Built, config_dir: &Path) -> Vec<(String, Risk)> {
    let mut found = Vec::new();
    let settings = &built.settings;
    let implicit = settings.tls.iter().flat_map(|tls| &tls.implicit_listen);
    let exposed = settings
        .listen
        .iter()
        .chain(implicit)
        .find(|addr| !addr.ip().is_loopback());
    // Implicit-TLS listeners never carry a password in clear.
    let exposed_plain = settings.listen.iter().find(|addr| !addr.ip().is_loopback());
    if let Some(&listen) = exposed_plain {
        let server_policy = settings
            .tls
            .as_ref()
            .map_or(TlsPolicy::Optional, |tls| tls.required);
        let mut logins: Vec<String> = built
            .named
            .iter()
            .map(|(user, _)| user)
            .filter(|user| user.tls_required.unwrap_or(server_policy) == TlsPolicy::Optional)
            .filter_map(|user| user.login.clone())
            .collect();
        // A row's own tls_required is not known here: the server's policy
        // is what covers them all.
        if built.database.is_some() && server_policy == TlsPolicy::Optional {
            logins.push("the users of [users_database]".to_owned());
        }
        if built.auth_hook.is_some() && server_policy == TlsPolicy::Optional {
            logins.push("the users of [auth_hook]".to_owned());
        }
        if !logins.is_empty() {
            let key = if file.tls.is_some() {
                "tls.required"
            } else {
                "server.listen"
            };
            found.push((key.to_owned(), Risk::CleartextPasswords { listen, logins }));
        }
    }
    if let (Some(&listen), None) = (exposed, &settings.passive.ports) {
        found.push(("passive.ports".to_owned(), Risk::NoPassiveRange { listen }));
    }
    let limits = &settings.limits;
    if limits.max_connections_per_ip >= limits.max_connections {
        found.push((
            "server.max_connections_per_ip".to_owned(),
            Risk::PerIpCapIneffective {
                per_ip: limits.max_connections_per_ip,
                total: limits.max_connections,
            },
        ));
    }
    if let Some(hook) = built
        .auth_hook
        .as_ref()
        .filter(|hook| plain_http_off_loopback(&hook.url))
    {
        found.push((
            "auth_hook.url".to_owned(),
            Risk::HookInClear {
                url: hook.url.clone(),
            },
        ));
    }
    let hooks = settings.hooks.iter().map(|h| (h.key.clone(), &h.endpoint));
    let check = settings
        .pre_upload
        .iter()
        .map(|c| ("pre_upload".to_owned(), &c.endpoint));
    for (key, endpoint) in hooks.chain(check) {
        if let crate::hooks::Endpoint::Url(url) = endpoint {
            if plain_http_off_loopback(url) {
                found.push((
                    format!("{key}.url"),
                    Risk::PlainHttpHook {
                        url: endpoint.to_string(),
                    },
                ));
            }
        }
    }
    for (index, entry) in file.users.iter().enumerate() {
        user_risks(&format!("users[{index}]"), entry, config_dir, &mut found);
    }
    found
}

fn user_risks(prefix: &str, entry: &UserEntry, config_dir: &Path, found: &mut Vec<(String, Risk)>) {
    let rules = entry.permissions.as_deref().unwrap_or_default();
    if entry.login.is_none() {
        for (index, _) in rules.iter().enumerate().filter(|(_, rule)| rule.writable) {
            found.push((
                format!("{prefix}.permissions[{index}].writable"),
                Risk::AnonymousWritable,
            ));
        }
    }
    // Only fs storage has a directory; validation made sure it has one.
    let (None | Some("fs"), Some(written)) = (entry.storage.as_deref(), &entry.base_path) else {
        return;
    };
    let base = config_dir.join(written);
    if world_writable(&base) {
        found.push((
            format!("{prefix}.base_path"),
            Risk::WorldWritableBase { dir: base.clone() },
        ));
    }
    for (index, rule) in rules.iter().enumerate() {
        let path = VirtualPath::new(&rule.path);
        let inside = base.join(path.as_str().trim_start_matches('/'));
        if std::fs::symlink_metadata(&inside).is_err() {
            found.push((
                format!("{prefix}.permissions[{index}].path"),
                Risk::RuleMatchesNothing {
                    path,
                    base: base.clone(),
                },
            ));
        }
    }
}

/// `http://` to a host other than loopback (`localhost`, 127/8, `::1`).
fn plain_http_off_loopback(written: &str) -> bool {
    let Ok(url) = url::Url::parse(written) else {
        return false;
    };
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    url.scheme() == "http" && !loopback
}

fn world_writable(dir: &Path) -> bool {
    std::fs::metadata(dir).is_ok_and(|meta| meta.permissions().mode() & 0o002 != 0)
}
