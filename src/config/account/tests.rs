//! Every field `aioftpd user set` takes, with good and bad values: a row
//! is refused exactly when the same value in `[[users]]` is, with the same
//! message, on the field it names.

use std::path::Path;

use super::*;
use crate::config::load_str;

fn hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| crate::auth::hash_password("pw").expect("hash"))
}

/// A memory-storage row of `alice` with `field` set to `written`.
fn row(field: &str, written: &str) -> Result<UserRecord, FieldProblem> {
    let mut record = UserRecord::new("alice", hash(), "memory", 0);
    if field == "base_path" {
        set_field(&mut record, "storage", "fs")?;
    }
    set_field(&mut record, field, written)?;
    Ok(record)
}

/// The problems of `record`, checked in `dir` with or without `[tls]`.
fn row_problems(record: &UserRecord, dir: &Path, tls: bool) -> Vec<(String, String)> {
    let rules = AccountRules {
        tls_configured: tls,
        ..AccountRules::standalone(dir.to_owned())
    };
    match rules.account(record, None) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.into_iter().map(|p| (p.field, p.message)).collect(),
    }
}

/// The problems `check-config` finds with `key = toml` in alice's entry,
/// keys without their `users[0].`.
fn config_problems(key: &str, toml: &str, dir: &Path, tls: bool) -> Vec<(String, String)> {
    let storage = if key == "base_path" { "fs" } else { "memory" };
    let mut text = String::new();
    if tls {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
        std::fs::set_permissions(
            dir.join("key.pem"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        text.push_str("[tls]\ncertificate = \"cert.pem\"\nprivate_key = \"key.pem\"\n");
    }
    text.push_str(&format!("[[users]]\nlogin = \"alice\"\n{key} = {toml}\n"));
    if key != "storage" {
        text.push_str(&format!("storage = \"{storage}\"\n"));
    }
    if key != "password" {
        text.push_str(&format!("password = \"{}\"\n", hash()));
    }
    match load_str(&text, &dir.join("aioftpd.toml")) {
        Ok(_) => Vec::new(),
        Err(err) => err
            .issues()
            .iter()
            .map(|issue| {
                let key = issue.key.strip_prefix("users[0].").unwrap_or(&issue.key);
                (key.to_owned(), issue.message.clone())
            })
            .collect(),
    }
}

/// `(field, as typed after aioftpd user set, as written in the file)`.
const BAD: &[(&str, &str, &str)] = &[
    ("password", "plain", "\"plain\""),
    (
        "password",
        "$2b$12$abcdefghijklmnopqrstuv",
        "\"$2b$12$abcdefghijklmnopqrstuv\"",
    ),
    ("storage", "s4", "\"s4\""),
    ("storage", "fs", "\"fs\""),
    (
        "base_path",
        "/nonexistent/aioftpd-account",
        "\"/nonexistent/aioftpd-account\"",
    ),
    ("base_path", "relative/dir", "\"relative/dir\""),
    ("base_path", "", "\"\""),
    ("bse_path", "/srv", "\"/srv\""),
    ("home", "pub", "\"pub\""),
    ("home", "/a\u{1}b", "\"/a\\u0001b\""),
    ("permissions", "[]", "[]"),
    (
        "permissions",
        "[{ path = \"pub\" }]",
        "[{ path = \"pub\" }]",
    ),
    (
        "permissions",
        "[{ path = \"/\" }, { path = \"/a/\" }, { path = \"/a\" }]",
        "[{ path = \"/\" }, { path = \"/a/\" }, { path = \"/a\" }]",
    ),
    (
        "permissions",
        "[{ path = \"/\", writeable = true }]",
        "[{ path = \"/\", writeable = true }]",
    ),
    ("permissions", "\"/\"", "\"/\""),
    ("tls_required", "yes", "\"yes\""),
    ("max_connections", "0", "0"),
    ("max_connections", "-1", "-1"),
    ("max_connections", "ten", "\"ten\""),
    ("download_limit", "banana", "\"banana\""),
    ("upload_limit", "-5", "\"-5\""),
    ("download_limit_per_connection", "1.5MiB", "\"1.5MiB\""),
    ("upload_limit_per_connection", "10mib", "\"10mib\""),
];

#[test]
fn every_bad_value_is_refused_on_its_field_with_the_configs_message() {
    for tls in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut bad: Vec<(&str, &str, &str)> = BAD.to_vec();
        bad.push(("tls_required", "login", "\"login\""));
        for (field, typed, written) in bad {
            // A value that no column can hold is refused as it is typed.
            let from_row = match row(field, typed) {
                Ok(record) => row_problems(&record, dir.path(), tls),
                Err(problem) => vec![(problem.field, problem.message)],
            };
            let from_file = config_problems(field, written, dir.path(), tls);
            if field == "tls_required" && typed == "login" && tls {
                assert_eq!(from_row, [], "valid with [tls]");
                continue;
            }
            assert!(!from_row.is_empty(), "{field} = {typed:?} was accepted");
            assert_eq!(from_row, from_file, "{field} = {typed:?} (tls: {tls})");
            // fs storage without its directory is a problem of the missing key.
            let expected = if field == "storage" && typed == "fs" {
                "base_path"
            } else {
                field
            };
            assert!(
                from_row
                    .iter()
                    .all(|(on, _)| on == expected || on.starts_with(&format!("{expected}["))),
                "{field} = {typed:?}: {from_row:?}"
            );
        }
    }
}

#[test]
fn every_good_value_is_taken_and_means_what_it_means_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let rules = AccountRules::standalone(dir.path().to_owned());
    let mut record = UserRecord::new("alice", hash(), "memory", 0);
    for (field, typed) in [
        ("storage", "fs"),
        ("base_path", "."),
        ("home", "/pub"),
        (
            "permissions",
            "[{ path = \"/\", writable = true }, { path = \"/pub\", readable = false }]",
        ),
        ("max_connections", "3"),
        ("download_limit", "1MiB"),
        ("upload_limit", "2048"),
        ("download_limit_per_connection", "64KiB"),
        ("upload_limit_per_connection", "1MB"),
        ("password", hash()),
    ] {
        set_field(&mut record, field, typed).unwrap_or_else(|p| panic!("{p}"));
    }
    let (user, _) = rules
        .account(&record, None)
        .unwrap_or_else(|p| panic!("{p:?}"));
    assert_eq!(user.login.as_deref(), Some("alice"));
    assert_eq!(user.home.as_str(), "/pub");
    assert_eq!(user.permissions.len(), 2);
    assert!(user.permissions[0].writable && !user.permissions[1].readable);
    assert_eq!(user.max_connections, Some(3));
    let rate = |r: Option<crate::throttle::Rate>| r.map(|r| r.bytes_per_second());
    assert_eq!(rate(user.limits.download), Some(1 << 20));
    assert_eq!(rate(user.limits.upload), Some(2048));
    assert_eq!(rate(user.limits.download_per_connection), Some(64 << 10));
    assert_eq!(rate(user.limits.upload_per_connection), Some(1_000_000));
    assert_eq!(record.storage_settings, "{ base_path = \".\" }");

    for field in [
        "home",
        "permissions",
        "max_connections",
        "download_limit",
        "upload_limit",
        "download_limit_per_connection",
        "upload_limit_per_connection",
    ] {
        unset_field(&mut record, field).unwrap();
    }
    let (user, _) = rules
        .account(&record, None)
        .unwrap_or_else(|p| panic!("{p:?}"));
    assert_eq!(user.home.as_str(), "/", "the [[users]] defaults again");
    assert!(user.permissions[0].readable && !user.permissions[0].writable);
    assert_eq!(user.max_connections, None);
}

