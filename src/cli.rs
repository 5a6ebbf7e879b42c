//! Command-line interface: flags, subcommands and their help texts.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// aioftpd: a fast, safe FTP server.
///
/// Without --config it serves the current directory read-only to anonymous
/// users on 127.0.0.1:2121.
#[derive(Debug, Parser)]
#[command(name = "aioftpd", version, about, long_about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the server (the default).
    Run(RunArgs),
    /// Validate a config file: exit 0 if it is good, else print every error and exit 64.
    ///
    /// Every problem is printed, one per line as `file:line: key: message`.
    /// Risky but valid settings are printed as `file:line: key: warning: message`
    /// on standard error; they do not change the exit status.
    CheckConfig {
        /// The config file to check.
        #[arg(long, short)]
        config: PathBuf,
        /// If the file is good, print the config in effect instead of "ok":
        /// every key with its value, defaults filled in, as TOML that loads
        /// to the same settings (password hashes included, as in the file).
        #[arg(long)]
        print: bool,
    },
    /// Hash a password for `password = ...` in [[users]] (argon2id PHC string).
    ///
    /// Reads the password without echo from a terminal, or the first line of
    /// standard input otherwise.
    HashPassword,
    /// Write the man pages (roff) into a directory, for packaging: aioftpd.1
    /// and one aioftpd-<subcommand>.1 for each subcommand it refers to.
    #[command(hide = true)]
    Man {
        /// The directory to write the pages into; it must exist.
        dir: PathBuf,
    },
    /// Print a shell completion script to standard output, for packaging.
    #[command(hide = true)]
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args, Clone, Default)]
pub(crate) struct RunArgs {
    /// TOML config file; without it, the embedded default is used.
    #[arg(long, short, global = true)]
    pub config: Option<PathBuf>,
    /// Listen on this address instead of the configured ones (e.g. 127.0.0.1:2121, [::1]:2121).
    #[arg(long, global = true)]
    pub listen: Vec<SocketAddr>,
    /// Without --config: the directory to serve (default: the current directory).
    #[arg(long, global = true, conflicts_with = "config")]
    pub root: Option<PathBuf>,
    /// Without --config: let anonymous users upload, rename and delete.
    #[arg(long, global = true, conflicts_with = "config")]
    pub writable: bool,
    /// Log level: error, warn, info, debug, trace, off, or a syslog name (warning, notice, err, crit), optionally as a list of target=level (default: info; RUST_LOG also works). Anything else is refused.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    /// Log format: human-readable text (default; without timestamps under
    /// systemd's journal, which adds its own), or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    #[default]
    Text,
    Json,
}
