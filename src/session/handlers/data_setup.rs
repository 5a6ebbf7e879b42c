//! PASV, EPSV, PORT, EPRT: preparing the next data connection.
//!
//! Passive listeners come from the port pool and accept only the control
//! peer; active targets must be the control peer on an unprivileged port.

use std::net::{IpAddr, SocketAddr};

use super::super::{EpsvArg, Handled, Reply, Session};
use crate::address::ClientKey;
use crate::data::{same_host, DataSetup, EagerData, Lessee, PassiveError};
use crate::reply::Code;
use tokio::time::Instant;

/// Ports below this are never connected to (RFC 2577 §3, FTP bounce).
const LOWEST_ACTIVE_PORT: u16 = 1024;

impl Session {
    fn open_passive(&mut self) -> Result<u16, Reply> {
        // Drop a superseded listener first so its port goes back to the pool.
        self.state.data = DataSetup::None;
        let lessee = Lessee {
            client: ClientKey::of(self.peer.ip()),
            user: self.logged_in()?.display_name().into(),
        };
        let listener = match self.context.ports.listen(self.local.ip(), &lessee) {
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
        let port = listener.port();
        let wait = self.context.settings.session.data_timeout;
        self.state.passive_until = Some(crate::deadline::after(Instant::now(), wait));
        // Rules for a handshake that comes before the transfer command (see EagerData).
        self.state.data = match self.data_protection(false) {
            Some(protection) => {
                DataSetup::PassiveProtected(EagerData::start(listener, self.peer.ip(), protection))
            }
            None => DataSetup::Passive(listener),
        };
        Ok(port)
    }

    pub(in crate::session) fn pasv(&mut self) -> Handled {
        if self.state.epsv_all {
            return Err(Reply::new(
                Code::BadSequence,
                "EPSV ALL in effect, use EPSV",
            ));
        }
        let announced = match (
            self.context.settings.passive.public_address,
            self.local.ip().to_canonical(),
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
        let port = self.open_passive()?;
        let [a, b, c, d] = announced.octets();
        let text = format!(
            "Entering Passive Mode ({a},{b},{c},{d},{},{}).",
            port >> 8,
            port & 0xff
        );
        Ok(Reply::new(Code::PassiveMode, text).into())
    }

    pub(in crate::session) fn epsv(&mut self, arg: EpsvArg) -> Handled {
        let family = if self.local.ip().to_canonical().is_ipv4() {
            1
        } else {
            2
        };
        match arg {
            EpsvArg::All => {
                self.state.epsv_all = true;
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
        let port = self.open_passive()?;
        Ok(Reply::new(
            Code::ExtendedPassiveMode,
            format!("Entering Extended Passive Mode (|||{port}|)"),
        )
        .into())
    }

    pub(in crate::session) fn port(&mut self, target: SocketAddr, extended: bool) -> Handled {
        let verb = if extended { "EPRT" } else { "PORT" };
        if self.state.epsv_all {
            return Err(Reply::new(
                Code::BadSequence,
                "EPSV ALL in effect, use EPSV",
            ));
        }
        if !same_host(target.ip(), self.peer.ip()) || target.port() < LOWEST_ACTIVE_PORT {
            tracing::warn!(%target, "refused {verb} to a foreign address or privileged port");
            return Err(Reply::new(
                Code::ParameterNotImplemented,
                format!("{verb} only to your own address and a port >= {LOWEST_ACTIVE_PORT}"),
            ));
        }
        self.state.data = DataSetup::Active(target);
        Ok(Reply::new(Code::Ok, format!("{verb} command successful")).into())
    }
}
