//! The second stage of loading: opens what the checked file names (each
//! user's directory or S3 access key, the TLS certificate and key) and
//! assembles the runtime values. Its problems join the first stage's on the same keys, so
//! `check-config` still shows every problem of the file at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::account::{AccountRules, UsersDatabase};
use super::auth_hook::{AuthHook, BearerToken};
use super::validate::{
    Checked, DatabaseSpec, HookSpec, Problem, Problems, S3Spec, StorageSpec, TlsSpec, UserSpec,
};
use crate::auth::{PasswordHash, User};
use crate::quota::{MemoryLedger, Quota, UserQuota};
use crate::settings::Settings;
use crate::storage::s3::{S3Config, S3Credentials};
use crate::storage::{FsStorage, MemoryStorage, S3Storage, Storage, TimedStorage, UploadSync};
use crate::tls::{MinVersion, TlsLoadError, TlsSettings};
use crate::user_store::{Backend, DatabasePassword, StoreSettings};

/// A loaded config: the runtime values the server runs on.
pub(super) struct Built {
    pub settings: Settings,
    pub named: Vec<(User, PasswordHash)>,
    pub anonymous: Option<User>,
    /// `server.sync_uploads`, already given to each fs storage.
    pub sync: UploadSync,
    /// `[users_database]`, if the file has one.
    pub database: Option<UsersDatabase>,
    /// `[auth_hook]`, if the file has one.
    pub auth_hook: Option<AuthHook>,
}

/// Each hook's and the pre-upload check's program must be an executable
/// file now, so a typo shows in `check-config` rather than at the first event.
fn hook_programs(settings: &Settings, problems: &mut Problems) {
    use std::os::unix::fs::PermissionsExt;
    let hooks = settings.hooks.iter().map(|h| (h.key.as_str(), &h.endpoint));
    let check = settings
        .pre_upload
        .iter()
        .map(|c| ("pre_upload", &c.endpoint));
    for (key, endpoint) in hooks.chain(check) {
        let crate::hooks::Endpoint::Command(argv) = endpoint else {
            continue;
        };
        let Some(program) = argv.first() else {
            continue;
        };
        let key = format!("{key}.command[0]");
        match std::fs::metadata(program) {
            Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => {}
            Ok(_) => problems.add(key, format!("{program} is not an executable file")),
            Err(err) => problems.add(key, format!("cannot run {program}: {err}")),
        }
    }
}

/// Opens what `checked` names (relative paths from `config_dir`); every
/// problem of both stages, or the runtime values.
pub(super) fn build(
    checked: Checked,
    mut problems: Problems,
    config_dir: &Path,
) -> Result<Built, Vec<Problem>> {
    let Checked {
        mut settings,
        tls,
        named,
        anonymous,
        storages,
        sync,
        database,
        hook,
    } = checked;
    // Every storage an entry names is opened, whatever else is wrong, so a
    // missing directory shows beside the other problems.
    let opened: Vec<Option<Arc<dyn Storage>>> = storages
        .into_iter()
        .map(|spec| open_storage(spec?, config_dir, sync, &mut problems))
        .collect();
    let tls_configured = tls.is_some();
    settings.tls = tls.and_then(|spec| load_tls(spec, config_dir, &mut problems));
    if let Some(log) = &mut settings.transfer_log {
        log.path = config_dir.join(&log.path);
        // Opened here once, so a directory that is missing or not writable
        // shows on its key like every other problem; the server opens it
        // for good.
        if let Err(err) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&log.path)
        {
            problems.add(
                "transfer_log.path",
                format!("cannot append to {}: {err}", log.path.display()),
            );
        }
    }
    hook_programs(&settings, &mut problems);
    let database = database.and_then(|spec| open_database(spec, config_dir, &mut problems));
    let hook = hook.and_then(|spec| read_hook(spec, config_dir, &mut problems));
    if !problems.0.is_empty() {
        return Err(problems.0);
    }
    let limit = settings.session.storage_timeout;
    let account = |spec: UserSpec| -> Option<User> {
        let storage = opened.get(spec.entry)?.clone()?;
        Some(account(spec, storage, limit))
    };
    let named = named
        .into_iter()
        .filter_map(|(spec, hash)| Some((account(spec)?, hash)))
        .collect();
    let anonymous = anonymous.and_then(account);
    let accounts = AccountRules {
        config_dir: config_dir.to_owned(),
        tls_configured,
        sync,
        storage_timeout: limit,
    };
    let database = database.map(|(store, cache_lifetime)| UsersDatabase {
        store,
        cache_lifetime,
        accounts: accounts.clone(),
    });
    let auth_hook = hook.map(|mut hook| {
        hook.accounts = accounts;
        hook
    });
    Ok(Built {
        settings,
        named,
        anonymous,
        sync,
        database,
        auth_hook,
    })
}

