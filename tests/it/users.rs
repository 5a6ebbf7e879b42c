//! Users from a database: `aioftpd user` (the real binary) on a real SQLite
//! file or a PostgreSQL server of the test's own, and the running daemon
//! logging them in, with real clients, without a reload.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use crate::support::daemon::{Daemon, BIN};
use crate::support::postgres::Postgres;
use crate::support::{have_tool, pattern, run_ok, RawClient, IO_TIMEOUT};

const PASSWORD: &str = "db-pw";

/// A config in `dir` over the database `section` describes, with `extra`
/// appended: no `[[users]]` needed, failures answered at once.
fn config(dir: &Path, section: &str, extra: &str) -> PathBuf {
    let path = dir.join("aioftpd.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\ndata_timeout = \"20s\"\n\
             [login]\nfailure_delay = \"0s\"\nmax_failures_per_ip = 1000\n\
             {section}{extra}"
        ),
    )
    .unwrap();
    path
}

fn sqlite(lifetime: &str) -> String {
    format!("[users_database]\nurl = \"sqlite:users.db\"\ncache_lifetime = \"{lifetime}\"\n")
}

fn postgres(server: &Postgres, dir: &Path, lifetime: &str) -> String {
    format!(
        "[users_database]\nurl = \"{}\"\npassword_file = \"{}\"\ncache_lifetime = \"{lifetime}\"\n",
        server.url(),
        server.password_file(dir).display()
    )
}

/// `aioftpd user args... --config config`, `stdin` on its standard input.
pub(crate) fn user(config: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .arg("user")
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("aioftpd user");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// `aioftpd user args...` that must succeed.
pub(crate) fn user_ok(config: &Path, args: &[&str], stdin: &str) -> String {
    let out = user(config, args, stdin);
    assert!(
        out.status.success(),
        "aioftpd user {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Adds `login` (password [`PASSWORD`]) reading and writing `files/`.
fn add(config: &Path, login: &str) {
    user_ok(
        config,
        &[
            "add",
            login,
            "--base-path",
            "files",
            "--permissions",
            "[{ path = \"/\", writable = true }]",
        ],
        &format!("{PASSWORD}\n"),
    );
}

/// The reply to `PASS` for `login` on a fresh connection.
pub(crate) fn login_code(daemon: &Daemon, login: &str, password: &str) -> u16 {
    let mut c = RawClient::connect(daemon.addr);
    assert_eq!(c.cmd(&format!("USER {login}")).code, 331);
    let code = c.cmd(&format!("PASS {password}")).code;
    if code == 230 {
        c.cmd("QUIT");
    }
    code
}

/// Logs in again and again until `PASS` answers `code`, within the test's
/// I/O timeout: what a change waits for is the cache lifetime running out.
fn until_login_answers(daemon: &Daemon, login: &str, code: u16) {
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut last = 0;
    while Instant::now() < deadline {
        last = login_code(daemon, login, PASSWORD);
        if last == code {
            return;
        }
    }
    panic!("{login}: PASS still answers {last}, not {code}");
}

/// Runs one SQL statement on the SQLite file `db`, as an admin might.
fn sqlite_exec(db: &Path, statement: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        sqlx::query(statement).execute(&pool).await.unwrap();
        pool.close().await;
    });
}

fn added_user_logs_in_with_curl_and_lftp_without_a_reload(dir: &Path, section: &str) {
    if !have_tool("curl", &["--version"]) || !have_tool("lftp", &["--version"]) {
        return;
    }
    std::fs::create_dir(dir.join("files")).unwrap();
    std::fs::write(dir.join("files/hello.txt"), b"hello from the database").unwrap();
    let config = config(dir, section, "");
    let daemon = Daemon::start(dir, &["--config", config.to_str().unwrap()]);
    assert!(
        daemon
            .startup_log
            .iter()
            .any(|line| line.contains("users database ready")),
        "{:?}",
        daemon.startup_log
    );
    assert_eq!(login_code(&daemon, "alice", PASSWORD), 530);

    add(&config, "alice");
    let got = run_ok(Command::new("curl").args([
        "--silent",
        "--show-error",
        "--max-time",
        "60",
        &format!("ftp://alice:{PASSWORD}@{}/hello.txt", daemon.addr),
    ]));
    assert_eq!(got, "hello from the database");

    let work = tempfile::tempdir().unwrap();
    let bytes = pattern(300_000, 7);
    std::fs::write(work.path().join("up.bin"), &bytes).unwrap();
    run_ok(
        Command::new("lftp")
            .args(["-u", &format!("alice,{PASSWORD}"), "-e"])
            .arg(format!(
                "set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 20; \
                 put {} -o up.bin; bye",
                work.path().join("up.bin").display()
            ))
            .arg(format!("ftp://{}", daemon.addr)),
    );
    assert_eq!(std::fs::read(dir.join("files/up.bin")).unwrap(), bytes);
}

#[test]
fn a_user_added_with_aioftpd_user_logs_in_with_curl_and_lftp_without_a_reload_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    added_user_logs_in_with_curl_and_lftp_without_a_reload(dir.path(), &sqlite("30s"));
}

