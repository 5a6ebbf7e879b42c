//! Making the data connection: accepting a passive one from the control
//! peer only, or connecting out to the control peer (active mode).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::ports::PortLease;
use crate::proxy_protocol::{self, TrustedProxies};

/// Whether two addresses are the same host (IPv4-mapped IPv6 counts as IPv4).
pub fn same_host(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// A passive-mode listener waiting for the client's data connection.
#[derive(Debug)]
pub struct PassiveListener {
    listener: TcpListener,
    port: u16,
    /// The control connection came through these proxies, which may bring
    /// the data connection too, with a PROXY header naming the client.
    proxies: Option<Arc<TrustedProxies>>,
    _lease: Option<PortLease>,
}

impl PassiveListener {
    pub(super) fn new(listener: TcpListener, lease: Option<PortLease>) -> io::Result<Self> {
        let port = listener.local_addr()?.port();
        Ok(PassiveListener {
            listener,
            port,
            proxies: None,
            _lease: lease,
        })
    }

    /// Takes data connections through `proxies` as well as straight from
    /// the client (see [`PassiveListener::accept_from`]).
    pub fn through(mut self, proxies: Option<Arc<TrustedProxies>>) -> Self {
        self.proxies = proxies;
        self
    }

    /// The port clients must connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits up to `wait` for a connection from `peer`; connections from any
    /// other address are dropped (PASV port stealing) and waiting goes on.
    /// Through a proxy, the client is the one its PROXY header names: a
    /// connection from a trusted proxy is `peer`'s only if its header says so.
    pub async fn accept_from(self, peer: IpAddr, wait: Duration) -> io::Result<TcpStream> {
        let accept = async {
            loop {
                let (mut stream, from) = self.listener.accept().await?;
                let proxied = self.proxies.as_ref().is_some_and(|p| p.contains(from.ip()));
                if !proxied {
                    if same_host(from.ip(), peer) {
                        return Ok(stream);
                    }
                    tracing::warn!(%from, expected = %peer, "refused passive data connection from a foreign address");
                    continue;
                }
                match proxy_protocol::read_header(&mut stream).await {
                    Ok(Some(client)) if same_host(client.ip(), peer) => return Ok(stream),
                    Ok(client) => {
                        tracing::warn!(proxy = %from, ?client, expected = %peer, "refused passive data connection for a foreign client");
                    }
                    Err(err) => {
                        tracing::warn!(proxy = %from, %err, "refused passive data connection: bad PROXY header");
                    }
                }
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
