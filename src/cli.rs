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
    /// Manage the users database that the config's [users_database] names.
    ///
    /// Each value is checked as the same [[users]] key is in the config, with
    /// the same message, before anything is written. The daemon sees a change
    /// within [users_database] cache_lifetime, without a reload. Exit status:
    /// 0, 64 for a bad command line, config or value, 69 when the database
    /// cannot be used. See docs/users.md.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
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

/// What `aioftpd user` does.
#[derive(Debug, Subcommand)]
pub(crate) enum UserAction {
    /// Add a user. The password is asked twice without echo on a terminal,
    /// else read from the first line of standard input.
    Add {
        /// The login: not empty, no whitespace or control characters.
        login: String,
        #[command(flatten)]
        fields: Box<AccountFields>,
        /// Add it disabled: it cannot log in until `aioftpd user enable`.
        #[arg(long)]
        disabled: bool,
    },
    /// Change a user's password, asked as for `add`.
    Passwd {
        /// The login.
        login: String,
    },
    /// Set fields: FIELD VALUE pairs, checked together (so `storage fs
    /// base_path /srv/ftp/a` moves a user to a directory in one step).
    ///
    /// FIELD is a [[users]] key: password (an argon2 hash), storage,
    /// base_path, home, permissions, tls_required, max_connections,
    /// download_limit, upload_limit, download_limit_per_connection,
    /// upload_limit_per_connection; or another key of the storage backend.
    /// VALUE is what the key takes in the config, a TOML value where it is
    /// not text: `permissions '[{ path = "/", writable = true }]'`.
    Set {
        /// The login.
        login: String,
        /// FIELD VALUE, FIELD VALUE, ...
        #[arg(value_names = ["FIELD", "VALUE"], num_args = 2.., required = true)]
        pairs: Vec<String>,
    },
    /// Unset fields, so the [[users]] default applies to them.
    Unset {
        /// The login.
        login: String,
        /// The fields (not password or storage: every user has those).
        #[arg(required = true)]
        fields: Vec<String>,
    },
    /// List the users: a table, or JSON with --json. Never the password hashes.
    List {
        /// One JSON array of objects.
        #[arg(long)]
        json: bool,
    },
    /// Show a user's fields and any problem with them. Never the password hash.
    Show {
        /// The login.
        login: String,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Disable a user: its logins are refused, its row stays.
    Disable {
        /// The login.
        login: String,
    },
    /// Enable a disabled user.
    Enable {
        /// The login.
        login: String,
    },
    /// Delete a user.
    Del {
        /// The login.
        login: String,
    },
}

/// The fields of a new user, as `[[users]]` keys take them; omitted ones
/// get the `[[users]]` defaults.
#[derive(Debug, Args)]
pub(crate) struct AccountFields {
    /// fs (serve base_path from disk), memory (an empty tree, lost when the
    /// daemon stops) or s3 (then `aioftpd user set LOGIN s3 '{ ... }'` names the bucket).
    #[arg(long, default_value = "fs")]
    pub storage: String,
    /// For fs: the directory the user sees as "/".
    #[arg(long)]
    pub base_path: Option<String>,
    /// Where a session starts, as a virtual path (default "/").
    #[arg(long)]
    pub home: Option<String>,
    /// Path rules as a TOML array (default read-only "/"): '[{ path = "/", writable = true }]'.
    #[arg(long)]
    pub permissions: Option<String>,
    /// none, login or data (needs [tls]); default: [tls] required.
    #[arg(long)]
    pub tls_required: Option<String>,
    /// Sessions this user may have logged in at once.
    #[arg(long)]
    pub max_connections: Option<String>,
    /// All of the user's downloads together, bytes per second ("10MiB").
    #[arg(long)]
    pub download_limit: Option<String>,
    /// All of the user's uploads together.
    #[arg(long)]
    pub upload_limit: Option<String>,
    /// Each of the user's connections' downloads.
    #[arg(long)]
    pub download_limit_per_connection: Option<String>,
    /// Each of the user's connections' uploads.
    #[arg(long)]
    pub upload_limit_per_connection: Option<String>,
    /// Bytes the user's files may hold together (`10GiB`).
    #[arg(long)]
    pub quota_bytes: Option<String>,
    /// Files the user's tree may hold.
    #[arg(long)]
    pub quota_files: Option<String>,
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
