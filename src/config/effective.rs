//! The config in effect, printed back as TOML (`check-config --print`), like `sshd -T`.
//!
//! Every key is written with the value the server runs on, defaults filled
//! in, in the form the file accepts, so the output loads again to the same
//! settings. A key that is not set and has no value meaning "not set" is a
//! comment saying what happens instead. Paths are absolute, so the output
//! means the same wherever it is saved. Password hashes are printed as they
//! are: the output is for an admin who can read the file anyway, and it must
//! load again; treat it like the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::build::Built;
use super::schema::{FileConfig, UserEntry};
use super::units::{ByteSize, HumanDuration};
use super::validate::{s3_spec, Problems, S3Spec};
use crate::auth::User;
use crate::storage::UploadSync;
use crate::throttle::Rate;
use crate::tls::TlsPolicy;

/// Renders the validated `built`, read from `file` in `config_dir`.
pub(super) fn render(file: &FileConfig, built: &Built, config_dir: &Path) -> String {
    let s = &built.settings;
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(
        "# The config in effect: every key with its value (aioftpd check-config --print)."
            .to_owned(),
    );
    line("# It holds the password hashes as the file does.".to_owned());
    line(String::new());
    line("[server]".to_owned());
    line(format!("listen = {}", addresses(&s.listen)));
    line(format!("banner = {}", quoted(&s.session.banner)));
    line(format!(
        "idle_timeout = {}",
        duration(s.session.idle_timeout)
    ));
    line(format!(
        "data_timeout = {}",
        duration(s.session.data_timeout)
    ));
    line(format!(
        "block_size = {}",
        size(s.session.block_size as u64)
    ));
    line(format!("atomic_uploads = {}", s.session.atomic_uploads));
    line(format!(
        "sync_uploads = {}",
        quoted(upload_sync(built.sync))
    ));
    line(format!(
        "login_timeout = {}",
        duration(s.session.login_timeout)
    ));
    line(format!(
        "shutdown_timeout = {}",
        duration(s.shutdown_timeout)
    ));
    line(format!(
        "socket_timeout = {}",
        duration(s.session.socket_timeout)
    ));
    line(format!(
        "storage_timeout = {}",
        duration(s.session.storage_timeout)
    ));
    line(format!("max_connections = {}", s.limits.max_connections));
    line(format!(
        "max_connections_per_ip = {}",
        s.limits.max_connections_per_ip
    ));
    line(format!("download_limit = {}", rate(s.limits.download)));
    line(format!("upload_limit = {}", rate(s.limits.upload)));
    line(format!(
        "download_limit_per_connection = {}",
        rate(s.limits.download_per_connection)
    ));
    line(format!(
        "upload_limit_per_connection = {}",
        rate(s.limits.upload_per_connection)
    ));
    line(String::new());
    line("[login]".to_owned());
    line(format!(
        "failure_delay = {}",
        duration(s.login.failure_delay)
    ));
    line(format!(
        "max_failures_per_connection = {}",
        s.login.max_failures_per_connection
    ));
    line(format!(
        "max_failures_per_ip = {}",
        s.login.max_failures_per_ip
    ));
    line(format!(
        "failure_window = {}",
        duration(s.login.failure_window)
    ));
    line(format!(
        "block_duration = {}",
        duration(s.login.block_duration)
    ));
    line(format!(
        "credential_cache = {}",
        duration(s.login.credential_cache.unwrap_or(Duration::ZERO))
    ));
    line(String::new());
    line("[passive]".to_owned());
    line(match &s.passive.ports {
        Some(ports) => format!("ports = \"{}-{}\"", ports.start(), ports.end()),
        None => "# ports: not set, each passive connection gets a free ephemeral port".to_owned(),
    });
    line(match s.passive.public_address {
        Some(ip) => format!("public_address = \"{ip}\""),
        None => "# public_address: not set, PASV announces the control connection's local address"
            .to_owned(),
    });
    for rule in &s.passive.overrides {
        let networks: Vec<String> = rule
            .networks
            .iter()
            .map(|net| quoted(&net.to_string()))
            .collect();
        line("[[passive.overrides]]".to_owned());
        line(format!("networks = [{}]", networks.join(", ")));
        line(format!("address = \"{}\"", rule.address));
    }
    line(String::new());
    match (&s.tls, &file.tls) {
        (Some(tls), Some(written)) => {
            line("[tls]".to_owned());
            let path = |written: &Option<String>| {
                quoted(&absolute(
                    config_dir,
                    written.as_deref().unwrap_or_default(),
                ))
            };
            line(format!("certificate = {}", path(&written.certificate)));
            line(format!("private_key = {}", path(&written.private_key)));
            // Validation accepted it, so it is one of the two versions.
            let min_version = written.min_version.as_deref().map_or("1.2", str::trim);
            line(format!("min_version = {}", quoted(min_version)));
            line(format!("required = {}", quoted(policy(tls.required))));
            line(format!(
                "require_session_reuse = {}",
                tls.require_session_reuse
            ));
            line(format!(
                "implicit_listen = {}",
                addresses(&tls.implicit_listen)
            ));
            line(format!(
                "handshake_timeout = {}",
                duration(tls.handshake_timeout)
            ));
        }
        _ => line("# [tls]: not configured, only plain FTP is spoken".to_owned()),
    }
    line(String::new());
    match &s.proxy {
        Some(proxy) => {
            line("[proxy_protocol]".to_owned());
            line(format!("listen = {}", addresses(&proxy.listen)));
            let trusted: Vec<String> = proxy
                .trusted
                .networks()
                .iter()
                .map(|net| quoted(&net.to_string()))
                .collect();
            line(format!("trusted = [{}]", trusted.join(", ")));
        }
        None => {
            line("# [proxy_protocol]: not configured, no listener takes PROXY headers".to_owned())
        }
    }
    line(String::new());
    match &s.transfer_log {
        Some(log) => {
            line("[transfer_log]".to_owned());
            line(format!(
                "path = {}",
                quoted(&log.path.display().to_string())
            ));
            let format = match log.format {
                crate::transfer_log::Format::Xferlog => "xferlog",
                crate::transfer_log::Format::Json => "json",
            };
            line(format!("format = {}", quoted(format)));
        }
        None => {
            line("# [transfer_log]: not configured, transfers go to the main log only".to_owned())
        }
    }
    line(String::new());
    match s.metrics {
        Some(addr) => {
            line("[metrics]".to_owned());
            line(format!("listen = \"{addr}\""));
        }
        None => line("# [metrics]: not configured, no /metrics endpoint".to_owned()),
    }
    line(String::new());
    hooks_tables(&mut line, s);
    line(String::new());
    match (&built.database, &file.users_database) {
        (Some(database), Some(written)) => {
            line("[users_database]".to_owned());
            line(format!(
                "url = {}",
                quoted(&database.store.backend.describe())
            ));
            if let Some(file) = &written.password_file {
                line(format!(
                    "password_file = {}",
                    quoted(&absolute(config_dir, file))
                ));
            }
            line(format!(
                "cache_lifetime = {}",
                duration(database.cache_lifetime)
            ));
            line(format!("timeout = {}", duration(database.store.timeout)));
        }
        _ => line("# [users_database]: not configured, users come from [[users]] only".to_owned()),
    }
    line(String::new());
    match (&built.auth_hook, &file.auth_hook) {
        (Some(hook), Some(written)) => {
            line("[auth_hook]".to_owned());
            line(format!("url = {}", quoted(&hook.url)));
            line(format!("timeout = {}", duration(hook.timeout)));
            line(format!(
                "cache_lifetime = {}",
                duration(hook.cache_lifetime)
            ));
            // The file's name, never the token.
            if let Some(file) = &written.bearer_token_file {
                line(format!(
                    "bearer_token_file = {}",
                    quoted(&absolute(config_dir, file))
                ));
            }
        }
        _ => {
            line("# [auth_hook]: not configured, no login is asked of an HTTP endpoint".to_owned())
        }
    }
    for entry in &file.users {
        let user = match &entry.login {
            Some(login) => built
                .named
                .iter()
                .map(|(user, _)| user)
                .find(|user| user.login.as_ref() == Some(login)),
            None => built.anonymous.as_ref(),
        };
        if let Some(user) = user {
            out.push('\n');
            user_table(&mut out, entry, user, config_dir);
        }
    }
    out
}

