//! A PostgreSQL server of the test's own, from Debian's `postgresql`
//! package: a fresh cluster (initdb) in a temporary directory, on 127.0.0.1
//! and a free port, with a password for its one role. It is stopped when
//! dropped, so a failing test stops it too; started under `setpriv
//! --pdeathsig`, it also dies with the test's thread if the test process is
//! killed. Root (as CI runs) cannot run PostgreSQL: the server then runs as
//! the package's `postgres` account (`nobody` without it).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use tempfile::TempDir;

use super::IO_TIMEOUT;

/// The role the cluster is made with, and its password.
pub const ROLE: &str = "aioftpd";
pub const PASSWORD: &str = "pg-s3cret";

/// A running server; stopped (fast shutdown) when dropped.
pub struct Postgres {
    child: Option<Child>,
    bin: PathBuf,
    /// Holds the cluster, its socket directory and the password file.
    dir: TempDir,
    /// Who the server runs as, when the tests run as root.
    account: Option<String>,
    pub port: u16,
}

/// The directory with initdb and postgres: Debian's versioned one (the
/// newest), or wherever PATH has them.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    versions.sort_by_key(|bin| {
        bin.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(newest) = versions.pop() {
        return Some(newest);
    }
    let which = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(which.stdout).ok()?.trim());
    path.parent().map(Path::to_path_buf)
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn account_exists(name: &str) -> bool {
    Command::new("id")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Postgres {
    /// A new cluster, started; `None` (the test skips) where PostgreSQL is
    /// not installed, which under CI is a failure instead.
    pub fn start() -> Option<Self> {
        let Some(bin) = bin_dir() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL (initdb) is required under CI"
            );
            eprintln!("skipping: PostgreSQL is not installed");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let account = is_root().then(|| {
            ["postgres", "nobody"]
                .into_iter()
                .find(|name| account_exists(name))
                .expect("an account to run PostgreSQL as")
                .to_owned()
        });
        let mut server = Postgres {
            child: None,
            bin,
            dir,
            account,
            port: 0,
        };
        let password = server.dir.path().join("initdb-password");
        std::fs::write(&password, PASSWORD).expect("write password");
        if let Some(account) = &server.account {
            let status = Command::new("chown")
                .args(["-R", account])
                .arg(server.dir.path())
                .status()
                .expect("chown");
            assert!(status.success());
        }
        let initdb = server
            .as_account("initdb")
            .arg("-D")
            .arg(server.data())
            .args([
                "-U",
                ROLE,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", password.display()))
            .args(["--no-sync", "--encoding=UTF8", "--locale=C"])
            .output()
            .expect("initdb");
        assert!(
            initdb.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        server.run();
        Some(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `program` of the server's bin directory, as the server's account.
    fn as_account(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.account {
            Some(account) => {
                let mut command = Command::new("setpriv");
                command
                    .arg(format!("--reuid={account}"))
                    .arg(format!("--regid={account}"))
                    .args(["--clear-groups", "--pdeathsig=KILL"])
                    .arg(path);
                command
            }
            None => Command::new(path),
        }
    }

    /// Starts the server on a free port and waits until it accepts
    /// connections (it says so on its log).
    fn run(&mut self) {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let mut child = self
                .as_account("postgres")
                .arg("-D")
                .arg(self.data())
                .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                .arg("-k")
                .arg(self.dir.path())
                .args(["-c", "fsync=off", "-c", "max_connections=20"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("postgres");
            let stderr = child.stderr.take().expect("stderr");
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
            let mut log = String::new();
            let ready = loop {
                match rx.recv_timeout(IO_TIMEOUT) {
                    Ok(line) if line.contains("ready to accept connections") => break true,
                    Ok(line) => {
                        log.push_str(&line);
                        log.push('\n');
                    }
                    Err(_) => break false,
                }
            };
            if ready {
                self.child = Some(child);
                self.port = port;
                // Keeps draining the log, so the server never blocks on it.
                std::thread::spawn(move || while rx.recv().is_ok() {});
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            // Someone took the port in between: try another.
            assert!(
                log.contains("could not bind"),
                "postgres did not start:\n{log}"
            );
        }
        panic!("postgres found no free port");
    }

    /// `postgres://aioftpd@127.0.0.1:port/postgres`, without the password.
    pub fn url(&self) -> String {
        format!("postgres://{ROLE}@127.0.0.1:{}/postgres", self.port)
    }

    /// A file with the role's password, mode 0600, for `password_file`.
    pub fn password_file(&self, dir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let file = dir.join("pg-password");
        std::fs::write(&file, format!("{PASSWORD}\n")).expect("write");
        std::fs::set_permissions(&file, PermissionsExt::from_mode(0o600)).expect("chmod");
        file
    }

    /// Stops the server (fast shutdown: sessions are ended) and waits for it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }

    /// Whether the server is running.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
