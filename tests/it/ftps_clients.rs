//! The FTPS clients admins use, against the daemon binary with
//! `require_session_reuse = true` (the default): rclone with its default
//! pool and with one connection, lftp mirror with parallel transfers, wget's
//! recursive download, curl with several transfers on one connection, and
//! Python's ftplib with a subclass that resumes the control session; over
//! explicit and implicit TLS, TLS 1.3 and 1.2. Every run must copy a tree
//! byte for byte, and the daemon must log no failed transfer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::daemon::Daemon;
use crate::support::ftplib_script;
use crate::support::ftps::{tls_config, write_pems, TlsOptions};
use crate::support::{have_tool, pattern, run_ok, PASSWORD};

/// The daemon with `[tls]` on an explicit and an implicit listener.
struct FtpsDaemon {
    daemon: Daemon,
    explicit: SocketAddr,
    implicit: SocketAddr,
    served: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl FtpsDaemon {
    fn start() -> Self {
        let served = tempfile::tempdir().unwrap();
        for dir in ["pub", "readonly", "secret"] {
            std::fs::create_dir(served.path().join(dir)).unwrap();
        }
        let work = tempfile::tempdir().unwrap();
        write_pems(work.path());
        let options = TlsOptions {
            implicit: true,
            ..TlsOptions::default()
        };
        let config = tls_config(served.path(), work.path(), options);
        let path = work.path().join("aioftpd.toml");
        std::fs::write(&path, config).unwrap();
        let mut daemon = Daemon::start(work.path(), &["--config", path.to_str().unwrap()]);
        let line = daemon.wait_for("implicit TLS");
        let implicit = line[line.find("addr=").unwrap() + 5..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        FtpsDaemon {
            explicit: daemon.addr,
            implicit,
            daemon,
            served,
            work,
        }
    }

    fn ca(&self) -> String {
        self.work
            .path()
            .join("cert.pem")
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// A fresh local directory under the work directory.
    fn local(&self, name: &str) -> PathBuf {
        let dir = self.work.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Stops the daemon; panics if it logged a failed transfer.
    fn assert_no_failed_transfer(self) {
        let failed: Vec<String> = self
            .daemon
            .stop()
            .into_iter()
            .filter(|line| line.contains("result=\"failed\""))
            .collect();
        assert!(
            failed.is_empty(),
            "failed transfers:\n{}",
            failed.join("\n")
        );
    }
}

/// A tree with an empty file, small and large files and a subdirectory.
fn sample_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    std::fs::write(dir.join("empty.bin"), b"").unwrap();
    std::fs::write(dir.join("large.bin"), pattern(3_000_000, 31)).unwrap();
    // Enough files that one connection makes dozens of data connections.
    for i in 0..48 {
        std::fs::write(
            dir.join(format!("small-{i}.bin")),
            pattern(1000 + i * 7919, 40 + i as u64),
        )
        .unwrap();
    }
    std::fs::write(dir.join("sub/s.txt"), b"in a subdirectory\n").unwrap();
    std::fs::write(dir.join("sub/deeper/d.bin"), pattern(250_000, 33)).unwrap();
}

/// Every file under `dir`, by path relative to it.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap().to_owned();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[track_caller]
fn assert_same_tree(got: &Path, want: &Path) {
    let (got, want) = (tree(got), tree(want));
    let names = |t: &BTreeMap<PathBuf, Vec<u8>>| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&got), names(&want), "file names");
    for (path, bytes) in &want {
        assert!(got[path] == *bytes, "{} differs", path.display());
    }
}

// rclone (Go's crypto/tls: a session cache shared by its pool of connections)

fn rclone(server: &FtpsDaemon, implicit: bool, tls13: bool) {
    if !have_tool("rclone", &["version"]) {
        return;
    }
    let src = server.local("src");
    sample_tree(&src);
    let rclone_config = server.work.path().join("rclone.conf");
    std::fs::write(&rclone_config, "").unwrap();
    let obscured = run_ok(Command::new("rclone").args(["obscure", PASSWORD]));
    let addr = if implicit {
        server.implicit
    } else {
        server.explicit
    };
    for (pool, name) in [(None, "pool"), (Some("1"), "one")] {
        let mut args: Vec<String> = vec![
            "--config".into(),
            rclone_config.to_str().unwrap().into(),
            "--ftp-host".into(),
            addr.ip().to_string(),
            "--ftp-port".into(),
            addr.port().to_string(),
            "--ftp-user".into(),
            "alice".into(),
            "--ftp-pass".into(),
            obscured.trim().into(),
            "--ftp-no-check-certificate".into(),
            // A failure must show, not be retried away.
            "--retries".into(),
            "1".into(),
            "--low-level-retries".into(),
            "1".into(),
            if implicit {
                "--ftp-tls"
            } else {
                "--ftp-explicit-tls"
            }
            .into(),
        ];
        if !tls13 {
            args.push("--ftp-disable-tls13".into());
        }
        if let Some(connections) = pool {
            args.extend(["--ftp-concurrency".into(), connections.into()]);
        }
        let remote = format!(":ftp:/{name}");
        run_ok(
            Command::new("rclone")
                .arg("copy")
                .arg(&src)
                .arg(&remote)
                .args(&args),
        );
        assert_same_tree(&server.served.path().join(name), &src);
        let back = server.local(&format!("back-{name}"));
        run_ok(
            Command::new("rclone")
                .arg("copy")
                .arg(&remote)
                .arg(&back)
                .args(&args),
        );
        assert_same_tree(&back, &src);
    }
}

#[test]
fn rclone_copies_both_ways_over_explicit_tls_1_3_with_its_pool_and_with_one_connection() {
    let server = FtpsDaemon::start();
    rclone(&server, false, true);
    server.assert_no_failed_transfer();
}

#[test]
fn rclone_copies_both_ways_over_explicit_tls_1_2_with_its_pool_and_with_one_connection() {
    let server = FtpsDaemon::start();
    rclone(&server, false, false);
    server.assert_no_failed_transfer();
}

#[test]
fn rclone_copies_both_ways_over_implicit_tls_1_3_with_its_pool_and_with_one_connection() {
    let server = FtpsDaemon::start();
    rclone(&server, true, true);
    server.assert_no_failed_transfer();
}

#[test]
fn rclone_copies_both_ways_over_implicit_tls_1_2_with_its_pool_and_with_one_connection() {
    let server = FtpsDaemon::start();
    rclone(&server, true, false);
    server.assert_no_failed_transfer();
}

// lftp (GnuTLS: every data connection resumes its control connection's session)

fn lftp_mirror(priority: &str) {
    if !have_tool("lftp", &["--version"]) {
        return;
    }
    let server = FtpsDaemon::start();
    let src = server.local("src");
    sample_tree(&src);
    let back = server.local("back");
    let script = format!(
        "set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 20; \
         set ftp:ssl-force true; set ftp:ssl-protect-data true; \
         set ssl:ca-file {ca}; set ssl:priority {priority}; \
         set mirror:parallel-transfer-count 4; \
         mirror -R {src} up; mirror up {back}; bye",
        ca = server.ca(),
        src = src.display(),
        back = back.display(),
    );
    run_ok(
        Command::new("lftp")
            .args(["-u", &format!("alice,{PASSWORD}"), "-e", &script])
            .arg(format!("ftp://{}", server.explicit)),
    );
    assert_same_tree(&server.served.path().join("up"), &src);
    assert_same_tree(&back, &src);
    server.assert_no_failed_transfer();
}

#[test]
fn lftp_mirrors_both_ways_with_four_parallel_transfers_over_tls_1_3() {
    lftp_mirror("NORMAL:-VERS-ALL:+VERS-TLS1.3");
}

#[test]
fn lftp_mirrors_both_ways_with_four_parallel_transfers_over_tls_1_2() {
    lftp_mirror("NORMAL:-VERS-ALL:+VERS-TLS1.2");
}

// wget (GnuTLS)

#[test]
fn wget_fetches_a_tree_recursively_over_explicit_and_implicit_tls() {
    if !have_tool("wget", &["--version"]) {
        return;
    }
    let server = FtpsDaemon::start();
    sample_tree(&server.served.path().join("tree"));
    for (addr, implicit) in [(server.explicit, false), (server.implicit, true)] {
        let into = server.local(if implicit { "implicit" } else { "explicit" });
        let mut wget = Command::new("wget");
        wget.current_dir(&into)
            .args(["-r", "-nH", "--cut-dirs=1", "--no-verbose", "--tries=1"])
            .arg(format!("--ca-certificate={}", server.ca()));
        if implicit {
            wget.arg("--ftps-implicit");
        }
        run_ok(wget.arg(format!("ftps://alice:{PASSWORD}@{addr}/tree/")));
        assert_same_tree(&into, &server.served.path().join("tree"));
    }
    server.assert_no_failed_transfer();
}

// curl (OpenSSL: each TLS 1.3 ticket once, only the newest kept)

#[test]
fn curl_uploads_and_downloads_several_files_on_one_connection_over_tls_1_3() {
    if !have_tool("curl", &["--version"]) {
        return;
    }
    let server = FtpsDaemon::start();
    let local = server.local("local");
    let files: Vec<PathBuf> = (0..3)
        .map(|i| {
            let path = local.join(format!("c{i}.bin"));
            std::fs::write(&path, pattern(400_000 + i * 1000, 50 + i as u64)).unwrap();
            path
        })
        .collect();
    let base = format!("ftp://{}/c", server.explicit);
    let common = [
        "--silent".to_owned(),
        "--show-error".to_owned(),
        "--ssl-reqd".to_owned(),
        "--tlsv1.3".to_owned(),
        "--cacert".to_owned(),
        server.ca(),
        "--user".to_owned(),
        format!("alice:{PASSWORD}"),
    ];
    // --next keeps the connection: two uploads, two downloads, one upload.
    let mut curl = Command::new("curl");
    curl.args(&common).arg("--ftp-create-dirs");
    for file in &files[..2] {
        curl.arg("-T").arg(file).arg(format!("{base}/"));
    }
    curl.arg("--next").args(&common);
    for (i, _) in files[..2].iter().enumerate() {
        curl.arg("-o")
            .arg(local.join(format!("back{i}.bin")))
            .arg(format!("{base}/c{i}.bin"));
    }
    curl.arg("--next")
        .args(&common)
        .arg("-T")
        .arg(&files[2])
        .arg(format!("{base}/"));
    let out = curl.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (i, file) in files.iter().enumerate() {
        let want = std::fs::read(file).unwrap();
        assert!(std::fs::read(server.served.path().join(format!("c/c{i}.bin"))).unwrap() == want);
        if i < 2 {
            assert!(std::fs::read(local.join(format!("back{i}.bin"))).unwrap() == want);
        }
    }
    server.assert_no_failed_transfer();
}

// Python's ftplib with a subclass that resumes the control session

const FTPLIB_REUSE_SCRIPT: &str = r#"
import ftplib, io, ssl, sys

class ReusingFTP_TLS(ftplib.FTP_TLS):
    """Data connections resume the control connection's TLS session."""
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(
                conn, server_hostname=self.host, session=self.sock.session)
        return conn, size

host, port, user, password, ca, version = sys.argv[1:7]
context = ssl.create_default_context(cafile=ca)
if version == "1.2":
    context.maximum_version = ssl.TLSVersion.TLSv1_2
f = ReusingFTP_TLS(context=context)
f.connect(host, int(port), timeout=30)
f.login(user, password)
f.prot_p()
data = bytes(range(256)) * 2000
for name in ("a.bin", "b.bin", "c.bin"):
    f.storbinary("STOR " + name, io.BytesIO(data))
    out = io.BytesIO()
    f.retrbinary("RETR " + name, out.write)
    assert out.getvalue() == data, name
assert "c.bin" in f.nlst()
f.quit()
print("ok")
"#;

#[test]
fn ftplib_with_a_session_reusing_subclass_passes_with_reuse_required() {
    if !have_tool("python3", &["--version"]) {
        return;
    }
    let server = FtpsDaemon::start();
    for version in ["1.3", "1.2"] {
        let out = ftplib_script(
            FTPLIB_REUSE_SCRIPT,
            server.explicit,
            &[&server.ca(), version],
        );
        assert_eq!(out.trim(), "ok", "TLS {version}");
    }
    server.assert_no_failed_transfer();
}