/// `[[hooks]]` and `[pre_upload]`, defaults filled in.
fn hooks_tables(line: &mut impl FnMut(String), s: &crate::settings::Settings) {
    use crate::hooks::Endpoint;
    let endpoint = |line: &mut dyn FnMut(String), endpoint: &Endpoint| match endpoint {
        Endpoint::Command(argv) => {
            let words: Vec<String> = argv.iter().map(|word| quoted(word)).collect();
            line(format!("command = [{}]", words.join(", ")));
        }
        Endpoint::Url(url) => line(format!("url = {}", quoted(url))),
    };
    for hook in &s.hooks {
        line("[[hooks]]".to_owned());
        let events: Vec<String> = hook.events.iter().map(|kind| quoted(kind.name())).collect();
        line(format!("events = [{}]", events.join(", ")));
        endpoint(line, &hook.endpoint);
        line(format!("timeout = {}", duration(hook.timeout)));
        line(format!("retries = {}", hook.retries));
        line(format!("queue = {}", hook.queue));
        line(format!("concurrency = {}", hook.concurrency));
    }
    if s.hooks.is_empty() {
        line("# [[hooks]]: none configured, no program or URL hears of events".to_owned());
    }
    line(String::new());
    match &s.pre_upload {
        Some(check) => {
            line("[pre_upload]".to_owned());
            endpoint(line, &check.endpoint);
            line(format!("timeout = {}", duration(check.timeout)));
        }
        None => line("# [pre_upload]: not configured, uploads are not checked".to_owned()),
    }
}

