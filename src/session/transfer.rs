//! A transfer in flight: first the data connection is made, then the job
//! (file out, file in, or listing lines) runs over it. Owned by the session
//! and dropped to abort: dropping closes the data connection and, for an
//! upload, abandons it so the old file stays.

use std::io;
use std::net::IpAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::BoxStream;

use rustls::HandshakeKind;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::AbortOnDropHandle;

use crate::data::{
    receive_file, receive_plain, send_file, send_lines, send_os_file, DataStream, PassiveListener,
    TransferError, TransferLimits,
};
use crate::path::VirtualPath;
use crate::storage::{os_file_stream, ReadStream, StorageError, Upload};
use crate::tls::TlsSettings;

/// What moves over the data connection.
pub(super) enum Job {
    /// A file to the client (RETR).
    Send { file: ReadStream, ascii: bool },
    /// Bytes `range` of an operating-system file (from the restart offset
    /// to its size) to the client (RETR), without copying when nothing has
    /// to touch them on their way out: binary, no TLS, no throttle.
    SendOsFile {
        file: std::fs::File,
        range: Range<u64>,
        ascii: bool,
    },
    /// A file from the client (STOR, APPE, STOU).
    Receive {
        upload: Box<dyn Upload>,
        ascii: bool,
    },
    /// Listing lines to the client (LIST, NLST, MLSD), in chunks of whole lines.
    Lines(BoxStream<'static, Result<Vec<u8>, StorageError>>),
}

/// Resolves once the data connection's TCP is up (so 150 can go out) and
/// yields the rest of its setup: the TLS handshake, if any.
pub(super) type Connecting = BoxFuture<'static, io::Result<Ready>>;

/// The data connection, ready for the job once awaited.
pub(super) type Ready = BoxFuture<'static, Result<DataStream, TransferError>>;

/// Connects with `tcp`, then protects the connection when `PROT P` asks for it.
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

/// How long a data connection whose TLS handshake has begun waits for its
/// transfer command before the handshake goes on without it.
const COMMAND_GRACE: Duration = Duration::from_millis(300);

/// A `PROT P` passive data connection, accepted as soon as the client
/// connects. The handshake's rules depend on the transfer's direction (see
/// `TlsSettings::data_acceptor`), which only the transfer command tells, and
/// clients differ in what they send first:
/// - lftp and Go send the command, then the ClientHello after the `150`;
/// - curl sends its ClientHello right after connecting and the command just
///   after, without waiting for the handshake;
/// - aioftp's client finishes the handshake before it sends the command.
///
/// So the handshake waits for the command, and once the client's first bytes
/// are in, for at most `COMMAND_GRACE`; a client that waits for the handshake
/// (aioftp) then gets the download rule, one fresh ticket, which it reads when
/// it closes the connection. Dropping it aborts it.
pub(super) struct EagerData {
    connected: oneshot::Receiver<()>,
    direction: oneshot::Sender<DataProtection>,
    setup: AbortOnDropHandle<Result<DataStream, TransferError>>,
}

impl EagerData {
    /// Starts waiting on `listener` for the client at `peer`; `early` protects
    /// a connection whose client wants the handshake done before its command.
    pub(super) fn start(listener: PassiveListener, peer: IpAddr, early: DataProtection) -> Self {
        let (connected_tx, connected) = oneshot::channel();
        let (direction, direction_rx) = oneshot::channel::<DataProtection>();
        let setup = tokio::spawn(async move {
            // No deadline here: the transfer command, when it comes, bounds the wait.
            let tcp = listener
                .accept_from(peer, Duration::MAX)
                .await
                .map_err(TransferError::Connection)?;
            let _ = connected_tx.send(());
            let mut direction_rx = direction_rx;
            let protection = tokio::select! {
                biased;
                Ok(for_direction) = &mut direction_rx => for_direction,
                _ = tcp.readable() => {
                    match tokio::time::timeout(COMMAND_GRACE, direction_rx).await {
                        Ok(Ok(for_direction)) => for_direction,
                        _ => early,
                    }
                }
            };
            protection.protect(tcp).await
        });
        EagerData {
            connected,
            direction,
            setup: AbortOnDropHandle::new(setup),
        }
    }

