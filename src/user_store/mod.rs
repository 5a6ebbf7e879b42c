//! The users database: SQLite or PostgreSQL through sqlx, the schema and its
//! migrations (embedded in the binary), and the few queries the daemon and
//! `aioftpd user` need, every value a bound parameter.
//!
//! This room stores rows; it never judges them: a [`UserRecord`] is text as
//! written, and `config::AccountRules` decides what it means. Every call is
//! bounded by the configured timeout, so a slow or unreachable database
//! holds a login for that long at most, and every failure is a
//! [`StoreError`] value, never a panic.

mod record;

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use tokio::sync::OnceCell;

pub use record::UserRecord;

/// The schema's migrations, one set for both backends (their SQL is the same).
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Connections a store keeps at most: logins take one for a single short
/// query, so a few serve many; past them a login waits (within the timeout).
const MAX_CONNECTIONS: u32 = 4;

/// An idle connection is closed after this long.
const IDLE_CONNECTION: Duration = Duration::from_secs(60);

/// Every column, in the order [`UserRecord`] has them.
const COLUMNS: &str = "login, password_hash, storage, storage_settings, home, permissions, \
     tls_required, max_connections, download_limit, upload_limit, \
     download_limit_per_connection, upload_limit_per_connection, quota_bytes, quota_files, \
     disabled, created_at, updated_at";

/// A password to send to PostgreSQL; hidden from `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabasePassword(String);

impl DatabasePassword {
    /// Wraps a password read from a file or the environment.
    pub fn new(text: impl Into<String>) -> Self {
        DatabasePassword(text.into())
    }
}

impl fmt::Debug for DatabasePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DatabasePassword(***)")
    }
}

/// Which database `[users_database] url` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file, created (mode 0640) when missing.
    Sqlite {
        /// The file, as written: a relative path is the caller's to resolve.
        path: PathBuf,
    },
    /// A PostgreSQL server, by a URL without a password.
    Postgres {
        /// `postgres://user@host:port/database?options`.
        url: String,
        /// From `password_file`; without it, libpq's `PGPASSWORD` or
        /// `~/.pgpass` apply.
        password: Option<DatabasePassword>,
    },
}

impl Backend {
    /// Reads a `url` value: `sqlite:PATH` (or `sqlite://PATH`), or
    /// `postgres://` / `postgresql://` URLs without a password in them.
    pub fn parse(written: &str) -> Result<Backend, String> {
        if let Some(rest) = written.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err("names no file: write sqlite:/var/lib/aioftpd/users.db".to_owned());
            }
            // A per-connection in-memory database would hold nothing the
            // `aioftpd user` commands wrote.
            if path.starts_with(":memory:") || path.contains('?') {
                return Err(format!(
                    "{written:?}: only a file path may follow sqlite: (no :memory:, no ?options)"
                ));
            }
            return Ok(Backend::Sqlite {
                path: PathBuf::from(path),
            });
        }
        if written.starts_with("postgres://") || written.starts_with("postgresql://") {
            let url = url::Url::parse(written).map_err(|e| format!("not a valid URL: {e}"))?;
            if url.password().is_some() {
                return Err(
                    "holds a password: the config must not; put it in password_file (mode 0600 or 0640) or the PGPASSWORD environment variable, and remove it from the url"
                        .to_owned(),
                );
            }
            PgConnectOptions::from_str(written)
                .map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
            return Ok(Backend::Postgres {
                url: written.to_owned(),
                password: None,
            });
        }
        Err(format!(
            "unknown database {written:?}: expected sqlite:/path/to/users.db or postgres://user@host/database"
        ))
    }

    /// How logs and messages name the database (never with a password).
    pub fn describe(&self) -> String {
        match self {
            Backend::Sqlite { path } => format!("sqlite:{}", path.display()),
            Backend::Postgres { url, .. } => url.clone(),
        }
    }
}

/// Where the users database is and how long a call to it may take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreSettings {
    /// The database.
    pub backend: Backend,
    /// How long connecting, or one query, may take.
    pub timeout: Duration,
}

