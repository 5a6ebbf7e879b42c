//! `[proxy_protocol]`: listeners behind a load balancer, and who may speak
//! the PROXY protocol to them.

use std::net::SocketAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::config::schema::ProxyProtocolSection;
use crate::proxy_protocol::TrustedProxies;
use crate::settings::ProxySettings;

use super::{addresses, network, Problems};

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
            problems.check(format!("proxy_protocol.trusted[{index}]"), trusted(text))
        })
        .collect();
    ProxySettings {
        listen,
        trusted: Arc::new(TrustedProxies::new(nets)),
    }
}

/// A trusted proxy's address or network: not every address.
fn trusted(text: &str) -> Result<IpNet, String> {
    let net = network(text)?;
    if net.prefix_len() == 0 {
        return Err(format!(
            "{:?} trusts every address: anyone could then claim to be any client",
            text.trim()
        ));
    }
    Ok(net)
}
