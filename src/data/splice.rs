//! Uploads with one copy instead of two: splice(2) moves the data
//! connection's bytes into a pipe without copying them (the pipe takes
//! references to the socket's pages), and from the pipe into the file, which
//! copies them once, into the page cache. A read and a write would copy
//! twice: socket to buffer, buffer to page cache.
//!
//! Both splices run on a blocking thread, one after the other, because the
//! file side may wait for the disk. Splitting them (socket side on the async
//! worker, file side on a blocking thread) cost more: 0.46 s of server CPU
//! per GiB in the benchmark against 0.35 on one thread (see
//! docs/performance.md). The socket is non-blocking, so a job ends when it
//! is empty, and the async side waits for more.

use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use nix::errno::Errno;
use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::transfer::{network, TransferError, TransferLimits};
use crate::storage::{BlockingFinish, StorageError};

/// A pipe of a known capacity.
pub(super) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

/// Empty pipes kept for the next uploads. Making a pipe and sizing it costs
/// two system calls and the kernel's allocation of its slots, which small
/// uploads felt (docs/performance.md, "Uploads"). A spare
/// pipe holds no memory but its slots; it counts against the user's
/// `pipe-user-pages-soft` quota, so only a few are kept.
static SPARE: Mutex<Vec<Pipe>> = Mutex::new(Vec::new());

/// How many empty pipes [`SPARE`] keeps.
const SPARE_PIPES: usize = 8;

impl Pipe {
    /// A pipe that holds at least `capacity` bytes, or `None` when the
    /// kernel will not make one that large (`/proc/sys/fs/pipe-max-size`, or
    /// an unprivileged user past `pipe-user-pages-soft`). With the default
    /// 64 KiB pipe, splicing cost more CPU per GiB than reading and writing.
    pub(super) fn with_capacity(capacity: usize) -> Option<Pipe> {
        let mut spare = SPARE.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = spare.iter().position(|pipe| pipe.capacity == capacity) {
            return Some(spare.swap_remove(at));
        }
        drop(spare);
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ok()?;
        let wanted = i32::try_from(capacity).ok()?;
        let got = fcntl(write.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(wanted)).ok()?;
        (usize::try_from(got).ok()? >= capacity).then_some(Pipe {
            read,
            write,
            capacity,
        })
    }

    /// Keeps an empty pipe for the next upload.
    fn put_back(self) {
        let mut spare = SPARE.lock().unwrap_or_else(PoisonError::into_inner);
        if spare.len() < SPARE_PIPES {
            spare.push(self);
        }
    }
}

/// Bytes one job moves at most before the async side looks again: a
/// transfer dropped (ABOR, a closed session) stops within this much.
const JOB_BYTES: u64 = 16 << 20;

/// What one job did.
struct Moved {
    /// Bytes now in the file.
    bytes: u64,
    /// The client closed the data connection: the upload is complete.
    ended: bool,
}

/// Receives everything `data` sends until the client closes it into `file`,
/// at the file's offset (which advances). Returns the bytes received and,
/// when `finish` was given, how running it went: the job that sees the end
/// of the upload also finishes it, one trip to a blocking thread fewer for
/// every upload.
pub(super) async fn receive_spliced(
    data: &TcpStream,
    file: File,
    pipe: Pipe,
    finish: Option<BlockingFinish>,
    limits: &TransferLimits,
    settled: mpsc::Sender<()>,
) -> Result<(u64, Option<Result<(), StorageError>>), TransferError> {
    // The job's own descriptor: this one may close while a job still runs.
    let socket = data
        .as_fd()
        .try_clone_to_owned()
        .map_err(TransferError::Connection)?;
    let mut parts = (pipe, socket, file, finish);
    let mut total = 0;
    // Cleared when this future is dropped (ABOR, shutdown). A job still
    // running then holds the socket open, and a client that closes its end
    // after the 426 would look like an upload that ended: the job must not
    // commit what was abandoned.
    let wanted = Wanted::new();
    loop {
        // Waiting here first spares a small file's upload a job that finds
        // the socket still empty: one trip to a blocking thread, not two.
        network(limits.stall, readable(data)).await?;
        let (pipe, socket, file, finish) = parts;
        let still_wanted = wanted.flag();
        // Held until the job's output is gone: an abort waits for it (see
        // `data::run`). Last in the output, so it is dropped after the
        // upload's finish, when nobody takes the output any more.
        let running = settled.clone();
        let job = tokio::task::spawn_blocking(move || {
            let moved = splice_until_empty(&pipe, &socket, &file);
            let (finish, finished) = finish_if_ended(&moved, finish, &still_wanted);
            (pipe, socket, file, finish, moved, finished, running)
        });
        let (pipe, socket, file, finish, moved, finished, _running) = job
            .await
            .map_err(|join| StorageError::from(io::Error::other(join)))?;
        let moved = moved?;
        total += moved.bytes;
        if moved.ended {
            pipe.put_back();
            return Ok((total, finished));
        }
        parts = (pipe, socket, file, finish);
    }
}

