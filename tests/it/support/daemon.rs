//! The aioftpd binary as a child process, with its log lines as the
//! synchronisation points: tests wait for what the daemon says, never sleep.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};

use super::IO_TIMEOUT;

/// The daemon binary built for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_aioftpd");

/// A running daemon; killed when dropped.
pub struct Daemon {
    child: Child,
    /// The first address it listens on.
    pub addr: SocketAddr,
    /// What it logged before it was listening.
    pub startup_log: Vec<String>,
    log: Receiver<String>,
}

impl Daemon {
    /// Starts `aioftpd args...` in `dir` and waits until it listens.
    pub fn start<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Self {
        Self::start_with_env(dir, args, &[])
    }

    /// [`Daemon::start`] with environment variables `env` set.
    pub fn start_with_env<S: AsRef<OsStr>>(dir: &Path, args: &[S], env: &[(&str, &str)]) -> Self {
        let mut command = command(dir, args);
        command.envs(env.iter().copied());
        let mut daemon = Self::launch(command);
        let listening = loop {
            let line = daemon.next_line("listening");
            if line.contains("listening") {
                break line;
            }
            daemon.startup_log.push(line);
        };
        // `addr=127.0.0.1:2121` in text, `"addr":"127.0.0.1:2121"` in JSON.
        let (at, len) = listening
            .find("addr=")
            .map(|at| (at, 5))
            .or_else(|| listening.find("\"addr\":\"").map(|at| (at, 8)))
            .expect("addr");
        daemon.addr = listening[at + len..]
            .split(|c: char| c.is_whitespace() || c == '"')
            .next()
            .expect("addr")
            .parse()
            .expect("socket address");
        daemon
    }

    /// Runs `command`, which ends up as the daemon (e.g. aioftpd under
    /// systemd-socket-activate), without waiting for anything: `wait_for`
    /// reads its log. `addr` stays unspecified.
    pub fn launch(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{command:?}: {e}"));
        // A reader thread hands log lines over (and keeps draining them), so a
        // silent daemon fails the test instead of hanging it.
        let stderr = child.stderr.take().expect("stderr");
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Daemon {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            startup_log: Vec::new(),
            log,
        }
    }

    /// Runs `aioftpd args...` in `dir` expecting it to refuse to start: its
    /// exit status and what it logged. Panics if it listens instead.
    pub fn refused<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> (ExitStatus, String) {
        let mut child = command(dir, args).spawn().expect("spawn aioftpd");
        let stderr = child.stderr.take().expect("stderr");
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening") {
                let _ = child.kill();
                let _ = child.wait();
                panic!("aioftpd started instead of refusing:\n{log}{line}");
            }
            log.push_str(&line);
            log.push('\n');
        }
        (child.wait().expect("wait"), log)
    }

    fn next_line(&self, waiting_for: &str) -> String {
        self.log
            .recv_timeout(IO_TIMEOUT)
            .unwrap_or_else(|_| panic!("aioftpd logged no line with {waiting_for:?}"))
    }

    /// Waits for a log line containing `text`.
    pub fn wait_for(&mut self, text: &str) -> String {
        loop {
            let line = self.next_line(text);
            if line.contains(text) {
                return line;
            }
        }
    }

    /// Sends a signal by name (`HUP`, `TERM`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the daemon to exit.
    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().expect("wait")
    }

    /// Stops the daemon (SIGTERM) and returns every line it logged that no
    /// `wait_for` took.
    pub fn stop(mut self) -> Vec<String> {
        self.signal("TERM");
        self.wait();
        // The reader thread ends at the end of stderr, which closes the channel.
        std::iter::from_fn(|| self.log.recv_timeout(IO_TIMEOUT).ok()).collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `aioftpd args...` in `dir`, its log piped. Whether the tests run under
/// systemd changes nothing: the journal's variable is set only where a test
/// asks for it.
fn command<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("JOURNAL_STREAM")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}