#[test]
fn a_user_added_with_aioftpd_user_logs_in_with_curl_and_lftp_without_a_reload_postgresql() {
    let Some(server) = Postgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let section = postgres(&server, dir.path(), "30s");
    added_user_logs_in_with_curl_and_lftp_without_a_reload(dir.path(), &section);
}

#[test]
fn disable_and_enable_take_effect_within_the_cache_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("files")).unwrap();
    let config = config(dir.path(), &sqlite("1s"), "");
    let daemon = Daemon::start(dir.path(), &["--config", config.to_str().unwrap()]);
    add(&config, "alice");
    assert_eq!(login_code(&daemon, "alice", PASSWORD), 230);
    assert_eq!(
        user_ok(&config, &["disable", "alice"], ""),
        "disabled alice\n"
    );
    until_login_answers(&daemon, "alice", 530);
    user_ok(&config, &["enable", "alice"], "");
    until_login_answers(&daemon, "alice", 230);
    // A new password, likewise: the old one stops working.
    user_ok(&config, &["passwd", "alice"], "n3w-pw\n");
    until_login_answers(&daemon, "alice", 530);
    assert_eq!(login_code(&daemon, "alice", "n3w-pw"), 230);
}

#[test]
fn a_stopped_database_fails_the_next_login_with_421_while_a_running_transfer_completes() {
    let Some(mut server) = Postgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("files")).unwrap();
    let bytes = pattern(16 << 20, 11);
    std::fs::write(dir.path().join("files/big.bin"), &bytes).unwrap();
    let config = config(dir.path(), &postgres(&server, dir.path(), "30s"), "");
    let mut daemon = Daemon::start(dir.path(), &["--config", config.to_str().unwrap()]);
    add(&config, "alice");
    add(&config, "bob");

    let mut alice = RawClient::connect(daemon.addr);
    alice.login("alice", PASSWORD);
    assert_eq!(alice.cmd("TYPE I").code, 200);
    let mut data = alice.pasv();
    assert_eq!(alice.cmd("RETR big.bin").code, 150);
    // The transfer is under way, waiting for us to read on.
    let mut got = vec![0; 64 << 10];
    data.read_exact(&mut got).unwrap();

    server.stop();
    assert!(!server.running());
    let mut bob = RawClient::connect(daemon.addr);
    assert_eq!(bob.cmd("USER bob").code, 331);
    let refused = bob.cmd(&format!("PASS {PASSWORD}"));
    assert_eq!(refused.code, 421, "{refused:?}");
    assert!(bob.try_reply().is_none(), "421 closes the connection");
    let logged = daemon.wait_for("users database: cannot look the login up");
    assert!(logged.contains("bob"), "{logged}");
    daemon.wait_for("login not checked");

    data.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), bytes.len());
    assert!(got == bytes, "the transfer arrived whole");
    assert_eq!(alice.reply().code, 226);
}

#[test]
fn a_database_of_an_unknown_schema_version_is_refused_clearly_and_nobody_gets_in() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("files")).unwrap();
    let config = config(dir.path(), &sqlite("30s"), "");
    add(&config, "alice");
    sqlite_exec(
        &dir.path().join("users.db"),
        "UPDATE _sqlx_migrations SET version = 999 \
         WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    );

    let out = user(&config, &["list"], "");
    assert_eq!(out.status.code(), Some(69));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("schema version 999 is unknown to this aioftpd"),
        "{stderr}"
    );

    let checked = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(checked.status.code(), Some(0), "the file itself is valid");
    let warned = String::from_utf8_lossy(&checked.stderr);
    assert!(warned.contains("users_database: warning:"), "{warned}");
    assert!(warned.contains("schema version 999"), "{warned}");

    let mut daemon = Daemon::start(dir.path(), &["--config", config.to_str().unwrap()]);
    assert!(
        daemon
            .startup_log
            .iter()
            .any(|line| line.contains("schema version 999 is unknown to this aioftpd")),
        "{:?}",
        daemon.startup_log
    );
    assert_eq!(login_code(&daemon, "alice", PASSWORD), 421);
    daemon.wait_for("schema version 999");
}