/// Whether the upload is still wanted: true until the future receiving it
/// is dropped.
struct Wanted(Arc<AtomicBool>);

impl Wanted {
    fn new() -> Self {
        Wanted(Arc::new(AtomicBool::new(true)))
    }

    fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }
}

impl Drop for Wanted {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Runs `finish` if the job just saw the upload end; hands it back if the
/// upload goes on; drops it, abandoning the upload, if nobody wants it any
/// more. Returns what is left of it and how running it went.
fn finish_if_ended(
    moved: &Result<Moved, TransferError>,
    finish: Option<BlockingFinish>,
    wanted: &AtomicBool,
) -> (Option<BlockingFinish>, Option<Result<(), StorageError>>) {
    if !wanted.load(Ordering::SeqCst) {
        // Dropped here, on the job's thread: the upload is abandoned before
        // the abort that waits for this job is answered.
        return (None, None);
    }
    match (moved, finish) {
        (Ok(moved), Some(finish)) if moved.ended => (None, Some(finish())),
        (_, finish) => (finish, None),
    }
}

/// Waits until bytes or the end of the stream wait on the socket. A job may
/// have found it empty without the reactor knowing, so readiness is checked
/// with a peek, which clears it only when nothing is there.
async fn readable(data: &TcpStream) -> io::Result<()> {
    loop {
        data.readable().await?;
        let peek = || {
            let mut byte = [MaybeUninit::uninit()];
            socket2::SockRef::from(data).peek(&mut byte).map(drop)
        };
        match data.try_io(Interest::READABLE, peek) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            // An error is for the next splice to report.
            _ => return Ok(()),
        }
    }
}

/// Moves bytes from the socket through the pipe into the file until the
/// socket is empty, the client closes it, or [`JOB_BYTES`] have gone (on a
/// blocking thread). The pipe is empty between splices, so an `EAGAIN`
/// means the socket is.
fn splice_until_empty(pipe: &Pipe, socket: &OwnedFd, file: &File) -> Result<Moved, TransferError> {
    let mut moved = Moved {
        bytes: 0,
        ended: false,
    };
    while moved.bytes < JOB_BYTES {
        match splice(
            socket,
            None,
            &pipe.write,
            None,
            pipe.capacity,
            SpliceFFlags::SPLICE_F_NONBLOCK,
        ) {
            Ok(0) => {
                moved.ended = true;
                break;
            }
            Ok(n) => {
                drain(&pipe.read, file, n).map_err(StorageError::from)?;
                moved.bytes += n as u64;
            }
            Err(Errno::EAGAIN) => break,
            Err(Errno::EINTR) => {}
            Err(err) => return Err(TransferError::Connection(err.into())),
        }
    }
    Ok(moved)
}

