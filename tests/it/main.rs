//! Integration tests: the real server over TCP, driven by real clients.

mod attacks;
mod auth_hook;
mod cli;
mod clients;
mod faults;
mod file_ops;
mod ftps;
mod ftps_clients;
mod ftps_reuse;
mod hooks;
mod hostile;
mod limits;
mod listings;
mod login;

mod logs;
mod metrics;
mod properties;
mod protocol;
mod proxy;
mod quotas;
mod s3;
mod scale_out;
mod security;
mod settings;
mod supervisor;
mod support;
mod tls_keys;
mod transfers;
mod users;
