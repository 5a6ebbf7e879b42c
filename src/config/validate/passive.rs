//! `[passive]`: passive-mode ports and the announced address.

use std::net::IpAddr;

use crate::config::schema::PassiveSection;
use crate::config::units::PortRange;
use crate::settings::PassiveSettings;

use super::{parse, Problems};

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
        let parsed = match text.trim().parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) if ip.is_unspecified() => Err(format!(
                "{text:?} cannot be announced: give the address clients connect to"
            )),
            // A client cannot open a connection to either.
            Ok(IpAddr::V4(ip)) if ip.is_multicast() || ip.is_broadcast() => Err(format!(
                "{text:?} is a multicast or broadcast address: give the address clients connect to"
            )),
            Ok(IpAddr::V4(ip)) => Ok(IpAddr::V4(ip)),
            Ok(IpAddr::V6(_)) => Err(format!(
                "{text:?} is IPv6: PASV replies carry IPv4 addresses only (EPSV needs no address)"
            )),
            Err(_) => Err(format!("invalid IPv4 address {text:?}")),
        };
        problems.check("passive.public_address", parsed)
    });
    PassiveSettings {
        ports,
        public_address,
    }
}
