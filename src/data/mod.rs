//! Data connections, whole: passive ports, active connects, TLS on the data
//! channel, and the transfer loops behind one entry point ([`run`]) that
//! chooses sendfile, splice or a copy. The session keeps a stage machine only.
//!
//! A data connection is only ever made with the control connection's peer
//! address: passive listeners drop connections from anyone else, and active
//! connects go only to that address on an unprivileged port (no FTP bounce).

mod ascii;
mod connect;
mod job;
mod ports;
mod protect;
mod splice;
mod stream;
mod transfer;

pub use connect::{same_host, PassiveListener};
pub use job::{run, DataSetup, Job, OpenUpload, Source};
pub use ports::{Lessee, PassiveError, PassivePortPool};
pub use protect::{Connecting, DataProtection, EagerData, Ready};
pub use stream::DataStream;
pub use transfer::{TransferError, TransferLimits};

/// A connected loopback TCP pair for the transfer loops' unit tests: the
/// client's end and the server's (the data connection).
#[cfg(test)]
async fn loopback_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (data, _) = listener.accept().await.unwrap();
    (client, data)
}
