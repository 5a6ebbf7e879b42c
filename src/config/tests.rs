//! Loading whole files: what an admin sees for good and bad configs.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::*;

const LOCAL: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
use crate::auth::{LoginKind, Password, UserManager};

const ORIGIN: &str = "/etc/aioftpd.toml";

/// A temp dir with `alice/` and `public/` inside, standing in for `/srv/ftp`.
fn served_tree() -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for sub in ["alice", "public"] {
        std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
    }
    dir
}

/// `text` with every `/srv/ftp` replaced by the temp tree.
fn rooted(text: &str, tree: &TempDir) -> String {
    text.replace("/srv/ftp", &tree.path().display().to_string())
}

fn load(text: &str) -> Result<Loaded, ConfigError> {
    load_str(text, Path::new(ORIGIN))
}

fn error_lines(text: &str) -> Vec<String> {
    load(text)
        .expect_err("config should be refused")
        .to_string()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `lines` are one per prefix in `expected`, each starting with its own.
fn assert_starts(lines: &[String], expected: &[&str]) {
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    for (line, prefix) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(prefix),
            "{line:?} should start with {prefix:?}"
        );
    }
}

const FULL: &str = r#"[server]
listen = ["0.0.0.0:2121", "[::]:2121"]
banner = "welcome"
idle_timeout = "2h30m"
data_timeout = 45
block_size = "1MiB"
atomic_uploads = false

[passive]
ports = "50000-50100"
public_address = "203.0.113.7"

[[users]]
login = "alice"
password = "$argon2id$v=19$m=19456,t=2,p=1$mqbaKdxPt1i/pSbQ634UMQ$DsWvV75W5SdpvWxWfzomtJfKsN4oqfOJwSZPwp5mwSY"
base_path = "/srv/ftp/alice"
home = "/docs"
permissions = [{ path = "/", readable = true, writable = true }]

[[users]]
storage = "memory"
"#;

#[tokio::test]
async fn a_full_config_loads_into_settings_and_users() {
    let tree = served_tree();
    let loaded = load(&rooted(FULL, &tree)).unwrap_or_else(|e| panic!("{e}"));
    let s = &loaded.settings;
    assert_eq!(
        s.listen,
        vec![
            "0.0.0.0:2121".parse::<SocketAddr>().expect("addr"),
            "[::]:2121".parse().expect("addr")
        ]
    );
    assert_eq!(s.session.banner, "welcome");
    assert_eq!(s.session.idle_timeout.as_secs(), 9000);
    assert_eq!(s.session.data_timeout.as_secs(), 45);
    assert_eq!(s.session.block_size, 1 << 20);
    assert!(!s.session.atomic_uploads);
    assert_eq!(s.passive.ports, Some(50000..=50100));
    assert_eq!(
        s.passive.public_address,
        Some("203.0.113.7".parse().expect("ip"))
    );
    assert_eq!(loaded.users.get_user("ftp").await, LoginKind::Anonymous);
    assert_eq!(
        loaded.users.get_user("alice").await,
        LoginKind::PasswordRequired
    );
}

#[test]
fn an_unknown_key_names_file_line_and_key() {
    let lines = error_lines(
        "[server]\nbanner = \"hi\"\nidle_timout = \"5m\"\n\n[[users]]\nstorage = \"memory\"\n",
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0]
            .starts_with("/etc/aioftpd.toml:3: server.idle_timout: unknown field `idle_timout`"),
        "{}",
        lines[0]
    );
}

#[test]
fn an_unknown_key_in_an_inline_table_is_located() {
    let lines = error_lines(
        "[[users]]\nstorage = \"memory\"\npermissions = [\n  { path = \"/\" },\n  { path = \"/x\", writeable = true },\n]\n",
    );
    assert!(
        lines[0]
            .starts_with("/etc/aioftpd.toml:5: users[0].permissions[1].writeable: unknown field"),
        "{}",
        lines[0]
    );
}

#[test]
fn a_wrong_type_names_the_key() {
    let lines = error_lines("[server]\natomic_uploads = \"yes\"\n");
    assert!(
        lines[0].starts_with("/etc/aioftpd.toml:2: server.atomic_uploads: invalid type"),
        "{}",
        lines[0]
    );
}

