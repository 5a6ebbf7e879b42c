//! PASV, EPSV, PORT, EPRT: preparing the next data connection.
//!
//! Passive listeners come from the port pool and accept only the control
//! peer; active targets must be the control peer on an unprivileged port.

use std::net::{IpAddr, SocketAddr};

use tokio::time::Instant;

use super::super::command::EpsvArg;
use super::super::Handled;
use super::tls::data_protection;
use super::Cx;
use crate::address::ClientKey;
use crate::data::{same_host, DataSetup, EagerData, Lessee, PassiveError};
use crate::reply::{Code, Reply};

/// Ports below this are never connected to (RFC 2577 §3, FTP bounce).
const LOWEST_ACTIVE_PORT: u16 = 1024;

fn open_passive(cx: &mut Cx<'_>) -> Result<u16, Reply> {
    // Drop a superseded listener first so its port goes back to the pool.
    cx.state.data = DataSetup::None;
    let lessee = Lessee {
        client: ClientKey::of(cx.conn.peer.ip()),
        user: cx.user()?.display_name().into(),
    };
    let listener = match cx.server.ports.listen(cx.conn.local.ip(), &lessee) {
        Ok(listener) => listener,
        Err(PassiveError::Exhausted) => {
            tracing::warn!("passive port range exhausted");
            return Err(Reply::new(
                Code::CannotOpenData,
                "No passive port free, try again later",
            ));
        }
        Err(err @ PassiveError::ShareHeld(_)) => {
            tracing::warn!(user = &*lessee.user, %err, "passive port refused");
            return Err(Reply::new(
                Code::CannotOpenData,
                "Too many passive ports held, finish a transfer first",
            ));
        }
        Err(PassiveError::Io(err)) => {
            tracing::warn!(%err, "cannot open a passive listener");
            return Err(Reply::new(
                Code::CannotOpenData,
                "Cannot open passive connection",
            ));
        }
    };
    let listener = listener.through(cx.conn.proxy.clone());
    let port = listener.port();
    let wait = cx.server.settings.session.data_timeout;
    cx.state.passive_until = Some(crate::deadline::after(Instant::now(), wait));
    // Rules for a handshake that comes before the transfer command (see EagerData).
    cx.state.data = match data_protection(cx.server, cx.conn, false) {
        Some(protection) => {
            DataSetup::PassiveProtected(EagerData::start(listener, cx.conn.peer.ip(), protection))
        }
        None => DataSetup::Passive(listener),
    };
    Ok(port)
}

pub(in crate::session) fn pasv(cx: &mut Cx<'_>) -> Handled {
    if cx.state.epsv_all {
        return Err(Reply::new(
            Code::BadSequence,
            "EPSV ALL in effect, use EPSV",
        ));
    }
    let announced = match (
        cx.server.settings.passive.announced_to(cx.conn.peer.ip()),
        cx.conn.local.ip().to_canonical(),
    ) {
        (Some(IpAddr::V4(public)), _) => public,
        (_, IpAddr::V4(local)) => local,
        (_, IpAddr::V6(_)) => {
            return Err(Reply::new(
                Code::CannotOpenData,
                "PASV works over IPv4 only, use EPSV",
            ))
        }
    };
    let port = open_passive(cx)?;
    let [a, b, c, d] = announced.octets();
    let text = format!(
        "Entering Passive Mode ({a},{b},{c},{d},{},{}).",
        port >> 8,
        port & 0xff
    );
    Ok(Reply::new(Code::PassiveMode, text).into())
}

pub(in crate::session) fn epsv(cx: &mut Cx<'_>, arg: EpsvArg) -> Handled {
    let family = if cx.conn.local.ip().to_canonical().is_ipv4() {
        1
    } else {
        2
    };
    match arg {
        EpsvArg::All => {
            cx.state.epsv_all = true;
            return Ok(Reply::new(Code::Ok, "EPSV ALL ok").into());
        }
        EpsvArg::Protocol(asked) if asked != family => {
            return Err(Reply::new(
                Code::NotSupported,
                format!("Network protocol not supported, use ({family})"),
            ));
        }
        _ => {}
    }
    let port = open_passive(cx)?;
    Ok(Reply::new(
        Code::ExtendedPassiveMode,
        format!("Entering Extended Passive Mode (|||{port}|)"),
    )
    .into())
}

pub(in crate::session) fn port(cx: &mut Cx<'_>, target: SocketAddr, extended: bool) -> Handled {
    let verb = if extended { "EPRT" } else { "PORT" };
    if cx.state.epsv_all {
        return Err(Reply::new(
            Code::BadSequence,
            "EPSV ALL in effect, use EPSV",
        ));
    }
    if !same_host(target.ip(), cx.conn.peer.ip()) || target.port() < LOWEST_ACTIVE_PORT {
        tracing::warn!(%target, "refused {verb} to a foreign address or privileged port");
        return Err(Reply::new(
            Code::ParameterNotImplemented,
            format!("{verb} only to your own address and a port >= {LOWEST_ACTIVE_PORT}"),
        ));
    }
    cx.state.data = DataSetup::Active(target);
    Ok(Reply::new(Code::Ok, format!("{verb} command successful")).into())
}
