//! `aioftpd user ...`: the users database of `--config`'s `[users_database]`,
//! managed from the command line (docs/users.md).
//!
//! Every value is checked as the config checks the same `[[users]]` key,
//! with the same message, before anything is written; the daemon checks the
//! row again when it is used. Exit status: 0, 64 (EX_USAGE) for a bad
//! command line, config or value, 69 (EX_UNAVAILABLE) when the database
//! cannot be used.

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::process::ExitCode;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use aioftpd::config::{self, set_field, unset_field, ConfigWarning, FieldProblem, Loaded};
use aioftpd::user_store::{unix_now, StoreError, UserRecord, UserStore};

use crate::cli::{AccountFields, UserAction};

/// Exit status for a bad command line, config or value (EX_USAGE).
pub(crate) const EXIT_USAGE: u8 = 64;

/// Exit status when the users database cannot be used (EX_UNAVAILABLE).
pub(crate) const EXIT_UNAVAILABLE: u8 = 69;

/// Why a command did not do what it was asked.
enum Failure {
    /// The command line, the config or a value is wrong: each line said.
    Usage(Vec<String>),
    /// The database cannot be used.
    Unavailable(StoreError),
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Failure::Unavailable(err)
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure::Usage(vec![message.into()])
}

/// Runs `action` on the users database `config` names.
pub(crate) fn run(config: Option<&Path>, action: UserAction) -> ExitCode {
    let result = load(config).and_then(|loaded| {
        // Typed before the runtime starts, so a prompt is never raced.
        let password = match &action {
            UserAction::Add { .. } | UserAction::Passwd { .. } => Some(read_new_password()?),
            _ => None,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| usage(format!("cannot start the runtime: {e}")))?;
        runtime.block_on(act(&loaded, action, password))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(lines)) => {
            for line in lines {
                eprintln!("{line}");
            }
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Unavailable(err)) => {
            eprintln!("{err}");
            ExitCode::from(EXIT_UNAVAILABLE)
        }
    }
}

fn load(config: Option<&Path>) -> Result<Loaded, Failure> {
    let Some(path) = config else {
        return Err(usage(
            "aioftpd user needs --config FILE: its [users_database] names the database",
        ));
    };
    let loaded = config::load_file(path).map_err(|err| usage(err.to_string()))?;
    if loaded.users_database.is_none() {
        return Err(usage(format!(
            "{}: no [users_database] section: add one naming the database (docs/users.md)",
            path.display()
        )));
    }
    Ok(loaded)
}

async fn act(loaded: &Loaded, action: UserAction, password: Option<String>) -> Result<(), Failure> {
    let Some(database) = &loaded.users_database else {
        return Err(usage("no [users_database]"));
    };
    let store = UserStore::open(&database.store)?;
    let rules = &database.accounts;
    let result = match action {
        UserAction::Add {
            login,
            fields,
            disabled,
        } => {
            let hash = hash(password.unwrap_or_default())?;
            let mut record = UserRecord::new(&login, &hash, &fields.storage, unix_now());
            record.disabled = disabled;
            for (field, written) in fields.given() {
                set_field(&mut record, field, written).map_err(|p| usage(p.to_string()))?;
            }
            if let Err(problems) = rules.account(&record, None) {
                return Err(Failure::Usage(lines(&problems)));
            }
            if shadowing(loaded, &login) {
                eprintln!("warning: {login:?} is also a login of [[users]] in the config, which wins: this row will not be used");
            }
            if !store.insert(&record).await? {
                return Err(usage(format!("{login:?} is already in the users database")));
            }
            println!("added {login}");
            Ok(())
        }
        UserAction::Passwd { login } => {
            let mut record = existing(&store, &login).await?;
            record.password_hash = hash(password.unwrap_or_default())?;
            save(&store, record).await?;
            println!("changed the password of {login}");
            Ok(())
        }
        UserAction::Set { login, pairs } => {
            if pairs.len() % 2 != 0 {
                return Err(usage("set takes FIELD VALUE pairs: a field has no value"));
            }
            let mut record = existing(&store, &login).await?;
            let mut pairs: Vec<(&str, &str)> = pairs
                .chunks(2)
                .map(|pair| (pair[0].as_str(), pair[1].as_str()))
                .collect();
            // A new storage drops the old one's settings: set it first.
            pairs.sort_by_key(|(field, _)| *field != "storage");
            for (field, written) in &pairs {
                set_field(&mut record, field, written).map_err(|p| usage(p.to_string()))?;
            }
            let fields: Vec<&str> = pairs.iter().map(|(field, _)| *field).collect();
            changed(rules, &record, &fields)?;
            save(&store, record).await?;
            println!("changed {login}");
            Ok(())
        }
        UserAction::Unset { login, fields } => {
            let mut record = existing(&store, &login).await?;
            for field in &fields {
                unset_field(&mut record, field).map_err(|p| usage(p.to_string()))?;
            }
            let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
            changed(rules, &record, &fields)?;
            save(&store, record).await?;
            println!("changed {login}");
            Ok(())
        }
        UserAction::Disable { login } => switch(&store, &login, true).await,
        UserAction::Enable { login } => switch(&store, &login, false).await,
        UserAction::Del { login } => {
            if !store.delete(&login).await? {
                return Err(no_such(&login));
            }
            println!("deleted {login}");
            Ok(())
        }
        UserAction::List { json } => {
            let records = store.list().await?;
            if json {
                let all: Vec<Value> = records.iter().map(to_json).collect();
                println!("{}", Value::Array(all));
            } else {
                print!("{}", table(&records));
            }
            Ok(())
        }
        UserAction::Show { login, json } => {
            let record = existing(&store, &login).await?;
            let problems = rules.account(&record, None).err().unwrap_or_default();
            let used = store.usage(&login, &record.usage_scope()).await?;
            if json {
                let mut shown = to_json(&record);
                shown["usage"] = used.map_or(
                    Value::Null,
                    |(bytes, files)| json!({ "bytes": bytes, "files": files }),
                );
                shown["problems"] = problems.iter().map(ToString::to_string).collect();
                println!("{shown}");
            } else {
                print!("{}", details(&record, used, &problems));
            }
            Ok(())
        }
    };
    store.close().await;
    result
}