fn user_table(out: &mut String, entry: &UserEntry, user: &User, config_dir: &Path) {
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line("[[users]]".to_owned());
    match (&user.login, &entry.password) {
        (Some(login), Some(hash)) => {
            line(format!("login = {}", quoted(login)));
            line(format!("password = {}", quoted(hash)));
        }
        _ => line("# no login: the anonymous user".to_owned()),
    }
    match (&entry.base_path, &entry.s3) {
        (Some(base), _) => {
            line("storage = \"fs\"".to_owned());
            line(format!(
                "base_path = {}",
                quoted(&absolute(config_dir, base))
            ));
        }
        (None, Some(section)) => {
            line("storage = \"s3\"".to_owned());
            // Checked already: this only fills in the defaults again.
            if let Some(spec) = s3_spec("s3", section, &mut Problems::default()) {
                s3_table(&mut line, &spec, config_dir);
            }
        }
        (None, None) => line("storage = \"memory\"".to_owned()),
    }
    line(format!("home = {}", quoted(user.home.as_str())));
    line("permissions = [".to_owned());
    for rule in &user.permissions {
        line(format!(
            "  {{ path = {}, readable = {}, writable = {} }},",
            quoted(rule.path.as_str()),
            rule.readable,
            rule.writable
        ));
    }
    line("]".to_owned());
    line(match user.tls_required {
        Some(required) => format!("tls_required = {}", quoted(policy(required))),
        None => "# tls_required: not set, [tls] required applies".to_owned(),
    });
    line(match user.max_connections {
        Some(max) => format!("max_connections = {max}"),
        None => "# max_connections: not set, no cap of its own".to_owned(),
    });
    let limits = &user.limits;
    line(format!("download_limit = {}", rate(limits.download)));
    line(format!("upload_limit = {}", rate(limits.upload)));
    line(format!(
        "download_limit_per_connection = {}",
        rate(limits.download_per_connection)
    ));
    line(format!(
        "upload_limit_per_connection = {}",
        rate(limits.upload_per_connection)
    ));
    let quota = user
        .quota
        .as_ref()
        .map(|quota| quota.limits)
        .unwrap_or_default();
    line(match quota.bytes {
        Some(bytes) => format!("quota_bytes = {}", size(bytes)),
        None => "# quota_bytes: not set, no limit".to_owned(),
    });
    line(match quota.files {
        Some(files) => format!("quota_files = {files}"),
        None => "# quota_files: not set, no limit".to_owned(),
    });
}

/// A user's `s3` table, inline (a `[users.s3]` header would take the
/// user's keys that follow).
fn s3_table(line: &mut impl FnMut(String), spec: &S3Spec, config_dir: &Path) {
    let credentials_file = match &spec.credentials_file {
        Some(file) => format!(
            ", credentials_file = {}",
            quoted(&absolute(config_dir, &file.to_string_lossy()))
        ),
        None => {
            line("# s3.credentials_file: not set, the key comes from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_owned());
            String::new()
        }
    };
    line(format!(
        "s3 = {{ endpoint = {}, bucket = {}, region = {}, prefix = {}{credentials_file}, part_size = {}, parts_in_flight = {} }}",
        quoted(&spec.endpoint),
        quoted(&spec.bucket),
        quoted(&spec.region),
        quoted(&spec.prefix),
        size(spec.part_size as u64),
        spec.parts_in_flight,
    ));
}

/// A TOML basic string, escaped as TOML needs.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

fn addresses(list: &[std::net::SocketAddr]) -> String {
    let quoted: Vec<String> = list.iter().map(|addr| format!("\"{addr}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

fn duration(value: Duration) -> String {
    quoted(&HumanDuration(value).to_string())
}

/// In the largest binary unit that shows it exactly, else in bytes.
fn size(bytes: u64) -> String {
    if bytes >= ByteSize::KIB.0 && bytes.is_multiple_of(ByteSize::KIB.0) {
        quoted(&ByteSize(bytes).to_string())
    } else {
        bytes.to_string()
    }
}

/// A bandwidth limit; 0 is the file's word for none.
fn rate(limit: Option<Rate>) -> String {
    limit.map_or_else(|| "0".to_owned(), |rate| size(rate.bytes_per_second()))
}

fn policy(policy: TlsPolicy) -> &'static str {
    match policy {
        TlsPolicy::Optional => "none",
        TlsPolicy::Login => "login",
        TlsPolicy::Data => "data",
    }
}

fn upload_sync(sync: UploadSync) -> &'static str {
    match sync {
        UploadSync::Always => "always",
        UploadSync::Replaced => "replaced",
        UploadSync::Never => "never",
    }
}

/// `written` from `config_dir`, made absolute without resolving links.
fn absolute(config_dir: &Path, written: &str) -> String {
    let joined: PathBuf = config_dir.join(written);
    std::path::absolute(&joined)
        .unwrap_or(joined)
        .display()
        .to_string()
}