#[test]
fn the_login_cannot_be_set_and_disabled_has_commands_of_its_own() {
    let mut record = UserRecord::new("alice", hash(), "memory", 0);
    for field in ["login", "disabled"] {
        assert_eq!(set_field(&mut record, field, "x").unwrap_err().field, field);
        assert_eq!(unset_field(&mut record, field).unwrap_err().field, field);
    }
    for field in ["password", "storage"] {
        assert!(unset_field(&mut record, field).is_err(), "{field}");
    }
    assert_eq!(
        set_field(&mut record, "permissions", "[{")
            .unwrap_err()
            .message
            .split(':')
            .next(),
        Some("TOML syntax error")
    );
}

#[test]
fn a_login_is_checked_as_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for login in ["", "two words", "tab\there"] {
        let record = UserRecord::new(login, hash(), "memory", 0);
        let problems = row_problems(&record, dir.path(), false);
        assert_eq!(problems.len(), 1, "{login:?}: {problems:?}");
        assert_eq!(problems[0].0, "login");
    }
}

#[test]
fn a_changed_storage_drops_the_old_backends_settings() {
    let mut record = UserRecord::new("alice", hash(), "fs", 0);
    set_field(&mut record, "base_path", "/srv/ftp").unwrap();
    set_field(&mut record, "storage", "fs").unwrap();
    assert_eq!(record.storage_settings, "{ base_path = \"/srv/ftp\" }");
    set_field(&mut record, "storage", "memory").unwrap();
    assert_eq!(record.storage_settings, "{}");
}

#[test]
fn storage_settings_that_are_no_table_or_hold_a_column_are_refused_on_that_field() {
    let dir = tempfile::tempdir().unwrap();
    for settings in ["[1]", "{ base_path = ", "{ home = \"/x\" }"] {
        let mut record = UserRecord::new("alice", hash(), "memory", 0);
        record.storage_settings = settings.to_owned();
        let problems = row_problems(&record, dir.path(), false);
        assert_eq!(problems.len(), 1, "{settings}: {problems:?}");
        assert_eq!(problems[0].0, "storage_settings", "{settings}");
    }
}

#[test]
fn an_s3_user_is_a_storage_kind_and_its_table_in_storage_settings_no_new_column() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("s3.key");
    std::fs::write(
        &key,
        "aws_access_key_id = GKexample\naws_secret_access_key = secret\n",
    )
    .unwrap();
    std::fs::set_permissions(&key, PermissionsExt::from_mode(0o600)).unwrap();
    let mut record = UserRecord::new("alice", hash(), "memory", 0);
    set_field(&mut record, "storage", "s3").unwrap();
    let table = format!(
        "{{ endpoint = \"http://127.0.0.1:3900\", bucket = \"files\", region = \"garage\", prefix = \"alice/\", credentials_file = \"{}\" }}",
        key.display()
    );
    set_field(&mut record, "s3", &table).unwrap();
    assert!(
        record.storage_settings.starts_with("{ s3 = { endpoint"),
        "{}",
        record.storage_settings
    );
    let rules = AccountRules::standalone(dir.path().to_owned());
    rules
        .account(&record, None)
        .unwrap_or_else(|p| panic!("{p:?}"));
    // A bad value in the table is refused as in [[users]], on its key.
    set_field(
        &mut record,
        "s3",
        "{ endpoint = \"ftp://x\", bucket = \"files\", region = \"garage\" }",
    )
    .unwrap();
    let problems = rules.account(&record, None).unwrap_err();
    assert!(problems.iter().all(|p| p.concerns("s3")), "{problems:?}");
}
