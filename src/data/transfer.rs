//! The transfer loops: file → data connection, data connection → file, and
//! listing lines → data connection. Large buffers; every network read or write
//! is bounded by the stall timeout.

use std::future::Future;
use std::io;
use std::ops::Range;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::ascii::{FromNetwork, ToNetwork};
use super::splice;
use crate::storage::{ReadStream, StorageError, Upload};
use crate::throttle::Throttle;

/// Why a transfer did not complete.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The data connection failed or was closed by the client (426).
    #[error("data connection: {0}")]
    Connection(io::Error),
    /// No byte moved on the data connection for the stall timeout (426).
    #[error("data connection stalled")]
    Stalled,
    /// Reading or writing the file failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The TLS handshake on the data connection failed (425).
    #[error("TLS handshake on the data connection: {0}")]
    TlsHandshake(io::Error),
    /// The data connection did not resume the control connection's TLS session (522).
    #[error("data connection did not resume the control connection's TLS session")]
    SessionNotResumed,
}

/// How a transfer moves: buffer size, stall timeout and bandwidth limits.
#[derive(Clone, Debug)]
pub struct TransferLimits {
    /// Bytes read or written at a time.
    pub block_size: usize,
    /// No byte moving on the data connection for this long fails the transfer.
    pub stall: Duration,
    /// The bandwidth limits for this transfer's direction.
    pub throttle: Throttle,
}

pub(super) async fn network<T>(
    stall: Duration,
    op: impl Future<Output = io::Result<T>>,
) -> Result<T, TransferError> {
    match tokio::time::timeout(stall, op).await {
        Ok(result) => result.map_err(TransferError::Connection),
        Err(_) => Err(TransferError::Stalled),
    }
}

/// Bytes read at a time for an ASCII download.
const ASCII_BLOCK: usize = 16 * 1024;

/// Sends `file` over `data` (RETR), converting line endings when `ascii`.
/// Returns the number of file bytes sent.
pub(super) async fn send_file<W: AsyncWrite + Unpin>(
    mut file: ReadStream,
    data: &mut W,
    ascii: bool,
    limits: &TransferLimits,
) -> Result<u64, TransferError> {
    let stall = limits.stall;
    // Converted bytes wait in memory while a slow client reads them: small
    // blocks keep what a reader that stops reading can pin small.
    let block = match ascii {
        true => limits.block_size.min(ASCII_BLOCK),
        false => limits.block_size,
    };
    let mut buf = vec![0u8; block];
    let mut converted = Vec::new();
    let mut conv = ToNetwork::default();
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).await.map_err(StorageError::from)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        let out = if ascii {
            converted.clear();
            conv.convert(&buf[..n], &mut converted);
            &converted[..]
        } else {
            &buf[..n]
        };
        limits.throttle.take(out.len()).await;
        network(stall, data.write_all(out)).await?;
    }
    network(stall, data.flush()).await?;
    network(stall, data.shutdown()).await?;
    Ok(total)
}

/// Bytes one sendfile(2) call may move; the kernel sends less when the socket is full.
const SENDFILE_CHUNK: usize = 4 << 20;

/// Sends bytes `range` of `file` over a plain TCP data connection with
/// sendfile(2), so the bytes never pass through user space (RETR in binary
/// mode, no TLS, no throttle). Returns the bytes sent.
///
/// `range.end` is the file's size when it was opened, the size the 150
/// reply announced: a file that grows meanwhile is sent as it was (as
/// vsftpd and ProFTPD do), one that shrinks ends where it now ends.
pub(super) async fn send_os_file(
    file: std::fs::File,
    data: &mut TcpStream,
    range: Range<u64>,
    limits: &TransferLimits,
) -> Result<u64, TransferError> {
    let offset = |at: u64| i64::try_from(at).map_err(|_| StorageError::InvalidName);
    let (mut position, end) = (offset(range.start)?, offset(range.end)?);
    let mut total = 0u64;
    // Corked, as ProFTPD does: the kernel sends only full segments, and the
    // last one goes with the FIN at shutdown. Without it, every bit of room
    // the client's reads made went out as a segment of its own, at more CPU
    // per byte (docs/performance.md, "Corked").
    socket2::SockRef::from(&*data)
        .set_cork(true)
        .map_err(TransferError::Connection)?;
    while position < end {
        let left = usize::try_from(end - position).unwrap_or(usize::MAX);
        let mut send = || {
            nix::sys::sendfile::sendfile(
                &*data,
                &file,
                Some(&mut position),
                left.min(SENDFILE_CHUNK),
            )
            .map_err(io::Error::from)
        };
        let sent = network(limits.stall, async {
            // Tried before asking the reactor: a fresh data connection is
            // writable, and waiting to be told so costs a small file a trip
            // through epoll. A full socket says WouldBlock, and then we wait.
            let mut sent = send();
            while matches!(&sent, Err(err) if err.kind() == io::ErrorKind::WouldBlock) {
                data.writable().await?;
                sent = data.try_io(Interest::WRITABLE, &mut send);
            }
            sent
        })
        .await?;
        if sent == 0 {
            break;
        }
        total += sent as u64;
    }
    network(limits.stall, data.shutdown()).await?;
    Ok(total)
}