/// Moves `len` bytes, all already in the pipe, into the file.
fn drain(pipe: &OwnedFd, file: &File, mut len: usize) -> io::Result<()> {
    while len > 0 {
        match splice(pipe, None, file, None, len, SpliceFFlags::empty()) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => len -= n,
            Err(Errno::EINTR) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::data::loopback_pair;
    use crate::throttle::Throttle;

    /// Small blocks and so a small pipe: a few MiB fill it many times over.
    fn limits() -> TransferLimits {
        TransferLimits {
            block_size: 64 * 1024,
            stall: Duration::from_secs(30),
            throttle: Throttle::unlimited(),
        }
    }

    /// Bytes that differ from block to block, so a block out of order shows.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Sends `bytes` over a loopback connection and receives them spliced
    /// into `file`.
    async fn splice_into(file: File, bytes: Vec<u8>) -> Result<u64, TransferError> {
        splice_finishing(file, bytes, None).await.map(|(n, _)| n)
    }

    /// As [`splice_into`], with `finish` for the last job to run.
    async fn splice_finishing(
        file: File,
        bytes: Vec<u8>,
        finish: Option<BlockingFinish>,
    ) -> Result<(u64, Option<Result<(), StorageError>>), TransferError> {
        let (mut client, data) = loopback_pair().await;
        let sender = tokio::spawn(async move {
            // The server may stop reading after a failed write.
            let _ = client.write_all(&bytes).await;
            let _ = client.shutdown().await;
        });
        let limits = limits();
        let pipe = Pipe::with_capacity(2 * limits.block_size).expect("a 128 KiB pipe");
        let (settled, _) = mpsc::channel(1);
        let received = receive_spliced(&data, file, pipe, finish, &limits, settled).await;
        drop(data);
        sender.await.unwrap();
        received
    }

    #[tokio::test]
    async fn a_spliced_upload_lands_whole_and_in_order() {
        let mut file = tempfile::tempfile().unwrap();
        let bytes = pattern(5 * 1024 * 1024 + 123);
        let received = splice_into(file.try_clone().unwrap(), bytes.clone()).await;
        assert_eq!(received.unwrap(), bytes.len() as u64);
        let mut written = Vec::new();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.read_to_end(&mut written).unwrap();
        assert!(written == bytes, "the file holds exactly what was sent");
    }

    #[tokio::test]
    async fn a_spliced_upload_writes_from_the_file_offset_on() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"keep this|and not this").unwrap();
        file.seek(SeekFrom::Start(10)).unwrap();
        let received = splice_into(file.try_clone().unwrap(), b"NEW".to_vec()).await;
        assert_eq!(received.unwrap(), 3);
        assert_eq!(file.stream_position().unwrap(), 13, "the offset moved on");
        let mut written = String::new();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.read_to_string(&mut written).unwrap();
        assert_eq!(written, "keep this|NEW not this");
    }

    #[tokio::test]
    async fn an_empty_upload_is_complete_with_nothing_written() {
        let file = tempfile::tempfile().unwrap();
        let received = splice_into(file.try_clone().unwrap(), Vec::new()).await;
        assert_eq!(received.unwrap(), 0);
        assert_eq!(file.metadata().unwrap().len(), 0);
    }

    #[tokio::test]
    async fn a_failed_write_fails_the_upload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("read-only");
        std::fs::write(&path, b"").unwrap();
        // A descriptor open for reading only: every write fails with EBADF.
        let file = File::open(&path).unwrap();
        let received = splice_into(file, pattern(1024 * 1024)).await;
        assert!(
            matches!(received, Err(TransferError::Storage(_))),
            "{received:?}"
        );
    }

    /// A finish that counts its runs, and sees the whole file when it runs.
    fn counting_finish(file: &File, runs: &Arc<AtomicUsize>, len: u64) -> Option<BlockingFinish> {
        let (file, runs) = (file.try_clone().unwrap(), Arc::clone(runs));
        Some(Box::new(move || {
            assert_eq!(
                file.metadata().unwrap().len(),
                len,
                "finished after the last byte"
            );
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }))
    }

    #[tokio::test]
    async fn the_job_that_sees_the_end_finishes_the_upload_once() {
        let file = tempfile::tempfile().unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let bytes = pattern(3 * 1024 * 1024);
        let finish = counting_finish(&file, &runs, bytes.len() as u64);
        let (received, finished) = splice_finishing(file, bytes.clone(), finish).await.unwrap();
        assert_eq!(received, bytes.len() as u64);
        assert!(matches!(finished, Some(Ok(()))));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_upload_is_never_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("read-only");
        std::fs::write(&path, b"").unwrap();
        let file = File::open(&path).unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let finish = counting_finish(&file, &runs, 0);
        let received = splice_finishing(file, pattern(1024 * 1024), finish).await;
        assert!(
            matches!(received, Err(TransferError::Storage(_))),
            "{received:?}"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 0);
    }

    /// A job that sees the end after its upload was abandoned (the client
    /// closed its end after the ABOR's 426) commits nothing.
    #[test]
    fn an_abandoned_upload_that_then_ends_is_not_finished() {
        let file = tempfile::tempfile().unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let ended = || {
            Ok(Moved {
                bytes: 0,
                ended: true,
            })
        };
        let wanted = Wanted::new();
        let flag = wanted.flag();
        drop(wanted);
        let (left, finished) = finish_if_ended(&ended(), counting_finish(&file, &runs, 0), &flag);
        assert!(left.is_none() && finished.is_none());
        assert_eq!(runs.load(Ordering::SeqCst), 0);
        let wanted = Wanted::new();
        let (_, finished) =
            finish_if_ended(&ended(), counting_finish(&file, &runs, 0), &wanted.flag());
        assert!(matches!(finished, Some(Ok(()))));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_client_that_sends_nothing_stalls() {
        let (_client, data) = loopback_pair().await;
        let limits = TransferLimits {
            stall: Duration::from_millis(1),
            ..limits()
        };
        let pipe = Pipe::with_capacity(2 * limits.block_size).unwrap();
        let file = tempfile::tempfile().unwrap();
        let (settled, _) = mpsc::channel(1);
        let received = receive_spliced(&data, file, pipe, None, &limits, settled).await;
        assert!(
            matches!(received, Err(TransferError::Stalled)),
            "{received:?}"
        );
    }

    #[test]
    fn a_pipe_holds_what_was_asked() {
        let pipe = Pipe::with_capacity(1024 * 1024).unwrap();
        assert!(pipe.capacity >= 1024 * 1024);
        assert!(Pipe::with_capacity(usize::MAX).is_none());
        // A spare comes back only for the capacity it was made for.
        pipe.put_back();
        let odd = 256 * 1024;
        assert!(Pipe::with_capacity(odd).is_some_and(|pipe| pipe.capacity >= odd));
    }
}
