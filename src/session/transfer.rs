//! A transfer in flight: first the data connection is made, then the job
//! (file out, file in, or listing lines) runs over it. Owned by the session
//! and dropped to abort: dropping closes the data connection and, for an
//! upload, abandons it so the old file stays.

use std::io;
use std::ops::Range;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::sync::{mpsc, oneshot};

use crate::data::{
    receive_file, receive_plain, send_file, send_lines, send_os_file, Connecting, DataStream,
    Ready, TransferError, TransferLimits,
};
use crate::path::VirtualPath;
use crate::storage::{os_file_stream, ReadStream, StorageError, Upload};

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
    /// A file from the client (STOR, APPE, STOU), opened by `open` once the
    /// data connection is ready.
    Receive { open: OpenUpload, ascii: bool },
    /// Listing lines to the client (LIST, NLST, MLSD), in chunks of whole lines.
    Lines(BoxStream<'static, Result<Vec<u8>, StorageError>>),
}

/// Opens an upload's file.
pub(super) type OpenUpload = BoxFuture<'static, Result<Box<dyn Upload>, StorageError>>;

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
    /// Closed once an upload's file is opened and in the job's hands, or
    /// abandoned because the job is gone.
    settled: Option<mpsc::Receiver<()>>,
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
            settled: None,
        }
    }

    /// Ends the transfer. An upload whose file is being opened is waited
    /// for, so that it is abandoned (an atomic upload's temporary file
    /// removed) before the caller answers.
    pub(super) async fn abandon(mut self) {
        let settled = self.settled.take();
        drop(self);
        if let Some(mut settled) = settled {
            settled.recv().await;
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
        let (settled, waiter) = mpsc::channel(1);
        self.settled = Some(waiter);
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
                Job::Receive { open, ascii } => {
                    let upload = open_apart(open, settled).await?;
                    match &mut stream {
                        DataStream::Plain(tcp) if !ascii => {
                            receive_plain(tcp, upload, &limits).await
                        }
                        _ => receive_file(&mut stream, upload, ascii, &limits).await,
                    }
                }
                Job::Lines(lines) => send_lines(lines, &mut stream, &limits).await,
            }
        }));
    }
}

/// Opens an upload's file on a task of its own, which runs to the end even
/// if the transfer is dropped meanwhile (ABOR): a file opened for nobody is
/// then abandoned on that task, before `settled` is dropped.
async fn open_apart(
    open: OpenUpload,
    settled: mpsc::Sender<()>,
) -> Result<Box<dyn Upload>, StorageError> {
    let (opened, receive) = oneshot::channel();
    tokio::spawn(async move {
        let upload = open.await;
        drop(opened.send(upload));
        drop(settled);
    });
    receive
        .await
        .unwrap_or_else(|_| Err(StorageError::Io(io::Error::other("upload task failed"))))
}