/// The record of `login`, or a usage failure saying there is none.
async fn existing(store: &UserStore, login: &str) -> Result<UserRecord, Failure> {
    store.find(login).await?.ok_or_else(|| no_such(login))
}

fn no_such(login: &str) -> Failure {
    usage(format!("no user {login:?} in the users database"))
}

async fn save(store: &UserStore, mut record: UserRecord) -> Result<(), Failure> {
    record.updated_at = unix_now();
    let login = record.login.clone();
    if !store.update(&record).await? {
        return Err(no_such(&login));
    }
    Ok(())
}

async fn switch(store: &UserStore, login: &str, disabled: bool) -> Result<(), Failure> {
    let mut record = existing(store, login).await?;
    record.disabled = disabled;
    save(store, record).await?;
    let done = if disabled { "disabled" } else { "enabled" };
    println!("{done} {login}");
    Ok(())
}

/// Refuses `record` if a field of `fields` is wrong; problems elsewhere in
/// the row (written there by other means) are shown, not held against the
/// change, so a row can be mended one field at a time.
fn changed(
    rules: &config::AccountRules,
    record: &UserRecord,
    fields: &[&str],
) -> Result<(), Failure> {
    let Err(problems) = rules.account(record, None) else {
        return Ok(());
    };
    let (ours, others): (Vec<FieldProblem>, Vec<FieldProblem>) =
        problems.into_iter().partition(|problem| {
            fields.iter().any(|field| problem.concerns(field))
                // fs storage without base_path is the storage field's doing.
                || (problem.concerns("base_path") && fields.contains(&"storage"))
        });
    if !ours.is_empty() {
        return Err(Failure::Usage(lines(&ours)));
    }
    for problem in others {
        eprintln!(
            "warning: the row has another problem, which keeps it from logging in: {problem}"
        );
    }
    Ok(())
}

fn lines(problems: &[FieldProblem]) -> Vec<String> {
    problems.iter().map(ToString::to_string).collect()
}

/// Whether `[[users]]` answers for `login`, so a row of it is never used.
fn shadowing(loaded: &Loaded, login: &str) -> bool {
    loaded
        .config_logins()
        .any(|(own, any_case)| own == login || (any_case && own.eq_ignore_ascii_case(login)))
}

/// The check-config warnings for the `[[users]]` logins that the users
/// database has too (the file wins, the rows are never used).
pub(crate) async fn shadowed(
    loaded: &Loaded,
    store: &UserStore,
) -> Result<Vec<ConfigWarning>, StoreError> {
    store.ready().await?;
    let mut found = HashSet::new();
    for (login, any_case) in loaded.config_logins() {
        let there = if any_case {
            !store.logins_any_case(login).await?.is_empty()
        } else {
            store.find(login).await?.is_some()
        };
        if there {
            found.insert((login.to_owned(), any_case));
        }
    }
    Ok(loaded.shadowing(|login, any_case| found.contains(&(login.to_owned(), any_case))))
}

/// check-config's look at the users database: the shadowed logins as
/// warnings, or one saying the database could not be asked.
pub(crate) fn database_warnings(loaded: &Loaded, config: &Path) -> Vec<String> {
    let Some(database) = &loaded.users_database else {
        return Vec::new();
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return vec![format!("cannot start the runtime: {err}")],
    };
    let looked = runtime.block_on(async {
        let store = UserStore::open(&database.store)?;
        let found = shadowed(loaded, &store).await;
        store.close().await;
        found
    });
    match looked {
        Ok(warnings) => warnings.iter().map(ToString::to_string).collect(),
        Err(err) => vec![format!(
            "{}: users_database: warning: {err}; the file is valid, but whether the database shadows a login of [[users]] was not checked",
            config.display()
        )],
    }
}

/// The argon2 hash of a new password.
fn hash(password: String) -> Result<String, Failure> {
    aioftpd::auth::hash_password(&password).map_err(|e| usage(format!("hashing failed: {e}")))
}

