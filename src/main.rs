//! The aioftpd daemon: parses the command line, loads the config and hands
//! over to the supervisor.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod cli;
mod supervisor;
mod user_command;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use aioftpd::config::{self, Loaded};

use cli::{Cli, Command, LogFormat, RunArgs};

/// Exit status for an invalid config or command line (EX_USAGE, as linkerd2-proxy uses it).
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version are not errors; a bad command line is
        // EX_USAGE, as a bad config is (clap's own status would be 2).
        Err(err) if !err.use_stderr() => err.exit(),
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match cli.command {
        Some(Command::CheckConfig { config, print }) => check_config(&config, print),
        Some(Command::HashPassword) => hash_password(),
        Some(Command::User { action }) => user_command::run(cli.run.config.as_deref(), action),
        Some(Command::Man { dir }) => man_pages(&dir),
        Some(Command::Completions { shell }) => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "aioftpd",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Some(Command::Run(args)) => run(args),
        None => run(cli.run),
    }
}

fn check_config(path: &Path, print: bool) -> ExitCode {
    match config::load_file(path) {
        Ok(loaded) => {
            let mut warnings: Vec<String> =
                loaded.warnings.iter().map(ToString::to_string).collect();
            warnings.extend(user_command::database_warnings(&loaded, path));
            for warning in &warnings {
                eprintln!("{warning}");
            }
            // Only the TOML goes to standard output, so it can be saved as it is.
            if let (true, Some(effective)) = (print, &loaded.effective) {
                print!("{effective}");
                return ExitCode::SUCCESS;
            }
            // Warnings leave the exit status alone: the file is valid.
            match warnings.len() {
                0 => println!("{}: ok", path.display()),
                1 => println!("{}: ok, with 1 warning", path.display()),
                n => println!("{}: ok, with {n} warnings", path.display()),
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{err}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// aioftpd(1) names a page per visible subcommand (aioftpd-check-config(1),
/// ...), and aioftpd-user(1) one per user command (aioftpd-user-add(1)):
/// write them all, so none of those references dangles. As
/// `clap_mangen::generate_to` does, but every page's footer says
/// "aioftpd 0.1.0" rather than a subcommand's bare name.
fn man_pages(dir: &Path) -> ExitCode {
    fn with_subcommands(command: &clap::Command, pages: &mut Vec<clap::Command>) {
        for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
            pages.push(sub.clone());
            with_subcommands(sub, pages);
        }
    }
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
    let source = format!("aioftpd {}", env!("CARGO_PKG_VERSION"));
    let mut pages = vec![cli.clone()];
    with_subcommands(&cli, &mut pages);
    let written = pages.into_iter().try_for_each(|page| {
        clap_mangen::Man::new(page)
            .source(source.clone())
            .generate_to(dir)
            .map(drop)
    });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cannot write the man pages into {}: {err}", dir.display());
            ExitCode::FAILURE
        }
    }
}

fn hash_password() -> ExitCode {
    let password = match user_command::read_password_for_hashing() {
        Ok(password) => password,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    match aioftpd::auth::hash_password(&password) {
        Ok(phc) => {
            println!("{phc}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("hashing failed: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The filter `--log-level` names: tracing's levels, their syslog names
/// (`warning`, `notice`, `err`, `crit`, ...), or a list of `target=level`.
/// A word that is neither is refused: tracing would read it as a target and
/// log nothing at all.
fn log_filter(spec: &str) -> Result<EnvFilter, String> {
    let mut directives = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (target, level) = match part.rsplit_once('=') {
            Some((target, level)) => (Some(target), level),
            None => (None, part),
        };
        let level = match level.to_ascii_lowercase().as_str() {
            "off" => "off",
            "emerg" | "alert" | "crit" | "err" | "error" => "error",
            "warning" | "warn" => "warn",
            "notice" | "info" => "info",
            "debug" => "debug",
            "trace" => "trace",
            _ => {
                return Err(format!(
                    "--log-level: unknown level `{level}` in `{spec}`: expected error, warn, info, debug, trace, off (or a syslog name such as warning or notice), optionally as target=level"
                ))
            }
        };
        directives.push(match target {
            Some(target) => format!("{target}={level}"),
            None => level.to_owned(),
        });
    }
    if directives.is_empty() {
        return Err("--log-level: empty".to_owned());
    }
    // rustls warns about every client that sends an IP address as SNI (lftp does).
    if !spec.contains("rustls") {
        directives.push("rustls=error".to_owned());
    }
    EnvFilter::try_new(directives.join(",")).map_err(|e| format!("--log-level `{spec}`: {e}"))
}

fn init_logging(filter: Option<&str>, format: LogFormat) -> Result<(), String> {
    let filter = match filter {
        Some(spec) => log_filter(spec)?,
        None => match EnvFilter::try_from_default_env() {
            Ok(filter) => filter,
            Err(_) => log_filter("info")?,
        },
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        // Its fallback report uses eprintln!, which panics when stderr is a broken
        // pipe: a lost log reader must never take the daemon down.
        .log_internal_errors(false);
    // systemd sets JOURNAL_STREAM when stderr goes to the journal, which
    // stamps lines itself and takes each line's priority from its prefix.
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    match (format, journal) {
        (LogFormat::Json, true) => builder.json().map_event_format(JournalPriority).init(),
        (LogFormat::Json, false) => builder.json().init(),
        (LogFormat::Text, true) => builder
            .without_time()
            .map_event_format(JournalPriority)
            .init(),
        (LogFormat::Text, false) => builder.init(),
    }
    Ok(())
}

/// Starts each line with its syslog priority as sd-daemon(3) describes
/// (`<4>` for a warning): journald strips the prefix and stores the
/// priority, so `journalctl -p warning` finds the warnings. Without it
/// every line of a stream is stored at the stream's default, info.
struct JournalPriority<F>(F);

impl<S, N, F> FormatEvent<S, N> for JournalPriority<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", syslog_priority(*event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// The syslog priority (RFC 5424: 3 error, 4 warning, 6 info, 7 debug) of a tracing level.
fn syslog_priority(level: tracing::Level) -> u8 {
    match level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        _ => 7,
    }
}

fn load(args: &RunArgs) -> Result<Loaded, String> {
    match &args.config {
        Some(path) => config::load_file(path).map_err(|e| e.to_string()),
        None => {
            let root = match &args.root {
                Some(root) => root.clone(),
                None => std::env::current_dir()
                    .map_err(|e| format!("cannot read the current directory: {e}"))?,
            };
            let loaded =
                config::embedded_default(&root, args.writable, args.listen.first().copied())
                    .map_err(|e| e.to_string())?;
            let addr = loaded
                .settings
                .listen
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            let access = if args.writable {
                "read-write"
            } else {
                "read-only"
            };
            tracing::info!(
                "no --config given: serving {} {access} to anonymous users on ftp://{addr}/ (try: curl ftp://{addr}/)",
                root.display()
            );
            Ok(loaded)
        }
    }
}

fn run(args: RunArgs) -> ExitCode {
    if let Err(err) = init_logging(args.log_level.as_deref(), args.log_format) {
        eprintln!("{err}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let mut loaded = match load(&args) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if !args.listen.is_empty() {
        loaded.settings.listen = args.listen.clone();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let config_path = args.config.clone();
    runtime.block_on(supervisor::run(
        loaded,
        config_path.as_deref(),
        &args.listen,
    ))
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn log_levels_take_tracing_and_syslog_names_and_refuse_anything_else() {
        for spec in [
            "warn",
            "warning",
            "notice",
            "ERR",
            "crit",
            "info,aioftpd=debug",
            "off",
        ] {
            assert!(log_filter(spec).is_ok(), "{spec}");
        }
        for spec in ["bogus", "aioftpd=loud", "", " , "] {
            assert!(log_filter(spec).is_err(), "{spec:?}");
        }
    }
}
