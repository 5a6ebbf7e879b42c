//! `[passive]`: passive-mode ports and the announced address.

use std::net::{IpAddr, Ipv4Addr};

use crate::config::schema::{PassiveOverrideEntry, PassiveSection};
use crate::config::units::PortRange;
use crate::settings::{PassiveOverride, PassiveSettings};

use super::{network, parse, Problems};

pub(super) fn passive_settings(
    passive: &PassiveSection,
    problems: &mut Problems,
) -> PassiveSettings {
    let ports = passive
        .ports
        .as_ref()
        .and_then(|text| problems.check("passive.ports", parse::<PortRange>(text)))
        .map(|range| range.0);
    let public_address = passive.public_address.as_ref().and_then(|text| {
        problems
            .check("passive.public_address", announced(text))
            .map(IpAddr::V4)
    });
    let overrides = passive
        .overrides
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(index, entry)| {
            passive_override(&format!("passive.overrides[{index}]"), entry, problems)
        })
        .collect();
    PassiveSettings {
        ports,
        public_address,
        overrides,
    }
}

/// An address a `PASV` reply can carry and a client can connect to.
fn announced(text: &str) -> Result<Ipv4Addr, String> {
    match text.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) if ip.is_unspecified() => Err(format!(
            "{text:?} cannot be announced: give the address clients connect to"
        )),
        // A client cannot open a connection to either.
        Ok(IpAddr::V4(ip)) if ip.is_multicast() || ip.is_broadcast() => Err(format!(
            "{text:?} is a multicast or broadcast address: give the address clients connect to"
        )),
        Ok(IpAddr::V4(ip)) => Ok(ip),
        Ok(IpAddr::V6(_)) => Err(format!(
            "{text:?} is IPv6: PASV replies carry IPv4 addresses only (EPSV needs no address)"
        )),
        Err(_) => Err(format!("invalid IPv4 address {text:?}")),
    }
}

/// One `[[passive.overrides]]`; `None` when something in it is wrong
/// (already recorded).
fn passive_override(
    key: &str,
    entry: &PassiveOverrideEntry,
    problems: &mut Problems,
) -> Option<PassiveOverride> {
    let address = match &entry.address {
        Some(text) => problems.check(format!("{key}.address"), announced(text)),
        None => {
            problems.add(
                format!("{key}.address"),
                "required: the address these clients are told",
            );
            None
        }
    };
    let written = entry.networks.as_deref().unwrap_or_default();
    if written.is_empty() {
        problems.add(
            format!("{key}.networks"),
            "must name the clients' networks, such as [\"192.168.1.0/24\"]",
        );
    }
    let mut networks = Vec::with_capacity(written.len());
    let mut ok = !written.is_empty();
    for (index, text) in written.iter().enumerate() {
        match problems.check(format!("{key}.networks[{index}]"), network(text)) {
            Some(net) => networks.push(net),
            None => ok = false,
        }
    }
    if !ok {
        return None;
    }
    Some(PassiveOverride {
        networks,
        address: address?,
    })
}
