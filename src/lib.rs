//! aioftpd: an FTP server core that a daemon (or any tokio program) can embed.
//!
//! The flow is one-way: [`config`] turns TOML into [`settings::Settings`] and a
//! [`auth::UserManager`]; [`server::Server`] accepts control connections and
//! runs a [`session`] for each; sessions reach files only through
//! [`storage::Storage`], in [`path::VirtualPath`]s, move bytes only through
//! [`data`], and answer only with [`reply::Reply`]s. Each module is a room
//! that imports only rooms below it; docs/architecture.md draws the map and
//! says where a new command, storage backend or config key goes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod address;
pub mod auth;
pub mod auth_hook;
pub mod config;
pub mod context;
pub mod data;
pub mod database_users;
mod deadline;
pub mod hooks;
pub mod limits;
pub mod listing;
pub mod metrics;
pub mod metrics_endpoint;
pub mod path;
pub mod proxy_protocol;
pub mod quota;
pub mod reply;
#[cfg(test)]
mod rooms;
pub mod server;
pub mod session;
pub mod settings;
pub mod storage;
pub mod throttle;
pub mod tls;
pub mod transfer_log;
pub mod user_store;