/// Receives from `data` into `upload` (STOR, APPE, STOU) and finishes the
/// upload at end of stream; an error leaves it unfinished (and so discarded
/// or, for in-place modes, partial). Then closes the data connection cleanly.
/// Returns the number of bytes stored.
///
/// Reads fill a whole `block_size` block before it goes to the upload, which
/// takes it as it is (see [`Upload::write_block`]): one copy from the socket,
/// one into the file.
pub(super) async fn receive_file<S: AsyncRead + AsyncWrite + Unpin>(
    data: &mut S,
    mut upload: Box<dyn Upload>,
    ascii: bool,
    limits: &TransferLimits,
) -> Result<u64, TransferError> {
    let mut block = Vec::with_capacity(limits.block_size);
    let mut converted = Vec::new();
    let mut conv = FromNetwork::default();
    let mut total = 0u64;
    loop {
        let more = fill_block(data, &mut block, limits).await?;
        if ascii {
            converted.clear();
            conv.convert(&block, &mut converted);
            if !more {
                conv.finish(&mut converted);
            }
            block.clear();
            total += converted.len() as u64;
            converted = upload
                .write_block(converted)
                .await
                .map_err(StorageError::from)?;
        } else if !block.is_empty() {
            total += block.len() as u64;
            block = upload
                .write_block(block)
                .await
                .map_err(StorageError::from)?;
            block.reserve(limits.block_size);
        }
        if !more {
            break;
        }
    }
    upload.finish().await?;
    // Answer the client's close_notify with ours (RFC 8446 §6.1); ftplib waits
    // for it. The file is complete already, so a failure here changes nothing.
    let _ = network(limits.stall, data.shutdown()).await;
    Ok(total)
}

/// Receives a binary upload over a plain TCP data connection: with
/// splice(2), one copy from the socket into the page cache, when the upload
/// is a file the kernel can splice into and no bandwidth limit applies;
/// otherwise as [`receive_file`] does. In the benchmark, 1 GiB over
/// loopback: 0.35 s of server CPU spliced, 0.56 read and written (see
/// docs/performance.md).
pub(super) async fn receive_plain(
    data: &mut TcpStream,
    mut upload: Box<dyn Upload>,
    limits: &TransferLimits,
    settled: mpsc::Sender<()>,
) -> Result<u64, TransferError> {
    let unlimited = !limits.throttle.is_limited();
    let file = unlimited.then(|| upload.os_file()).flatten();
    let spliceable = file.and_then(|file| {
        splice::Pipe::with_capacity(2 * limits.block_size).map(|pipe| (file, pipe))
    });
    let Some((file, pipe)) = spliceable else {
        return receive_file(data, upload, false, limits).await;
    };
    let finish = upload.blocking_finish();
    let (total, finished) =
        splice::receive_spliced(data, file, pipe, finish, limits, settled).await?;
    match finished {
        Some(finished) => finished?,
        None => upload.finish().await?,
    }
    let _ = network(limits.stall, data.shutdown()).await;
    Ok(total)
}

/// Reads from `data` until `block` is full (`block_size` bytes) or the
/// stream ends; returns whether more may follow.
async fn fill_block<S: AsyncRead + Unpin>(
    data: &mut S,
    block: &mut Vec<u8>,
    limits: &TransferLimits,
) -> Result<bool, TransferError> {
    while block.len() < limits.block_size {
        let want = limits.block_size - block.len();
        let n = network(limits.stall, (&mut *data).take(want as u64).read_buf(block)).await?;
        if n == 0 {
            return Ok(false);
        }
        // Pausing before the next read lets TCP flow control slow the sender down.
        limits.throttle.take(n).await;
    }
    Ok(true)
}