#[test]
fn a_syntax_error_gives_its_line() {
    let lines = error_lines("[server]\nbanner = \"unterminated\n");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("/etc/aioftpd.toml:2: TOML syntax error"),
        "{}",
        lines[0]
    );
}

#[test]
fn a_missing_base_path_directory_is_reported_on_its_line() {
    let tree = served_tree();
    let text = rooted(
        "[[users]]\nstorage = \"memory\"\n\n[[users]]\nlogin = \"bob\"\npassword = \"$argon2id$v=19$m=19456,t=2,p=1$mqbaKdxPt1i/pSbQ634UMQ$DsWvV75W5SdpvWxWfzomtJfKsN4oqfOJwSZPwp5mwSY\"\nbase_path = \"/srv/ftp/nobody\"\n",
        &tree,
    );
    assert_eq!(
        error_lines(&text),
        vec!["/etc/aioftpd.toml:7: users[1].base_path: directory does not exist"]
    );
}

#[test]
fn a_plain_text_password_is_refused_with_a_hint() {
    let lines =
        error_lines("[[users]]\nlogin = \"a\"\npassword = \"secret\"\nstorage = \"memory\"\n");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(
            "/etc/aioftpd.toml:3: users[0].password: plain-text passwords are refused"
        ),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("aioftpd hash-password"));
}

#[test]
fn every_problem_is_reported_in_file_order() {
    let text = "\
[passive]
ports = \"21\"

[server]
block_size = \"1GiB\"
idle_timeout = \"soon\"

[[users]]
login = \"a b\"
password = \"pw\"
storage = \"memory\"
home = \"relative\"

[[users]]
base_path = \"/nonexistent/aioftpd/test\"

[[users]]
storage = \"memory\"
";
    let lines = error_lines(text);
    let expected = [
        "/etc/aioftpd.toml:2: passive.ports: ",
        "/etc/aioftpd.toml:5: server.block_size: ",
        "/etc/aioftpd.toml:6: server.idle_timeout: invalid duration",
        "/etc/aioftpd.toml:9: users[0].login: ",
        "/etc/aioftpd.toml:10: users[0].password: ",
        "/etc/aioftpd.toml:12: users[0].home: ",
        "/etc/aioftpd.toml:15: users[1].base_path: directory does not exist",
        "/etc/aioftpd.toml:17: users[2]: a second anonymous user",
    ];
    assert_starts(&lines, &expected);
}

#[test]
fn relative_base_paths_are_taken_from_the_config_directory() {
    let tree = served_tree();
    let origin = tree.path().join("aioftpd.toml");
    let loaded = load_str("[[users]]\nbase_path = \"public\"\n", &origin);
    assert!(loaded.is_ok(), "{loaded:?}");
}

#[tokio::test]
async fn the_shipped_example_loads() {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "config", "aioftpd.toml"]
        .iter()
        .collect();
    let text = std::fs::read_to_string(&path).expect("example exists");
    let tree = served_tree();
    // The directories alice's rules name.
    for sub in ["reports", "private"] {
        std::fs::create_dir(tree.path().join("alice").join(sub)).expect("mkdir");
    }
    let loaded = load_str(&rooted(&text, &tree), &path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        loaded.settings.listen,
        vec!["0.0.0.0:21".parse::<SocketAddr>().expect("addr")]
    );
    let anonymous = loaded
        .users
        .authenticate("anonymous", &Password::new("guest@example.com"), LOCAL)
        .await
        .expect("anonymous user");
    assert!(anonymous.permissions.iter().all(|rule| !rule.writable));
    // The comment in the example promises this password.
    let alice = loaded
        .users
        .authenticate("alice", &Password::new("change-me"), LOCAL)
        .await
        .expect("alice's password is change-me");
    assert_eq!(alice.permissions.len(), 3);
    // It listens on every address with a password user and no TLS or passive range.
    let risks: Vec<&Risk> = loaded.warnings.iter().map(|w| &w.risk).collect();
    assert!(
        matches!(
            risks[..],
            [Risk::CleartextPasswords { .. }, Risk::NoPassiveRange { .. }]
        ),
        "{risks:?}"
    );
}

