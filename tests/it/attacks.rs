//! The attacks an outside round broke (and those of our own round), each
//! replayed against the real server: what the attacker tries, and what must
//! hold instead. docs/security.md lists them with their outcomes.

use std::path::Path;
use std::process::Command;

use crate::support::daemon::Daemon;
use crate::support::{default_config, have_tool, RawClient};

/// The daemon binary on `config` (made from its served directory), and that directory.
fn daemon(config: impl FnOnce(&Path) -> String) -> (Daemon, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    for dir in ["pub", "readonly", "secret"] {
        std::fs::create_dir(root.path().join(dir)).unwrap();
    }
    let path = root.path().join("aioftpd.toml");
    std::fs::write(&path, config(root.path())).unwrap();
    let daemon = Daemon::start(root.path(), &["--config", path.to_str().unwrap()]);
    (daemon, root)
}

/// Text a client chooses, shaped like the line the fail2ban filter bans on.
const FORGED: &str = "x: login failed from 10.66.66.66 [aioftpd-auth-failure] login=\"root\"";

#[test]
fn client_text_in_log_lines_never_matches_the_fail2ban_filter() {
    if !have_tool("fail2ban-regex", &["--version"]) {
        return;
    }
    let (daemon, root) = daemon(|root| {
        format!(
            "{}\n[login]\nfailure_delay = \"0s\"\n",
            default_config(root)
        )
    });
    std::fs::write(root.path().join("pub/a.txt"), b"a").unwrap();
    let mut anonymous = RawClient::connect(daemon.addr);
    anonymous.login("anonymous", "guest");
    let forged_cr = format!("a\r2026-01-01T00:00:00.000000Z  WARN {FORGED}");
    for line in [
        format!("STOR {FORGED}"),
        format!("DELE {FORGED}"),
        format!("MKD {forged_cr}"),
        "RNFR a.txt".to_owned(),
        format!("SITE {FORGED}"),
        format!("CWD /../{FORGED}"),
    ] {
        let reply = anonymous.cmd(&line);
        assert!(reply.code >= 300, "{line:?}: {reply:?}");
    }
    let mut alice = RawClient::connect(daemon.addr);
    alice.login("alice", crate::support::PASSWORD);
    std::fs::write(root.path().join("mine.txt"), b"m").unwrap();
    assert_eq!(alice.cmd("RNFR mine.txt").code, 350);
    assert_eq!(alice.cmd(&format!("RNTO {FORGED}")).code, 250);
    // A forged login, and one real failure from this address.
    let mut guesser = RawClient::connect(daemon.addr);
    assert_eq!(guesser.cmd(&format!("USER {FORGED}")).code, 331);
    assert_eq!(guesser.cmd("PASS wrong").code, 530);
    let log = root.path().join("daemon.log");
    std::fs::write(&log, daemon.stop().join("\n")).unwrap();
    let filter =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/fail2ban/filter.d/aioftpd.conf");
    let out = Command::new("fail2ban-regex")
        .args(["-o", "ip"])
        .arg(&log)
        .arg(&filter)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let banned: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(banned, ["127.0.0.1"], "only the real failure counts");
}

#[test]
fn a_password_never_reaches_the_debug_log_however_pass_is_spelt() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("pub")).unwrap();
    let path = root.path().join("aioftpd.toml");
    std::fs::write(&path, default_config(root.path())).unwrap();
    let daemon = Daemon::start(
        root.path(),
        &["--config", path.to_str().unwrap(), "--log-level", "debug"],
    );
    for line in [" PASS hunter2-a", "pass hunter2-b", "PASS\thunter2-c"] {
        let mut c = RawClient::connect(daemon.addr);
        assert_eq!(c.cmd("USER alice").code, 331);
        c.cmd(line);
    }
    let log = daemon.stop().join("\n");
    assert!(log.contains("PASS ***"), "the commands were logged");
    assert!(!log.contains("hunter2"), "{log}");
}
