//! One row of the users table, as stored: text as written, nothing parsed.
//!
//! A row may hold anything the database lets it hold (an admin can write
//! SQL); `config::AccountRules` checks it as a `[[users]]` entry before it
//! becomes an account, so a bad value refuses that one login, by field.

use std::fmt;

/// An account as the users table holds it. `None` is "not set": the
/// `[[users]]` default applies.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserRecord {
    /// The login, compared exactly.
    pub login: String,
    /// An argon2 PHC string.
    pub password_hash: String,
    /// The storage backend's name (`"fs"`, `"memory"`).
    pub storage: String,
    /// The backend's keys as a TOML inline table (`{ base_path = "/srv/a" }`).
    pub storage_settings: String,
    /// The virtual path a session starts in.
    pub home: Option<String>,
    /// The permission rules as a TOML array of inline tables.
    pub permissions: Option<String>,
    /// `"none"`, `"login"` or `"data"`.
    pub tls_required: Option<String>,
    /// Sessions at once.
    pub max_connections: Option<i64>,
    /// A rate as written (`"10MiB"`).
    pub download_limit: Option<String>,
    /// A rate as written.
    pub upload_limit: Option<String>,
    /// A rate as written.
    pub download_limit_per_connection: Option<String>,
    /// A rate as written.
    pub upload_limit_per_connection: Option<String>,
    /// The quota in bytes as written (`"10GiB"`).
    pub quota_bytes: Option<String>,
    /// The quota in files.
    pub quota_files: Option<i64>,
    /// A disabled account cannot log in; its row stays.
    pub disabled: bool,
    /// When the row was added, in seconds since the Unix epoch.
    pub created_at: i64,
    /// When the row last changed, in seconds since the Unix epoch.
    pub updated_at: i64,
}

impl UserRecord {
    /// A new, enabled account with every optional field unset, stamped `now`.
    pub fn new(login: &str, password_hash: &str, storage: &str, now: i64) -> Self {
        UserRecord {
            login: login.to_owned(),
            password_hash: password_hash.to_owned(),
            storage: storage.to_owned(),
            storage_settings: "{}".to_owned(),
            home: None,
            permissions: None,
            tls_required: None,
            max_connections: None,
            download_limit: None,
            upload_limit: None,
            download_limit_per_connection: None,
            upload_limit_per_connection: None,
            quota_bytes: None,
            quota_files: None,
            disabled: false,
            created_at: now,
            updated_at: now,
        }
    }
}

impl UserRecord {
    /// What the row's quota usage is counted in: its storage, so a row
    /// moved to another tree is counted again there.
    pub fn usage_scope(&self) -> String {
        format!("{} {}", self.storage, self.storage_settings)
    }
}

impl fmt::Debug for UserRecord {
    /// Everything but the password hash.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("login", &self.login)
            .field("storage", &self.storage)
            .field("storage_settings", &self.storage_settings)
            .field("home", &self.home)
            .field("permissions", &self.permissions)
            .field("tls_required", &self.tls_required)
            .field("max_connections", &self.max_connections)
            .field("quota_bytes", &self.quota_bytes)
            .field("quota_files", &self.quota_files)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}