#[test]
fn an_unreadable_file_is_named() {
    let err = load_file(Path::new("/nonexistent/aioftpd.toml")).expect_err("no such file");
    assert!(
        err.to_string()
            .starts_with("/nonexistent/aioftpd.toml: cannot read config file:"),
        "{err}"
    );
}

#[tokio::test]
async fn the_embedded_default_serves_root_to_anonymous_on_loopback() {
    let tree = served_tree();
    let loaded = embedded_default(tree.path(), false, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        loaded.settings.listen,
        vec!["127.0.0.1:2121".parse::<SocketAddr>().expect("addr")]
    );
    let user = loaded
        .users
        .authenticate("ftp", &Password::new(""), LOCAL)
        .await
        .expect("anonymous user");
    let access = user.access(&VirtualPath::new("/any/file"));
    assert!(access.readable && !access.writable);
    assert!(loaded
        .users
        .authenticate("alice", &Password::new(""), LOCAL)
        .await
        .is_none());

    let listen = "0.0.0.0:21".parse().expect("addr");
    let loaded =
        embedded_default(tree.path(), true, Some(listen)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.settings.listen, vec![listen]);
    let user = loaded
        .users
        .authenticate("anonymous", &Password::new(""), LOCAL)
        .await
        .expect("anonymous user");
    assert!(user.access(&VirtualPath::root()).writable);
}

#[test]
fn the_embedded_default_needs_an_existing_root() {
    let err =
        embedded_default(Path::new("/nonexistent/aioftpd"), false, None).expect_err("missing root");
    assert_eq!(
        err.to_string(),
        "/nonexistent/aioftpd: directory does not exist"
    );
}

#[test]
fn an_unknown_sync_policy_names_the_key_and_the_choices() {
    let lines = error_lines("[server]\nsync_uploads = \"sometimes\"\n");
    assert!(
        lines[0]
            .starts_with("/etc/aioftpd.toml:2: server.sync_uploads: unknown value \"sometimes\""),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("\"always\", \"replaced\" or \"never\""),
        "{}",
        lines[0]
    );
}

/// Every duration key, its section, and the longest value it accepts, as messages show it.
const DURATION_KEYS: [(&str, &str, &str); 11] = [
    ("server", "idle_timeout", "168h"),
    ("server", "data_timeout", "24h"),
    ("server", "login_timeout", "24h"),
    ("server", "socket_timeout", "24h"),
    ("server", "storage_timeout", "24h"),
    ("server", "shutdown_timeout", "24h"),
    ("login", "failure_delay", "1m"),
    ("login", "failure_window", "8760h"),
    ("login", "block_duration", "8760h"),
    ("login", "credential_cache", "24h"),
    ("tls", "handshake_timeout", "1h"),
];

/// The issues `value` for `section.key` raises, if any, in a file that is otherwise fine
/// (a `[tls]` section names files that do not exist, so only its own key is looked at).
fn duration_issues(section: &str, key: &str, value: &str) -> Vec<String> {
    let text = format!("[{section}]\n{key} = {value}\n\n[[users]]\nstorage = \"memory\"\n");
    match load(&text) {
        Ok(_) => Vec::new(),
        Err(err) => err
            .issues()
            .iter()
            .filter(|issue| issue.key == format!("{section}.{key}"))
            .map(ToString::to_string)
            .collect(),
    }
}

#[test]
fn every_duration_key_refuses_a_value_too_long_for_the_clock_on_its_line() {
    for (section, key, max) in DURATION_KEYS {
        let issues = duration_issues(section, key, "9223372036854775807");
        assert_eq!(
            issues,
            vec![format!(
                "/etc/aioftpd.toml:2: {section}.{key}: 9223372036854775807s is out of range: must be at most {max}"
            )],
            "{section}.{key}"
        );
    }
}

