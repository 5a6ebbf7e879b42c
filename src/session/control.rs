//! The control connection: bounded line reading (CRLF or LF, Telnet IAC
//! stripped) and reply writing.
//!
//! Reading is cancel-safe: bytes read so far stay in the buffer, so the
//! session can race a read against a running transfer.

use std::io::{self, Read as _};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use tokio_rustls::TlsAcceptor;

use crate::reply::Reply;
use crate::tls::TlsSettings;

/// Longest command line accepted, in bytes, CRLF included.
pub const MAX_LINE_LENGTH: usize = 8192;

/// The read buffer a session starts with and returns to: most command lines
/// fit, and an idle session holds no more than this.
const SMALL_BUFFER: usize = 128;

/// A byte stream a control or data connection can run over.
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AsyncStream for T {}

/// A plain control connection, read so that urgent data cannot stall it.
///
/// Python's `ftplib.FTP.abort()` sends its whole `ABOR\r\n` with MSG_OOB,
/// which puts the urgent mark on the final `\n`. The listener sets
/// SO_OOBINLINE so that byte stays in the stream, but a read stops short of
/// the mark; tokio takes the short read for a drained socket and waits for
/// a readiness event that no further data brings. So a read that ends
/// inside a line is followed at once by one more non-blocking read.
pub struct PlainControl(TcpStream);

impl PlainControl {
    /// Wraps an accepted control connection.
    pub fn new(stream: TcpStream) -> Self {
        PlainControl(stream)
    }
}

impl AsyncRead for PlainControl {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.0).poll_read(cx, buf))?;
        let read = &buf.filled()[before..];
        if !read.is_empty() && read.last() != Some(&b'\n') && buf.remaining() > 0 {
            let mut past_mark = [0u8; 64];
            let room = buf.remaining().min(past_mark.len());
            let socket = socket2::SockRef::from(&self.0);
            // The socket is non-blocking: nothing there is WouldBlock, and
            // any real error comes back on the next read.
            if let Ok(n) = (&*socket).read(&mut past_mark[..room]) {
                buf.put_slice(&past_mark[..n]);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for PlainControl {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// What reading one command line produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line, IAC sequences removed, decoded as UTF-8 (lossily).
    Text(String),
    /// A line longer than [`MAX_LINE_LENGTH`]; it was discarded.
    TooLong,
    /// The client closed the connection.
    Closed,
}

/// The control connection with its read buffer.
pub struct ControlChannel {
    io: Box<dyn AsyncStream>,
    buf: Vec<u8>,
    /// Skipping the rest of an over-long line.
    discarding: bool,
}

impl ControlChannel {
    /// Wraps a connected stream.
    pub fn new(io: Box<dyn AsyncStream>) -> Self {
        ControlChannel {
            io,
            buf: Vec::with_capacity(SMALL_BUFFER),
            discarding: false,
        }
    }

    /// Reads the next line. Cancel-safe.
    pub async fn read_line(&mut self) -> io::Result<Line> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.buf.drain(..=end).collect();
                if self.buf.len() < SMALL_BUFFER {
                    // A long line grew it; do not keep that while idle.
                    self.buf.shrink_to(SMALL_BUFFER);
                }
                if std::mem::take(&mut self.discarding) {
                    return Ok(Line::TooLong);
                }
                return Ok(Line::Text(decode_line(&raw)));
            }
            if self.buf.len() >= MAX_LINE_LENGTH {
                self.buf.clear();
                self.discarding = true;
            }
            if self.buf.len() == self.buf.capacity() {
                // Doubles, up to one line's worth.
                let more = self.buf.len().clamp(SMALL_BUFFER, MAX_LINE_LENGTH);
                self.buf.reserve_exact(more);
            }
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return Ok(Line::Closed);
            }
        }
    }

    /// Whether bytes the client sent after the last line are waiting unread.
    pub fn has_buffered_input(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Runs a TLS server handshake on the connection and continues over TLS
    /// (RFC 4217 §4, and implicit FTPS before the greeting).
    pub async fn start_tls(&mut self, tls: &TlsSettings, acceptor: TlsAcceptor) -> io::Result<()> {
        let plain = std::mem::replace(
            &mut self.io,
            Box::new(tokio::io::join(tokio::io::empty(), tokio::io::sink())),
        );
        let protected = tls.handshake(acceptor, plain).await?;
        let resumed =
            protected.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        crate::metrics::get()
            .tls_handshakes
            .with_label_values(&["control", if resumed { "yes" } else { "no" }])
            .inc();
        self.io = Box::new(protected);
        Ok(())
    }

    /// Sends one reply and flushes it.
    pub async fn send(&mut self, reply: &Reply) -> io::Result<()> {
        self.send_text(&reply.to_wire()).await
    }

    /// Writes text already in wire form (part of a streamed reply).
    pub async fn send_text(&mut self, wire: &str) -> io::Result<()> {
        self.io.write_all(wire.as_bytes()).await?;
        self.io.flush().await
    }

    /// Shuts the write side down cleanly.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.io.shutdown().await
    }
}

