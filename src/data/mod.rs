//! Data connections: passive ports, active connects, and the transfer loops.
//!
//! A data connection is only ever made with the control connection's peer
//! address: passive listeners drop connections from anyone else, and active
//! connects go only to that address on an unprivileged port (no FTP bounce).

mod ascii;
mod connect;
mod ports;
mod protect;
mod splice;
mod stream;
mod transfer;

pub use connect::{connect_active, same_host, PassiveListener};
pub use ports::{Lessee, PassiveError, PassivePortPool};
pub use protect::{connect_then_protect, Connecting, DataProtection, EagerData, Ready};
pub use stream::DataStream;
pub use transfer::{
    receive_file, receive_plain, send_file, send_lines, send_os_file, TransferError, TransferLimits,
};

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