#[test]
fn every_duration_key_accepts_its_bound_and_refuses_a_millisecond_more() {
    for (section, key, max) in DURATION_KEYS {
        assert_eq!(
            duration_issues(section, key, &format!("\"{max}\"")),
            Vec::<String>::new(),
            "{section}.{key} = {max:?}"
        );
        let issues = duration_issues(section, key, &format!("\"{max}1ms\""));
        assert_eq!(issues.len(), 1, "{section}.{key}: {issues:?}");
        assert!(issues[0].contains("is out of range"), "{}", issues[0]);
    }
    // The same bound in bare seconds.
    assert!(duration_issues("server", "idle_timeout", "604800").is_empty());
    assert_eq!(
        duration_issues("server", "idle_timeout", "604801"),
        vec!["/etc/aioftpd.toml:2: server.idle_timeout: 604801s is out of range: must be at most 168h"]
    );
}

#[test]
fn zero_turns_the_delay_and_the_cache_off_and_is_refused_for_the_rest() {
    for (section, key, _) in DURATION_KEYS {
        let issues = duration_issues(section, key, "\"0s\"");
        if matches!(key, "failure_delay" | "credential_cache") {
            assert_eq!(issues, Vec::<String>::new(), "{key}");
        } else {
            assert_eq!(issues.len(), 1, "{key}: {issues:?}");
            assert!(
                issues[0].ends_with("must be greater than zero"),
                "{issues:?}"
            );
        }
    }
}

#[test]
fn a_shutdown_timeout_that_is_not_a_duration_is_refused_like_any_other() {
    assert_eq!(
        duration_issues("server", "shutdown_timeout", "\"banana\""),
        vec![
            "/etc/aioftpd.toml:2: server.shutdown_timeout: invalid duration \"banana\": expected a number before each unit (examples: \"30s\", \"5m\", \"2h30m\", \"500ms\")"
        ]
    );
    // Also reported alongside other problems, in file order.
    let lines = error_lines(
        "[server]\nshutdown_timeout = \"banana\"\nidle_timeout = \"soon\"\n\n[[users]]\nstorage = \"memory\"\n",
    );
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("/etc/aioftpd.toml:2: server.shutdown_timeout: invalid duration"));
    assert!(lines[1].starts_with("/etc/aioftpd.toml:3: server.idle_timeout: invalid duration"));
}

#[test]
fn a_wrong_key_in_a_user_entry_does_not_hide_the_rest_of_it() {
    let lines = error_lines(
        "[[users]]\nstorage = \"memory\"\nhome = \"relative\"\nmax_connections = 0\nupload_limit = \"fast\"\n",
    );
    let expected = [
        "/etc/aioftpd.toml:3: users[0].home: ",
        "/etc/aioftpd.toml:4: users[0].max_connections: must be at least 1",
        "/etc/aioftpd.toml:5: users[0].upload_limit: invalid size",
    ];
    assert_starts(&lines, &expected);
}

#[test]
fn a_wrong_tls_version_does_not_hide_a_missing_certificate() {
    let lines = error_lines(
        "[tls]\ncertificate = \"/nonexistent/cert.pem\"\nprivate_key = \"/nonexistent/key.pem\"\nmin_version = \"1.1\"\n\n[[users]]\nstorage = \"memory\"\n",
    );
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].starts_with("/etc/aioftpd.toml:2: tls.certificate: cannot read"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("/etc/aioftpd.toml:4: tls.min_version: unsupported version"),
        "{}",
        lines[1]
    );
}

#[test]
fn unknown_keys_wrong_types_and_bad_values_are_all_reported_in_file_order() {
    let lines = error_lines(
        "[server]
idle_timout = \"5m\"
atomic_uploads = \"yes\"
block_size = \"1GiB\"

[tls]
certificate = 5

[[users]]
storage = \"memory\"
permissions = [{ path = \"/\", writeable = true }, { readable = false }]
home = \"relative\"
max_connections = \"ten\"
",
    );
    let expected = [
        "/etc/aioftpd.toml:2: server.idle_timout: unknown field `idle_timout`, expected one of",
        "/etc/aioftpd.toml:3: server.atomic_uploads: invalid type: string \"yes\", expected a boolean",
        "/etc/aioftpd.toml:4: server.block_size: 1GiB is out of range",
        "/etc/aioftpd.toml:6: tls.private_key: required in [tls]",
        "/etc/aioftpd.toml:7: tls.certificate: invalid type: integer `5`, expected a string",
        "/etc/aioftpd.toml:11: users[0].permissions[0].writeable: unknown field `writeable`",
        "/etc/aioftpd.toml:11: users[0].permissions[1]: missing field `path`",
        "/etc/aioftpd.toml:12: users[0].home: ",
        "/etc/aioftpd.toml:13: users[0].max_connections: invalid type: string \"ten\"",
    ];
    assert_starts(&lines, &expected);
}

#[test]
fn a_key_of_the_wrong_type_is_not_also_reported_missing() {
    let lines = error_lines("users = 5\n");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].starts_with("/etc/aioftpd.toml:1: users: invalid type: integer `5`"),
        "{}",
        lines[0]
    );
}

