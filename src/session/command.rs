//! Every command the server knows, parsed in one place.
//!
//! [`COMMANDS`] declares each verb's preconditions (login, argument, the
//! right it needs on its path) and its help text; parsing checks the
//! argument rule, dispatch checks the login rule and the right, once, before
//! any handler runs, and `HELP` and `FEAT` are generated from the same table
//! (each verb declares its `FEAT` line, if any). [`run`] is the one match
//! from a parsed command to its handler: a new command is its entry here
//! and its handler in `handlers/`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::handlers::hash::{Algorithm, Style as HashStyle};
use super::handlers::{unchecked_path, Cx, Target};
use super::{Action, Handled};
use crate::path::VirtualPath;
use crate::reply::{Code, Reply};

/// Whether a verb takes an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgRule {
    /// Takes none (any given is ignored).
    None,
    /// May take one.
    Optional,
    /// Needs one; without it the reply is 501.
    Required,
}

/// What a verb adds to the `FEAT` reply (RFC 2389).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// Nothing: a verb of RFC 959 itself.
    None,
    /// This line.
    Line(&'static str),
    /// This line, when TLS is configured.
    Tls(&'static str),
    /// The `MLST` line with the facts in effect (RFC 3659 §7.8).
    Facts,
    /// The `HASH` line with the algorithm selected, when hashing is on.
    Hash,
    /// This line, when hashing is on (the X-aliases).
    HashAlias(&'static str),
}

/// The right a command needs on its path, checked at dispatch on the path
/// as named and on where the storage's links lead it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// The command names no path, or checks each path it makes itself (STOU).
    Nothing,
    /// Reading a file or listing a directory.
    Read,
    /// Changing what is there: writing a file's contents, its time. An upload
    /// that creates a file also needs [`Need::Entry`], which its handler asks.
    Write,
    /// Creating, removing or renaming the entry itself (see `User::may_change_entry`).
    Entry,
}

/// A verb's declared preconditions and help.
#[derive(Debug)]
pub struct CommandSpec {
    /// The verb, upper case.
    pub verb: &'static str,
    /// Whether the verb is refused with 530 before login.
    pub needs_login: bool,
    /// Whether it takes an argument.
    pub arg: ArgRule,
    /// Syntax shown by `HELP verb`.
    pub syntax: &'static str,
    /// Its line in `FEAT`.
    pub feature: Feature,
    /// The right it needs on its path ([`Command::path`]).
    pub need: Need,
}

const fn spec(
    verb: &'static str,
    needs_login: bool,
    arg: ArgRule,
    syntax: &'static str,
) -> CommandSpec {
    CommandSpec {
        verb,
        needs_login,
        arg,
        syntax,
        feature: Feature::None,
        need: Need::Nothing,
    }
}

impl CommandSpec {
    /// The same verb, announced in `FEAT` as `feature` says.
    const fn feature(self, feature: Feature) -> Self {
        CommandSpec { feature, ..self }
    }

    /// The same verb, needing `need` on its path.
    const fn needs(self, need: Need) -> Self {
        CommandSpec { need, ..self }
    }
}

use ArgRule::{None as NoArg, Optional, Required};

/// Every verb the server implements.
pub const COMMANDS: &[CommandSpec] = &[
    spec("ABOR", false, NoArg, "ABOR (abort the running transfer)"),
    spec("ACCT", false, Required, "ACCT <account> (not needed)"),
    spec("ALLO", false, Optional, "ALLO <bytes> (not needed)"),
    spec(
        "AUTH",
        false,
        Required,
        "AUTH TLS (protect the control connection, RFC 4217)",
    )
    .feature(Feature::Tls("AUTH TLS")),
    spec(
        "CCC",
        false,
        NoArg,
        "CCC (refused: the control connection stays protected)",
    ),
    spec("APPE", true, Required, "APPE <path> (append to a file)").needs(Need::Write),
    spec("CDUP", true, NoArg, "CDUP (go to the parent directory)").needs(Need::Read),
    // TVFS (RFC 3659 §6): every path command takes `/`-separated paths.
    spec("CWD", true, Required, "CWD <path> (change directory)")
        .feature(Feature::Line("TVFS"))
        .needs(Need::Read),
    spec("DELE", true, Required, "DELE <path> (delete a file)").needs(Need::Entry),
    spec(
        "EPRT",
        true,
        Required,
        "EPRT |<proto>|<address>|<port>| (active mode, RFC 2428)",
    )
    .feature(Feature::Line("EPRT")),
    spec(
        "EPSV",
        true,
        Optional,
        "EPSV [<proto> | ALL] (extended passive mode, RFC 2428)",
    )
    .feature(Feature::Line("EPSV")),
    spec("FEAT", false, NoArg, "FEAT (list extensions)"),
    spec(
        "HASH",
        true,
        Required,
        "HASH <path> (digest of a file, draft-bryan-ftpext-hash; OPTS HASH selects)",
    )
    .feature(Feature::Hash)
    .needs(Need::Read),
    spec("HELP", false, Optional, "HELP [<command>]"),
    spec(
        "LIST",
        true,
        Optional,
        "LIST [<path>] (ls -l style listing)",
    )
    .needs(Need::Read),
    spec("MDTM", true, Required, "MDTM <path> (modification time)")
        .feature(Feature::Line("MDTM"))
        .needs(Need::Read),
    spec(
        "MFMT",
        true,
        Required,
        "MFMT <YYYYMMDDHHMMSS> <path> (set modification time)",
    )
    .feature(Feature::Line("MFMT"))
    .needs(Need::Write),
    spec("MKD", true, Required, "MKD <path> (make directory)").needs(Need::Entry),
    spec(
        "MLSD",
        true,
        Optional,
        "MLSD [<path>] (machine listing, RFC 3659)",
    )
    .needs(Need::Read),
    spec(
        "MLST",
        true,
        Optional,
        "MLST [<path>] (facts of one object, RFC 3659)",
    )
    .feature(Feature::Facts)
    .needs(Need::Read),
    spec("MODE", false, Required, "MODE S (stream mode only)"),
    spec("NLST", true, Optional, "NLST [<path>] (name list)").needs(Need::Read),
    spec("NOOP", false, NoArg, "NOOP"),
    spec("OPTS", false, Required, "OPTS UTF8 ON | OPTS MLST <facts>")
        .feature(Feature::Line("UTF8")),
    spec("PASS", false, Optional, "PASS <password>"),
    spec("PASV", true, NoArg, "PASV (passive mode)"),
    spec("PBSZ", false, Required, "PBSZ 0 (after AUTH TLS)").feature(Feature::Tls("PBSZ")),
    spec(
        "PORT",
        true,
        Required,
        "PORT <h1,h2,h3,h4,p1,p2> (active mode)",
    ),
    spec(
        "PROT",
        false,
        Required,
        "PROT P | C (protect data connections or not)",
    )
    .feature(Feature::Tls("PROT")),
    spec("PWD", true, NoArg, "PWD (print working directory)"),
    spec("QUIT", false, NoArg, "QUIT"),
    spec("REIN", false, NoArg, "REIN (log out, keep the connection)"),
    spec(
        "REST",
        true,
        Required,
        "REST <offset> (restart the next transfer at offset)",
    )
    .feature(Feature::Line("REST STREAM")),
    spec("RETR", true, Required, "RETR <path> (download)").needs(Need::Read),
    spec("RMD", true, Required, "RMD <path> (remove directory)").needs(Need::Entry),
    spec("RNFR", true, Required, "RNFR <path> (rename from)").needs(Need::Entry),
    spec("RNTO", true, Required, "RNTO <path> (rename to)").needs(Need::Entry),
    spec("SITE", true, Required, "SITE HELP"),
    spec("SIZE", true, Required, "SIZE <path> (file size)")
        .feature(Feature::Line("SIZE"))
        .needs(Need::Read),
    spec(
        "STAT",
        false,
        Optional,
        "STAT [<path>] (status, or a listing over the control connection)",
    )
    .needs(Need::Read),
    spec("STOR", true, Required, "STOR <path> (upload)").needs(Need::Write),
    spec("STOU", true, Optional, "STOU (upload to a unique name)"),
    spec("STRU", false, Required, "STRU F (file structure only)"),
    spec("SYST", false, NoArg, "SYST"),
    spec("TYPE", false, Required, "TYPE A | I | L 8"),
    spec("USER", false, Required, "USER <login>"),
    spec("XCRC", true, Required, "XCRC <path> (CRC32 of a file)")
        .feature(Feature::HashAlias("XCRC"))
        .needs(Need::Read),
    spec("XCUP", true, NoArg, "XCUP (same as CDUP)").needs(Need::Read),
    spec("XCWD", true, Required, "XCWD <path> (same as CWD)").needs(Need::Read),
    spec("XMD5", true, Required, "XMD5 <path> (MD5 of a file)")
        .feature(Feature::HashAlias("XMD5"))
        .needs(Need::Read),
    spec("XMKD", true, Required, "XMKD <path> (same as MKD)").needs(Need::Entry),
    spec("XPWD", true, NoArg, "XPWD (same as PWD)"),
    spec("XRMD", true, Required, "XRMD <path> (same as RMD)").needs(Need::Entry),
    spec("XSHA1", true, Required, "XSHA1 <path> (SHA-1 of a file)")
        .feature(Feature::HashAlias("XSHA1"))
        .needs(Need::Read),
    spec(
        "XSHA256",
        true,
        Required,
        "XSHA256 <path> (SHA-256 of a file)",
    )
    .feature(Feature::HashAlias("XSHA256"))
    .needs(Need::Read),
    spec(
        "XSHA512",
        true,
        Required,
        "XSHA512 <path> (SHA-512 of a file)",
    )
    .feature(Feature::HashAlias("XSHA512"))
    .needs(Need::Read),
];

/// Finds a verb's spec, case-insensitively.
pub fn find_spec(verb: &str) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|s| s.verb.eq_ignore_ascii_case(verb))
}

