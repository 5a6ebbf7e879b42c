//! Listing lines gathered into writes of about [`CHUNK_SIZE`] bytes for the data connection.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};

/// About how many bytes of lines [`LineChunks`] gathers before it yields them.
pub const CHUNK_SIZE: usize = 16 * 1024;

/// Listing lines as a stream of byte chunks: `write_line` appends the line
/// (or lines) of each item of `items` to the current chunk, which goes out
/// once it holds [`CHUNK_SIZE`] bytes or no further item is ready yet, so
/// lines are neither sent one by one nor held back while the storage is slow.
/// An error from `items` ends the stream, dropping the unsent chunk.
pub struct LineChunks<S, F> {
    items: S,
    write_line: F,
    chunk: Vec<u8>,
    /// `items` has ended (or failed) and must not be polled again.
    done: bool,
}

impl<S, F> LineChunks<S, F> {
    /// Chunks of the lines `write_line` makes of `items`.
    pub fn new(items: S, write_line: F) -> Self {
        LineChunks {
            items,
            write_line,
            chunk: Vec::new(),
            done: false,
        }
    }
}

impl<S, F, T, E> Stream for LineChunks<S, F>
where
    S: Stream<Item = Result<T, E>> + Unpin,
    F: FnMut(T, &mut Vec<u8>) + Unpin,
{
    type Item = Result<Vec<u8>, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        while !this.done && this.chunk.len() < CHUNK_SIZE {
            match this.items.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(item))) => {
                    if this.chunk.capacity() == 0 {
                        this.chunk.reserve(CHUNK_SIZE + 512);
                    }
                    (this.write_line)(item, &mut this.chunk);
                }
                Poll::Ready(Some(Err(err))) => {
                    this.done = true;
                    this.chunk.clear();
                    return Poll::Ready(Some(Err(err)));
                }
                Poll::Ready(None) => this.done = true,
                Poll::Pending if this.chunk.is_empty() => return Poll::Pending,
                Poll::Pending => break,
            }
        }
        if this.chunk.is_empty() {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(Ok(std::mem::take(&mut this.chunk))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_chunks_carry_every_line_in_order() {
        use futures::executor::block_on;
        use futures::stream::{self, TryStreamExt};

        let items: Vec<Result<usize, ()>> = (0..5000).map(Ok).collect();
        let lines = LineChunks::new(stream::iter(items), |n: usize, out: &mut Vec<u8>| {
            out.extend_from_slice(format!("line {n}\r\n").as_bytes());
        });
        let chunks: Vec<Vec<u8>> = block_on(lines.try_collect()).unwrap();
        assert!(chunks.len() > 1, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.len() < CHUNK_SIZE + 16));
        let expected: String = (0..5000).map(|n| format!("line {n}\r\n")).collect();
        assert_eq!(chunks.concat(), expected.as_bytes());

        // An error ends the stream; nothing is polled after it.
        let failing = stream::iter(vec![Ok(1), Err("disk"), Ok(2)]);
        let mut lines = LineChunks::new(failing, |n: usize, out: &mut Vec<u8>| {
            out.extend_from_slice(n.to_string().as_bytes());
        });
        assert_eq!(block_on(lines.next()), Some(Err("disk")));
        assert_eq!(block_on(lines.next()), None);
        assert_eq!(block_on(lines.next()), None);
    }
}