const ALICE_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$mqbaKdxPt1i/pSbQ634UMQ$DsWvV75W5SdpvWxWfzomtJfKsN4oqfOJwSZPwp5mwSY";

/// The warnings a config that loads raises, as `(line, key, risk)`.
fn warnings(text: &str) -> Vec<(Option<usize>, String, Risk)> {
    load(text)
        .unwrap_or_else(|e| panic!("{e}"))
        .warnings
        .into_iter()
        .map(|w| (w.line, w.key, w.risk))
        .collect()
}

/// Writes a self-signed certificate and its key (0600) to `dir`; the `[tls]` lines naming them.
fn tls_section(dir: &Path, required: &str) -> String {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, made.cert.pem()).expect("write cert");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key)
        .and_then(|mut file| file.write_all(made.key_pair.serialize_pem().as_bytes()))
        .expect("write key");
    format!(
        "[tls]\ncertificate = {:?}\nprivate_key = {:?}\nrequired = {required:?}\n",
        cert.display(),
        key.display()
    )
}

#[test]
fn a_careful_config_raises_no_warning() {
    let tree = served_tree();
    let text = rooted(
        &format!(
            "[server]\nlisten = [\"127.0.0.1:21\", \"[::1]:21\"]\n\n[[users]]\nlogin = \"alice\"\npassword = \"{ALICE_HASH}\"\nbase_path = \"/srv/ftp/alice\"\n\n[[users]]\nbase_path = \"/srv/ftp/public\"\n"
        ),
        &tree,
    );
    assert_eq!(warnings(&text), Vec::new());
}

#[test]
fn a_writable_rule_of_the_anonymous_user_is_a_warning_on_its_line() {
    let text = "[server]\nlisten = [\"127.0.0.1:21\"]\n\n[[users]]\nstorage = \"memory\"\npermissions = [\n  { path = \"/\" },\n  { path = \"/incoming\", writable = true },\n]\n";
    assert_eq!(
        warnings(text),
        vec![(
            Some(8),
            "users[0].permissions[1].writable".to_owned(),
            Risk::AnonymousWritable
        )]
    );
    let shown = load(text).expect("loads").warnings[0].to_string();
    assert!(
        shown.starts_with("/etc/aioftpd.toml:8: users[0].permissions[1].writable: warning: the anonymous user can write here"),
        "{shown}"
    );
}

#[test]
fn password_logins_without_tls_beyond_loopback_are_a_warning() {
    let users = format!(
        "[[users]]\nlogin = \"alice\"\npassword = \"{ALICE_HASH}\"\nstorage = \"memory\"\n\n[[users]]\nstorage = \"memory\"\n"
    );
    let exposed = format!(
        "[server]\nlisten = [\"127.0.0.1:21\", \"0.0.0.0:2121\"]\n\n[passive]\nports = \"50000-50100\"\n\n{users}"
    );
    assert_eq!(
        warnings(&exposed),
        vec![(
            Some(2),
            "server.listen".to_owned(),
            Risk::CleartextPasswords {
                listen: "0.0.0.0:2121".parse().expect("addr"),
                logins: vec!["alice".to_owned()],
            }
        )]
    );
    let loopback = format!("[server]\nlisten = [\"127.0.0.1:21\"]\n\n{users}");
    assert_eq!(warnings(&loopback), Vec::new());

    // With TLS offered but not required, the warning is on the policy.
    let dir = tempfile::tempdir().expect("temp dir");
    let passive = "[passive]\nports = \"50000-50100\"\n";
    let optional = format!("{passive}\n{}\n{users}", tls_section(dir.path(), "none"));
    let found = warnings(&optional);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].0, found[0].1.as_str()), (Some(7), "tls.required"));
    // Required for the server, or for each password user: nothing to say.
    let required = optional.replace("required = \"none\"", "required = \"login\"");
    assert_eq!(warnings(&required), Vec::new());
    let per_user = optional.replace(
        "login = \"alice\"",
        "login = \"alice\"\ntls_required = \"data\"",
    );
    assert_eq!(warnings(&per_user), Vec::new());
}

