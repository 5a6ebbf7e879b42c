//! Reads a file on blocking threads in blocks, the next block on its way from
//! the disk while the caller sends the current one.
//!
//! A download that can't go out with sendfile (TLS, ASCII, a throttle) reads
//! the file and sends what it read. `tokio::fs::File` reads only when asked,
//! so the two took turns; here the read of the next block is started as soon
//! as the current one is handed over, and runs on a blocking thread while
//! the session encrypts and sends.
//!
//! It never reads on an async worker, and never has more than one read in
//! flight, so blocks come out in order.

use std::fs::File;
use std::future::Future;
use std::io::{self, Read};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::task::JoinHandle;

/// The smallest block read at a time, however small the caller's buffer.
const MIN_BLOCK: usize = 64 * 1024;

/// What a finished read hands back: the file, the block it filled, the size
/// it was asked for and how the read went.
type Filled = (File, Vec<u8>, usize, io::Result<()>);

/// A file read block by block on blocking threads, one block ahead.
pub(super) struct BlockReader {
    /// The block being handed out, from `pos` on.
    current: Vec<u8>,
    pos: usize,
    state: State,
}

enum State {
    /// Nothing read yet: the first read waits for the caller's buffer size.
    Start(File),
    /// The next block is being read.
    Reading(JoinHandle<Filled>),
    /// The last read reached the end of the file.
    End,
    /// A read failed, or its blocking task died: the file went with it.
    Lost,
}

impl BlockReader {
    pub(super) fn new(file: File) -> Self {
        BlockReader {
            current: Vec::new(),
            pos: 0,
            state: State::Start(file),
        }
    }
}

/// Fills `block` (emptied first) with up to `size` bytes on a blocking
/// thread. A block shorter than `size` means the read met the end of the
/// file.
fn read_next(file: File, mut block: Vec<u8>, size: usize) -> JoinHandle<Filled> {
    tokio::task::spawn_blocking(move || {
        block.clear();
        block.reserve(size);
        let result = (&file).take(size as u64).read_to_end(&mut block);
        (file, block, size, result.map(drop))
    })
}

impl AsyncRead for BlockReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let size = buf.remaining().max(MIN_BLOCK);
        while this.pos == this.current.len() {
            match std::mem::replace(&mut this.state, State::Lost) {
                State::Start(file) => {
                    this.state = State::Reading(read_next(file, Vec::new(), size));
                }
                State::Reading(mut handle) => match Pin::new(&mut handle).poll(cx) {
                    Poll::Pending => {
                        this.state = State::Reading(handle);
                        return Poll::Pending;
                    }
                    Poll::Ready(Ok((file, block, asked, Ok(())))) => {
                        // Short of what that read asked for: the end of the
                        // file (the caller's buffer may have changed since).
                        let full = block.len() == asked;
                        let spare = std::mem::replace(&mut this.current, block);
                        this.pos = 0;
                        this.state = match full {
                            true => State::Reading(read_next(file, spare, size)),
                            false => State::End,
                        };
                        if this.current.is_empty() {
                            return Poll::Ready(Ok(()));
                        }
                    }
                    Poll::Ready(Ok((_, _, _, Err(err)))) => return Poll::Ready(Err(err)),
                    Poll::Ready(Err(join)) => return Poll::Ready(Err(io::Error::other(join))),
                },
                State::End => {
                    this.state = State::End;
                    return Poll::Ready(Ok(()));
                }
                State::Lost => {
                    return Poll::Ready(Err(io::Error::other(
                        "the file was lost with an earlier read",
                    )))
                }
            }
        }
        let n = buf.remaining().min(this.current.len() - this.pos);
        buf.put_slice(&this.current[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom};
    use tokio::io::AsyncReadExt;

    fn file_of(bytes: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, bytes).unwrap();
        (dir, File::open(&path).unwrap())
    }

    #[tokio::test]
    async fn reads_the_file_whole_and_in_order_whatever_the_buffer() {
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for buffer in [1, 7, 4096, 65536, 100_000, 1 << 20] {
            let (_dir, file) = file_of(&bytes);
            let mut reader = BlockReader::new(file);
            let mut out = Vec::new();
            let mut chunk = vec![0; buffer];
            loop {
                let n = reader.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&chunk[..n]);
            }
            assert!(out == bytes, "buffer of {buffer}");
            assert_eq!(
                reader.read(&mut chunk).await.unwrap(),
                0,
                "stays at the end"
            );
        }
    }

    #[tokio::test]
    async fn a_buffer_that_grows_between_reads_does_not_end_the_file() {
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (_dir, file) = file_of(&bytes);
        let mut reader = BlockReader::new(file);
        let mut out = Vec::new();
        for buffer in [MIN_BLOCK, 1 << 20].into_iter().cycle() {
            let mut chunk = vec![0; buffer];
            let n = reader.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..n]);
        }
        assert!(out == bytes, "{} of {} bytes", out.len(), bytes.len());
    }

    #[tokio::test]
    async fn starts_where_the_file_is_positioned() {
        let (_dir, mut file) = file_of(b"0123456789");
        file.seek(SeekFrom::Start(4)).unwrap();
        let mut out = String::new();
        BlockReader::new(file)
            .read_to_string(&mut out)
            .await
            .unwrap();
        assert_eq!(out, "456789");
    }

    #[tokio::test]
    async fn an_empty_file_ends_at_once() {
        let (_dir, file) = file_of(b"");
        let mut out = Vec::new();
        BlockReader::new(file).read_to_end(&mut out).await.unwrap();
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn a_failed_read_is_an_error_and_stays_one() {
        // A write-only descriptor: every read fails with EBADF.
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("f")).unwrap();
        let mut reader = BlockReader::new(file);
        let mut chunk = [0; 16];
        assert!(reader.read(&mut chunk).await.is_err());
        assert!(reader.read(&mut chunk).await.is_err());
    }
}
