//! `[proxy_protocol]`: listeners behind a load balancer, and who may speak
//! the PROXY protocol to them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

use crate::config::schema::ProxyProtocolSection;
use crate::proxy_protocol::TrustedProxies;
use crate::settings::ProxySettings;

use super::{addresses, Problems};

pub(super) fn proxy_settings(
    section: &ProxyProtocolSection,
    taken: &[SocketAddr],
    problems: &mut Problems,
) -> ProxySettings {
    let written = section.listen.as_deref().unwrap_or_default();
    if written.is_empty() {
        problems.add(
            "proxy_protocol.listen",
            "must name at least one address the proxy connects to, such as \"10.0.0.5:2121\"",
        );
    }
    let listen = addresses("proxy_protocol.listen", written, taken, problems);
    let trusted_written = section.trusted.as_deref().unwrap_or_default();
    if trusted_written.is_empty() {
        problems.add(
            "proxy_protocol.trusted",
            "must name the proxies' addresses, such as [\"10.0.0.2\", \"10.0.1.0/24\"]: \
             only they may say which client a connection carries",
        );
    }
    let nets = trusted_written
        .iter()
        .enumerate()
        .filter_map(|(index, text)| {
            problems.check(format!("proxy_protocol.trusted[{index}]"), network(text))
        })
        .collect();
    ProxySettings {
        listen,
        trusted: Arc::new(TrustedProxies::new(nets)),
    }
}

/// An address (`10.0.0.2`, `::1`) or a network (`10.0.1.0/24`).
fn network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => text.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
            format!("invalid address or network {text:?}: expected \"10.0.0.2\" or \"10.0.1.0/24\"")
        })?,
    };
    if net.prefix_len() == 0 {
        return Err(format!(
            "{text:?} trusts every address: anyone could then claim to be any client"
        ));
    }
    // A network written with host bits ("10.0.1.7/24") is most likely a
    // typo for one address or the network; say which was read.
    if net.network() != net.addr() {
        return Err(format!(
            "{text:?} has host bits set: write the network as \"{}\" or one address without a prefix",
            net.trunc()
        ));
    }
    Ok(net)
}
