//! The passive port pool: ports are leased while a passive listener is open
//! and return to the pool the moment it (or its data connection) is dropped.
//!
//! A configured range is shared fairly: one client address ([`ClientKey`])
//! holds at most a quarter of it and one user at most half, so a few
//! sessions that open `PASV` and never transfer cannot take every port.
//!
//! Without a configured range, ports are picked at random from the kernel's
//! ephemeral range rather than with `bind(0)`: every download leaves its
//! data port in TIME_WAIT for a minute (the server closes first), and with
//! thousands of those the kernel's own search for a free port took
//! milliseconds per bind, on the async worker. A port whose only users are
//! in TIME_WAIT binds at once with `SO_REUSEADDR`, as vsftpd's random
//! passive ports do.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::{TcpListener, TcpSocket};

use super::connect::PassiveListener;
use crate::address::ClientKey;

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
    /// The configured range and who holds its ports.
    Range(Mutex<Leases>),
    /// No range configured: a random port of the kernel's ephemeral range each time.
    Ephemeral(RangeInclusive<u16>),
}

#[derive(Debug)]
struct Leases {
    /// The ports not leased now, least recently used first.
    free: VecDeque<u16>,
    per_client: HashMap<ClientKey, usize>,
    per_user: HashMap<Arc<str>, usize>,
    client_cap: usize,
    user_cap: usize,
    /// The ports of the range, leased or not.
    total: usize,
}

impl Leases {
    /// Takes a free port for `lessee`, within its shares.
    fn take(&mut self, lessee: &Lessee) -> Result<u16, PassiveError> {
        if self.per_client.get(&lessee.client).copied().unwrap_or(0) >= self.client_cap {
            return Err(PassiveError::ShareHeld("address"));
        }
        if self.per_user.get(&lessee.user).copied().unwrap_or(0) >= self.user_cap {
            return Err(PassiveError::ShareHeld("user"));
        }
        let port = self.free.pop_front().ok_or(PassiveError::Exhausted)?;
        *self.per_client.entry(lessee.client).or_default() += 1;
        *self.per_user.entry(lessee.user.clone()).or_default() += 1;
        Ok(port)
    }

    fn give_back(&mut self, port: u16, lessee: &Lessee) {
        self.free.push_back(port);
        release(&mut self.per_client, &lessee.client);
        release(&mut self.per_user, &lessee.user);
    }
}

/// One lease fewer for `key`; keys holding none are forgotten.
fn release<K: Eq + std::hash::Hash>(held: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = held.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            held.remove(key);
        }
    }
}

/// Who asks for a passive port: the client's address and the user logged in.
#[derive(Clone, Debug)]
pub struct Lessee {
    /// The client's address, as its budgets count it.
    pub client: ClientKey,
    /// The user's name in logs (`anonymous` for the anonymous user).
    pub user: Arc<str>,
}

/// Why no passive listener was opened.
#[derive(Debug, thiserror::Error)]
pub enum PassiveError {
    /// Every port of the range is leased.
    #[error("no passive port free")]
    Exhausted,
    /// This client address or this user holds its share of the range.
    #[error("this {0} holds its share of the passive ports")]
    ShareHeld(&'static str),
    /// Binding failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A leased port; returns itself to the pool when dropped.
#[derive(Debug)]
pub(super) struct PortLease {
    pool: Arc<PassivePortPool>,
    port: u16,
    lessee: Lessee,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Ports::Range(leases) = &self.pool.ports {
            leases
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .give_back(self.port, &self.lessee);
        }
    }
}

impl PassivePortPool {
    /// A pool over `range`, or over random ephemeral ports when `None`.
    pub fn new(range: Option<RangeInclusive<u16>>) -> Arc<Self> {
        let ports = match range {
            Some(range) => {
                let free: VecDeque<u16> = range.collect();
                let share = |part: usize| free.len().div_ceil(part).max(1);
                Ports::Range(Mutex::new(Leases {
                    client_cap: share(4),
                    user_cap: share(2),
                    total: free.len(),
                    free,
                    per_client: HashMap::new(),
                    per_user: HashMap::new(),
                }))
            }
            None => Ports::Ephemeral(ephemeral_range()),
        };
        Arc::new(PassivePortPool { ports })
    }

