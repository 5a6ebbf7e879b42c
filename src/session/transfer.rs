//! A transfer in flight: first the data connection is made, then the job
//! (file out, file in, or listing lines) runs over it. Owned by the session
//! and dropped to abort: dropping closes the data connection and, for an
//! upload, abandons it so the old file stays.

use std::io;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::data::{run, Connecting, Job, Ready, TransferError, TransferLimits};
use crate::path::VirtualPath;

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
            run(job, &mut stream, &limits, settled).await
        }));
    }
}