#[test]
fn a_listener_beyond_loopback_without_a_passive_range_is_a_warning() {
    let text = "[server]\nlisten = [\"[::]:21\"]\n\n[passive]\npublic_address = \"203.0.113.7\"\n\n[[users]]\nstorage = \"memory\"\n";
    assert_eq!(
        warnings(text),
        vec![(
            Some(4),
            "passive.ports".to_owned(),
            Risk::NoPassiveRange {
                listen: "[::]:21".parse().expect("addr")
            }
        )]
    );
    let ranged = text.replace("[passive]\n", "[passive]\nports = \"50000-50100\"\n");
    assert_eq!(warnings(&ranged), Vec::new());
}

#[test]
fn a_per_address_cap_no_lower_than_the_server_cap_is_a_warning() {
    let text = "[server]\nlisten = [\"127.0.0.1:21\"]\nmax_connections = 20\nmax_connections_per_ip = 20\n\n[[users]]\nstorage = \"memory\"\n";
    assert_eq!(
        warnings(text),
        vec![(
            Some(4),
            "server.max_connections_per_ip".to_owned(),
            Risk::PerIpCapIneffective {
                per_ip: 20,
                total: 20
            }
        )]
    );
    assert_eq!(
        warnings(&text.replace("max_connections_per_ip = 20", "max_connections_per_ip = 19")),
        Vec::new()
    );
    // The defaults (32 of 512) are fine; a lone server cap below 32 is not.
    let low = "[server]\nlisten = [\"127.0.0.1:21\"]\nmax_connections = 8\n\n[[users]]\nstorage = \"memory\"\n";
    assert_eq!(
        warnings(low)[0].2,
        Risk::PerIpCapIneffective {
            per_ip: 32,
            total: 8
        }
    );
}

#[test]
fn a_world_writable_base_directory_is_a_warning() {
    use std::os::unix::fs::PermissionsExt as _;
    let tree = served_tree();
    let public = tree.path().join("public");
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let text = rooted(
        "[server]\nlisten = [\"127.0.0.1:21\"]\n\n[[users]]\nbase_path = \"/srv/ftp/public\"\n",
        &tree,
    );
    assert_eq!(
        warnings(&text),
        vec![(
            Some(5),
            "users[0].base_path".to_owned(),
            Risk::WorldWritableBase { dir: public }
        )]
    );
}

#[test]
fn a_rule_for_a_path_that_does_not_exist_is_a_warning() {
    let tree = served_tree();
    std::fs::create_dir(tree.path().join("alice").join("reports")).expect("mkdir");
    let text = rooted(
        &format!(
            "[server]\nlisten = [\"127.0.0.1:21\"]\n\n[[users]]\nlogin = \"alice\"\npassword = \"{ALICE_HASH}\"\nbase_path = \"/srv/ftp/alice\"\npermissions = [\n  {{ path = \"/\" }},\n  {{ path = \"/reports\", writable = true }},\n  {{ path = \"/reprots/old\", readable = false }},\n]\n"
        ),
        &tree,
    );
    assert_eq!(
        warnings(&text),
        vec![(
            Some(11),
            "users[0].permissions[2].path".to_owned(),
            Risk::RuleMatchesNothing {
                path: VirtualPath::new("/reprots/old"),
                base: tree.path().join("alice"),
            }
        )]
    );
}