/// The account `spec` describes, over `storage`.
pub(super) fn account(spec: UserSpec, storage: Arc<dyn Storage>, limit: Duration) -> User {
    let storage = bound_storage(storage, limit);
    // Counted in memory, from the tree when first needed; the users
    // database puts its own ledger in for its rows.
    let quota = (spec.quota != Quota::default()).then(|| {
        Arc::new(UserQuota::new(
            spec.quota,
            Arc::new(MemoryLedger::default()),
            storage.clone(),
        ))
    });
    User {
        login: spec.login,
        home: spec.home,
        permissions: spec.permissions,
        storage,
        tls_required: spec.tls_required,
        max_connections: spec.max_connections,
        limits: spec.limits,
        quota,
    }
}

/// Where the users database is, its SQLite file's directory checked, its
/// PostgreSQL password read from `password_file`; with the cache lifetime.
fn open_database(
    spec: DatabaseSpec,
    config_dir: &Path,
    problems: &mut Problems,
) -> Option<(StoreSettings, Duration)> {
    let password = spec
        .password_file
        .and_then(|file| read_password(&config_dir.join(file), problems));
    let backend = match spec.backend? {
        Backend::Sqlite { path } => {
            let resolved = config_dir.join(&path);
            let resolved = std::path::absolute(&resolved).unwrap_or(resolved);
            let parent = resolved.parent().unwrap_or(Path::new("/"));
            if !parent.is_dir() {
                problems.add(
                    "users_database.url",
                    format!(
                        "directory {} does not exist: create it, owned by the daemon's user",
                        parent.display()
                    ),
                );
                return None;
            }
            Backend::Sqlite { path: resolved }
        }
        Backend::Postgres { url, .. } => Backend::Postgres { url, password },
    };
    Some((
        StoreSettings {
            backend,
            timeout: spec.timeout,
        },
        spec.cache_lifetime,
    ))
}

/// `[auth_hook]` with its token read from `bearer_token_file`; the
/// accounts' rules are the caller's to set.
fn read_hook(spec: HookSpec, config_dir: &Path, problems: &mut Problems) -> Option<AuthHook> {
    let bearer_token = match &spec.bearer_token_file {
        None => None,
        Some(file) => Some(read_token(&config_dir.join(file), problems)?),
    };
    Some(AuthHook {
        url: spec.url?,
        timeout: spec.timeout,
        cache_lifetime: spec.cache_lifetime,
        bearer_token,
        accounts: AccountRules::standalone(config_dir.to_owned()),
    })
}

/// The token in `file`, its first line; refused, as an S3 credentials
/// file is, when others may read it or its group or others may write it.
fn read_token(file: &Path, problems: &mut Problems) -> Option<BearerToken> {
    let key = "auth_hook.bearer_token_file";
    let shown = file.display();
    let text = secret_file(file, key, 0o026, problems, |mode| {
        format!("{shown} has mode {mode:04o}: a token file must not be readable by others nor writable by its group or others; run `chmod 600 {shown}`")
    })?;
    let token = text.lines().next().unwrap_or_default().trim();
    // It goes into an HTTP header as it is.
    if token.is_empty() || !token.chars().all(|c| c.is_ascii_graphic()) {
        problems.add(
            key,
            format!("{shown}: its first line must be the token, printable ASCII without spaces"),
        );
        return None;
    }
    Some(BearerToken::new(token))
}

/// The password in `file`, its first line; refused when others may read it.
fn read_password(file: &Path, problems: &mut Problems) -> Option<DatabasePassword> {
    let key = "users_database.password_file";
    let shown = file.display();
    let text = secret_file(file, key, 0o004, problems, |mode| {
        format!("{shown} has mode {mode:04o}: a password file must not be readable by others; run `chmod 600 {shown}` (or `chmod 640 {shown}` to share it with the daemon's group)")
    })?;
    let password = text.lines().next().unwrap_or_default();
    if password.is_empty() {
        problems.add(
            key,
            format!("{shown} is empty: its first line is the password"),
        );
        return None;
    }
    Some(DatabasePassword::new(password))
}