/// How file data is represented on the data connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferType {
    /// `TYPE A`: text, line endings converted to and from CRLF.
    Ascii,
    /// `TYPE I` (or `L 8`): bytes as they are.
    Image,
}

/// A parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // each variant is its verb; see COMMANDS for the syntax
pub enum Command {
    Abor,
    Acct,
    /// The size announced, if the argument starts with one (RFC 959 §4.1.3).
    Allo(Option<u64>),
    Appe(String),
    Auth(String),
    Ccc,
    Cdup,
    Cwd(String),
    Dele(String),
    Eprt(SocketAddr),
    Epsv(EpsvArg),
    Feat,
    Help(Option<String>),
    List(Option<String>),
    /// `HASH` (`style` Hash) or an X-alias naming its algorithm.
    Hash {
        path: String,
        style: HashStyle,
    },
    Mdtm(String),
    Mfmt {
        time: String,
        path: String,
    },
    Mkd(String),
    Mlsd(Option<String>),
    Mlst(Option<String>),
    Mode(String),
    Nlst(Option<String>),
    Noop,
    Opts(String),
    Pass(String),
    Pasv,
    Pbsz(String),
    Port(SocketAddr),
    Prot(String),
    Pwd,
    Quit,
    Rein,
    Rest(u64),
    Retr(String),
    Rmd(String),
    Rnfr(String),
    Rnto(String),
    Site(String),
    Size(String),
    Stat(Option<String>),
    Stor(String),
    Stou(Option<String>),
    Stru(String),
    Syst,
    Type(TransferType),
    User(String),
}

