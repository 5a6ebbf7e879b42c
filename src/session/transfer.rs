//! A transfer in flight: first the data connection is made, then the job
//! (file out, file in, or listing lines) runs over it. Owned by the session
//! and dropped to abort: dropping closes the data connection and, for an
//! upload, abandons it so the old file stays.

use std::io;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::BoxStream;

use rustls::HandshakeKind;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::data::{receive_file, send_file, send_lines, DataStream, TransferError, TransferLimits};
use crate::path::VirtualPath;
use crate::storage::{ReadStream, StorageError, Upload};
use crate::tls::TlsSettings;

/// What moves over the data connection.
pub(super) enum Job {
    /// A file to the client (RETR).
    Send { file: ReadStream, ascii: bool },
    /// A file from the client (STOR, APPE, STOU).
    Receive {
        upload: Box<dyn Upload>,
        ascii: bool,
    },
    /// Listing lines to the client (LIST, NLST, MLSD).
    Lines(BoxStream<'static, Result<String, StorageError>>),
}

enum Stage {
    Connecting {
        connect: BoxFuture<'static, io::Result<TcpStream>>,
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
    protection: Option<DataProtection>,
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
        connect: BoxFuture<'static, io::Result<TcpStream>>,
        job: Job,
        verb: &'static str,
        path: VirtualPath,
        opening: String,
        limits: TransferLimits,
        protection: Option<DataProtection>,
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
            protection,
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
    fn start(&mut self, tcp: TcpStream) {
        let Stage::Connecting { job, .. } = &mut self.stage else {
            return;
        };
        let Some(job) = job.take() else { return };
        let limits = self.limits.clone();
        let protection = self.protection.take();
        self.stage = Stage::Running(Box::pin(async move {
            // The 150 reply has gone out: clients such as lftp wait for it
            // before they start the data connection's TLS handshake.
            let mut stream = match protection {
                Some(protection) => protection.protect(tcp).await?,
                None => DataStream::Plain(tcp),
            };
            match job {
                Job::Send { file, ascii } => send_file(file, &mut stream, ascii, &limits).await,
                Job::Receive { upload, ascii } => {
                    receive_file(&mut stream, upload, ascii, &limits).await
                }
                Job::Lines(lines) => send_lines(lines, &mut stream, &limits).await,
            }
        }));
    }
}