/// The text of the secret `file`, recorded against `key` as a problem when
/// it cannot be read or its mode has any of the `forbidden` bits
/// (`refusal` says so, given the mode).
fn secret_file(
    file: &Path,
    key: &str,
    forbidden: u32,
    problems: &mut Problems,
    refusal: impl FnOnce(u32) -> String,
) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            problems.add(key, format!("cannot read {}: {e}", file.display()));
            return None;
        }
    };
    let mode = std::fs::metadata(file).map_or(0, |meta| meta.permissions().mode()) & 0o7777;
    if mode & forbidden != 0 {
        problems.add(key, refusal(mode));
        return None;
    }
    Some(text)
}

pub(super) fn open_storage(
    spec: StorageSpec,
    config_dir: &Path,
    sync: UploadSync,
    problems: &mut Problems,
) -> Option<Arc<dyn Storage>> {
    match spec {
        StorageSpec::Fs { key, written } => {
            let storage = problems.check(key, open_fs(&written, config_dir))?;
            Some(Arc::new(storage.with_upload_sync(sync)))
        }
        StorageSpec::Memory => Some(Arc::new(MemoryStorage::new())),
        StorageSpec::S3(spec) => {
            let env = |name: &str| std::env::var(name).ok();
            let storage = open_s3(spec, config_dir, &env, problems)?;
            Some(Arc::new(storage))
        }
    }
}

/// The environment variables that hold an access key where no
/// `credentials_file` is named, as AWS's tools read them.
const KEY_ID_VARIABLE: &str = "AWS_ACCESS_KEY_ID";
const SECRET_VARIABLE: &str = "AWS_SECRET_ACCESS_KEY";

/// Reads the access key (the file, relative to `config_dir`, or `env`) and
/// makes the storage; nothing is sent to the endpoint yet.
pub(super) fn open_s3(
    spec: S3Spec,
    config_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Option<S3Storage> {
    let file_key = format!("{}.credentials_file", spec.key);
    let credentials = match &spec.credentials_file {
        Some(file) => S3Credentials::read(&config_dir.join(file)),
        None => match (env(KEY_ID_VARIABLE), env(SECRET_VARIABLE)) {
            (Some(id), Some(secret)) => S3Credentials::new(&id, &secret)
                .map_err(|e| format!("not set, and the key in the environment is wrong: {e}")),
            _ => Err(format!(
                "not set, and {KEY_ID_VARIABLE} and {SECRET_VARIABLE} are not both in the environment: name a file holding the access key (docs/configuration.md)"
            )),
        },
    };
    let credentials = problems.check(file_key, credentials)?;
    let config = S3Config {
        endpoint: spec.endpoint,
        bucket: spec.bucket,
        region: spec.region,
        prefix: spec.prefix,
        credentials,
        part_size: spec.part_size,
        parts_in_flight: spec.parts_in_flight,
    };
    problems.check(spec.key, S3Storage::new(config))
}

/// Loads the certificate and key; the files are read even when the
/// version was wrong, since the version only shapes the rustls config,
/// which is thrown away then.
fn load_tls(spec: TlsSpec, config_dir: &Path, problems: &mut Problems) -> Option<TlsSettings> {
    let (certificate, private_key) = (spec.certificate?, spec.private_key?);
    let loaded = TlsSettings::load(
        &config_dir.join(certificate),
        &config_dir.join(private_key),
        spec.min_version.unwrap_or(MinVersion::Tls12),
    )
    .map_err(|err| match err {
        TlsLoadError::PrivateKey(message) => problems.add("tls.private_key", message),
        TlsLoadError::Certificate(message) | TlsLoadError::Config(message) => {
            problems.add("tls.certificate", message)
        }
    })
    .ok()?;
    spec.min_version?;
    let mut settings = loaded;
    settings.required = spec.required?;
    settings.require_session_reuse = spec.require_session_reuse;
    settings.handshake_timeout = spec.handshake_timeout.unwrap_or(settings.handshake_timeout);
    settings.implicit_listen = spec.implicit_listen;
    Some(settings)
}

/// Puts `server.storage_timeout` around every operation on a user's storage.
pub(super) fn bound_storage(storage: Arc<dyn Storage>, limit: Duration) -> Arc<dyn Storage> {
    Arc::new(TimedStorage::new(storage, limit))
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