/// Streams listing lines (each item one or more whole lines) over `data`,
/// batching them into blocks so a long listing is neither buffered whole
/// nor written line by line.
pub(super) async fn send_lines<W, S, L>(
    lines: S,
    data: &mut W,
    limits: &TransferLimits,
) -> Result<u64, TransferError>
where
    W: AsyncWrite + Unpin,
    S: Stream<Item = Result<L, StorageError>>,
    L: AsRef<[u8]>,
{
    let stall = limits.stall;
    let mut lines = std::pin::pin!(lines);
    let mut buf = Vec::with_capacity(limits.block_size.min(64 * 1024));
    let mut total = 0u64;
    while let Some(line) = lines.next().await {
        buf.extend_from_slice(line?.as_ref());
        if buf.len() >= buf.capacity() / 2 {
            limits.throttle.take(buf.len()).await;
            network(stall, data.write_all(&buf)).await?;
            total += buf.len() as u64;
            buf.clear();
        }
    }
    limits.throttle.take(buf.len()).await;
    network(stall, data.write_all(&buf)).await?;
    total += buf.len() as u64;
    network(stall, data.flush()).await?;
    network(stall, data.shutdown()).await?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::data::loopback_pair;

    /// An upload that records which way its bytes came: through its OS
    /// file (spliced) or through `write_block` (copied).
    struct Recording {
        file: std::fs::File,
        offers_os_file: bool,
        copied: Vec<u8>,
        done: tokio::sync::oneshot::Sender<Vec<u8>>,
    }

    #[async_trait::async_trait]
    impl Upload for Recording {
        async fn write_block(&mut self, block: Vec<u8>) -> io::Result<Vec<u8>> {
            self.copied.extend_from_slice(&block);
            Ok(Vec::new())
        }

        fn os_file(&self) -> Option<std::fs::File> {
            self.offers_os_file.then(|| self.file.try_clone().unwrap())
        }

        async fn finish(self: Box<Self>) -> Result<(), StorageError> {
            let _ = self.done.send(self.copied);
            Ok(())
        }
    }

    /// Uploads `bytes` through `receive_plain`; returns what reached the OS
    /// file and what was copied through `write_block`.
    async fn received_plain(offers_os_file: bool, throttle: Throttle) -> (Vec<u8>, Vec<u8>) {
        let (mut client, mut data) = loopback_pair().await;
        let bytes: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let sent = bytes.clone();
        let sender = tokio::spawn(async move {
            client.write_all(&sent).await.unwrap();
            client.shutdown().await.unwrap();
            // Until the server closes: the upload is complete then.
            client.read_to_end(&mut Vec::new()).await.unwrap();
        });
        let mut file = tempfile::tempfile().unwrap();
        let (done, copied) = tokio::sync::oneshot::channel();
        let upload = Recording {
            file: file.try_clone().unwrap(),
            offers_os_file,
            copied: Vec::new(),
            done,
        };
        let limits = TransferLimits {
            block_size: 64 * 1024,
            stall: Duration::from_secs(30),
            throttle,
        };
        let (settled, _) = mpsc::channel(1);
        let count = receive_plain(&mut data, Box::new(upload), &limits, settled)
            .await
            .unwrap();
        assert_eq!(count, bytes.len() as u64);
        drop(data);
        sender.await.unwrap();
        let mut spliced = Vec::new();
        std::io::Seek::rewind(&mut file).unwrap();
        std::io::Read::read_to_end(&mut file, &mut spliced).unwrap();
        let copied = copied.await.unwrap();
        assert!(
            spliced == bytes || copied == bytes,
            "every byte arrives one way"
        );
        (spliced, copied)
    }

    #[tokio::test]
    async fn a_plain_upload_is_spliced_unless_it_cannot_be() {
        let (spliced, copied) = received_plain(true, Throttle::unlimited()).await;
        assert!(
            !spliced.is_empty() && copied.is_empty(),
            "spliced into the file"
        );

        let (spliced, copied) = received_plain(false, Throttle::unlimited()).await;
        assert!(
            spliced.is_empty() && !copied.is_empty(),
            "no OS file: copied"
        );

        let rate = crate::throttle::Rate::new(1 << 30).unwrap();
        let limited = Throttle::new([Some(crate::throttle::Bucket::new(rate))]);
        let (spliced, copied) = received_plain(true, limited).await;
        assert!(
            spliced.is_empty() && !copied.is_empty(),
            "throttled: copied"
        );
    }

    /// What `send_os_file` puts on a data connection for `range` of `file`.
    async fn sent(file: std::fs::File, range: Range<u64>) -> (u64, Vec<u8>) {
        let (mut client, mut data) = loopback_pair().await;
        let limits = TransferLimits {
            block_size: 4096,
            stall: Duration::from_secs(30),
            throttle: Throttle::unlimited(),
        };
        let count = send_os_file(file, &mut data, range, &limits).await.unwrap();
        assert!(
            socket2::SockRef::from(&data).cork().unwrap(),
            "full segments only"
        );
        drop(data);
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.unwrap();
        (count, received)
    }

    #[tokio::test]
    async fn sendfile_stops_at_the_size_the_150_announced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("growing.log");
        std::fs::write(&path, b"0123456789").unwrap();
        let opened = std::fs::File::open(&path).unwrap();
        // Appended after the RETR opened it, before the bytes go out.
        let mut writer = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        writer.write_all(b"appended").unwrap();

        assert_eq!(sent(opened, 0..10).await, (10, b"0123456789".to_vec()));
        let opened = std::fs::File::open(&path).unwrap();
        assert_eq!(sent(opened, 4..10).await, (6, b"456789".to_vec()));
    }

    #[tokio::test]
    async fn sendfile_ends_early_when_the_file_shrank() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shrinking");
        std::fs::write(&path, b"0123456789").unwrap();
        let opened = std::fs::File::open(&path).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(3)
            .unwrap();

        assert_eq!(sent(opened, 0..10).await, (3, b"012".to_vec()));
    }
}