/// What `EPSV` asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpsvArg {
    /// Any protocol (that of the control connection).
    Any,
    /// Network protocol 1 (IPv4) or 2 (IPv6), RFC 2428 §3.
    Protocol(u8),
    /// `EPSV ALL`: from now on refuse every other data-connection setup command.
    All,
}

/// A line that is not a valid command, with the reply it gets.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError(pub Reply);

fn syntax(text: impl Into<String>) -> ParseError {
    ParseError(Reply::new(Code::BadArguments, text))
}

impl Command {
    /// The path the command acts on, as the client wrote it, for the right
    /// its spec declares; `None` for a command that names none (`STAT`
    /// alone reports on the session).
    pub fn path(&self) -> Option<&str> {
        use Command as C;
        match self {
            C::Cdup => Some(".."),
            C::Appe(path)
            | C::Cwd(path)
            | C::Dele(path)
            | C::Hash { path, .. }
            | C::Mdtm(path)
            | C::Mfmt { path, .. }
            | C::Mkd(path)
            | C::Retr(path)
            | C::Rmd(path)
            | C::Rnfr(path)
            | C::Rnto(path)
            | C::Size(path)
            | C::Stor(path)
            | C::Stat(Some(path)) => Some(path),
            C::List(path) | C::Mlsd(path) | C::Mlst(path) | C::Nlst(path) => {
                Some(path.as_deref().unwrap_or("."))
            }
            _ => None,
        }
    }

