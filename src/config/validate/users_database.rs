//! `[users_database]`: where the database of users is, how long its
//! answers are kept, how long a query may take.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::schema::UsersDatabaseSection;
use crate::user_store::Backend;

use super::{duration, timeout, Problems, MAX_CACHE_LIFETIME, MAX_DATABASE_TIMEOUT};

/// How long a looked-up account is used before the database is asked again.
pub(in crate::config) const DEFAULT_CACHE_LIFETIME: Duration = Duration::from_secs(30);

/// How long connecting, or one query, may take before a login gets 421.
pub(in crate::config) const DEFAULT_DATABASE_TIMEOUT: Duration = Duration::from_secs(5);

/// `[users_database]` as checked: nothing opened, the password file not read.
pub(in crate::config) struct DatabaseSpec {
    /// `None` when `url` was missing or wrong (already recorded).
    pub backend: Option<Backend>,
    pub password_file: Option<PathBuf>,
    pub cache_lifetime: Duration,
    pub timeout: Duration,
}

/// `[users_database]`.
pub(super) fn users_database(
    section: &UsersDatabaseSection,
    problems: &mut Problems,
) -> DatabaseSpec {
    let backend = match section.url.as_deref() {
        None => {
            problems.add(
                "users_database.url",
                "required: sqlite:/var/lib/aioftpd/users.db, or postgres://user@host/database",
            );
            None
        }
        Some(url) => problems.check("users_database.url", Backend::parse(url.trim())),
    };
    let password_file = match (&backend, section.password_file.as_deref()) {
        (_, None) => None,
        (_, Some("")) => {
            problems.add("users_database.password_file", "must not be empty");
            None
        }
        (Some(Backend::Postgres { .. }), Some(file)) => Some(PathBuf::from(file)),
        (Some(Backend::Sqlite { .. }), Some(_)) => {
            problems.add(
                "users_database.password_file",
                "only used with a postgres:// url: SQLite has no password; remove it",
            );
            None
        }
        // The url is wrong, already recorded: the file is judged with it fixed.
        (None, Some(file)) => Some(PathBuf::from(file)),
    };
    DatabaseSpec {
        backend,
        password_file,
        // Zero is allowed: every lookup asks the database.
        cache_lifetime: duration(
            "users_database.cache_lifetime",
            &section.cache_lifetime,
            MAX_CACHE_LIFETIME,
            problems,
        )
        .unwrap_or(DEFAULT_CACHE_LIFETIME),
        timeout: timeout(
            "users_database.timeout",
            &section.timeout,
            MAX_DATABASE_TIMEOUT,
            problems,
        )
        .unwrap_or(DEFAULT_DATABASE_TIMEOUT),
    }
}
