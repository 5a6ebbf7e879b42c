//! Data connections: passive ports, active connects, and the transfer loops.
//!
//! A data connection is only ever made with the control connection's peer
//! address: passive listeners drop connections from anyone else, and active
//! connects go only to that address on an unprivileged port (no FTP bounce).

mod ascii;
mod connect;
mod ports;
mod splice;
mod stream;
mod transfer;

pub use connect::{connect_active, same_host, PassiveListener};
pub use ports::PassivePortPool;
pub use stream::DataStream;
pub use transfer::{
    receive_file, receive_plain, send_file, send_lines, send_os_file, TransferError, TransferLimits,
};
