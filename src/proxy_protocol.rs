//! HAProxy's PROXY protocol (v1 text, v2 binary) on connections from
//! trusted proxies: the header that tells the daemon which client a
//! balancer's connection carries.
//!
//! The header is read exactly: a data connection's first bytes after it
//! may already be an upload, so nothing past the header is consumed. It is
//! parsed with the `ppp` crate; only the client's address is used.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use ppp::{v1, v2, HeaderResult, PartialResult};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// How long a trusted proxy may take to send its header: it writes it
/// before anything else, at once.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest header accepted: v1's limit is 107 bytes; v2's fixed part is
/// 16, the addresses at most 216 (UNIX), and HAProxy adds a few TLVs (SSL
/// details, a unique id) when told to.
const MAX_HEADER: usize = 1024;

/// The addresses allowed to speak the PROXY protocol to the daemon.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// These networks, in any order.
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies(nets)
    }

    /// The trusted networks, as configured.
    pub fn networks(&self) -> &[IpNet] {
        &self.0
    }

    /// Whether a connection from `ip` is a trusted proxy's.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// Why a connection from a trusted proxy carries no usable header.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// The connection failed or closed before the header was whole.
    #[error("connection ended before the PROXY header: {0}")]
    Io(#[from] io::Error),
    /// The header did not come within [`HEADER_TIMEOUT`].
    #[error("no PROXY header within {HEADER_TIMEOUT:?}")]
    TimedOut,
    /// What came is not a PROXY header, or one longer than the daemon takes.
    #[error("not a PROXY protocol header: {0}")]
    Invalid(String),
}

/// Reads the PROXY header a trusted proxy sends first, and nothing after
/// it. `Some(client)`: the connection carries that client; `None`: the
/// proxy speaks for itself (v2 `LOCAL`, v1 `UNKNOWN`: a health check), or
/// gives no address of a kind the daemon serves.
pub async fn read_header(stream: &mut TcpStream) -> Result<Option<SocketAddr>, HeaderError> {
    tokio::time::timeout(HEADER_TIMEOUT, read_exact_header(stream))
        .await
        .map_err(|_| HeaderError::TimedOut)?
}

async fn read_exact_header(stream: &mut TcpStream) -> Result<Option<SocketAddr>, HeaderError> {
    let mut buf = [0u8; MAX_HEADER];
    // Bytes in buf[..read] are consumed: they were all part of an
    // incomplete header. Each round peeks at what follows them, so a peek
    // waits for new bytes instead of seeing the same ones again.
    let mut read = 0;
    loop {
        let peeked = stream.peek(&mut buf[read..]).await?;
        if peeked == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        let seen = read + peeked;
        match parse(&buf[..seen]) {
            Parsed::Complete { len, client } => {
                stream.read_exact(&mut buf[read..len]).await?;
                return Ok(client);
            }
            Parsed::Incomplete if seen < MAX_HEADER => {
                stream.read_exact(&mut buf[read..seen]).await?;
                read = seen;
            }
            Parsed::Incomplete => {
                return Err(HeaderError::Invalid(format!(
                    "longer than {MAX_HEADER} bytes"
                )))
            }
            Parsed::Invalid(why) => return Err(HeaderError::Invalid(why)),
        }
    }
}

enum Parsed {
    /// A whole header of `len` bytes.
    Complete {
        len: usize,
        client: Option<SocketAddr>,
    },
    Incomplete,
    Invalid(String),
}

/// The first 12 bytes of every v2 header.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

