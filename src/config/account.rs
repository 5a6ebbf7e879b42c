//! Users-database rows as accounts. A row is made into the `[[users]]`
//! entry with the same values and goes through the same reading, checking
//! and building as the file's entries, so a value means the same and is
//! refused with the same message in the file, in the database and in
//! `aioftpd user set`. Only the key names differ: a row's problem names its
//! field (`permissions[1].path`), not `users[0]`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use toml_edit::{value, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

use super::build::{account, open_storage};
use super::read::{self, Read};
use super::validate::{check_entry, Problem, Problems};
use crate::auth::{PasswordHash, User};
use crate::storage::{Storage, UploadSync};
use crate::user_store::{StoreSettings, UserRecord};

/// What every problem key of a row's entry starts with.
const ENTRY: &str = "users[0]";

/// The `[[users]]` keys that are columns of their own; any other key of an
/// entry belongs to its storage backend and lives in `storage_settings`.
const COLUMN_KEYS: [&str; 13] = [
    "login",
    "password",
    "storage",
    "home",
    "permissions",
    "tls_required",
    "max_connections",
    "download_limit",
    "upload_limit",
    "download_limit_per_connection",
    "upload_limit_per_connection",
    "quota_bytes",
    "quota_files",
];

/// Storage keys whose value is always text, even when it reads as a number.
const TEXT_SETTINGS: [&str; 1] = ["base_path"];

/// `[users_database]` as loaded: where the database is, and how its rows
/// become accounts under this config.
#[derive(Clone, Debug)]
pub struct UsersDatabase {
    /// Where the database is, and the timeout of each call to it.
    pub store: StoreSettings,
    /// How long a looked-up account is used before the database is asked again.
    pub cache_lifetime: Duration,
    /// How a row becomes an account.
    pub accounts: AccountRules,
}

/// What checking a row needs from the config it runs under: where relative
/// paths start, whether `tls_required` may be set, how fs storage syncs,
/// the storage timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRules {
    pub(super) config_dir: PathBuf,
    pub(super) tls_configured: bool,
    pub(super) sync: UploadSync,
    pub(super) storage_timeout: Duration,
}

/// A problem with one field of a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldProblem {
    /// The field, as `aioftpd user set` names it: `home`,
    /// `permissions[1].path`, `base_path`.
    pub field: String,
    /// The message `check-config` gives for the same value in `[[users]]`.
    pub message: String,
}