    /// Parses one command line; the spec's argument rule is enforced here.
    pub fn parse(line: &str) -> Result<(Command, &'static CommandSpec), ParseError> {
        let line = line.trim_start();
        let (verb, arg) = match line.split_once(' ') {
            Some((verb, arg)) => (verb, arg),
            None => (line, ""),
        };
        if verb.is_empty() {
            return Err(ParseError(Reply::new(
                Code::UnknownCommand,
                "Empty command",
            )));
        }
        let Some(spec) = find_spec(verb) else {
            let shown: String = verb.chars().take(32).filter(|c| !c.is_control()).collect();
            return Err(ParseError(Reply::new(
                Code::UnknownCommand,
                format!("Unknown command {shown:?}"),
            )));
        };
        // Paths may legitimately end in spaces; only strip the line's leading blanks.
        let arg_opt = (!arg.is_empty()).then(|| arg.to_owned());
        if spec.arg == Required && arg_opt.is_none() {
            return Err(syntax(format!("Syntax: {}", spec.syntax)));
        }
        let req = || arg.to_owned();
        let command = match spec.verb {
            "ABOR" => Command::Abor,
            "ACCT" => Command::Acct,
            "ALLO" => Command::Allo(arg.split_whitespace().next().and_then(|n| n.parse().ok())),
            "APPE" => Command::Appe(req()),
            "AUTH" => Command::Auth(arg.trim().to_ascii_uppercase()),
            "CCC" => Command::Ccc,
            "CDUP" | "XCUP" => Command::Cdup,
            "CWD" | "XCWD" => Command::Cwd(req()),
            "DELE" => Command::Dele(req()),
            "EPRT" => Command::Eprt(parse_eprt(arg)?),
            "EPSV" => Command::Epsv(parse_epsv(arg)?),
            "FEAT" => Command::Feat,
            "HELP" => Command::Help(arg_opt),
            "LIST" => Command::List(strip_list_flags(arg)),
            "MDTM" => Command::Mdtm(req()),
            "HASH" => Command::Hash {
                path: req(),
                style: HashStyle::Hash,
            },
            "XCRC" | "XMD5" | "XSHA1" | "XSHA256" | "XSHA512" => Command::Hash {
                path: req(),
                style: HashStyle::Alias(match spec.verb {
                    "XCRC" => Algorithm::Crc32,
                    "XMD5" => Algorithm::Md5,
                    "XSHA1" => Algorithm::Sha1,
                    "XSHA256" => Algorithm::Sha256,
                    _ => Algorithm::Sha512,
                }),
            },
            "MFMT" => {
                let (time, path) = arg
                    .split_once(' ')
                    .filter(|(_, path)| !path.is_empty())
                    .ok_or_else(|| syntax("Syntax: MFMT <YYYYMMDDHHMMSS> <path>"))?;
                Command::Mfmt {
                    time: time.to_owned(),
                    path: path.to_owned(),
                }
            }
            "MKD" | "XMKD" => Command::Mkd(req()),
            "MLSD" => Command::Mlsd(arg_opt),
            "MLST" => Command::Mlst(arg_opt),
            "MODE" => Command::Mode(arg.trim().to_ascii_uppercase()),
            "NLST" => Command::Nlst(strip_list_flags(arg)),
            "NOOP" => Command::Noop,
            "OPTS" => Command::Opts(req()),
            "PASS" => Command::Pass(req()),
            "PASV" => Command::Pasv,
            "PBSZ" => Command::Pbsz(arg.trim().to_owned()),
            "PORT" => Command::Port(parse_port(arg)?),
            "PROT" => Command::Prot(arg.trim().to_ascii_uppercase()),
            "PWD" | "XPWD" => Command::Pwd,
            "QUIT" => Command::Quit,
            "REIN" => Command::Rein,
            "REST" => Command::Rest(
                arg.trim()
                    .parse()
                    .map_err(|_| syntax("REST needs a non-negative byte offset"))?,
            ),
            "RETR" => Command::Retr(req()),
            "RMD" | "XRMD" => Command::Rmd(req()),
            "RNFR" => Command::Rnfr(req()),
            "RNTO" => Command::Rnto(req()),
            "SITE" => Command::Site(req()),
            "SIZE" => Command::Size(req()),
            "STAT" => Command::Stat(strip_list_flags(arg)),
            "STOR" => Command::Stor(req()),
            "STOU" => Command::Stou(arg_opt),
            "STRU" => Command::Stru(arg.trim().to_ascii_uppercase()),
            "SYST" => Command::Syst,
            "TYPE" => Command::Type(parse_type(arg)?),
            "USER" => Command::User(req()),
            other => {
                return Err(ParseError(Reply::new(
                    Code::NotImplemented,
                    format!("{other} not implemented"),
                )));
            }
        };
        Ok((command, spec))
    }
}

