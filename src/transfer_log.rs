//! The transfer log: one line per finished upload or download, in the
//! xferlog format wu-ftpd began and vsftpd and ProFTPD write (so the tools
//! that read theirs read ours), or as JSON.
//!
//! Sessions hand records to a writer thread over a bounded queue and never
//! wait on the disk; a record that finds the queue full is counted and the
//! count logged, so a stalled disk costs log lines, not memory. The file is
//! reopened on request (SIGHUP, SIGUSR1: logrotate's `postrotate`), so a
//! rotated file keeps every line written before the reopen.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use time::macros::format_description;
use time::OffsetDateTime;

/// Records waiting for the writer before new ones are dropped (and counted).
const QUEUE: usize = 65_536;

/// How the log's lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// wu-ftpd's xferlog(5), as vsftpd and ProFTPD write it.
    Xferlog,
    /// One JSON object per line.
    Json,
}

/// Where the transfer log goes and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The file, appended to.
    pub path: PathBuf,
    /// The line format.
    pub format: Format,
}

/// One finished transfer.
#[derive(Clone, Debug)]
pub struct Record {
    /// When it ended.
    pub ended: SystemTime,
    /// How long it took.
    pub took: Duration,
    /// The client.
    pub address: IpAddr,
    /// Bytes moved.
    pub bytes: u64,
    /// The file, as the client's tree names it.
    pub path: String,
    /// `TYPE A` rather than `TYPE I`.
    pub ascii: bool,
    /// An upload (STOR, APPE, STOU) rather than a download.
    pub upload: bool,
    /// The login; `None` for the anonymous user.
    pub login: Option<String>,
    /// Every byte moved and the transfer ended well.
    pub complete: bool,
}

enum Message {
    Line(String),
    Reopen,
}

/// The running log: a queue to its writer thread. Dropped, it waits for
/// the writer to write what is queued (a reload that changes the file, the
/// daemon's exit), so no line is lost then either.
#[derive(Debug)]
pub struct TransferLog {
    settings: Settings,
    /// `None` only while dropping, so the writer sees the queue close.
    queue: Option<SyncSender<Message>>,
    writer: Option<JoinHandle<()>>,
    dropped: AtomicU64,
}

impl TransferLog {
    /// Opens (creating, mode 0640) the file and starts its writer.
    pub fn open(settings: &Settings) -> io::Result<Self> {
        let file = open(&settings.path)?;
        let (queue, records) = mpsc::sync_channel(QUEUE);
        let path = settings.path.clone();
        let writer = std::thread::Builder::new()
            .name("transfer-log".into())
            .spawn(move || write_lines(file, &path, &records))?;
        Ok(TransferLog {
            settings: settings.clone(),
            queue: Some(queue),
            writer: Some(writer),
            dropped: AtomicU64::new(0),
        })
    }

    fn send(&self, message: Message) -> Result<(), TrySendError<Message>> {
        match &self.queue {
            Some(queue) => queue.try_send(message),
            None => Err(TrySendError::Disconnected(message)),
        }
    }