impl FieldProblem {
    pub(super) fn new(field: &str, message: impl Into<String>) -> Self {
        FieldProblem {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// Whether this problem is about `field` or a part of it.
    pub fn concerns(&self, field: &str) -> bool {
        self.field
            .strip_prefix(field)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    }
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl AccountRules {
    /// Rules for rows checked on their own, as tests and tools need: paths
    /// from `config_dir`, no `[tls]`, the default sync and storage timeout.
    pub fn standalone(config_dir: PathBuf) -> Self {
        let settings = crate::settings::Settings::default();
        AccountRules {
            config_dir,
            tls_configured: false,
            sync: UploadSync::default(),
            storage_timeout: settings.session.storage_timeout,
        }
    }

    /// The account `record` describes, and its password hash; or every
    /// problem of the row. Opens the storage (a directory for fs), so it
    /// blocks: run it off the async workers. With `storage` (a storage this
    /// returned before, as `User::storage`), that one is used instead, for
    /// a row whose storage fields are unchanged since: a memory tree keeps
    /// its files. The fields are still checked.
    pub fn account(
        &self,
        record: &UserRecord,
        storage: Option<Arc<dyn Storage>>,
    ) -> Result<(User, PasswordHash), Vec<FieldProblem>> {
        let text = entry_text(record)?;
        self.entry_account(&text, storage)
    }

    /// The account the file `text`, holding one `[[users]]` entry, describes,
    /// and its password hash; or every problem of the entry, on the fields
    /// it names. What [`AccountRules::account`] says of a row, for any
    /// source of entries (a hook's answer too).
    pub(super) fn entry_account(
        &self,
        text: &str,
        storage: Option<Arc<dyn Storage>>,
    ) -> Result<(User, PasswordHash), Vec<FieldProblem>> {
        let Read {
            file,
            misfits,
            set_aside,
        } = read::read(text);
        let mut problems = Problems::default();
        let reused = storage.is_some();
        let checked = file.as_ref().and_then(|file| {
            let entry = file.users.first()?;
            let (account, spec) = check_entry(entry, self.tls_configured, &mut problems);
            let opened = match (storage, spec) {
                (Some(storage), Some(_)) => Some(storage),
                (None, Some(spec)) => {
                    open_storage(spec, &self.config_dir, self.sync, &mut problems)
                }
                (_, None) => None,
            };
            Some((account?, opened?))
        });
        let mut all: Vec<Problem> = misfits;
        all.extend(
            problems
                .0
                .into_iter()
                .filter(|problem| !set_aside.covers(&problem.key)),
        );
        match checked {
            Some(((spec, hash), storage)) if all.is_empty() => {
                let mut user = account(spec, storage.clone(), self.storage_timeout);
                if reused {
                    // Bounded by the timeout already.
                    user.storage = storage;
                }
                Ok((user, hash))
            }
            _ if all.is_empty() => Err(vec![FieldProblem::new(
                "",
                "the row could not be read as a [[users]] entry",
            )]),
            _ => Err(all.into_iter().map(field_problem).collect()),
        }
    }
}

/// A problem of the entry `users[0]`, on the field it names.
fn field_problem(problem: Problem) -> FieldProblem {
    let field = problem
        .key
        .strip_prefix(ENTRY)
        .map(|rest| rest.trim_start_matches('.'))
        .unwrap_or(&problem.key);
    FieldProblem::new(field, problem.message)
}

/// The `[[users]]` entry holding `record`'s values, as TOML text.
fn entry_text(record: &UserRecord) -> Result<String, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let mut entry = Table::new();
    entry.insert("login", value(record.login.as_str()));
    entry.insert("password", value(record.password_hash.as_str()));
    entry.insert("storage", value(record.storage.as_str()));
    match storage_settings(&record.storage_settings) {
        Ok(settings) => {
            for (key, setting) in settings.iter() {
                if COLUMN_KEYS.contains(&key) {
                    problems.push(FieldProblem::new(
                        "storage_settings",
                        format!("`{key}` is a field of its own, not a storage setting"),
                    ));
                } else {
                    entry.insert(key, Item::Value(setting.clone()));
                }
            }
        }
        Err(problem) => problems.push(problem),
    }
    let text_fields = [
        ("home", &record.home),
        ("tls_required", &record.tls_required),
        ("download_limit", &record.download_limit),
        ("upload_limit", &record.upload_limit),
        (
            "download_limit_per_connection",
            &record.download_limit_per_connection,
        ),
        (
            "upload_limit_per_connection",
            &record.upload_limit_per_connection,
        ),
        ("quota_bytes", &record.quota_bytes),
    ];
    for (key, text) in text_fields {
        if let Some(text) = text {
            entry.insert(key, value(text.as_str()));
        }
    }
    if let Some(rules) = &record.permissions {
        match rules.parse::<Value>() {
            Ok(rules) => {
                entry.insert("permissions", Item::Value(rules));
            }
            Err(e) => problems.push(FieldProblem::new("permissions", toml_message(&e))),
        }
    }
    if let Some(max) = record.max_connections {
        entry.insert("max_connections", value(max));
    }
    if let Some(files) = record.quota_files {
        entry.insert("quota_files", value(files));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(entry_document(entry))
}

/// The config text holding `entry` as its one `[[users]]` entry.
pub(super) fn entry_document(entry: Table) -> String {
    let mut users = ArrayOfTables::new();
    users.push(entry);
    let mut doc = DocumentMut::new();
    doc.insert("users", Item::ArrayOfTables(users));
    doc.to_string()
}

/// A row's `storage_settings`: a TOML inline table.
fn storage_settings(text: &str) -> Result<InlineTable, FieldProblem> {
    match text.trim().parse::<Value>() {
        Ok(Value::InlineTable(table)) => Ok(table),
        Ok(other) => Err(FieldProblem::new(
            "storage_settings",
            format!(
                "must be a TOML inline table such as {{ base_path = \"/srv/ftp\" }}, not a {}",
                other.type_name()
            ),
        )),
        Err(e) => Err(FieldProblem::new("storage_settings", toml_message(&e))),
    }
}

/// A TOML syntax error in one line, as the config's own are worded.
pub(super) fn toml_message(error: &toml_edit::TomlError) -> String {
    let parts: Vec<&str> = error
        .message()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    format!("TOML syntax error: {}", parts.join(": "))
}

/// Sets `field` of `record` to `written`, as `aioftpd user set` does:
/// `written` is what the `[[users]]` key takes, a TOML value where the key
/// is not text (`max_connections 5`, `permissions '[{ path = "/" }]'`).
/// Only the value's form is looked at here; [`AccountRules::account`]
/// judges it. Changing `storage` drops the old backend's settings.
pub fn set_field(record: &mut UserRecord, field: &str, written: &str) -> Result<(), FieldProblem> {
    let text = || Some(written.to_owned());
    match field {
        "login" => return Err(not_settable(field)),
        "disabled" => return Err(use_enable(field)),
        "password" => record.password_hash = written.to_owned(),
        "storage" => {
            if record.storage != written {
                record.storage_settings = "{}".to_owned();
            }
            record.storage = written.to_owned();
        }
        "home" => record.home = text(),
        "tls_required" => record.tls_required = text(),
        "download_limit" => record.download_limit = text(),
        "upload_limit" => record.upload_limit = text(),
        "download_limit_per_connection" => record.download_limit_per_connection = text(),
        "upload_limit_per_connection" => record.upload_limit_per_connection = text(),
        "permissions" => {
            written
                .parse::<Value>()
                .map_err(|e| FieldProblem::new(field, toml_message(&e)))?;
            record.permissions = text();
        }
        "max_connections" => record.max_connections = Some(count_field(field, written)?),
        "quota_bytes" => record.quota_bytes = text(),
        "quota_files" => record.quota_files = Some(count_field(field, written)?),
        setting => {
            let mut settings = storage_settings(&record.storage_settings)?;
            let parsed = match written.parse::<Value>() {
                Ok(parsed) if !TEXT_SETTINGS.contains(&setting) => parsed,
                _ => Value::from(written),
            };
            settings.insert(setting, parsed);
            record.storage_settings = settings.to_string();
        }
    }
    Ok(())
}

/// Unsets `field` of `record`, so the `[[users]]` default applies to it.
pub fn unset_field(record: &mut UserRecord, field: &str) -> Result<(), FieldProblem> {
    match field {
        "login" | "password" | "storage" => return Err(not_settable(field)),
        "disabled" => return Err(use_enable(field)),
        "home" => record.home = None,
        "permissions" => record.permissions = None,
        "tls_required" => record.tls_required = None,
        "max_connections" => record.max_connections = None,
        "download_limit" => record.download_limit = None,
        "upload_limit" => record.upload_limit = None,
        "download_limit_per_connection" => record.download_limit_per_connection = None,
        "upload_limit_per_connection" => record.upload_limit_per_connection = None,
        "quota_bytes" => record.quota_bytes = None,
        "quota_files" => record.quota_files = None,
        setting => {
            let mut settings = storage_settings(&record.storage_settings)?;
            settings.remove(setting);
            record.storage_settings = settings.to_string();
        }
    }
    Ok(())
}

/// A count as `aioftpd user set` takes it (`max_connections 5`).
fn count_field(field: &str, written: &str) -> Result<i64, FieldProblem> {
    written.trim().parse::<i64>().map_err(|_| {
        // The file's reader says this of a string where a count goes.
        FieldProblem::new(
            field,
            format!("invalid type: string {written:?}, expected u64"),
        )
    })
}

fn not_settable(field: &str) -> FieldProblem {
    let message = match field {
        "login" => "a login cannot be renamed: add the new login and delete this one",
        _ => "cannot be unset: every account has one; set another value instead",
    };
    FieldProblem::new(field, message)
}

fn use_enable(field: &str) -> FieldProblem {
    FieldProblem::new(field, "use `aioftpd user disable` or `enable`")
}

#[cfg(test)]
mod tests;