/// Drops `ls`-style flags (`-a`, `-la`) that clients put before a LIST path.
fn strip_list_flags(arg: &str) -> Option<String> {
    let mut rest = arg.trim_start();
    while rest.starts_with('-') {
        rest = rest
            .split_once(' ')
            .map_or("", |(_, after)| after)
            .trim_start();
    }
    (!rest.is_empty()).then(|| rest.to_owned())
}

fn parse_type(arg: &str) -> Result<TransferType, ParseError> {
    let words: Vec<String> = arg
        .split_whitespace()
        .map(str::to_ascii_uppercase)
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["A"] | ["A", "N"] => Ok(TransferType::Ascii),
        ["I"] | ["L", "8"] | ["L8"] => Ok(TransferType::Image),
        ["A" | "E" | "L", ..] => Err(ParseError(Reply::new(
            Code::ParameterNotImplemented,
            "Only TYPE A, A N, I and L 8 are supported",
        ))),
        _ => Err(syntax("Syntax: TYPE A | I | L 8")),
    }
}

/// `PORT h1,h2,h3,h4,p1,p2` (RFC 959 §4.1.2).
fn parse_port(arg: &str) -> Result<SocketAddr, ParseError> {
    let fields: Vec<u8> = arg
        .trim()
        .split(',')
        .map(|f| f.trim().parse::<u8>())
        .collect::<Result<_, _>>()
        .map_err(|_| syntax("Syntax: PORT h1,h2,h3,h4,p1,p2"))?;
    let [a, b, c, d, p1, p2] = fields[..] else {
        return Err(syntax("Syntax: PORT h1,h2,h3,h4,p1,p2"));
    };
    let ip = IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    Ok(SocketAddr::new(ip, u16::from(p1) << 8 | u16::from(p2)))
}

