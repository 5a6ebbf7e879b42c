//! The config file: TOML in, validated [`Settings`] and users out.
//!
//! Loading goes syntax → schema → checking (plain values) → building (opening
//! directories, loading certificates), and either yields everything the
//! server needs or a [`ConfigError`] listing every problem of every stage as
//! `file:line: key: message`. Loading never binds a port or spawns a task, so
//! the daemon can check a file in full before starting, or before a reload
//! replaces a running config. The keys are documented in `docs/configuration.md`.
//!
//! | file | owns |
//! |---|---|
//! | `schema.rs` | the serde structs: which keys exist |
//! | `read.rs` | text → schema, every unknown key and wrong type reported |
//! | `units.rs` | durations, byte sizes, port ranges |
//! | `validate/` | checking every value into plain data, a file per section |
//! | `build.rs` | opening directories and loading certificates: the runtime objects |
//! | `locate.rs` | key paths ↔ line numbers |
//! | `effective.rs` | the config in effect, printed back as TOML |
//! | `warnings.rs` | risky but valid settings: [`ConfigWarning`] |
//! | `error.rs` | [`ConfigError`] and [`ConfigIssue`] |
//! | `account.rs` | users-database rows checked and built as `[[users]]` entries |
//! | `auth_hook.rs` | `[auth_hook]` as loaded; a hook's answer checked as a `[[users]]` entry |
//! | `every_key.rs` | (test) every key of the schema refuses its bad values |

mod account;
mod auth_hook;
mod build;
mod effective;
mod error;
mod locate;
mod read;
mod schema;
mod units;
mod validate;
mod warnings;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml_edit::ImDocument;

pub use account::{set_field, unset_field, AccountRules, FieldProblem, UsersDatabase};
pub use auth_hook::{kind as json_kind, storage_keys, AuthHook, BearerToken};
pub use error::{ConfigError, ConfigIssue};
pub use warnings::{ConfigWarning, Risk};

use crate::auth::{ConfigUserManager, Permission, User};
use crate::path::VirtualPath;
use crate::settings::Settings;
use crate::storage::Storage;
use build::Built;
use locate::Locator;
use read::Read;
use validate::{Problem, Problems};

/// Where the embedded default listens: loopback only, unprivileged port.
const EMBEDDED_LISTEN: ([u8; 4], u16) = ([127, 0, 0, 1], 2121);

/// A loaded, fully validated config.
pub struct Loaded {
    /// Listeners, session and passive-mode settings.
    pub settings: Settings,
    /// The `[[users]]`, ready to be shared as `Arc<dyn UserManager>`.
    pub users: ConfigUserManager,
    /// Settings that are valid but risky, in file order; none for the embedded default.
    pub warnings: Vec<ConfigWarning>,
    /// The config in effect as TOML, every key with its value
    /// (`check-config --print`); `None` for the embedded default.
    pub effective: Option<String>,
    /// `[users_database]`, if the file has one.
    pub users_database: Option<UsersDatabase>,
    /// `[auth_hook]`, if the file has one.
    pub auth_hook: Option<AuthHook>,
    /// The logins `[[users]]` answers for, each with where it is written,
    /// for [`Loaded::shadowing`].
    logins: Vec<ConfigLogin>,
}

/// A login the file's `[[users]]` answers for, and where.
#[derive(Clone, Debug)]
struct ConfigLogin {
    /// A named user's login, or each of [`crate::auth::ANONYMOUS_LOGINS`]
    /// for the anonymous entry (which answers them in any letter case).
    login: String,
    any_case: bool,
    file: PathBuf,
    key: String,
    line: Option<usize>,
}

impl Loaded {
    /// The logins of `[[users]]`, named first: those a database row of the
    /// same login cannot take over (and, for the anonymous entry's names,
    /// whether any letter case matches).
    pub fn config_logins(&self) -> impl Iterator<Item = (&str, bool)> {
        self.logins
            .iter()
            .map(|login| (login.login.as_str(), login.any_case))
    }

    /// Warnings for the `[[users]]` logins that `in_database` says the
    /// users database holds too: the file's entry wins, the row is never used.
    pub fn shadowing(&self, in_database: impl Fn(&str, bool) -> bool) -> Vec<ConfigWarning> {
        self.logins
            .iter()
            .filter(|login| in_database(&login.login, login.any_case))
            .map(|login| ConfigWarning {
                file: login.file.clone(),
                line: login.line,
                key: login.key.clone(),
                risk: Risk::ShadowsDatabaseRow {
                    login: login.login.clone(),
                },
            })
            .collect()
    }
}

impl fmt::Debug for Loaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loaded")
            .field("settings", &self.settings)
            .field("warnings", &self.warnings)
            .finish_non_exhaustive()
    }
}

/// Reads and loads the config file at `path`; an unreadable file is an error naming it.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(vec![ConfigIssue {
            file: path.to_owned(),
            line: None,
            key: String::new(),
            message: format!("cannot read config file: {e}"),
        }])
    })?;
    load_str(&text, path)
}