/// Why the users database could not answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Down, unreachable, refusing us, or slower than the timeout.
    #[error("the users database {database} is unavailable: {reason}")]
    Unavailable {
        /// The database, as [`Backend::describe`] names it.
        database: String,
        /// What went wrong.
        reason: String,
    },
    /// Its schema is not one this aioftpd knows.
    #[error("the users database {database} cannot be used: {reason}")]
    Schema {
        /// The database.
        database: String,
        /// What is wrong with its schema, and what to do.
        reason: String,
    },
}

enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The same code on either backend: `$pool` binds to the concrete pool.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// A connection pool to the users database. Connections are made when
/// first needed, so opening never waits and a database that is down at
/// start is used once it is up.
pub struct UserStore {
    pool: Pool,
    timeout: Duration,
    name: String,
    /// Set once the schema is known good (migrated to this binary's version).
    schema: OnceCell<()>,
}

impl UserStore {
    /// A store over `settings`; nothing is connected yet. Must be called
    /// inside a tokio runtime (the pool keeps a task that closes idle
    /// connections, ended when the store is dropped).
    pub fn open(settings: &StoreSettings) -> Result<Self, StoreError> {
        let name = settings.backend.describe();
        let timeout = settings.timeout;
        let pool = match &settings.backend {
            Backend::Sqlite { path } => {
                create_private(path).map_err(|e| StoreError::Unavailable {
                    database: name.clone(),
                    reason: format!("cannot create {}: {e}", path.display()),
                })?;
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    // A rollback journal, not WAL: readers then need no
                    // write access to a shared-memory file beside it.
                    .journal_mode(SqliteJournalMode::Delete)
                    .busy_timeout(timeout);
                Pool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(MAX_CONNECTIONS)
                        .acquire_timeout(timeout)
                        .idle_timeout(IDLE_CONNECTION)
                        .connect_lazy_with(options),
                )
            }
            Backend::Postgres { url, password } => {
                let mut options = PgConnectOptions::from_str(url)
                    .map_err(|e| StoreError::Unavailable {
                        database: name.clone(),
                        reason: e.to_string(),
                    })?
                    .application_name("aioftpd");
                if let Some(DatabasePassword(password)) = password {
                    options = options.password(password);
                }
                Pool::Postgres(
                    PgPoolOptions::new()
                        .max_connections(MAX_CONNECTIONS)
                        .acquire_timeout(timeout)
                        .idle_timeout(IDLE_CONNECTION)
                        .connect_lazy_with(options),
                )
            }
        };
        Ok(UserStore {
            pool,
            timeout,
            name,
            schema: OnceCell::new(),
        })
    }

    /// How logs name this database.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates the schema or brings it to this binary's version, once; a
    /// database whose schema is newer, unknown or altered is refused with a
    /// [`StoreError::Schema`] saying so. Every other call does this first.
    pub async fn ready(&self) -> Result<(), StoreError> {
        self.schema
            .get_or_try_init(|| async {
                let migrated = on_pool!(self, pool => self.bounded(MIGRATOR.run(pool)).await?);
                migrated.map_err(|e| self.schema_error(e))
            })
            .await
            .map(|_| ())
    }

    /// The row of `login`, if there is one.
    pub async fn find(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
        self.ready().await?;
        let sql = format!("SELECT {COLUMNS} FROM aioftpd_users WHERE login = $1");
        on_pool!(self, pool => self.run(
            sqlx::query_as::<_, UserRecord>(&sql).bind(login).fetch_optional(pool)
        ).await)
    }

    /// The logins equal to `login` in any letter case (ASCII), for the
    /// names the anonymous user answers in any case.
    pub async fn logins_any_case(&self, login: &str) -> Result<Vec<String>, StoreError> {
        self.ready().await?;
        let sql = "SELECT login FROM aioftpd_users WHERE lower(login) = lower($1) ORDER BY login";
        let rows: Vec<(String,)> = on_pool!(self, pool => self.run(
            sqlx::query_as(sql).bind(login).fetch_all(pool)
        ).await)?;
        Ok(rows.into_iter().map(|(login,)| login).collect())
    }

    /// Every row, by login.
    pub async fn list(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.ready().await?;
        let sql = format!("SELECT {COLUMNS} FROM aioftpd_users ORDER BY login");
        on_pool!(self, pool => self.run(
            sqlx::query_as::<_, UserRecord>(&sql).fetch_all(pool)
        ).await)
    }

    /// Adds `record`; `false` if its login is taken (nothing changes then).
    pub async fn insert(&self, record: &UserRecord) -> Result<bool, StoreError> {
        self.ready().await?;
        let sql = format!(
            "INSERT INTO aioftpd_users ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
             ON CONFLICT (login) DO NOTHING"
        );
        let r = record;
        let done = on_pool!(self, pool => self.run(
            sqlx::query(&sql)
                .bind(&r.login)
                .bind(&r.password_hash)
                .bind(&r.storage)
                .bind(&r.storage_settings)
                .bind(&r.home)
                .bind(&r.permissions)
                .bind(&r.tls_required)
                .bind(r.max_connections)
                .bind(&r.download_limit)
                .bind(&r.upload_limit)
                .bind(&r.download_limit_per_connection)
                .bind(&r.upload_limit_per_connection)
                .bind(&r.quota_bytes)
                .bind(r.quota_files)
                .bind(r.disabled)
                .bind(r.created_at)
                .bind(r.updated_at)
                .execute(pool)
        ).await?.rows_affected());
        Ok(done == 1)
    }

    /// Writes every field of `record` but its login and creation time over
    /// the row of its login; `false` if there is no such row.
    pub async fn update(&self, record: &UserRecord) -> Result<bool, StoreError> {
        self.ready().await?;
        let sql = "UPDATE aioftpd_users SET password_hash = $2, storage = $3, \
             storage_settings = $4, home = $5, permissions = $6, tls_required = $7, \
             max_connections = $8, download_limit = $9, upload_limit = $10, \
             download_limit_per_connection = $11, upload_limit_per_connection = $12, \
             quota_bytes = $13, quota_files = $14, disabled = $15, updated_at = $16 \
             WHERE login = $1";
        let r = record;
        let done = on_pool!(self, pool => self.run(
            sqlx::query(sql)
                .bind(&r.login)
                .bind(&r.password_hash)
                .bind(&r.storage)
                .bind(&r.storage_settings)
                .bind(&r.home)
                .bind(&r.permissions)
                .bind(&r.tls_required)
                .bind(r.max_connections)
                .bind(&r.download_limit)
                .bind(&r.upload_limit)
                .bind(&r.download_limit_per_connection)
                .bind(&r.upload_limit_per_connection)
                .bind(&r.quota_bytes)
                .bind(r.quota_files)
                .bind(r.disabled)
                .bind(r.updated_at)
                .execute(pool)
        ).await?.rows_affected());
        Ok(done == 1)
    }

    /// Removes the row of `login`, and its usage; `false` if there was none.
    pub async fn delete(&self, login: &str) -> Result<bool, StoreError> {
        self.ready().await?;
        let sql = "DELETE FROM aioftpd_users WHERE login = $1";
        let done = on_pool!(self, pool => self.run(
            sqlx::query(sql).bind(login).execute(pool)
        ).await?.rows_affected());
        let usage = "DELETE FROM aioftpd_usage WHERE login = $1";
        on_pool!(self, pool => self.run(sqlx::query(usage).bind(login).execute(pool)).await.map(|_| ()))?;
        Ok(done == 1)
    }

    /// What `login`'s tree holds as counted in `scope`: `(bytes, files)`,
    /// or `None` when it was not counted there yet.
    pub async fn usage(&self, login: &str, scope: &str) -> Result<Option<(i64, i64)>, StoreError> {
        self.ready().await?;
        let sql = "SELECT bytes, files FROM aioftpd_usage WHERE login = $1 AND scope = $2";
        on_pool!(self, pool => self.run(
            sqlx::query_as::<_, (i64, i64)>(sql).bind(login).bind(scope).fetch_optional(pool)
        ).await)
    }

    /// Records `bytes` and `files` as counted in `scope`, unless a usage in
    /// that scope is recorded already (another instance counted first); a
    /// usage of another scope is replaced. Returns the one in force.
    pub async fn start_usage(
        &self,
        login: &str,
        scope: &str,
        counted: (i64, i64),
    ) -> Result<(i64, i64), StoreError> {
        self.ready().await?;
        let sql = "INSERT INTO aioftpd_usage (login, scope, bytes, files) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (login) DO UPDATE SET scope = excluded.scope, bytes = excluded.bytes, \
             files = excluded.files WHERE aioftpd_usage.scope <> excluded.scope";
        on_pool!(self, pool => self.run(
            sqlx::query(sql).bind(login).bind(scope).bind(counted.0).bind(counted.1).execute(pool)
        ).await.map(|_| ()))?;
        Ok(self.usage(login, scope).await?.unwrap_or(counted))
    }

    /// Adds `bytes` and `files` (either may be negative; neither count goes
    /// below zero) to `login`'s usage in `scope`, in one statement, if what
    /// grows stays within `limits` (`None`: no limit, or no check at all for
    /// an unconditional change); `false`, and nothing changed, otherwise.
    pub async fn add_usage(
        &self,
        login: &str,
        scope: &str,
        change: (i64, i64),
        limits: Option<(Option<i64>, Option<i64>)>,
    ) -> Result<bool, StoreError> {
        self.ready().await?;
        let (bytes_limit, files_limit) = limits.unwrap_or((None, None));
        // The conditions hold for what shrinks, and where no limit is set;
        // the database checks them and changes the row as one step, so two
        // instances cannot both take the last bytes.
        let sql = "UPDATE aioftpd_usage SET \
             bytes = CASE WHEN bytes + $3 < 0 THEN 0 ELSE bytes + $3 END, \
             files = CASE WHEN files + $4 < 0 THEN 0 ELSE files + $4 END \
             WHERE login = $1 AND scope = $2 \
             AND ($3 <= 0 OR $5 < 0 OR bytes + $3 <= $5) \
             AND ($4 <= 0 OR $6 < 0 OR files + $4 <= $6)";
        let done = on_pool!(self, pool => self.run(
            sqlx::query(sql)
                .bind(login)
                .bind(scope)
                .bind(change.0)
                .bind(change.1)
                .bind(bytes_limit.unwrap_or(-1))
                .bind(files_limit.unwrap_or(-1))
                .execute(pool)
        ).await?.rows_affected());
        Ok(done == 1)
    }

    /// Closes every connection; calls after this fail as unavailable.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }

    /// Runs one query within the timeout.
    async fn run<T>(
        &self,
        query: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        self.bounded(query)
            .await?
            .map_err(|e| self.unavailable(e.to_string()))
    }

    /// `work`'s own result, or unavailable once the timeout has passed.
    async fn bounded<T>(&self, work: impl Future<Output = T>) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| self.unavailable(format!("no answer within {:?}", self.timeout)))
    }

    fn unavailable(&self, reason: String) -> StoreError {
        StoreError::Unavailable {
            database: self.name.clone(),
            reason,
        }
    }

    fn schema_error(&self, error: MigrateError) -> StoreError {
        let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        let reason = match error {
            MigrateError::VersionMissing(version) => format!(
                "its schema version {version} is unknown to this aioftpd, which knows versions 1 to {known}: it was made by a newer aioftpd or by another program; upgrade aioftpd, or point url at a database of its own"
            ),
            MigrateError::VersionMismatch(version) => format!(
                "its migration to schema version {version} differs from this aioftpd's: the schema was changed by hand or by another program"
            ),
            MigrateError::Dirty(version) => format!(
                "the migration to schema version {version} failed partway; restore the database from a backup"
            ),
            // Anything else is the database failing us, not its schema.
            other => return self.unavailable(other.to_string()),
        };
        StoreError::Schema {
            database: self.name.clone(),
            reason,
        }
    }
}

/// Creates `path` empty with mode 0640 if it does not exist, so the password
/// hashes SQLite writes there are not readable by every local account, and
/// gives it its directory's owner and group: root running `aioftpd user`
/// first in the daemon's state directory must not leave a file the daemon
/// cannot open. (SQLite gives its journal the database file's owner.)
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    let dir = std::fs::metadata(parent.unwrap_or(Path::new(".")))?;
    // Only root may give a file away; anyone else keeps it, which is right.
    let _ = std::os::unix::fs::chown(path, Some(dir.uid()), Some(dir.gid()));
    Ok(())
}

/// Seconds since the Unix epoch, for `created_at` and `updated_at`.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