/// `EPRT |1|132.235.1.2|6275|` (RFC 2428 §2); any delimiter in 33..=126 is allowed.
fn parse_eprt(arg: &str) -> Result<SocketAddr, ParseError> {
    let bad = || syntax("Syntax: EPRT |<1 or 2>|<address>|<port>|");
    let arg = arg.trim();
    let delim = arg
        .chars()
        .next()
        .filter(|c| ('!'..='~').contains(c))
        .ok_or_else(bad)?;
    let parts: Vec<&str> = arg.split(delim).collect();
    let ["", proto, addr, port, ""] = parts[..] else {
        return Err(bad());
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    let ip: IpAddr = match proto {
        "1" => IpAddr::V4(addr.parse().map_err(|_| bad())?),
        "2" => IpAddr::V6(addr.parse().map_err(|_| bad())?),
        _ => {
            return Err(ParseError(Reply::new(
                Code::NotSupported,
                "Network protocol not supported, use (1,2)",
            )))
        }
    };
    Ok(SocketAddr::new(ip, port))
}

fn parse_epsv(arg: &str) -> Result<EpsvArg, ParseError> {
    match arg.trim().to_ascii_uppercase().as_str() {
        "" => Ok(EpsvArg::Any),
        "ALL" => Ok(EpsvArg::All),
        "1" => Ok(EpsvArg::Protocol(1)),
        "2" => Ok(EpsvArg::Protocol(2)),
        _ => Err(ParseError(Reply::new(
            Code::NotSupported,
            "Network protocol not supported, use (1,2)",
        ))),
    }
}

/// The one exhaustive match from command to handler. `target` is the
/// command's path, checked at dispatch for the right its spec declares;
/// `rename_from` is what an RNFR just before left behind.
///
/// The session boxes this future while a command runs, and a future is as
/// large as its largest arm; the transfer and listing handlers, twice the
/// size of the rest, are boxed on their own, so a command such as `PASS`
/// that may wait long (500 of them at once in a burst of logins) holds
/// half as much.
pub(super) async fn run(
    command: Command,
    mut cx: Cx<'_>,
    target: Option<Target>,
    rename_from: Option<VirtualPath>,
) -> Handled {
    use super::handlers::{
        auth, data_setup, file_ops, hash, listing, misc, navigation, tls, transfer,
    };
    use Command as C;
    // Every arm that takes a target has a path and a declared right
    // (`command::tests::a_verb_needs_a_right_exactly_when_it_names_a_path`).
    let target = || target.ok_or_else(unchecked_path);
    match command {
        C::User(login) => auth::user(cx, login).await,
        C::Pass(password) => auth::pass(cx, password).await,
        C::Acct => Ok(Reply::new(Code::Superfluous, "ACCT not needed").into()),
        C::Rein => auth::rein(cx).await,
        C::Quit => Ok(Action::Close(Reply::new(Code::Goodbye, "Goodbye"))),
        C::Pwd => navigation::pwd(cx.state),
        C::Cwd(_) | C::Cdup => navigation::cwd(cx.state, target()?).await,
        C::Mkd(_) => file_ops::mkd(target()?, cx.witness()).await,
        C::Rmd(_) => file_ops::rmd(&cx.state.cwd, target()?, cx.witness()).await,
        C::Dele(_) => file_ops::dele(target()?, cx.witness()).await,
        C::Rnfr(_) => file_ops::rnfr(&mut cx.state.rename_from, target()?).await,
        C::Rnto(_) => file_ops::rnto(rename_from, target()?, cx.witness()).await,
        C::Size(_) => file_ops::size(target()?).await,
        C::Mdtm(_) => file_ops::mdtm(target()?).await,
        C::Hash { style, .. } => Box::pin(hash::hash(cx, target()?, style)).await,
        C::Mfmt { time, .. } => file_ops::mfmt(&time, target()?).await,
        C::Retr(_) => Box::pin(transfer::retr(cx, target()?)).await,
        C::Stor(_) => Box::pin(transfer::stor(cx, target()?)).await,
        C::Appe(_) => Box::pin(transfer::appe(cx, target()?)).await,
        C::Stou(hint) => Box::pin(transfer::stou(cx, hint.as_deref())).await,
        C::Rest(offset) => transfer::rest(cx.state, offset),
        C::Auth(mechanism) => tls::auth(&cx, &mechanism),
        C::Ccc => tls::ccc(cx.conn),
        C::Pbsz(size) => tls::pbsz(cx.conn, &size),
        C::Prot(level) => tls::prot(cx.conn, &level),
        C::Abor => Ok(Reply::new(Code::TransferComplete, "No transfer to abort").into()),
        C::Allo(size) => transfer::allo(cx.state, size),
        C::List(_) => Box::pin(listing::list(cx, target()?)).await,
        C::Nlst(_) => Box::pin(listing::nlst(cx, target()?)).await,
        C::Mlsd(_) => Box::pin(listing::mlsd(cx, target()?)).await,
        C::Mlst(_) => listing::mlst(cx.state, target()?).await,
        C::Stat(None) => Ok(listing::status(cx.conn, cx.state).into()),
        C::Stat(Some(_)) => Box::pin(listing::stat(cx.state, target()?)).await,
        C::Pasv => data_setup::pasv(&mut cx),
        C::Epsv(arg) => data_setup::epsv(&mut cx, arg),
        C::Port(addr) => data_setup::port(&mut cx, addr, false),
        C::Eprt(addr) => data_setup::port(&mut cx, addr, true),
        C::Type(kind) => misc::type_(cx.state, kind),
        C::Mode(mode) => misc::mode(&mode),
        C::Stru(stru) => misc::stru(&stru),
        C::Feat => Ok(misc::feat(cx.server, cx.state).into()),
        C::Opts(args) => misc::opts(cx.state, &args),
        C::Syst => Ok(Reply::new(Code::SystemType, "UNIX Type: L8").into()),
        C::Noop => Ok(Reply::new(Code::Ok, "NOOP ok").into()),
        C::Help(verb) => Ok(misc::help(verb.as_deref()).into()),
        C::Site(args) => Ok(misc::site(&args).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Command, u16> {
        Command::parse(line)
            .map(|(c, _)| c)
            .map_err(|ParseError(r)| r.code().number())
    }

    #[test]
    fn verbs_are_case_insensitive_and_aliases_map() {
        assert_eq!(parse("user alice"), Ok(Command::User("alice".into())));
        assert_eq!(parse("XPWD"), Ok(Command::Pwd));
        assert_eq!(parse("xcwd /a"), Ok(Command::Cwd("/a".into())));
    }

    #[test]
    fn unknown_verbs_are_500_and_missing_arguments_501() {
        assert_eq!(parse("FOO bar"), Err(500));
        assert_eq!(parse(""), Err(500));
        assert_eq!(parse("RETR"), Err(501));
        assert_eq!(parse("REST abc"), Err(501));
    }

    #[test]
    fn paths_keep_inner_and_trailing_spaces() {
        assert_eq!(parse("STOR my file "), Ok(Command::Stor("my file ".into())));
    }

    #[test]
    fn list_flags_are_ignored() {
        assert_eq!(parse("LIST -la"), Ok(Command::List(None)));
        assert_eq!(
            parse("LIST -a /pub"),
            Ok(Command::List(Some("/pub".into())))
        );
        assert_eq!(parse("NLST"), Ok(Command::Nlst(None)));
    }

    #[test]
    fn type_variants() {
        assert_eq!(parse("TYPE I"), Ok(Command::Type(TransferType::Image)));
        assert_eq!(parse("TYPE a n"), Ok(Command::Type(TransferType::Ascii)));
        assert_eq!(parse("TYPE L 8"), Ok(Command::Type(TransferType::Image)));
        assert_eq!(parse("TYPE E"), Err(504));
        assert_eq!(parse("TYPE X"), Err(501));
    }

    #[test]
    fn port_and_eprt_arguments() {
        let v4: SocketAddr = "127.0.0.1:1234".parse().unwrap();
        assert_eq!(parse("PORT 127,0,0,1,4,210"), Ok(Command::Port(v4)));
        assert_eq!(parse("PORT 127,0,0,1,4"), Err(501));
        assert_eq!(parse("PORT 300,0,0,1,4,1"), Err(501));
        assert_eq!(parse("EPRT |1|127.0.0.1|1234|"), Ok(Command::Eprt(v4)));
        let v6: SocketAddr = "[::1]:2000".parse().unwrap();
        assert_eq!(parse("EPRT !2!::1!2000!"), Ok(Command::Eprt(v6)));
        assert_eq!(parse("EPRT |3|x|1|"), Err(522));
        assert_eq!(parse("EPRT |1|::1|1|"), Err(501));
    }

    #[test]
    fn epsv_arguments() {
        assert_eq!(parse("EPSV"), Ok(Command::Epsv(EpsvArg::Any)));
        assert_eq!(parse("EPSV all"), Ok(Command::Epsv(EpsvArg::All)));
        assert_eq!(parse("EPSV 2"), Ok(Command::Epsv(EpsvArg::Protocol(2))));
        assert_eq!(parse("EPSV 9"), Err(522));
    }

    #[test]
    fn every_spec_verb_parses_with_an_argument() {
        for spec in COMMANDS {
            let line = match spec.verb {
                "PORT" => "PORT 127,0,0,1,4,0".to_owned(),
                "EPRT" => "EPRT |1|127.0.0.1|1024|".to_owned(),
                "REST" => "REST 0".to_owned(),
                "TYPE" => "TYPE I".to_owned(),
                "EPSV" => "EPSV".to_owned(),
                "MFMT" => "MFMT 20200101000000 a".to_owned(),
                verb => format!("{verb} x"),
            };
            assert!(Command::parse(&line).is_ok(), "{line}");
        }
    }

    /// Dispatch checks the declared right on `Command::path`: a verb that
    /// names a path without declaring a right would run unchecked, one that
    /// declares a right and names no path when given one would never be
    /// checked. (`STAT` alone names none: it reports on the session.)
    #[test]
    fn a_verb_needs_a_right_exactly_when_it_names_a_path() {
        for spec in COMMANDS {
            let declared = spec.need != Need::Nothing;
            if let Ok((command, _)) = Command::parse(spec.verb) {
                assert!(command.path().is_none() || declared, "{}", spec.verb);
            }
            let line = format!("{} x", spec.verb);
            if let Ok((command, parsed)) = Command::parse(&line) {
                assert_eq!(parsed.verb, spec.verb);
                assert_eq!(
                    command.path().is_some(),
                    declared,
                    "{line}: {:?}",
                    spec.need
                );
            }
        }
        // STOU makes its own names and checks each one itself.
        assert_eq!(find_spec("STOU").map(|s| s.need), Some(Need::Nothing));
    }
}
