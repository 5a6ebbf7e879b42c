//! The `[tls]` private key must be the daemon's secret: a key file others
//! may read, or its group or others may write, is refused at start and at
//! reload, as OpenSSH refuses such keys. Group-readable stays allowed
//! (Debian's ssl-cert group: a key `0640 root:ssl-cert`).

use std::ffi::OsStr;
use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::support::daemon::{Daemon, BIN};
use crate::support::ftps::{
    client_config, tls_config, write_pems, FtpsClient, TlsOptions, TLS13_FIRST,
};
use crate::support::PASSWORD;

/// A served tree, and a work directory with the PEM files (the key `0600`)
/// and a config naming them.
struct Setup {
    _served: TempDir,
    work: TempDir,
    config: PathBuf,
    key: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let served = tempfile::tempdir().unwrap();
        for dir in ["pub", "readonly", "secret"] {
            std::fs::create_dir(served.path().join(dir)).unwrap();
        }
        let work = tempfile::tempdir().unwrap();
        write_pems(work.path());
        let config = work.path().join("aioftpd.toml");
        let text = tls_config(served.path(), work.path(), TlsOptions::default());
        std::fs::write(&config, text).unwrap();
        let key = work.path().join("key.pem");
        Setup {
            _served: served,
            work,
            config,
            key,
        }
    }

    /// Points `private_key` at `key` instead.
    fn use_key(&self, key: &Path) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let text = text.replace(&self.key.display().to_string(), &key.display().to_string());
        std::fs::write(&self.config, text).unwrap();
    }

    /// `config:line: tls.private_key: ` as the config reports it.
    fn key_issue(&self) -> String {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let line = text
            .lines()
            .position(|l| l.starts_with("private_key"))
            .unwrap()
            + 1;
        format!("{}:{line}: tls.private_key: ", self.config.display())
    }

    /// `aioftpd check-config` on the config: its exit code and stderr.
    fn check(&self) -> (Option<i32>, String) {
        let out = Command::new(BIN)
            .args(["check-config", "--config"])
            .arg(&self.config)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The daemon's command line: `--config` and the config.
    fn args(&self) -> [&OsStr; 2] {
        [OsStr::new("--config"), self.config.as_os_str()]
    }

    fn start(&self) -> Daemon {
        Daemon::start(self.work.path(), &self.args())
    }
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
}

/// Logs in as alice over explicit FTPS and lists `/` over a protected data connection.
fn ftps_listing_works(daemon: &Daemon) {
    let mut c = FtpsClient::explicit(daemon.addr, client_config(TLS13_FIRST));
    c.login("alice", PASSWORD);
    c.protect_data();
    let (reply, _) = c.download("NLST");
    assert_eq!(reply.code, 226, "{reply:?}");
}

#[test]
fn a_world_readable_private_key_stops_the_daemon_with_the_chmod_to_run() {
    let setup = Setup::new();
    chmod(&setup.key, 0o644);
    let (status, log) = Daemon::refused(setup.work.path(), &setup.args());
    assert_eq!(status.code(), Some(64), "{log}");
    let key = setup.key.display();
    let expected = format!(
        "{}{key} has mode 0644: a private key must not be readable by others nor writable by its group or others; run `chmod 600 {key}` (or `chmod 640 {key}` to share it with one group, such as ssl-cert)",
        setup.key_issue()
    );
    assert!(log.contains(&expected), "{expected:?} missing from:\n{log}");
}

#[test]
fn a_key_others_may_read_or_group_or_others_may_write_is_refused_by_check_config() {
    let setup = Setup::new();
    for mode in [0o644, 0o604, 0o666, 0o620, 0o602, 0o660, 0o4604] {
        chmod(&setup.key, mode);
        let (code, stderr) = setup.check();
        assert_eq!(code, Some(64), "mode {mode:04o}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "{}{} has mode {mode:04o}:",
                setup.key_issue(),
                setup.key.display()
            )),
            "mode {mode:04o}: {stderr}"
        );
    }
}

#[test]
fn a_key_only_its_owner_and_group_may_read_is_accepted() {
    let setup = Setup::new();
    for mode in [0o600, 0o400, 0o640, 0o440, 0o700] {
        chmod(&setup.key, mode);
        let (code, stderr) = setup.check();
        assert_eq!(code, Some(0), "mode {mode:04o}: {stderr}");
    }
    // Debian's ssl-cert pattern, on a running daemon.
    chmod(&setup.key, 0o640);
    ftps_listing_works(&setup.start());
}

#[test]
fn a_symlinked_key_is_judged_by_its_target() {
    let setup = Setup::new();
    let link = setup.work.path().join("live-key.pem");
    std::os::unix::fs::symlink(&setup.key, &link).unwrap();
    setup.use_key(&link);
    let (code, stderr) = setup.check();
    assert_eq!(code, Some(0), "a 0600 target behind a link: {stderr}");
    chmod(&setup.key, 0o644);
    let (code, stderr) = setup.check();
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}{} has mode 0644:",
            setup.key_issue(),
            link.display()
        )),
        "the message names the configured path: {stderr}"
    );
}

#[test]
fn a_reload_onto_a_world_readable_key_is_rejected_and_the_old_one_serves_on() {
    let setup = Setup::new();
    let mut daemon = setup.start();
    // A renewal that copied the new key without its mode.
    let renewed = setup.work.path().join("renewed-key.pem");
    std::fs::copy(&setup.key, &renewed).unwrap();
    chmod(&renewed, 0o644);
    setup.use_key(&renewed);
    daemon.signal("HUP");
    daemon.wait_for("reload rejected, the old config stays in force");
    let issue = daemon.wait_for("tls.private_key");
    assert!(
        issue.contains(&format!("{} has mode 0644:", renewed.display()))
            && issue.contains(&format!("chmod 600 {}", renewed.display())),
        "{issue}"
    );
    ftps_listing_works(&daemon);

    chmod(&renewed, 0o600);
    daemon.signal("HUP");
    daemon.wait_for("config reloaded");
    ftps_listing_works(&daemon);
}