    /// Ports of the configured range leased now, and free; `None` without
    /// a range (each listener takes an ephemeral port).
    pub fn usage(&self) -> Option<(usize, usize)> {
        match &self.ports {
            Ports::Range(leases) => {
                let leases = leases.lock().unwrap_or_else(PoisonError::into_inner);
                Some((leases.total - leases.free.len(), leases.free.len()))
            }
            Ports::Ephemeral(_) => None,
        }
    }

    /// Binds a passive listener on `ip` for `lessee`, on the next free port
    /// of the pool. Ports in use by other programs are skipped.
    pub fn listen(
        self: &Arc<Self>,
        ip: IpAddr,
        lessee: &Lessee,
    ) -> Result<PassiveListener, PassiveError> {
        let leases = match &self.ports {
            Ports::Range(leases) => leases,
            Ports::Ephemeral(ephemeral) => return Ok(listen_anywhere(ip, ephemeral)?),
        };
        let take = || {
            leases
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(lessee)
        };
        let attempts = leases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .free
            .len();
        for _ in 0..attempts.max(1) {
            let port = take()?;
            let lease = PortLease {
                pool: self.clone(),
                port,
                lessee: lessee.clone(),
            };
            match bind(SocketAddr::new(ip, port)) {
                Ok(listener) => return Ok(PassiveListener::new(listener, Some(lease))?),
                // The lease goes back on drop; try the next port.
                Err(err) if err.kind() == io::ErrorKind::AddrInUse => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(PassiveError::Exhausted)
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

    fn lessee(client: &str, user: &str) -> Lessee {
        Lessee {
            client: ClientKey::of(client.parse().unwrap()),
            user: user.into(),
        }
    }

    /// A range of `n` ports that nothing else on the machine uses now.
    fn free_range(n: u16) -> RangeInclusive<u16> {
        loop {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let low = probe.local_addr().unwrap().port();
            drop(probe);
            let Some(high) = low.checked_add(n - 1) else {
                continue;
            };
            let all_free =
                (low..=high).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
            if all_free {
                return low..=high;
            }
        }
    }

    #[tokio::test]
    async fn ports_come_back_when_the_listener_is_dropped() {
        let range = free_range(1);
        let port = *range.start();
        let pool = PassivePortPool::new(Some(range));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let me = lessee("192.0.2.1", "alice");
        let first = pool.listen(ip, &me).unwrap();
        assert_eq!(first.port(), port);
        let exhausted = pool.listen(ip, &lessee("192.0.2.2", "bob")).unwrap_err();
        assert!(matches!(exhausted, PassiveError::Exhausted), "{exhausted}");
        drop(first);
        assert_eq!(pool.listen(ip, &me).unwrap().port(), port);
    }

    #[tokio::test]
    async fn one_address_holds_a_quarter_of_the_range_and_one_user_half() {
        let pool = PassivePortPool::new(Some(free_range(8)));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let flood = lessee("192.0.2.1", "anonymous");
        let held: Vec<_> = (0..2).map(|_| pool.listen(ip, &flood).unwrap()).collect();
        let refused = pool.listen(ip, &flood).unwrap_err();
        assert!(
            matches!(refused, PassiveError::ShareHeld("address")),
            "{refused}"
        );
        // The same user from a second address: half the range in all.
        let other = lessee("192.0.2.2", "anonymous");
        let more: Vec<_> = (0..2).map(|_| pool.listen(ip, &other).unwrap()).collect();
        let refused = pool
            .listen(ip, &lessee("192.0.2.3", "anonymous"))
            .unwrap_err();
        assert!(
            matches!(refused, PassiveError::ShareHeld("user")),
            "{refused}"
        );
        // Everyone else still gets the rest.
        assert!(pool.listen(ip, &lessee("192.0.2.4", "alice")).is_ok());
        // IPv6 counts per /64.
        let v6 = |host: &str| lessee(&format!("2001:db8::{host}"), "bob");
        let _a = pool.listen(ip, &v6("1")).unwrap();
        let _b = pool.listen(ip, &v6("2")).unwrap();
        assert!(matches!(
            pool.listen(ip, &v6("3")).unwrap_err(),
            PassiveError::ShareHeld("address")
        ));
        drop(held);
        assert!(pool.listen(ip, &flood).is_ok(), "shares come back");
        drop(more);
    }

    #[tokio::test]
    async fn without_a_range_ports_are_random_ephemeral_ones() {
        let pool = PassivePortPool::new(None);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let me = lessee("192.0.2.1", "alice");
        let listeners: Vec<_> = (0..20).map(|_| pool.listen(ip, &me).unwrap()).collect();
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