fn parse(bytes: &[u8]) -> Parsed {
    // A v2 header says its length in bytes 14-15: one too long for the
    // buffer is refused now, not after waiting for bytes that never fit.
    if let Some(len) = bytes
        .strip_prefix(V2_SIGNATURE)
        .and_then(|rest| rest.get(2..4))
    {
        let total = 16 + usize::from(u16::from_be_bytes([len[0], len[1]]));
        if total > MAX_HEADER {
            return Parsed::Invalid(format!(
                "a v2 header of {total} bytes, more than the {MAX_HEADER} taken"
            ));
        }
    }
    let parsed = HeaderResult::parse(bytes);
    if parsed.is_incomplete() {
        return Parsed::Incomplete;
    }
    match parsed {
        HeaderResult::V1(Ok(header)) => Parsed::Complete {
            len: header.header.len(),
            client: match header.addresses {
                v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v1::Addresses::Unknown => None,
            },
        },
        HeaderResult::V2(Ok(header)) => Parsed::Complete {
            len: header.len(),
            client: match (header.command, header.addresses) {
                (v2::Command::Local, _) => None,
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                // UNIX sockets or no family: the spec says to use the
                // connection's own addresses.
                (v2::Command::Proxy, v2::Addresses::Unix(_) | v2::Addresses::Unspecified) => None,
            },
        },
        HeaderResult::V1(Err(err)) => Parsed::Invalid(err.to_string()),
        HeaderResult::V2(Err(err)) => Parsed::Invalid(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A connection whose far end has written `chunks`, each flushed on its
    /// own: both ends, the near one for `read_header`.
    async fn sent(chunks: &[&[u8]]) -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut far = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (near, _) = listener.accept().await.unwrap();
        for chunk in chunks {
            far.write_all(chunk).await.unwrap();
            far.flush().await.unwrap();
        }
        (near, far)
    }

    fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.push(0x20 | command);
        header.push(family);
        header.extend_from_slice(&u16::try_from(addresses.len()).unwrap().to_be_bytes());
        header.extend_from_slice(addresses);
        header
    }

    async fn rest(near: &mut TcpStream, len: usize) -> Vec<u8> {
        let mut rest = vec![0; len];
        near.read_exact(&mut rest).await.unwrap();
        rest
    }

    #[tokio::test]
    async fn a_v1_header_names_the_client_and_what_follows_is_left_unread() {
        let (mut near, _far) =
            sent(&[b"PROXY TCP4 192.0.2.7 198.51.100.1 40001 21\r\nUSER a\r\n"]).await;
        let client = read_header(&mut near).await.unwrap();
        assert_eq!(client, Some("192.0.2.7:40001".parse().unwrap()));
        assert_eq!(rest(&mut near, 8).await, b"USER a\r\n");

        let (mut near, _far) = sent(&[b"PROXY TCP6 2001:db8::7 2001:db8::1 40001 21\r\n"]).await;
        let client = read_header(&mut near).await.unwrap();
        assert_eq!(client, Some("[2001:db8::7]:40001".parse().unwrap()));

        let (mut near, _far) = sent(&[b"PROXY UNKNOWN\r\n"]).await;
        assert_eq!(read_header(&mut near).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_v2_header_in_pieces_is_read_whole_and_no_further() {
        let addresses = [192, 0, 2, 7, 198, 51, 100, 1, 0x9c, 0x41, 0, 21];
        let header = v2(1, 0x11, &addresses);
        let (head, tail) = header.split_at(7);
        let mut second = tail.to_vec();
        second.extend_from_slice(b"upload bytes");
        let (mut near, _far) = sent(&[head, &second]).await;
        let client = read_header(&mut near).await.unwrap();
        assert_eq!(client, Some("192.0.2.7:40001".parse().unwrap()));
        assert_eq!(rest(&mut near, 12).await, b"upload bytes");
    }

    #[tokio::test]
    async fn a_v2_local_header_is_the_proxy_speaking_for_itself() {
        let (mut near, _far) = sent(&[&v2(0, 0, &[])]).await;
        assert_eq!(read_header(&mut near).await.unwrap(), None);
    }

    #[tokio::test]
    async fn what_is_not_a_header_is_refused_at_once() {
        let too_long = {
            let mut header = V2_SIGNATURE.to_vec();
            header.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
            header
        };
        let v1_too_long = format!("PROXY TCP4 {}\r\n", "1".repeat(120));
        for input in [
            &b"USER alice\r\n"[..],
            b"PROXY TCP4 not-an-address 198.51.100.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 99999 21\r\n",
            &too_long,
            v1_too_long.as_bytes(),
        ] {
            let (mut near, _far) = sent(&[input]).await;
            let err = read_header(&mut near).await.unwrap_err();
            assert!(
                matches!(err, HeaderError::Invalid(_)),
                "{:?}: {err}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[tokio::test]
    async fn a_proxy_that_closes_midway_is_an_error_not_a_client() {
        let (mut near, far) = sent(&[b"PROXY TCP4 192.0.2.7"]).await;
        drop(far);
        assert!(matches!(
            read_header(&mut near).await.unwrap_err(),
            HeaderError::Io(_)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_proxy_that_sends_nothing_times_out() {
        let (mut near, _far) = sent(&[]).await;
        assert!(matches!(
            read_header(&mut near).await.unwrap_err(),
            HeaderError::TimedOut
        ));
    }

    #[test]
    fn trusted_networks_hold_mapped_addresses_too() {
        let trusted = TrustedProxies::new(vec![
            "10.0.1.0/24".parse().unwrap(),
            "2001:db8::5/128".parse().unwrap(),
        ]);
        assert!(trusted.contains("10.0.1.9".parse().unwrap()));
        assert!(trusted.contains("::ffff:10.0.1.9".parse().unwrap()));
        assert!(trusted.contains("2001:db8::5".parse().unwrap()));
        assert!(!trusted.contains("10.0.2.1".parse().unwrap()));
        assert!(!trusted.contains("2001:db8::6".parse().unwrap()));
    }
}