#[test]
fn a_row_with_an_invalid_rule_refuses_its_login_naming_the_user_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("files")).unwrap();
    let config = config(dir.path(), &sqlite("30s"), "");
    add(&config, "alice");
    add(&config, "bob");
    // Written by hand: aioftpd user set refuses such a rule.
    let refused = user(
        &config,
        &["set", "alice", "permissions", "[{ path = \"pub\" }]"],
        "",
    );
    assert_eq!(refused.status.code(), Some(64));
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr),
        "permissions[0].path: \"pub\" must be an absolute virtual path starting with \"/\"\n"
    );
    sqlite_exec(
        &dir.path().join("users.db"),
        "UPDATE aioftpd_users SET permissions = '[{ path = \"pub\" }]' WHERE login = 'alice'",
    );

    let mut daemon = Daemon::start(dir.path(), &["--config", config.to_str().unwrap()]);
    assert_eq!(login_code(&daemon, "alice", "wrong"), 530);
    let logged = daemon.wait_for("invalid value in this user's row");
    for part in [
        "alice",
        "permissions[0].path",
        "must be an absolute virtual path",
    ] {
        assert!(logged.contains(part), "{part:?} missing from {logged}");
    }
    assert_eq!(login_code(&daemon, "alice", PASSWORD), 421);
    assert_eq!(
        login_code(&daemon, "bob", PASSWORD),
        230,
        "only that row is refused"
    );

    let shown = user_ok(&config, &["show", "alice"], "");
    assert!(
        shown.contains("problem: permissions[0].path: \"pub\" must be"),
        "{shown}"
    );
    assert!(!shown.contains("argon2"), "never the hash: {shown}");
}

#[test]
fn a_login_in_both_the_config_and_the_database_is_the_configs_and_both_tools_warn() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("files")).unwrap();
    let hash = crate::support::password_hash();
    let config = config(
        dir.path(),
        &sqlite("30s"),
        &format!("[[users]]\nlogin = \"carol\"\npassword = \"{hash}\"\nstorage = \"memory\"\n"),
    );
    let out = user(&config, &["add", "carol", "--storage", "memory"], "other\n");
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("config, which wins"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checked = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let warned = String::from_utf8_lossy(&checked.stderr);
    assert!(
        warned.contains("users[0].login: warning: \"carol\" is also a login in the users database"),
        "{warned}"
    );
    let daemon = Daemon::start(dir.path(), &["--config", config.to_str().unwrap()]);
    assert_eq!(login_code(&daemon, "carol", "other"), 530);
    assert_eq!(login_code(&daemon, "carol", crate::support::PASSWORD), 230);
}

#[test]
fn list_and_show_give_every_field_but_the_hash_as_a_table_or_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("files")).unwrap();
    let config = config(dir.path(), &sqlite("30s"), "");
    add(&config, "alice");
    user_ok(
        &config,
        &["add", "bob", "--storage", "memory", "--disabled"],
        "pw\n",
    );
    user_ok(
        &config,
        &["set", "bob", "max_connections", "2", "home", "/in"],
        "",
    );
    let table = user_ok(&config, &["list"], "");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("LOGIN"), "{table}");
    assert!(
        lines[1].starts_with("alice") && lines[1].contains("enabled"),
        "{table}"
    );
    assert!(
        lines[2].starts_with("bob") && lines[2].contains("disabled"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&user_ok(&config, &["list", "--json"], "")).unwrap();
    assert_eq!(json[1]["login"], "bob");
    assert_eq!(json[1]["max_connections"], 2);
    assert_eq!(json[1]["home"], "/in");
    let shown: serde_json::Value =
        serde_json::from_str(&user_ok(&config, &["show", "bob", "--json"], "")).unwrap();
    assert_eq!(shown["disabled"], true);
    assert!(
        !table.contains("argon2") && !shown.to_string().contains("argon2"),
        "never the hash"
    );
    assert_eq!(user_ok(&config, &["del", "bob"], ""), "deleted bob\n");
    assert_eq!(user(&config, &["show", "bob"], "").status.code(), Some(64));
}