/// A new password: typed twice without echo on a terminal, else the first
/// line of standard input. An empty one is refused.
fn read_new_password() -> Result<String, Failure> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ");
        let second = rpassword::prompt_password("Again: ");
        match (first, second) {
            (Ok(a), Ok(b)) if a == b => a,
            (Ok(_), Ok(_)) => return Err(usage("the passwords differ")),
            (Err(err), _) | (_, Err(err)) => {
                return Err(usage(format!("cannot read the password: {err}")))
            }
        }
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|err| usage(format!("cannot read the password: {err}")))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.is_empty() {
        return Err(usage("refusing an empty password"));
    }
    Ok(password)
}

/// `hash-password`'s reading of a password, with this module's messages.
pub(crate) fn read_password_for_hashing() -> Result<String, String> {
    read_new_password().map_err(|failure| match failure {
        Failure::Usage(lines) => lines.join("\n"),
        Failure::Unavailable(err) => err.to_string(),
    })
}

fn timestamp(seconds: i64) -> String {
    OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| seconds.to_string())
}

/// Everything of `record` but its password hash, as JSON.
fn to_json(record: &UserRecord) -> Value {
    json!({
        "login": record.login,
        "disabled": record.disabled,
        "storage": record.storage,
        "storage_settings": record.storage_settings,
        "home": record.home,
        "permissions": record.permissions,
        "tls_required": record.tls_required,
        "max_connections": record.max_connections,
        "download_limit": record.download_limit,
        "upload_limit": record.upload_limit,
        "download_limit_per_connection": record.download_limit_per_connection,
        "upload_limit_per_connection": record.upload_limit_per_connection,
        "quota_bytes": record.quota_bytes,
        "quota_files": record.quota_files,
        "created_at": timestamp(record.created_at),
        "updated_at": timestamp(record.updated_at),
    })
}

/// The field lines `show` prints: every field but the hash, `-` for unset.
fn details(record: &UserRecord, usage: Option<(i64, i64)>, problems: &[FieldProblem]) -> String {
    let or_unset = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    let rows = [
        ("login", record.login.clone()),
        ("state", state(record).to_owned()),
        ("storage", record.storage.clone()),
        ("storage_settings", record.storage_settings.clone()),
        ("home", or_unset(&record.home)),
        ("permissions", or_unset(&record.permissions)),
        ("tls_required", or_unset(&record.tls_required)),
        (
            "max_connections",
            record
                .max_connections
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
        ),
        ("download_limit", or_unset(&record.download_limit)),
        ("upload_limit", or_unset(&record.upload_limit)),
        (
            "download_limit_per_connection",
            or_unset(&record.download_limit_per_connection),
        ),
        (
            "upload_limit_per_connection",
            or_unset(&record.upload_limit_per_connection),
        ),
        ("quota_bytes", or_unset(&record.quota_bytes)),
        (
            "quota_files",
            record
                .quota_files
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
        ),
        (
            "usage",
            usage.map_or_else(
                || "not counted yet (counted at the first upload)".to_owned(),
                |(bytes, files)| format!("{bytes} bytes in {files} files"),
            ),
        ),
        ("created_at", timestamp(record.created_at)),
        ("updated_at", timestamp(record.updated_at)),
    ];
    let mut out = String::new();
    for (field, value) in rows {
        out.push_str(&format!("{field}: {value}\n"));
    }
    for problem in problems {
        out.push_str(&format!("problem: {problem}\n"));
    }
    out
}

fn state(record: &UserRecord) -> &'static str {
    if record.disabled {
        "disabled"
    } else {
        "enabled"
    }
}

/// The `list` table: a header, then a row per user, columns aligned.
fn table(records: &[UserRecord]) -> String {
    let mut rows = vec![[
        "LOGIN".to_owned(),
        "STATE".to_owned(),
        "STORAGE".to_owned(),
        "HOME".to_owned(),
        "UPDATED".to_owned(),
    ]];
    for record in records {
        let storage = match record.storage_settings.as_str() {
            "{}" => record.storage.clone(),
            settings => format!("{} {settings}", record.storage),
        };
        rows.push([
            record.login.clone(),
            state(record).to_owned(),
            storage,
            record.home.clone().unwrap_or_else(|| "/".to_owned()),
            timestamp(record.updated_at),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

impl AccountFields {
    /// The fields given as flags, `(field, value)`, storage first.
    fn given(&self) -> Vec<(&'static str, &str)> {
        [
            ("base_path", &self.base_path),
            ("home", &self.home),
            ("permissions", &self.permissions),
            ("tls_required", &self.tls_required),
            ("max_connections", &self.max_connections),
            ("download_limit", &self.download_limit),
            ("upload_limit", &self.upload_limit),
            (
                "download_limit_per_connection",
                &self.download_limit_per_connection,
            ),
            (
                "upload_limit_per_connection",
                &self.upload_limit_per_connection,
            ),
            ("quota_bytes", &self.quota_bytes),
            ("quota_files", &self.quota_files),
        ]
        .into_iter()
        .filter_map(|(field, value)| Some((field, value.as_deref()?)))
        .collect()
    }
}