/// Telnet: interpret as command (RFC 854).
const IAC: u8 = 0xFF;

/// Strips Telnet IAC sequences and the line ending, then decodes as UTF-8.
fn decode_line(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != IAC {
            out.push(b);
            i += 1;
            continue;
        }
        match raw.get(i + 1) {
            Some(&IAC) => {
                out.push(IAC);
                i += 2;
            }
            // WILL, WONT, DO, DONT carry an option byte.
            Some(0xFB..=0xFE) => i += 3,
            Some(0xF0..=0xFA) => i += 2,
            _ => i += 1,
        }
    }
    while matches!(out.last(), Some(b'\n' | b'\r')) {
        out.pop();
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(input: &[u8]) -> ControlChannel {
        ControlChannel::new(Box::new(tokio::io::join(
            std::io::Cursor::new(input.to_vec()),
            tokio::io::sink(),
        )))
    }

    #[tokio::test]
    async fn reads_crlf_and_bare_lf_lines() {
        let mut c = channel(b"USER a\r\nPASS b\nNOOP");
        assert_eq!(c.read_line().await.unwrap(), Line::Text("USER a".into()));
        assert_eq!(c.read_line().await.unwrap(), Line::Text("PASS b".into()));
        assert_eq!(c.read_line().await.unwrap(), Line::Closed);
    }

    #[tokio::test]
    async fn an_over_long_line_is_reported_once_and_skipped() {
        let mut input = vec![b'A'; MAX_LINE_LENGTH * 3];
        input.extend_from_slice(b"\r\nNOOP\r\n");
        let mut c = channel(&input);
        assert_eq!(c.read_line().await.unwrap(), Line::TooLong);
        assert_eq!(c.read_line().await.unwrap(), Line::Text("NOOP".into()));
    }

    #[tokio::test]
    async fn the_buffer_shrinks_back_after_a_long_line() {
        let mut input = vec![b'A'; 4000];
        input.extend_from_slice(b"\r\nNOOP\r\n");
        let mut c = channel(&input);
        assert!(matches!(c.read_line().await.unwrap(), Line::Text(t) if t.len() == 4000));
        assert!(c.buf.capacity() <= SMALL_BUFFER, "{}", c.buf.capacity());
        assert_eq!(c.read_line().await.unwrap(), Line::Text("NOOP".into()));
        assert!(c.buf.capacity() <= SMALL_BUFFER, "{}", c.buf.capacity());
    }

    #[test]
    fn telnet_sequences_are_stripped() {
        assert_eq!(decode_line(b"\xff\xf4\xff\xf2ABOR\r\n"), "ABOR");
        assert_eq!(decode_line(b"\xff\xfb\x01NOOP\r\n"), "NOOP");
        assert_eq!(decode_line(b"a\xff\xffb\r\n"), "a\u{fffd}b");
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        assert_eq!(decode_line(b"CWD \xe9t\xe9\r\n"), "CWD \u{fffd}t\u{fffd}");
    }
}
