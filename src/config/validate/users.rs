//! `[[users]]`: logins, passwords, storage, homes, rules and per-user limits.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::auth::UserLimits;
use crate::auth::{PasswordHash, Permission};
use crate::config::schema::{PermissionEntry, UnitText, UserEntry};
use crate::config::units::ByteSize;
use crate::path::VirtualPath;
use crate::quota::Quota;

use super::s3::s3_spec;
use super::{count, parse, rate, tls_policy, Problems, StorageSpec, UserSpec};

type NamedUsers = Vec<(UserSpec, PasswordHash)>;

/// The entries checked: the named users and the anonymous one whose
/// entries are wholly valid, and the storage each entry names.
pub(super) fn users(
    entries: &[UserEntry],
    tls_configured: bool,
    others_decide: bool,
    problems: &mut Problems,
) -> (NamedUsers, Option<UserSpec>, Vec<Option<StorageSpec>>) {
    if entries.is_empty() && !others_decide {
        problems.add(
            "users",
            "no [[users]] entries: nobody could log in; add one (an entry without `login` allows anonymous access), or a [users_database] or an [auth_hook]",
        );
    }
    let mut named = Vec::new();
    let mut anonymous: Option<UserSpec> = None;
    let mut storages = Vec::with_capacity(entries.len());
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
        let storage = storage(&prefix, entry, problems);
        let user = user(&prefix, index, login, entry, tls_configured, problems);
        storages.push(storage);
        if problems.count() > before {
            continue;
        }
        match (user, hash) {
            (Some(user), Some(hash)) if user.login.is_some() => named.push((user, hash)),
            (Some(user), None) if user.login.is_none() => anonymous = Some(user),
            _ => {}
        }
    }
    (named, anonymous, storages)
}

/// One entry alone, as `users` checks each: a users-database row made into
/// an entry (`config::account`). The account and its hash if the entry is
/// wholly valid, and the storage it names.
pub(in crate::config) fn check_entry(
    entry: &UserEntry,
    tls_configured: bool,
    problems: &mut Problems,
) -> (Option<(UserSpec, PasswordHash)>, Option<StorageSpec>) {
    let (mut named, _, mut storages) =
        users(std::slice::from_ref(entry), tls_configured, true, problems);
    (named.pop(), storages.pop().flatten())
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

/// The user's account but its storage; `None` when something in it is
/// wrong (already recorded).
fn user(
    prefix: &str,
    entry_index: usize,
    login: Option<String>,
    entry: &UserEntry,
    tls_configured: bool,
    problems: &mut Problems,
) -> Option<UserSpec> {
    let tls_key = format!("{prefix}.tls_required");
    let tls_required = match entry.tls_required.as_deref() {
        None => Some(None),
        Some(_) if !tls_configured => {
            problems.add(tls_key, "needs a [tls] section with a certificate");
            None
        }
        Some(written) => problems.check(tls_key, tls_policy(written)).map(Some),
    };
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
    let quota = Quota {
        bytes: quota_bytes(
            &format!("{prefix}.quota_bytes"),
            &entry.quota_bytes,
            problems,
        ),
        files: count(
            &format!("{prefix}.quota_files"),
            entry.quota_files,
            problems,
        )
        .map(|n| n as u64),
    };
    Some(UserSpec {
        entry: entry_index,
        login,
        home: home?,
        permissions: permissions?,
        tls_required: tls_required?,
        max_connections,
        limits,
        quota,
    })
}

/// A quota in bytes (`"10GiB"`); 0 is refused, as it would only lock the
/// user out of uploading: omitting the key means no limit.
fn quota_bytes(key: &str, written: &Option<UnitText>, problems: &mut Problems) -> Option<u64> {
    let size = problems.check(key, parse::<ByteSize>(written.as_ref()?))?;
    if size.0 == 0 {
        problems.add(key, "must be at least 1 byte; omit it for no limit");
        return None;
    }
    Some(size.0)
}

fn virtual_path(written: &str) -> Result<VirtualPath, String> {
    // No client can name such a path: FTP commands are lines of text.
    if written.chars().any(char::is_control) {
        return Err(format!("{written:?} must not contain control characters"));
    }
    if written.starts_with('/') {
        Ok(VirtualPath::new(written))
    } else {
        Err(format!(
            "{written:?} must be an absolute virtual path starting with \"/\""
        ))
    }
}

/// What `storage`, `base_path` and `s3` name; nothing is opened here.
fn storage(prefix: &str, entry: &UserEntry, problems: &mut Problems) -> Option<StorageSpec> {
    let base_key = format!("{prefix}.base_path");
    let s3_key = format!("{prefix}.s3");
    let kind = entry.storage.as_deref().unwrap_or("fs");
    if entry.s3.is_some() && kind != "s3" {
        problems.add(
            &s3_key,
            format!("not used by {kind} storage; remove it, or set storage = \"s3\""),
        );
        return None;
    }
    match kind {
        "fs" => {
            let Some(written) = entry.base_path.as_deref() else {
                problems.add(base_key, "required for fs storage: the directory to serve");
                return None;
            };
            Some(StorageSpec::Fs {
                key: base_key,
                written: PathBuf::from(written),
            })
        }
        "memory" => {
            if entry.base_path.is_some() {
                problems.add(
                    base_key,
                    "not used by memory storage; remove it, or set storage = \"fs\"",
                );
                return None;
            }
            Some(StorageSpec::Memory)
        }
        "s3" => {
            if entry.base_path.is_some() {
                problems.add(
                    base_key,
                    "not used by s3 storage (the user's root is `s3.prefix`); remove it",
                );
            }
            let Some(section) = &entry.s3 else {
                problems.add(
                    s3_key,
                    "required for s3 storage: a table with the endpoint, bucket and region (docs/configuration.md)",
                );
                return None;
            };
            let spec = s3_spec(&s3_key, section, problems)?;
            entry.base_path.is_none().then_some(StorageSpec::S3(spec))
        }
        other => {
            problems.add(
                format!("{prefix}.storage"),
                format!("unknown storage {other:?}: expected \"fs\", \"memory\" or \"s3\""),
            );
            None
        }
    }
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
