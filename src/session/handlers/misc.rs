//! TYPE, MODE, STRU, FEAT, OPTS, HELP, SITE: settings and self-description.

use super::super::command::{find_spec, Feature, TransferType, COMMANDS};
use super::super::state::State;
use super::super::Handled;
use super::hash::{self, Algorithm};
use crate::context::ServerContext;
use crate::listing::FactSet;
use crate::reply::{Code, Reply};

pub(in crate::session) fn type_(state: &mut State, kind: TransferType) -> Handled {
    state.transfer_type = kind;
    let text = match kind {
        TransferType::Ascii => "Switching to ASCII mode",
        TransferType::Image => "Switching to Binary mode",
    };
    Ok(Reply::new(Code::Ok, text).into())
}

pub(in crate::session) fn mode(mode: &str) -> Handled {
    match mode {
        "S" => Ok(Reply::new(Code::Ok, "Mode set to S").into()),
        "B" | "C" | "Z" => Err(Reply::new(
            Code::ParameterNotImplemented,
            "Only MODE S is supported",
        )),
        _ => Err(Reply::new(Code::BadArguments, "Syntax: MODE S")),
    }
}

pub(in crate::session) fn stru(stru: &str) -> Handled {
    match stru {
        "F" => Ok(Reply::new(Code::Ok, "Structure set to F").into()),
        "R" | "P" => Err(Reply::new(
            Code::ParameterNotImplemented,
            "Only STRU F is supported",
        )),
        _ => Err(Reply::new(Code::BadArguments, "Syntax: STRU F")),
    }
}

/// RFC 2389 §3.2: the lines the command table declares, the
/// extensions sorted by name, then those of TLS when it is configured.
pub(in crate::session) fn feat(server: &ServerContext, state: &State) -> Reply {
    let tls = server.settings.tls.is_some();
    let mut features = Vec::new();
    let mut tls_features = Vec::new();
    for spec in COMMANDS {
        match spec.feature {
            Feature::None => {}
            Feature::Line(line) => features.push(line.to_owned()),
            Feature::Facts => features.push(state.facts.feature_line()),
            Feature::Hash if server.settings.session.hash_max_size > 0 => {
                features.push(Algorithm::feature_line(state.hash_algorithm));
            }
            Feature::HashAlias(line) if server.settings.session.hash_max_size > 0 => {
                features.push(line.to_owned());
            }
            Feature::Hash | Feature::HashAlias(_) => {}
            Feature::Tls(line) if tls => tls_features.push(line.to_owned()),
            Feature::Tls(_) => {}
        }
    }
    features.sort();
    Reply::multiline(
        Code::SystemStatus,
        "Features:",
        features.into_iter().chain(tls_features),
        "End",
    )
}

pub(in crate::session) fn opts(state: &mut State, args: &str) -> Handled {
    let (option, value) = args.split_once(' ').unwrap_or((args, ""));
    match option.to_ascii_uppercase().as_str() {
        // RFC 2640 §3.1: names are always UTF-8 here.
        "UTF8" | "UTF-8" => match value.trim().to_ascii_uppercase().as_str() {
            "" | "ON" => Ok(Reply::new(Code::Ok, "UTF8 mode is always on").into()),
            _ => Err(Reply::new(
                Code::ParameterNotImplemented,
                "UTF8 mode cannot be turned off",
            )),
        },
        // draft-bryan-ftpext-hash-02 §4
        "HASH" => hash::opts(&mut state.hash_algorithm, value),
        // RFC 3659 §7.9
        "MLST" => {
            state.facts = FactSet::select(value.trim());
            Ok(Reply::new(Code::Ok, format!("MLST OPTS {}", state.facts.names())).into())
        }
        _ => Err(Reply::new(Code::BadArguments, "Option not understood")),
    }
}

pub(in crate::session) fn help(verb: Option<&str>) -> Reply {
    match verb.map(str::trim) {
        None | Some("") => {
            let verbs: Vec<&str> = COMMANDS.iter().map(|s| s.verb).collect();
            let rows = verbs.chunks(8).map(|row| row.join(" "));
            Reply::multiline(
                Code::Help,
                "The following commands are recognized:",
                rows,
                "Help OK",
            )
        }
        Some(verb) => match find_spec(verb) {
            Some(spec) => Reply::new(Code::Help, format!("Syntax: {}", spec.syntax)),
            None => Reply::new(Code::BadArguments, "Unknown command"),
        },
    }
}

pub(in crate::session) fn site(args: &str) -> Reply {
    match args.trim().to_ascii_uppercase().as_str() {
        "HELP" => Reply::new(Code::Help, "SITE commands: HELP"),
        _ => Reply::new(Code::ParameterNotImplemented, "Unknown SITE command"),
    }
}
