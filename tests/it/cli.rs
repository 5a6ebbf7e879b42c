//! The aioftpd binary: the README's first command, check-config, hash-password,
//! man pages, what it says when it may not bind a port.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::daemon::{Daemon, BIN};
use crate::support::{have_tool, password_hash, run_ok, RawClient};

/// The daemon without a config file, listening on a free loopback port.
fn embedded_default(dir: &Path, args: &[&str]) -> Daemon {
    let mut all = args.to_vec();
    all.extend(["--listen", "127.0.0.1:0"]);
    let daemon = Daemon::start(dir, &all);
    assert!(
        daemon
            .startup_log
            .iter()
            .any(|l| l.contains("no --config given") && l.contains("anonymous")),
        "the embedded default says what it serves: {:?}",
        daemon.startup_log
    );
    daemon
}

#[test]
fn without_config_serves_the_current_directory_read_only_to_anonymous() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), b"hi").unwrap();
    let daemon = embedded_default(dir.path(), &[]);
    let mut c = RawClient::connect(daemon.addr);
    c.login("anonymous", "me@example.com");
    assert_eq!(c.fetch("NLST").1, "hello.txt\r\n");
    assert_eq!(c.fetch("RETR hello.txt").1, "hi");
    c.cmd("PASV");
    assert_eq!(c.cmd("STOR new.txt").code, 550);
    assert_eq!(c.cmd("DELE hello.txt").code, 550);
    let mut named = RawClient::connect(daemon.addr);
    named.cmd("USER alice");
    assert_eq!(named.cmd("PASS x").code, 530);
}

#[test]
fn root_and_writable_let_anonymous_upload() {
    let dir = tempfile::tempdir().unwrap();
    let served = tempfile::tempdir().unwrap();
    let daemon = embedded_default(
        dir.path(),
        &["--root", served.path().to_str().unwrap(), "--writable"],
    );
    let mut c = RawClient::connect(daemon.addr);
    c.login("ftp", "x");
    assert_eq!(c.upload("STOR up.txt", b"uploaded").code, 226);
    assert_eq!(
        std::fs::read(served.path().join("up.txt")).unwrap(),
        b"uploaded"
    );
}

#[test]
fn check_config_accepts_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("good.toml");
    std::fs::write(
        &config,
        format!(
            "[[users]]\nlogin = \"alice\"\npassword = \"{}\"\nbase_path = \"{}\"\n",
            password_hash(),
            dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_config_names_file_line_and_key_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[server]\nidle_timeout = \"5m\"\n\n[[users]]\nlogin = \"bob\"\npassword = \"plain\"\nbase_path = \"/nonexistent/aioftpd\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = config.display().to_string();
    assert!(
        stderr.contains(&format!("{file}:6: users[0].password")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{file}:7: users[0].base_path")),
        "{stderr}"
    );
}

/// Runs `check-config` on `text`; its exit code, its stderr and the file's path.
fn check_config(text: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("aioftpd.toml");
    std::fs::write(&config, text).unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stderr, config.display().to_string())
}

#[test]
fn check_config_refuses_durations_too_long_for_the_clock_naming_file_line_and_key() {
    let (code, stderr, file) = check_config(
        "[server]
idle_timeout = 9223372036854775807

[login]
block_duration = \"87600h\"
credential_cache = 9223372036854775807

[[users]]
storage = \"memory\"
",
    );
    assert_eq!(code, Some(64), "{stderr}");
    for expected in [
        format!("{file}:2: server.idle_timeout: 9223372036854775807s is out of range: must be at most 168h"),
        format!("{file}:5: login.block_duration: 87600h is out of range: must be at most 8760h"),
        format!("{file}:6: login.credential_cache: 9223372036854775807s is out of range: must be at most 24h"),
    ] {
        assert!(stderr.contains(&expected), "{expected:?} missing from:\n{stderr}");
    }
}

#[test]
fn check_config_refuses_a_shutdown_timeout_it_cannot_read_as_it_does_any_duration() {
    let (code, stderr, file) = check_config(
        "[server]
shutdown_timeout = \"banana\"

[[users]]
storage = \"memory\"
",
    );
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{file}:2: server.shutdown_timeout: invalid duration \"banana\""
        )),
        "{stderr}"
    );
}

#[test]
fn check_config_reports_an_unknown_key_a_wrong_type_and_a_bad_value_in_one_run() {
    let (code, stderr, file) = check_config(
        "[server]
idle_timout = \"5m\"
atomic_uploads = \"yes\"
block_size = \"1KiB\"

[[users]]
storage = \"memory\"
",
    );
    assert_eq!(code, Some(64), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with(&format!(
            "{file}:2: server.idle_timout: unknown field `idle_timout`"
        )),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{file}:3: server.atomic_uploads: invalid type: string \"yes\", expected a boolean"
        )),
        "{stderr}"
    );
    assert!(
        lines[2].starts_with(&format!(
            "{file}:4: server.block_size: 1KiB is out of range"
        )),
        "{stderr}"
    );
}

