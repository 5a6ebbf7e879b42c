//! The one entry point for moving bytes over a data connection: how the
//! connection is made ([`DataSetup::connect`]), what moves ([`Job`]), and how
//! ([`run`]): sendfile(2), splice(2) or a copy through user space, chosen
//! here from the source, the mode, the connection's protection and the
//! limits, so no caller decides it.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::sync::{mpsc, oneshot};

use super::connect::{connect_active, PassiveListener};
use super::protect::{connect_then_protect, Connecting, DataProtection, EagerData};
use super::stream::DataStream;
use super::transfer::{
    receive_file, receive_plain, send_file, send_lines, send_os_file, TransferError, TransferLimits,
};
use crate::path::VirtualPath;
use crate::storage::{os_file_stream, ReadStream, Storage, StorageError, Upload};

/// How the next data connection will be made (PASV, EPSV, PORT, EPRT).
pub enum DataSetup {
    /// Neither PASV/EPSV nor PORT/EPRT was given.
    None,
    /// A passive listener is waiting for the client.
    Passive(PassiveListener),
    /// Under `PROT P`: a passive connection accepted and protected as soon as it comes.
    PassiveProtected(EagerData),
    /// Connect to the client at this address.
    Active(SocketAddr),
}

impl DataSetup {
    /// Whether a passive listener holds a port.
    pub fn is_passive(&self) -> bool {
        matches!(self, DataSetup::Passive(_) | DataSetup::PassiveProtected(_))
    }

    /// Makes the data connection with the control connection's `peer` from
    /// its `local` address, within `wait`, protected as `protection` says;
    /// `None` when no PASV, EPSV, PORT or EPRT came first.
    pub fn connect(
        self,
        peer: IpAddr,
        local: IpAddr,
        wait: Duration,
        protection: Option<DataProtection>,
    ) -> Option<Connecting> {
        Some(match self {
            DataSetup::None => return None,
            DataSetup::Passive(listener) => {
                connect_then_protect(Box::pin(listener.accept_from(peer, wait)), protection)
            }
            DataSetup::PassiveProtected(eager) => eager.connecting(wait, protection),
            DataSetup::Active(target) => {
                connect_then_protect(Box::pin(connect_active(local, target, wait)), protection)
            }
        })
    }
}

/// A file to send, opened the cheapest way its storage allows.
pub enum Source {
    /// Bytes `range` of an operating-system file (from the restart offset to
    /// its size): it can go out without passing through user space.
    OsFile {
        /// The open file.
        file: std::fs::File,
        /// What to send.
        range: Range<u64>,
    },
    /// Anything else, read as a stream from the restart offset.
    Stream(ReadStream),
}

impl Source {
    /// Opens file `path` of `storage` to send from `offset`, with the file's
    /// size. An offset past the end is clamped here and left for the caller
    /// to refuse: nothing is sent before it decides.
    pub async fn open(
        storage: &dyn Storage,
        path: &VirtualPath,
        offset: u64,
    ) -> Result<(Source, u64), StorageError> {
        if let Some((file, size)) = storage.open_os_file(path).await? {
            let range = offset.min(size)..size;
            return Ok((Source::OsFile { file, range }, size));
        }
        let meta = storage.metadata(path).await?;
        if meta.is_dir() {
            return Err(StorageError::IsADirectory);
        }
        let stream = storage.open_read(path, offset.min(meta.size)).await?;
        Ok((Source::Stream(stream), meta.size))
    }
}

/// Opens an upload's file.
pub type OpenUpload = BoxFuture<'static, Result<Box<dyn Upload>, StorageError>>;

/// What moves over the data connection.
pub enum Job {
    /// A file to the client (RETR).
    Send {
        /// The file.
        source: Source,
        /// ASCII mode: line ends become CRLF.
        ascii: bool,
    },
    /// A file from the client (STOR, APPE, STOU), opened by `open` once the
    /// data connection is ready, so a refused upload leaves the file as it was.
    Receive {
        /// Opens the file.
        open: OpenUpload,
        /// ASCII mode: CRLF becomes the local line end.
        ascii: bool,
    },
    /// Listing lines to the client (LIST, NLST, MLSD), in chunks of whole lines.
    Lines(BoxStream<'static, Result<Vec<u8>, StorageError>>),
}

/// Runs `job` over `stream`; the bytes moved. `settled` is dropped once an
/// upload's file is opened and in the job's hands (or abandoned), and no
/// splice job of the upload runs on a blocking thread any more, so whoever
/// aborts can wait for that before answering: after the answer, nothing
/// writes or commits the upload.
pub async fn run(
    job: Job,
    stream: &mut DataStream,
    limits: &TransferLimits,
    settled: mpsc::Sender<()>,
) -> Result<u64, TransferError> {
    match job {
        // Zero-copy only where nothing touches the bytes on their way:
        // binary, no TLS, no throttle.
        Job::Send {
            source: Source::OsFile { file, range },
            ascii,
        } => match stream {
            DataStream::Plain(tcp) if !ascii && !limits.throttle.is_limited() => {
                send_os_file(file, tcp, range, limits).await
            }
            _ => {
                let file = os_file_stream(file, range.start).map_err(StorageError::from)?;
                send_file(file, stream, ascii, limits).await
            }
        },
        Job::Send {
            source: Source::Stream(file),
            ascii,
        } => send_file(file, stream, ascii, limits).await,
        Job::Receive { open, ascii } => {
            let upload = open_apart(open, settled.clone()).await?;
            match stream {
                DataStream::Plain(tcp) if !ascii => {
                    receive_plain(tcp, upload, limits, settled).await
                }
                _ => receive_file(stream, upload, ascii, limits).await,
            }
        }
        Job::Lines(lines) => send_lines(lines, stream, limits).await,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{FsStorage, MemoryStorage, WriteMode};

    fn path(name: &str) -> VirtualPath {
        VirtualPath::new(name)
    }

    #[tokio::test]
    async fn a_file_on_disk_is_sent_from_the_os_file_and_a_stored_one_as_a_stream() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"hello").unwrap();
        let fs = FsStorage::new(dir.path()).unwrap();
        let (source, size) = Source::open(&fs, &path("/f"), 2).await.unwrap();
        assert_eq!(size, 5);
        assert!(matches!(source, Source::OsFile { range, .. } if range == (2..5)));

        let memory = MemoryStorage::new();
        let mut upload = memory
            .open_write(&path("/f"), WriteMode::Replace { atomic: true })
            .await
            .unwrap();
        upload.write_block(b"hello".to_vec()).await.unwrap();
        upload.finish().await.unwrap();
        let (source, size) = Source::open(&memory, &path("/f"), 2).await.unwrap();
        assert_eq!(size, 5);
        assert!(matches!(source, Source::Stream(_)));
    }

    #[tokio::test]
    async fn an_offset_past_the_end_opens_at_the_end_for_the_caller_to_refuse() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"hello").unwrap();
        let fs = FsStorage::new(dir.path()).unwrap();
        let (source, size) = Source::open(&fs, &path("/f"), 9).await.unwrap();
        assert_eq!(size, 5);
        assert!(matches!(source, Source::OsFile { range, .. } if range == (5..5)));
    }

    #[tokio::test]
    async fn a_directory_is_not_a_source() {
        let memory = MemoryStorage::new();
        memory.mkdir(&path("/d")).await.unwrap();
        assert!(matches!(
            Source::open(&memory, &path("/d"), 0).await,
            Err(StorageError::IsADirectory)
        ));
    }
}