#[tokio::test]
async fn the_printed_config_loads_to_the_same_settings_and_prints_the_same() {
    let tree = served_tree();
    let dir = tempfile::tempdir().expect("temp dir");
    let text = format!(
        "{}\n[server]\nlisten = [\"127.0.0.1:2121\"]\nbanner = \"say \\\"hi\\\"\"\nblock_size = 5000\nsync_uploads = \"always\"\nmax_connections_per_ip = 8\ndownload_limit = \"3MiB\"\n\n[login]\ncredential_cache = \"0s\"\n\n[passive]\nports = \"50000-50100\"\npublic_address = \"203.0.113.7\"\n\n[[users]]\nlogin = \"alice\"\npassword = \"{ALICE_HASH}\"\nbase_path = \"alice\"\nhome = \"/docs/../\"\ntls_required = \"data\"\nmax_connections = 2\nupload_limit_per_connection = 1000\n\n[[users]]\nstorage = \"memory\"\n\n[[users]]\nlogin = \"bob\"\npassword = \"{ALICE_HASH}\"\nstorage = \"s3\"\ns3 = {{ endpoint = \"http://127.0.0.1:3900/\", bucket = \"files\", region = \"garage\", prefix = \"/users/bob\", credentials_file = \"s3.key\" }}\n",
        tls_section(tree.path(), "login").replace("[tls]\n", "[tls]\nimplicit_listen = [\"127.0.0.1:990\"]\nmin_version = \"1.3\"\n"),
    );
    let s3_key = tree.path().join("s3.key");
    std::fs::write(
        &s3_key,
        "aws_access_key_id = GK1\naws_secret_access_key = s\n",
    )
    .unwrap();
    std::fs::set_permissions(&s3_key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let origin = tree.path().join("aioftpd.toml");
    let first = load_str(&text, &origin).unwrap_or_else(|e| panic!("{e}"));
    let printed = first.effective.clone().expect("a file's config is printed");
    // Saved elsewhere, it still means the same: its paths are absolute.
    let again = load_str(&printed, &dir.path().join("printed.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{printed}"));
    assert_eq!(again.effective.as_deref(), Some(printed.as_str()));
    assert_eq!(
        format!("{:?}", again.settings),
        format!("{:?}", first.settings)
    );
    let alice = again
        .users
        .authenticate("alice", &Password::new("change-me"), LOCAL)
        .await
        .expect("alice's hash is printed as it is");
    assert_eq!(alice.max_connections, Some(2));
    for key in [
        "idle_timeout = \"5m\"",
        "block_size = 5000",
        "shutdown_timeout = \"1m\"",
        "credential_cache = \"0s\"",
        "max_failures_per_ip = 10",
        "min_version = \"1.3\"",
        "require_session_reuse = true",
        "home = \"/\"",
        "tls_required = \"data\"",
        "upload_limit_per_connection = 1000",
        "{ path = \"/\", readable = true, writable = false },",
    ] {
        assert!(printed.contains(key), "{key} missing from:\n{printed}");
    }
    assert!(
        printed.contains(&format!(
            "base_path = \"{}\"",
            tree.path().join("alice").display()
        )),
        "{printed}"
    );
    assert!(
        printed.contains(&format!(
            "s3 = {{ endpoint = \"http://127.0.0.1:3900\", bucket = \"files\", region = \"garage\", prefix = \"users/bob/\", credentials_file = \"{}\", part_size = \"8MiB\", parts_in_flight = 2 }}",
            s3_key.display()
        )),
        "{printed}"
    );
}

#[test]
fn proxy_protocol_listeners_and_trusted_networks_are_read_and_checked() {
    let loaded = load(
        "[proxy_protocol]\nlisten = [\"127.0.0.11:2121\"]\ntrusted = [\"10.0.0.2\", \"10.0.1.0/24\", \"2001:db8::/64\"]\n\
         [[users]]\nstorage = \"memory\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let proxy = loaded.settings.proxy.as_ref().expect("proxy settings");
    assert_eq!(proxy.listen, ["127.0.0.11:2121".parse().unwrap()]);
    assert!(proxy.trusted.contains("10.0.0.2".parse().unwrap()));
    assert!(proxy.trusted.contains("10.0.1.200".parse().unwrap()));
    assert!(!proxy.trusted.contains("10.0.0.3".parse().unwrap()));
    assert!(loaded
        .settings
        .listeners()
        .iter()
        .any(|spec| spec.proxied && spec.addr == proxy.listen[0]));

    let lines = error_lines(
        "[server]\nlisten = [\"127.0.0.1:21\"]\n[proxy_protocol]\nlisten = [\"127.0.0.1:21\"]\n\
         trusted = [\"0.0.0.0/0\", \"10.0.1.7/24\", \"proxy.example\"]\n\
         [[users]]\nstorage = \"memory\"\n",
    );
    assert_starts(
        &lines,
        &[
            "/etc/aioftpd.toml:4: proxy_protocol.listen[0]: 127.0.0.1:21 is already a listener",
            "/etc/aioftpd.toml:5: proxy_protocol.trusted[0]: \"0.0.0.0/0\" trusts every address",
            "/etc/aioftpd.toml:5: proxy_protocol.trusted[1]: \"10.0.1.7/24\" has host bits set",
            "/etc/aioftpd.toml:5: proxy_protocol.trusted[2]: invalid address or network",
        ],
    );
    let lines = error_lines(
        "[server]\nlisten = []\n[proxy_protocol]\nlisten = [\"127.0.0.11:2121\"]\n\
         [[users]]\nstorage = \"memory\"\n",
    );
    assert_starts(
        &lines,
        &["/etc/aioftpd.toml:3: proxy_protocol.trusted: must name the proxies' addresses"],
    );
}

#[test]
fn users_of_a_database_count_among_those_whose_passwords_may_cross_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        "[server]\nlisten = [\"0.0.0.0:2121\"]\n[users_database]\nurl = \"sqlite:users.db\"\n";
    let loaded = load_str(text, &dir.path().join("aioftpd.toml")).unwrap_or_else(|e| panic!("{e}"));
    let cleartext = loaded
        .warnings
        .iter()
        .find(|w| w.key == "server.listen")
        .expect("a cleartext warning");
    assert!(
        cleartext
            .to_string()
            .contains("the users of [users_database] may log in without TLS"),
        "{cleartext}"
    );
}

#[test]
fn passive_overrides_announce_per_network_and_the_first_match_wins() {
    let loaded = load(
        "[passive]\npublic_address = \"203.0.113.7\"\n\
         [[passive.overrides]]\nnetworks = [\"192.168.1.0/24\", \"10.0.0.0/8\"]\naddress = \"192.168.1.2\"\n\
         [[passive.overrides]]\nnetworks = [\"10.1.0.0/16\"]\naddress = \"10.1.0.2\"\n\
         [[users]]\nstorage = \"memory\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let passive = &loaded.settings.passive;
    let to = |client: &str| passive.announced_to(client.parse().unwrap());
    assert_eq!(to("192.168.1.40"), Some("192.168.1.2".parse().unwrap()));
    assert_eq!(
        to("10.1.2.3"),
        Some("192.168.1.2".parse().unwrap()),
        "the first rule that matches, not the most specific"
    );
    assert_eq!(
        to("::ffff:192.168.1.40"),
        Some("192.168.1.2".parse().unwrap())
    );
    assert_eq!(to("198.51.100.1"), Some("203.0.113.7".parse().unwrap()));

    let lines = error_lines(
        "[[passive.overrides]]\nnetworks = [\"192.168.1.7/24\", \"lan\"]\naddress = \"::1\"\n\
         [[passive.overrides]]\naddress = \"10.0.0.1\"\n\
         [[users]]\nstorage = \"memory\"\n",
    );
    assert_starts(
        &lines,
        &[
            "/etc/aioftpd.toml:2: passive.overrides[0].networks[0]: \"192.168.1.7/24\" has host bits set",
            "/etc/aioftpd.toml:2: passive.overrides[0].networks[1]: invalid address or network",
            "/etc/aioftpd.toml:3: passive.overrides[0].address: \"::1\" is IPv6",
            "/etc/aioftpd.toml:4: passive.overrides[1].networks: must name the clients' networks",
        ],
    );
}
