//! The passive port pool: ports are leased while a passive listener is open
//! and return to the pool the moment it (or its data connection) is dropped.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::{TcpListener, TcpSocket};

use super::connect::PassiveListener;

/// Ports available for passive data connections.
#[derive(Debug)]
pub struct PassivePortPool {
    /// `None`: let the OS pick an ephemeral port each time.
    free: Option<Mutex<VecDeque<u16>>>,
}

/// A leased port; returns itself to the pool when dropped.
#[derive(Debug)]
pub struct PortLease {
    pool: Arc<PassivePortPool>,
    port: u16,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Some(free) = &self.pool.free {
            free.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_back(self.port);
        }
    }
}

impl PassivePortPool {
    /// A pool over `range`, or over OS-chosen ports when `None`.
    pub fn new(range: Option<RangeInclusive<u16>>) -> Arc<Self> {
        Arc::new(PassivePortPool {
            free: range.map(|r| Mutex::new(r.collect())),
        })
    }

    fn take(&self) -> Option<Option<u16>> {
        match &self.free {
            None => Some(None),
            Some(free) => free
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front()
                .map(Some),
        }
    }

    /// Binds a passive listener on `ip`, on the next free port of the pool.
    /// Ports in use by other programs are skipped; when none is left the error
    /// kind is `AddrNotAvailable`.
    pub fn listen(self: &Arc<Self>, ip: IpAddr) -> io::Result<PassiveListener> {
        let attempts = self.free.as_ref().map_or(1, |f| {
            f.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len()
                .max(1)
        });
        for _ in 0..attempts {
            let Some(port) = self.take() else { break };
            let lease = port.map(|port| PortLease {
                pool: self.clone(),
                port,
            });
            match bind(SocketAddr::new(ip, port.unwrap_or(0))) {
                Ok(listener) => return PassiveListener::new(listener, lease),
                // The lease goes back on drop; try the next port.
                Err(err) if err.kind() == io::ErrorKind::AddrInUse => continue,
                Err(err) => return Err(err),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "no passive port free",
        ))
    }
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // A port whose last data connection is in TIME_WAIT must be reusable at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ports_come_back_when_the_listener_is_dropped() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let pool = PassivePortPool::new(Some(port..=port));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let first = pool.listen(ip).unwrap();
        assert_eq!(first.port(), port);
        let exhausted = pool.listen(ip).unwrap_err();
        assert_eq!(exhausted.kind(), io::ErrorKind::AddrNotAvailable);
        drop(first);
        assert_eq!(pool.listen(ip).unwrap().port(), port);
    }

    #[tokio::test]
    async fn without_a_range_the_os_picks() {
        let pool = PassivePortPool::new(None);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = pool.listen(ip).unwrap();
        let b = pool.listen(ip).unwrap();
        assert_ne!(a.port(), b.port());
    }
}
