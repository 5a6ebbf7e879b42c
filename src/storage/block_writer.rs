//! Writes a file on blocking threads from owned blocks, one block on its
//! way to the disk while the caller fills the next.
//!
//! An upload's bytes go from the socket into a block and from the block into
//! the file. Handing the block itself to the blocking thread saves the copy
//! that `tokio::fs::File` makes into a buffer of its own, and a whole block
//! per thread hop keeps the hops few; both showed in profiles of STOR.
//!
//! It never runs a file write on an async worker, and never has more than
//! one write in flight, so blocks reach the file in order.

use std::fs::File;
use std::future::{poll_fn, Future};
use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::task::JoinHandle;

/// What a finished write hands back: the file, the block (emptied, for reuse)
/// and how the write went.
type Written = (File, Vec<u8>, io::Result<()>);

/// A file written block by block on blocking threads.
pub(super) struct BlockWriter {
    state: State,
}

enum State {
    /// No write in flight; `spare` is the block the last write gave back.
    Idle { file: File, spare: Vec<u8> },
    /// One block is being written.
    Writing(JoinHandle<Written>),
    /// The blocking task died (panicked, or the runtime shut down): the file
    /// went with it.
    Lost,
}

impl BlockWriter {
    pub(super) fn new(file: File) -> Self {
        BlockWriter {
            state: State::Idle {
                file,
                spare: Vec::new(),
            },
        }
    }

    /// Starts writing `block` and returns an empty buffer for the next one,
    /// once the previous write is done (its error, if it failed).
    /// The returned buffer may have less capacity than `block`.
    pub(super) async fn write_block(&mut self, block: Vec<u8>) -> io::Result<Vec<u8>> {
        let (file, spare) = poll_fn(|cx| self.poll_take(cx)).await?;
        if block.is_empty() {
            self.state = State::Idle { file, spare };
            return Ok(block);
        }
        self.start(file, block);
        Ok(spare)
    }

    /// The file, when no write is in flight.
    pub(super) fn file(&self) -> Option<&File> {
        match &self.state {
            State::Idle { file, .. } => Some(file),
            State::Writing(_) | State::Lost => None,
        }
    }

    /// The file, taken out when no write is in flight; the writer is then spent.
    pub(super) fn take_idle(&mut self) -> Option<File> {
        match std::mem::replace(&mut self.state, State::Lost) {
            State::Idle { file, .. } => Some(file),
            other => {
                self.state = other;
                None
            }
        }
    }

    /// Waits for the last write and returns the file.
    pub(super) async fn into_file(mut self) -> io::Result<File> {
        let (file, _) = poll_fn(|cx| self.poll_take(cx)).await?;
        Ok(file)
    }

    /// Waits until no write is in flight and takes the file and the spare
    /// block out; the caller puts them back or starts a write with them.
    /// Cancel-safe: while pending, the write in flight stays in `self`.
    fn poll_take(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(File, Vec<u8>)>> {
        match std::mem::replace(&mut self.state, State::Lost) {
            State::Idle { file, spare } => Poll::Ready(Ok((file, spare))),
            State::Writing(mut handle) => match Pin::new(&mut handle).poll(cx) {
                Poll::Pending => {
                    self.state = State::Writing(handle);
                    Poll::Pending
                }
                Poll::Ready(Ok((file, mut spare, result))) => {
                    spare.clear();
                    match result {
                        Ok(()) => Poll::Ready(Ok((file, spare))),
                        Err(err) => {
                            self.state = State::Idle { file, spare };
                            Poll::Ready(Err(err))
                        }
                    }
                }
                Poll::Ready(Err(join)) => Poll::Ready(Err(io::Error::other(join))),
            },
            State::Lost => Poll::Ready(Err(io::Error::other(
                "the file was lost with an earlier write",
            ))),
        }
    }

    fn start(&mut self, mut file: File, block: Vec<u8>) {
        self.state = State::Writing(tokio::task::spawn_blocking(move || {
            let result = file.write_all(&block);
            (file, block, result)
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file() -> (tempfile::TempDir, std::path::PathBuf, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        (dir, path, file)
    }

    #[tokio::test]
    async fn blocks_land_in_order() {
        let (_dir, path, file) = temp_file();
        let mut writer = BlockWriter::new(file);
        let spare = writer.write_block(b"one ".to_vec()).await.unwrap();
        assert!(spare.is_empty(), "the buffer handed back is empty");
        writer.write_block(b"two ".to_vec()).await.unwrap();
        writer.write_block(b"three".to_vec()).await.unwrap();
        writer.into_file().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one two three");
    }

    #[tokio::test]
    async fn a_block_comes_back_for_reuse() {
        let (_dir, _path, file) = temp_file();
        let mut writer = BlockWriter::new(file);
        let first = Vec::with_capacity(4096);
        let mut block = first;
        block.extend_from_slice(&[1; 4096]);
        writer.write_block(block).await.unwrap();
        let back = writer.write_block(vec![2; 10]).await.unwrap();
        assert!(back.is_empty());
        assert!(back.capacity() >= 4096, "the first block was handed back");
    }

    #[tokio::test]
    async fn a_failed_write_is_reported_by_the_next_call() {
        // A read-only descriptor: every write fails with EBADF.
        let (_dir, path, _file) = temp_file();
        let file = File::open(&path).unwrap();
        let mut writer = BlockWriter::new(file);
        writer.write_block(b"lost".to_vec()).await.unwrap();
        assert!(writer.write_block(b"more".to_vec()).await.is_err());
        // An empty block waits for the write in flight, as a flush did.
        writer.write_block(Vec::new()).await.unwrap();
        assert!(
            writer.into_file().await.is_ok(),
            "the file survives the error"
        );
    }
}