    /// The transfer's view: connected within `wait`, then ready when the
    /// handshake is; `protection` holds the rules for the transfer's direction.
    pub(super) fn connecting(
        self,
        wait: Duration,
        protection: Option<DataProtection>,
    ) -> Connecting {
        Box::pin(async move {
            let EagerData {
                connected,
                direction,
                setup,
            } = self;
            if let Some(protection) = protection {
                // Ignored when the handshake has begun already.
                let _ = direction.send(protection);
            }
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

enum Stage {
    Connecting {
        connect: Connecting,
        job: Option<Job>,
    },
    Running(BoxFuture<'static, Result<u64, TransferError>>),
}

/// What a transfer reports to its session.
pub(super) enum TransferEvent {
    /// The data connection is open (or could not be made).
    Connected(io::Result<()>),
    /// The job ended, with the number of bytes moved.
    Finished(Result<u64, TransferError>),
}

/// A transfer owned by its session.
pub(super) struct Transfer {
    stage: Stage,
    /// The verb, for logs.
    pub verb: &'static str,
    /// The virtual path, for logs.
    pub path: VirtualPath,
    /// The text of the 150 reply sent once connected.
    pub opening: String,
    started: Instant,
    limits: TransferLimits,
}

/// `PROT P`: how to run the data connection's TLS handshake.
pub(super) struct DataProtection {
    pub tls: TlsSettings,
    pub acceptor: TlsAcceptor,
}

impl DataProtection {
    /// Runs the server handshake and, when required, checks that it resumed a
    /// session of the control connection (or of a sibling).
    async fn protect(self, tcp: TcpStream) -> Result<DataStream, TransferError> {
        let stream = self
            .tls
            .handshake(self.acceptor, tcp)
            .await
            .map_err(TransferError::TlsHandshake)?;
        let resumed = stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
        if self.tls.require_session_reuse && !resumed {
            return Err(TransferError::SessionNotResumed);
        }
        Ok(DataStream::Tls(Box::new(stream)))
    }
}

impl Transfer {
    pub(super) fn new(
        connect: Connecting,
        job: Job,
        verb: &'static str,
        path: VirtualPath,
        opening: String,
        limits: TransferLimits,
    ) -> Self {
        Transfer {
            stage: Stage::Connecting {
                connect,
                job: Some(job),
            },
            verb,
            path,
            opening,
            started: Instant::now(),
            limits,
        }
    }

    /// Whether data is already flowing (the 150 reply has gone out).
    pub(super) fn is_running(&self) -> bool {
        matches!(self.stage, Stage::Running(_))
    }

    /// How long since the command came in.
    pub(super) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits for the next step. Cancel-safe: progress lives in `self`.
    pub(super) async fn next(&mut self) -> TransferEvent {
        match &mut self.stage {
            Stage::Connecting { connect, .. } => {
                let connected = connect.await;
                TransferEvent::Connected(connected.map(|stream| self.start(stream)))
            }
            Stage::Running(run) => TransferEvent::Finished(run.await),
        }
    }

    /// Starts the job over the freshly made connection.
    fn start(&mut self, ready: Ready) {
        let Stage::Connecting { job, .. } = &mut self.stage else {
            return;
        };
        let Some(job) = job.take() else { return };
        let limits = self.limits.clone();
        self.stage = Stage::Running(Box::pin(async move {
            // The 150 reply has gone out: clients such as lftp wait for it
            // before they start the data connection's TLS handshake.
            let mut stream = ready.await?;
            match job {
                Job::Send { file, ascii } => send_file(file, &mut stream, ascii, &limits).await,
                Job::SendOsFile { file, range, ascii } => match &mut stream {
                    DataStream::Plain(tcp) if !ascii && !limits.throttle.is_limited() => {
                        send_os_file(file, tcp, range, &limits).await
                    }
                    _ => {
                        let file = os_file_stream(file, range.start).map_err(StorageError::from)?;
                        send_file(file, &mut stream, ascii, &limits).await
                    }
                },
                Job::Receive { upload, ascii } => match &mut stream {
                    DataStream::Plain(tcp) if !ascii => receive_plain(tcp, upload, &limits).await,
                    _ => receive_file(&mut stream, upload, ascii, &limits).await,
                },
                Job::Lines(lines) => send_lines(lines, &mut stream, &limits).await,
            }
        }));
    }
}
