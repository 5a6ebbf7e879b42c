//! A transfer in flight: first the data connection is made, then the job
//! (file out, file in, or listing lines) runs over it. Owned by the session
//! and dropped to abort: dropping closes the data connection and, for an
//! upload, abandons it so the old file stays.

use std::io;
use std::ops::Range;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::BoxStream;

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
    /// A file from the client (STOR, APPE, STOU).
    Receive {
        upload: Box<dyn Upload>,
        ascii: bool,
    },
    /// Listing lines to the client (LIST, NLST, MLSD), in chunks of whole lines.
    Lines(BoxStream<'static, Result<Vec<u8>, StorageError>>),
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