/// Loads config `text`; `origin` names it in messages, and relative `base_path`s
/// are taken from the directory `origin` is in.
pub fn load_str(text: &str, origin: &Path) -> Result<Loaded, ConfigError> {
    let issue = |line: Option<usize>, key: &str, message: &str| ConfigIssue {
        file: origin.to_owned(),
        line,
        key: key.to_owned(),
        message: message.to_owned(),
    };
    let doc = ImDocument::parse(text).map_err(|e| {
        let line = e
            .span()
            .map(|span| Locator::lines_only(text).line_at(span.start));
        ConfigError::new(vec![issue(line, "", &syntax_message(e.message()))])
    })?;
    let locator = Locator::new(text, &doc);
    let Read {
        file,
        misfits,
        set_aside,
    } = read::read(text);
    let config_dir = origin.parent().unwrap_or(Path::new(""));
    let built = file.as_ref().map(|file| {
        let mut problems = Problems::default();
        let checked = validate::check(file, &mut problems);
        build::build(checked, problems, config_dir)
    });
    let problems = match (file, built) {
        (Some(file), Some(Ok(built))) if misfits.is_empty() => {
            let mut warnings: Vec<ConfigWarning> = warnings::check(&file, &built, config_dir)
                .into_iter()
                .map(|(key, risk)| ConfigWarning {
                    file: origin.to_owned(),
                    line: locator.line_of(&key),
                    key,
                    risk,
                })
                .collect();
            warnings.sort_by_key(|warning| warning.line.unwrap_or(usize::MAX));
            let effective = effective::render(&file, &built, config_dir);
            let logins = config_logins(&file, origin, &locator);
            return Ok(loaded(built, warnings, Some(effective), logins));
        }
        (_, Some(Ok(_)) | None) => misfits,
        (_, Some(Err(found))) => {
            let mut all = misfits;
            all.extend(found.into_iter().filter(|p| !set_aside.covers(&p.key)));
            all
        }
    };
    let mut issues: Vec<ConfigIssue> = problems
        .into_iter()
        .map(|Problem { key, message }| issue(locator.line_of(&key), &key, &message))
        .collect();
    // File order reads best; issues without a line (defaults) come last.
    issues.sort_by_key(|issue| issue.line.unwrap_or(usize::MAX));
    Err(ConfigError::new(issues))
}

fn loaded(
    built: Built,
    warnings: Vec<ConfigWarning>,
    effective: Option<String>,
    logins: Vec<ConfigLogin>,
) -> Loaded {
    let cache = built.settings.login.credential_cache;
    Loaded {
        settings: built.settings,
        users: ConfigUserManager::new(built.named, built.anonymous).with_credential_cache(cache),
        warnings,
        effective,
        users_database: built.database,
        auth_hook: built.auth_hook,
        logins,
    }
}

/// Where each login of the valid `file` is written.
fn config_logins(file: &schema::FileConfig, origin: &Path, locator: &Locator) -> Vec<ConfigLogin> {
    let mut logins = Vec::new();
    for (index, entry) in file.users.iter().enumerate() {
        let (names, any_case, key): (Vec<String>, bool, String) = match &entry.login {
            Some(login) => (vec![login.clone()], false, format!("users[{index}].login")),
            None => (
                crate::auth::ANONYMOUS_LOGINS.map(str::to_owned).to_vec(),
                true,
                format!("users[{index}]"),
            ),
        };
        for login in names {
            logins.push(ConfigLogin {
                login,
                any_case,
                file: origin.to_owned(),
                line: locator.line_of(&key),
                key: key.clone(),
            });
        }
    }
    // Named users first: they shadow the anonymous entry's names too.
    logins.sort_by_key(|login| login.any_case);
    logins
}

/// toml_edit's messages can span lines; one issue is one line.
fn syntax_message(message: &str) -> String {
    let parts: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    format!("TOML syntax error: {}", parts.join(": "))
}

/// The config used without `--config`: an anonymous user serving `root` read-only
/// (read-write with `writable`) on `listen`, by default 127.0.0.1:2121; all else default.
pub fn embedded_default(
    root: &Path,
    writable: bool,
    listen: Option<SocketAddr>,
) -> Result<Loaded, ConfigError> {
    let storage = build::open_fs(root, Path::new("")).map_err(|message| {
        ConfigError::new(vec![ConfigIssue {
            file: root.to_owned(),
            line: None,
            key: String::new(),
            message,
        }])
    })?;
    let settings = Settings {
        listen: vec![listen.unwrap_or_else(|| SocketAddr::from(EMBEDDED_LISTEN))],
        ..Settings::default()
    };
    let anonymous = User {
        login: None,
        home: VirtualPath::root(),
        permissions: vec![Permission {
            path: VirtualPath::root(),
            readable: true,
            writable,
        }],
        storage: build::bound_storage(
            Arc::new(storage) as Arc<dyn Storage>,
            settings.session.storage_timeout,
        ),
        tls_required: None,
        max_connections: None,
        limits: Default::default(),
        quota: None,
    };
    Ok(Loaded {
        settings,
        users: ConfigUserManager::new(Vec::new(), Some(anonymous)),
        warnings: Vec::new(),
        effective: None,
        users_database: None,
        auth_hook: None,
        logins: Vec::new(),
    })
}

#[cfg(test)]
mod every_key;
#[cfg(test)]
mod tests;