#[test]
fn check_config_warns_about_a_risky_file_and_still_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("risky.toml");
    std::fs::write(
        &config,
        format!(
            "[server]
listen = [\"0.0.0.0:2121\"]

[[users]]
login = \"alice\"
password = \"{}\"
storage = \"memory\"

[[users]]
storage = \"memory\"
permissions = [{{ path = \"/\", writable = true }}]
",
            password_hash()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let file = config.display().to_string();
    for expected in [
        format!("{file}:2: server.listen: warning: passwords cross the network in clear"),
        format!(
            "{file}:11: users[1].permissions[0].writable: warning: the anonymous user can write"
        ),
        format!("{file}: passive.ports: warning: no passive port range"),
    ] {
        assert!(
            stderr.contains(&expected),
            "{expected:?} missing from:\n{stderr}"
        );
    }
    assert_eq!(stderr.lines().count(), 3, "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{file}: ok, with 3 warnings\n")
    );
}

#[test]
fn check_config_print_writes_toml_that_checks_again_and_prints_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("aioftpd.toml");
    std::fs::create_dir(dir.path().join("pub")).unwrap();
    std::fs::write(
        &config,
        "[server]\nlisten = [\"127.0.0.1:0\"]\nidle_timeout = 90\n\n[[users]]\nbase_path = \"pub\"\n",
    )
    .unwrap();
    let print = |path: &Path| {
        run_ok(
            Command::new(BIN)
                .args(["check-config", "--print", "--config"])
                .arg(path),
        )
    };
    let printed = print(&config);
    assert!(printed.contains("idle_timeout = \"90s\"\n"), "{printed}");
    assert!(printed.contains("data_timeout = \"30s\"\n"), "{printed}");
    let saved = tempfile::tempdir().unwrap();
    let copy = saved.path().join("effective.toml");
    std::fs::write(&copy, &printed).unwrap();
    assert_eq!(print(&copy), printed);
    // And the printed file serves.
    let daemon = Daemon::start(saved.path(), &["--config", copy.to_str().unwrap()]);
    let mut c = RawClient::connect(daemon.addr);
    c.login("anonymous", "me@example.com");
    assert_eq!(c.fetch("NLST").1, "");
}

#[test]
fn a_bad_config_stops_the_daemon_before_it_listens() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("typo.toml");
    std::fs::write(&config, "[server]\nidle_timout = \"5m\"\n").unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:2:", config.display())) && stderr.contains("idle_timout"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_log_level_stops_the_daemon_before_it_listens() {
    let out = Command::new(BIN)
        .args(["--log-level", "bogus", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown level `bogus`"), "{stderr}");
}

#[test]
fn a_port_below_1024_refused_for_want_of_the_capability_says_how_to_grant_it() {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|text| text.trim().parse::<u16>().ok())
        .unwrap_or(1024);
    if start <= 21 {
        eprintln!(
            "skipping: net.ipv4.ip_unprivileged_port_start is {start}, anyone may bind port 21"
        );
        return;
    }
    // Root could bind it: drop to nobody, without capabilities, first.
    // /proc/self belongs to the effective user.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let mut daemon = if root {
        if !have_tool("setpriv", &["--version"]) {
            return;
        }
        let mut setpriv = Command::new("setpriv");
        setpriv.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", BIN]);
        setpriv
    } else {
        Command::new(BIN)
    };
    let out = daemon
        .args(["--root", "/", "--listen", "127.0.0.1:21"])
        .current_dir("/")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.starts_with("setpriv:") {
        eprintln!("skipping: cannot become nobody here: {stderr}");
        return;
    }
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot listen on 127.0.0.1:21: Permission denied")
            && stderr.contains("need CAP_NET_BIND_SERVICE")
            && stderr.contains("setcap cap_net_bind_service=+ep "),
        "{stderr}"
    );
}

#[test]
fn hash_password_reads_stdin_and_prints_an_argon2id_hash() {
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let phc = String::from_utf8(out.stdout).unwrap();
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    let parsed = argon2::PasswordHash::new(phc.trim()).unwrap();
    use argon2::PasswordVerifier;
    assert!(argon2::Argon2::default()
        .verify_password(b"correct horse", &parsed)
        .is_ok());
}

#[test]
fn version_and_help() {
    let version = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("aioftpd "));
    let help = Command::new(BIN).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for word in [
        "check-config",
        "hash-password",
        "--config",
        "--listen",
        "--root",
        "--writable",
    ] {
        assert!(text.contains(word), "{word} missing from --help");
    }
}

#[test]
fn man_writes_a_page_for_every_subcommand_a_page_names() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("man")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut written: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    let main = std::fs::read_to_string(dir.path().join("aioftpd.1")).unwrap();
    assert!(main.contains(".TH aioftpd 1"), "{main}");
    // roff escapes the hyphens: aioftpd\-check\-config(1), aioftpd\-user\-add(1).
    let mut pages: Vec<String> = written
        .iter()
        .flat_map(|page| {
            let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
            text.lines()
                .filter_map(|line| line.strip_prefix("aioftpd\\-")?.strip_suffix("(1)"))
                .map(|sub| format!("aioftpd-{}.1", sub.replace("\\-", "-")))
                .collect::<Vec<_>>()
        })
        .chain(["aioftpd.1".to_owned()])
        .collect();
    pages.sort();
    pages.dedup();
    assert_eq!(written, pages, "one page per subcommand a page names");
    for visible in [
        "run",
        "check-config",
        "hash-password",
        "user",
        "user-add",
        "user-set",
    ] {
        let page = format!("aioftpd-{visible}.1");
        assert!(written.contains(&page), "{page} missing: {written:?}");
    }
}

#[test]
fn completions_come_from_the_clap_definitions() {
    let bash = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(bash.status.success());
    assert!(String::from_utf8_lossy(&bash.stdout).contains("complete -F _aioftpd"));
}