    /// What it was opened with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Queues `record`'s line; never waits.
    pub fn record(&self, record: &Record) {
        let line = match self.settings.format {
            Format::Xferlog => xferlog_line(record),
            Format::Json => json_line(record),
        };
        match self.send(Message::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(dropped, path = %self.settings.path.display(), "transfer log behind the transfers: lines dropped");
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Reopens the file after the lines queued before this call.
    pub fn reopen(&self) {
        let _ = self.send(Message::Reopen);
    }
}

impl Drop for TransferLog {
    fn drop(&mut self) {
        self.queue = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

fn write_lines(file: File, path: &Path, records: &Receiver<Message>) {
    let mut out = BufWriter::new(file);
    while let Ok(first) = records.recv() {
        // Whatever is queued goes out together, then the file is current.
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Line(line) => {
                    if let Err(err) = out.write_all(line.as_bytes()) {
                        tracing::error!(%err, path = %path.display(), "cannot write the transfer log");
                    }
                }
                Message::Reopen => {
                    let _ = out.flush();
                    match open(path) {
                        Ok(file) => {
                            out = BufWriter::new(file);
                            tracing::info!(path = %path.display(), "transfer log reopened");
                        }
                        Err(err) => {
                            tracing::error!(%err, path = %path.display(), "cannot reopen the transfer log; writing to the old file");
                        }
                    }
                }
            }
            next = records.try_recv().ok();
        }
        if let Err(err) = out.flush() {
            tracing::error!(%err, path = %path.display(), "cannot write the transfer log");
        }
    }
}

/// `current-time transfer-time remote-host file-size filename transfer-type
/// special-action-flag direction access-mode username service-name
/// authentication-method authenticated-user-id completion-status`
/// (xferlog(5)). The time is UTC, as the daemon's other logs are. The
/// format is space-separated, so spaces in a file name are written as `_`
/// and control characters as `?` (the JSON format keeps the name exact).
fn xferlog_line(r: &Record) -> String {
    let when = OffsetDateTime::from(r.ended);
    let current = when
        .format(format_description!(
            "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
        ))
        .unwrap_or_default();
    let name: String = r
        .path
        .chars()
        .map(|c| match c {
            ' ' => '_',
            c if c.is_control() => '?',
            c => c,
        })
        .collect();
    let (access, user) = match &r.login {
        Some(login) => ('r', sanitized(login)),
        None => ('a', "anonymous".to_owned()),
    };
    format!(
        "{current} {secs} {address} {bytes} {name} {kind} _ {direction} {access} {user} ftp 0 * {status}\n",
        secs = r.took.as_secs_f64().round() as u64,
        address = r.address.to_canonical(),
        bytes = r.bytes,
        kind = if r.ascii { 'a' } else { 'b' },
        direction = if r.upload { 'i' } else { 'o' },
        status = if r.complete { 'c' } else { 'i' },
    )
}

/// A login in a space-separated line: one field, no control characters.
fn sanitized(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

fn json_line(r: &Record) -> String {
    let when = OffsetDateTime::from(r.ended)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut line = serde_json::json!({
        "time": when,
        "seconds": r.took.as_secs_f64(),
        "address": r.address.to_canonical().to_string(),
        "bytes": r.bytes,
        "path": r.path,
        "type": if r.ascii { "ascii" } else { "binary" },
        "direction": if r.upload { "upload" } else { "download" },
        "user": r.login.as_deref().unwrap_or("anonymous"),
        "anonymous": r.login.is_none(),
        "complete": r.complete,
    })
    .to_string();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &str, login: Option<&str>) -> Record {
        Record {
            ended: SystemTime::UNIX_EPOCH + Duration::from_secs(1_765_118_588),
            took: Duration::from_millis(2_600),
            address: "::ffff:192.0.2.7".parse().unwrap(),
            bytes: 42,
            path: path.to_owned(),
            ascii: false,
            upload: true,
            login: login.map(str::to_owned),
            complete: false,
        }
    }

    #[test]
    fn an_xferlog_line_has_its_fields_whatever_the_name_holds() {
        let line = xferlog_line(&record("/a b\x1b[2J\tc", Some("bob")));
        assert_eq!(
            line,
            "Sun Dec  7 14:43:08 2025 3 192.0.2.7 42 /a_b?[2J?c b _ i r bob ftp 0 * i\n"
        );
        assert_eq!(line.matches('\n').count(), 1);
        let anonymous = xferlog_line(&record("/f", None));
        assert!(anonymous.contains(" a anonymous ftp 0 * "), "{anonymous}");
    }

    #[test]
    fn a_json_line_is_one_object_with_the_name_exact() {
        let line = json_line(&record("/a \"b\"\nc", None));
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["path"], "/a \"b\"\nc");
        assert_eq!(value["address"], "192.0.2.7");
        assert_eq!(value["anonymous"], true);
        assert_eq!(value["complete"], false);
    }
}
