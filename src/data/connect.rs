//! Making the data connection: accepting a passive one from the control
//! peer only, or connecting out to the control peer (active mode).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::ports::PortLease;

/// Whether two addresses are the same host (IPv4-mapped IPv6 counts as IPv4).
pub fn same_host(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// A passive-mode listener waiting for the client's data connection.
#[derive(Debug)]
pub struct PassiveListener {
    listener: TcpListener,
    port: u16,
    _lease: Option<PortLease>,
}

impl PassiveListener {
    pub(super) fn new(listener: TcpListener, lease: Option<PortLease>) -> io::Result<Self> {
        let port = listener.local_addr()?.port();
        Ok(PassiveListener {
            listener,
            port,
            _lease: lease,
        })
    }

    /// The port clients must connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits up to `wait` for a connection from `peer`; connections from any
    /// other address are dropped (PASV port stealing) and waiting goes on.
    pub async fn accept_from(self, peer: IpAddr, wait: Duration) -> io::Result<TcpStream> {
        let accept = async {
            loop {
                let (stream, from) = self.listener.accept().await?;
                if same_host(from.ip(), peer) {
                    return Ok(stream);
                }
                tracing::warn!(%from, expected = %peer, "refused passive data connection from a foreign address");
            }
        };
        tokio::time::timeout(wait, accept)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no data connection was made"))?
    }
}

/// Connects to `target` from `local` (the control connection's local address)
/// within `wait` (active mode).
pub(super) async fn connect_active(
    local: IpAddr,
    target: SocketAddr,
    wait: Duration,
) -> io::Result<TcpStream> {
    let socket = match target {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if local.is_ipv4() == target.is_ipv4() {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    tokio::time::timeout(wait, socket.connect(target))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "data connection timed out"))?
}
