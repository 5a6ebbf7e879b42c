//! TLS on the data connection (`PROT P`): the handshake, the check that it
//! resumed a session it may use, and the order in which a data connection
//! comes up: TCP first (so the `150` can go out), then the handshake.
//!
//! The protection level is the one in force when the transfer command comes,
//! not the one at `PASV`: a client may send `PROT` in between.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use futures::future::BoxFuture;
use rustls::server::Acceptor;
use rustls::HandshakeKind;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::LazyConfigAcceptor;
use tokio_util::task::AbortOnDropHandle;

use super::{DataStream, PassiveListener, TransferError};
use crate::deadline;
use crate::tls::resumption::DataTickets;
use crate::tls::TlsSettings;

/// Resolves once the data connection's TCP is up (so 150 can go out) and
/// yields the rest of its setup: the TLS handshake, if any.
pub type Connecting = BoxFuture<'static, io::Result<Ready>>;

/// The data connection, ready for the job once awaited.
pub type Ready = BoxFuture<'static, Result<DataStream, TransferError>>;

/// `PROT P`: how to protect one data connection.
#[derive(Debug)]
pub struct DataProtection {
    tls: TlsSettings,
    tickets: DataTickets,
    /// An upload whose command came before the client's handshake.
    upload: bool,
}

impl DataProtection {
    /// Protection for a transfer in the direction `upload` says, with
    /// `tickets` deciding which sessions it may resume.
    pub fn new(tls: TlsSettings, tickets: DataTickets, upload: bool) -> Self {
        DataProtection {
            tls,
            tickets,
            upload,
        }
    }

    /// For a client that started its handshake before its command: it reads
    /// the connection, so it may be handed a ticket whatever the direction.
    fn reading(mut self) -> Self {
        self.upload = false;
        self
    }

    /// Runs the server handshake and, when required, checks that it resumed
    /// a session this connection may use.
    async fn protect(self, tcp: TcpStream) -> Result<DataStream, TransferError> {
        let deadline = deadline::after(tokio::time::Instant::now(), self.tls.handshake_timeout);
        let handshake = async {
            let start = LazyConfigAcceptor::new(Acceptor::default(), tcp).await?;
            let config = self.tls.data_config(self.upload, &self.tickets);
            start.into_stream(config).await
        };
        let stream = tokio::time::timeout_at(deadline, handshake)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))
            .and_then(|done| done)
            .map_err(TransferError::TlsHandshake)?;
        let resumed = stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
        crate::metrics::get()
            .tls_handshakes
            .with_label_values(&["data", if resumed { "yes" } else { "no" }])
            .inc();
        // Without the rule nothing hangs on the verdict, so nothing waits for
        // it; it still decides whether the tickets this connection handed out count.
        let verdict_by = match self.tls.require_session_reuse {
            true => deadline,
            false => tokio::time::Instant::now(),
        };
        let admitted = self.tickets.admit(resumed, verdict_by).await;
        if self.tls.require_session_reuse && !admitted {
            return Err(TransferError::SessionNotResumed);
        }
        Ok(DataStream::Tls(Box::new(stream)))
    }
}

/// Whether the client has sent anything yet: a real look at the socket, not
/// the reactor's possibly stale idea of it.
fn has_spoken(tcp: &TcpStream) -> bool {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
    socket2::SockRef::from(tcp)
        .peek(&mut byte)
        .is_ok_and(|n| n > 0)
}

/// Connects with `tcp`, then protects the connection if `protection` says so.
pub(super) fn connect_then_protect(
    tcp: BoxFuture<'static, io::Result<TcpStream>>,
    protection: Option<DataProtection>,
) -> Connecting {
    Box::pin(async move {
        let tcp = tcp.await?;
        let ready: Ready = match protection {
            None => Box::pin(async move { Ok(DataStream::Plain(tcp)) }),
            Some(protection) => Box::pin(protection.protect(tcp)),
        };
        Ok(ready)
    })
}

