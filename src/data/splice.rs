//! Uploads with one copy instead of two: splice(2) moves the data
//! connection's bytes into a pipe without copying them (the pipe takes
//! references to the socket's pages), and from the pipe into the file, which
//! copies them once, into the page cache. A read and a write would copy
//! twice: socket to buffer, buffer to page cache.
//!
//! The socket side runs on the async worker and never touches the file
//! system; the pipe-to-file side runs on blocking threads, one drain in
//! flight at a time, so blocks reach the file in order, as with
//! `BlockWriter`.

use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Mutex, PoisonError};

use nix::errno::Errno;
use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::transfer::{network, TransferError, TransferLimits};
use crate::storage::StorageError;

/// A pipe of a known capacity, its read end handed to the drains in turn.
pub(super) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

/// Empty pipes kept for the next uploads. Making a pipe and sizing it costs
/// two system calls and the kernel's allocation of its slots: without the
/// spares, 2,000 uploads of 4 KiB went from 6,200 to 5,870 files/s. A spare
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

/// What a finished drain hands back: the file, the pipe's read end, and how
/// the write went.
type Drained = (File, OwnedFd, io::Result<()>);

/// What one splice from the socket did.
enum Moved {
    /// This many bytes went into the pipe.
    Bytes(usize),
    /// The client closed the data connection: the upload is complete.
    End,
    /// The pipe has no free slot although bytes are waiting on the socket
    /// (a slot holds one piece of a socket buffer, which may be less than a
    /// page).
    PipeFull,
}

/// Receives everything `data` sends until the client closes it into `file`,
/// at the file's offset (which advances). Returns the bytes received.
pub(super) async fn receive_spliced(
    data: &TcpStream,
    file: File,
    pipe: Pipe,
    limits: &TransferLimits,
) -> Result<u64, TransferError> {
    let Pipe {
        read,
        write,
        capacity,
    } = pipe;
    // A drain starts with a block's worth in the pipe, so a drain and the
    // socket's next block can overlap.
    let batch = limits.block_size.min(capacity / 2).max(1);
    let mut idle = Some((file, read));
    let mut in_flight: Option<JoinHandle<Drained>> = None;
    // Bytes in the pipe that no drain has taken yet, and bytes the drain in
    // flight is moving.
    let (mut waiting, mut draining) = (0usize, 0usize);
    let (mut total, mut ended, mut full) = (0u64, false, false);
    loop {
        if waiting > 0 && (waiting >= batch || ended || full) {
            if let Some((file, read)) = idle.take() {
                let len = std::mem::take(&mut waiting);
                draining = len;
                in_flight = Some(tokio::task::spawn_blocking(move || {
                    let result = drain(&read, &file, len);
                    (file, read, result)
                }));
            }
        }
        let room = capacity - waiting - draining;
        if ended || full || room == 0 {
            match in_flight.take() {
                Some(handle) => {
                    idle = Some(finish_drain(handle).await?);
                    (draining, full) = (0, false);
                    continue;
                }
                None if ended && waiting == 0 => break,
                // Not reached while the counts are right; failing the upload
                // beats committing a short file.
                None => {
                    let stuck = io::Error::other("the pipe is full and holds nothing to write");
                    return Err(StorageError::from(stuck).into());
                }
            }
        }
        match splice_from_socket(data, &write, room, waiting + draining > 0, limits).await? {
            Moved::Bytes(n) => {
                waiting += n;
                total += n as u64;
            }
            Moved::End => ended = true,
            Moved::PipeFull => full = true,
        }
    }
    if let Some((_, read)) = idle {
        Pipe {
            read,
            write,
            capacity,
        }
        .put_back();
    }
    Ok(total)
}

/// Waits for a drain and reports its error.
async fn finish_drain(handle: JoinHandle<Drained>) -> Result<(File, OwnedFd), TransferError> {
    let (file, read, result) = handle
        .await
        .map_err(|join| StorageError::from(io::Error::other(join)))?;
    result.map_err(StorageError::from)?;
    Ok((file, read))
}

/// Moves up to `room` bytes from the socket into the pipe, waiting (up to
/// the stall timeout) for the client to send some. `holding`: whether the
/// pipe holds bytes, and so may be full.
async fn splice_from_socket(
    data: &TcpStream,
    pipe: &OwnedFd,
    room: usize,
    holding: bool,
    limits: &TransferLimits,
) -> Result<Moved, TransferError> {
    let attempt = || {
        match splice(
            data,
            None,
            pipe,
            None,
            room,
            SpliceFFlags::SPLICE_F_NONBLOCK,
        ) {
            Ok(0) => Ok(Moved::End),
            Ok(n) => Ok(Moved::Bytes(n)),
            // EAGAIN from a full pipe must not clear the socket's readiness:
            // a peek tells the two apart. (An empty pipe is never full: then
            // the bytes arrived while the splice held the socket, and the
            // reactor hears of them.)
            Err(Errno::EAGAIN) if holding && socket_has_bytes(data) => Ok(Moved::PipeFull),
            Err(err) => Err(io::Error::from(err)),
        }
    };
    network(limits.stall, async {
        // Tried before asking the reactor, as sendfile is: the bytes are
        // usually there already.
        let mut moved = attempt();
        while matches!(&moved, Err(err) if err.kind() == io::ErrorKind::WouldBlock) {
            data.readable().await?;
            moved = data.try_io(Interest::READABLE, attempt);
        }
        moved
    })
    .await
}

/// Whether a byte is waiting on the socket.
fn socket_has_bytes(data: &TcpStream) -> bool {
    let mut byte = [MaybeUninit::uninit()];
    socket2::SockRef::from(data)
        .peek(&mut byte)
        .is_ok_and(|n| n > 0)
}

/// Moves `len` bytes, all already in the pipe, into the file (on a blocking
/// thread).
fn drain(pipe: &OwnedFd, file: &File, mut len: usize) -> io::Result<()> {
    while len > 0 {
        match splice(pipe.as_fd(), None, file, None, len, SpliceFFlags::empty()) {
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
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;
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
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (data, _) = listener.accept().await.unwrap();
        let sender = tokio::spawn(async move {
            // The server may stop reading after a failed write.
            let _ = client.write_all(&bytes).await;
            let _ = client.shutdown().await;
        });
        let limits = limits();
        let pipe = Pipe::with_capacity(2 * limits.block_size).expect("a 128 KiB pipe");
        let received = receive_spliced(&data, file, pipe, &limits).await;
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

    #[tokio::test]
    async fn a_client_that_sends_nothing_stalls() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (data, _) = listener.accept().await.unwrap();
        let limits = TransferLimits {
            stall: Duration::from_millis(1),
            ..limits()
        };
        let pipe = Pipe::with_capacity(2 * limits.block_size).unwrap();
        let file = tempfile::tempfile().unwrap();
        let received = receive_spliced(&data, file, pipe, &limits).await;
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
