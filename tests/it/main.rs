//! Integration tests: the real server over TCP, driven by real clients.

mod cli;
mod clients;
mod file_ops;
mod limits;
mod listings;
mod login;
mod protocol;
mod security;
mod settings;
mod support;
mod supervisor;
mod transfers;
