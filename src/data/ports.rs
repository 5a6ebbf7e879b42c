//! The passive port pool: ports are leased while a passive listener is open
//! and return to the pool the moment it (or its data connection) is dropped.
//!
//! Without a configured range, ports are picked at random from the kernel's
//! ephemeral range rather than with `bind(0)`: every download leaves its
//! data port in TIME_WAIT for a minute (the server closes first), and with
//! thousands of those the kernel's own search for a free port took
//! milliseconds per bind, on the async worker. A port whose only users are
//! in TIME_WAIT binds at once with `SO_REUSEADDR`, as vsftpd's random
//! passive ports do.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::{TcpListener, TcpSocket};

use super::connect::PassiveListener;

/// Random ports tried before leaving the choice to the kernel.
const RANDOM_ATTEMPTS: u32 = 32;

/// The kernel's ephemeral port range when it cannot be read.
const DEFAULT_EPHEMERAL: RangeInclusive<u16> = 32768..=60999;

/// Ports available for passive data connections.
#[derive(Debug)]
pub struct PassivePortPool {
    ports: Ports,
}

#[derive(Debug)]
enum Ports {
    /// The configured range: the ports not leased now, least recently used first.
    Range(Mutex<VecDeque<u16>>),
    /// No range configured: a random port of the kernel's ephemeral range each time.
    Ephemeral(RangeInclusive<u16>),
}

/// A leased port; returns itself to the pool when dropped.
#[derive(Debug)]
pub struct PortLease {
    pool: Arc<PassivePortPool>,
    port: u16,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Ports::Range(free) = &self.pool.ports {
            free.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_back(self.port);
        }
    }
}

impl PassivePortPool {
    /// A pool over `range`, or over random ephemeral ports when `None`.
    pub fn new(range: Option<RangeInclusive<u16>>) -> Arc<Self> {
        let ports = match range {
            Some(range) => Ports::Range(Mutex::new(range.collect())),
            None => Ports::Ephemeral(ephemeral_range()),
        };
        Arc::new(PassivePortPool { ports })
    }

    /// Binds a passive listener on `ip`, on the next free port of the pool.
    /// Ports in use by other programs are skipped; when none is left the error
    /// kind is `AddrNotAvailable`.
    pub fn listen(self: &Arc<Self>, ip: IpAddr) -> io::Result<PassiveListener> {
        let free = match &self.ports {
            Ports::Range(free) => free,
            Ports::Ephemeral(ephemeral) => return listen_anywhere(ip, ephemeral),
        };
        let taken = || {
            free.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front()
        };
        let attempts = free.lock().unwrap_or_else(PoisonError::into_inner).len();
        for _ in 0..attempts.max(1) {
            let Some(port) = taken() else { break };
            let lease = PortLease {
                pool: self.clone(),
                port,
            };
            match bind(SocketAddr::new(ip, port)) {
                Ok(listener) => return PassiveListener::new(listener, Some(lease)),
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

/// No range configured: random ports of `ephemeral`, then whatever the kernel picks.
fn listen_anywhere(ip: IpAddr, ephemeral: &RangeInclusive<u16>) -> io::Result<PassiveListener> {
    for _ in 0..RANDOM_ATTEMPTS {
        match bind(SocketAddr::new(ip, random_port(ephemeral))) {
            Ok(listener) => return PassiveListener::new(listener, None),
            Err(err) if err.kind() == io::ErrorKind::AddrInUse => continue,
            Err(err) => return Err(err),
        }
    }
    PassiveListener::new(bind(SocketAddr::new(ip, 0))?, None)
}

fn random_port(range: &RangeInclusive<u16>) -> u16 {
    let (low, high) = (*range.start(), *range.end());
    let span = u64::from(high - low) + 1;
    // Every RandomState gets fresh keys (seeded from the OS once per thread):
    // unpredictable enough that a client cannot tell which port comes next.
    let offset = RandomState::new().hash_one(()) % span;
    low + u16::try_from(offset).unwrap_or(0)
}

/// The kernel's ephemeral range (`net.ipv4.ip_local_port_range`, which also
/// applies to IPv6), read once when the pool is made.
fn ephemeral_range() -> RangeInclusive<u16> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range");
    let parsed = text.ok().and_then(|text| {
        let mut ports = text.split_whitespace().map(|p| p.parse::<u16>().ok());
        match (ports.next()??, ports.next()??) {
            (low, high) if 1024 <= low && low <= high => Some(low..=high),
            _ => None,
        }
    });
    parsed.unwrap_or(DEFAULT_EPHEMERAL)
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
    async fn without_a_range_ports_are_random_ephemeral_ones() {
        let pool = PassivePortPool::new(None);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let listeners: Vec<_> = (0..20).map(|_| pool.listen(ip).unwrap()).collect();
        let mut ports: Vec<u16> = listeners.iter().map(|l| l.port()).collect();
        assert!(
            ports.iter().all(|p| ephemeral_range().contains(p)),
            "{ports:?}"
        );
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 20, "every listener has a port of its own");
        assert!(
            ports.windows(2).any(|w| w[1] - w[0] > 1),
            "not handed out in sequence: {ports:?}"
        );
    }
}
