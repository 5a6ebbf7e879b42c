//! Client addresses as the per-address budgets see them: login failures,
//! connection caps, passive ports and password checks all count by the
//! same key.

use std::net::IpAddr;

/// Who an address's budgets belong to: an IPv4 address (IPv4-mapped IPv6
/// included), or for IPv6 its /64, which one host or one LAN gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    /// The key of a client at `ip`.
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !u128::from(u64::MAX);
                ClientKey(IpAddr::V6(prefix.into()))
            }
            v4 => ClientKey(v4),
        }
    }
}