/// A passive data connection opened under `PROT P`, accepted as soon as the
/// client connects. Clients differ in what they send first:
/// - lftp, Go, suppaftp and ftplib send the transfer command and wait for
///   the `150` before their ClientHello: the command's direction and
///   protection level (see `TlsSettings::data_config`) rule the handshake,
///   and the `150` goes out as soon as the TCP connection is up;
/// - curl sends its ClientHello right after connecting and the command
///   around the same time; aioftp's client finishes the handshake before it
///   sends the command at all. A client that speaks first gets its
///   handshake at once, with the rules for a connection that reads what it
///   is sent, and its `150` only once the handshake is done: the ticket it
///   is handed is then on its way before it writes a byte of an upload, so
///   it is read, never left to turn the client's close into a reset.
///
/// Dropping it aborts it.
pub struct EagerData {
    connected: oneshot::Receiver<()>,
    decision: oneshot::Sender<Option<DataProtection>>,
    setup: AbortOnDropHandle<Result<DataStream, TransferError>>,
}

impl EagerData {
    /// Starts waiting on `listener` for the client at `peer`; `early` protects
    /// a connection whose client starts its handshake before its command.
    pub fn start(listener: PassiveListener, peer: IpAddr, early: DataProtection) -> Self {
        let (connected_tx, connected) = oneshot::channel();
        let (decision, decision_rx) = oneshot::channel::<Option<DataProtection>>();
        let setup = tokio::spawn(async move {
            // No deadline here: the transfer command, when it comes, bounds the wait.
            let tcp = listener
                .accept_from(peer, Duration::MAX)
                .await
                .map_err(TransferError::Connection)?;
            let mut decision_rx = decision_rx;
            let abandoned = || TransferError::Connection(io::Error::other("no transfer came"));
            // A peek, not `readable()`: a fresh socket may report readiness
            // before any byte has come.
            let mut first = [0u8; 1];
            let (protection, spoke_first) = tokio::select! {
                biased;
                decided = &mut decision_rx => {
                    let decided = decided.map_err(|_| abandoned())?;
                    // The command won a race with a ClientHello already sent.
                    (decided, has_spoken(&tcp))
                }
                _ = tcp.peek(&mut first) => (Some(early), true),
            };
            match protection {
                None => {
                    let _ = connected_tx.send(());
                    Ok(DataStream::Plain(tcp))
                }
                Some(protection) if spoke_first => {
                    let stream = protection.reading().protect(tcp).await?;
                    let _ = connected_tx.send(());
                    Ok(stream)
                }
                Some(protection) => {
                    let _ = connected_tx.send(());
                    protection.protect(tcp).await
                }
            }
        });
        EagerData {
            connected,
            decision,
            setup: AbortOnDropHandle::new(setup),
        }
    }

    /// The transfer's view: connected within `wait` (for a client that spoke
    /// first, that includes its handshake), then ready when the handshake is.
    /// `protection` is the rule in force for the transfer: `None` after a
    /// `PROT C`, which leaves the connection clear.
    pub fn connecting(self, wait: Duration, protection: Option<DataProtection>) -> Connecting {
        Box::pin(async move {
            let EagerData {
                connected,
                decision,
                setup,
            } = self;
            // Ignored when the handshake has begun already.
            let _ = decision.send(protection);
            match tokio::time::timeout(wait, connected).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    // The task ended before a connection came: its error says why.
                    return Err(match setup.await {
                        Ok(Err(TransferError::Connection(err))) => err,
                        Ok(Err(other)) => io::Error::other(other.to_string()),
                        Ok(Ok(_)) => io::Error::other("data connection setup ended early"),
                        Err(join) => io::Error::other(join),
                    });
                }
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no data connection was made",
                    ))
                }
            }
            let ready: Ready = Box::pin(async move {
                setup
                    .await
                    .map_err(|join| TransferError::Connection(io::Error::other(join)))?
            });
            Ok(ready)
        })
    }
}
