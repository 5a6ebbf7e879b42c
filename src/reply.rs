//! FTP replies: a [`Code`] and one or more lines of text, formatted per
//! RFC 959 §4.2, and the one place where errors become replies.
//!
//! Every reply the server sends names its code here: handlers pick a
//! [`Code`] by meaning, and the errors of the rooms below (storage,
//! transfers, connection refusals) map to replies in this module only, so a
//! code changes in one place and a client's view of an error is decided once.

use std::fmt::{self, Write as _};

use futures::stream::BoxStream;

use crate::data::TransferError;
use crate::limits::Refusal;
use crate::storage::StorageError;

/// Defines [`Code`]: each reply code the server sends, its number and where
/// it is specified.
macro_rules! codes {
    ($($(#[doc = $doc:literal])* $name:ident = $number:literal,)*) => {
        /// A reply code, named by its meaning. The first digit tells a client
        /// how to go on (RFC 959 §4.2.1): 1 preliminary, 2 done, 3 more
        /// needed, 4 failed but worth retrying, 5 failed for good.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Code {
            $($(#[doc = $doc])* $name,)*
        }

        impl Code {
            /// Every code, for tests and docs.
            pub const ALL: &'static [Code] = &[$(Code::$name,)*];

            /// The three-digit number on the wire.
            pub const fn number(self) -> u16 {
                match self {
                    $(Code::$name => $number,)*
                }
            }
        }
    };
}

codes! {
    /// 150: the data connection is being opened (RFC 959).
    OpeningData = 150,
    /// 200: command okay (RFC 959).
    Ok = 200,
    /// 202: command not needed here, superfluous (RFC 959).
    Superfluous = 202,
    /// 211: system status or help reply (RFC 959), FEAT (RFC 2389).
    SystemStatus = 211,
    /// 213: file status: SIZE, MDTM (RFC 3659), STAT of a file (RFC 959).
    FileStatus = 213,
    /// 214: help message (RFC 959).
    Help = 214,
    /// 215: system type (RFC 959).
    SystemType = 215,
    /// 220: service ready for a new user (RFC 959).
    Ready = 220,
    /// 221: closing the control connection (RFC 959).
    Goodbye = 221,
    /// 226: transfer complete, data connection closed (RFC 959).
    TransferComplete = 226,
    /// 227: entering passive mode (RFC 959).
    PassiveMode = 227,
    /// 229: entering extended passive mode (RFC 2428).
    ExtendedPassiveMode = 229,
    /// 230: user logged in (RFC 959).
    LoggedIn = 230,
    /// 234: security mechanism accepted, handshake follows (RFC 2228).
    SecurityAccepted = 234,
    /// 250: requested file action okay, completed (RFC 959).
    FileActionOk = 250,
    /// 257: path created, or the current directory (RFC 959).
    PathName = 257,
    /// 331: user name okay, need password (RFC 959).
    NeedPassword = 331,
    /// 350: requested file action pending further information (RFC 959).
    PendingMoreInfo = 350,
    /// 421: service not available, closing the control connection (RFC 959).
    ServiceUnavailable = 421,
    /// 425: can't open the data connection (RFC 959).
    CannotOpenData = 425,
    /// 426: connection closed, transfer aborted (RFC 959).
    TransferAborted = 426,
    /// 450: file unavailable for now; worth retrying (RFC 959).
    FileBusy = 450,
    /// 451: local error in processing (RFC 959).
    LocalError = 451,
    /// 452: insufficient storage space (RFC 959).
    InsufficientStorage = 452,
    /// 500: syntax error, command unrecognised (RFC 959).
    UnknownCommand = 500,
    /// 501: syntax error in the arguments (RFC 959).
    BadArguments = 501,
    /// 502: command not implemented (RFC 959).
    NotImplemented = 502,
    /// 503: bad sequence of commands (RFC 959).
    BadSequence = 503,
    /// 504: command not implemented for that parameter (RFC 959).
    ParameterNotImplemented = 504,
    /// 521: data connection cannot be opened with this PROT setting (RFC 4217 §9).
    ProtectionRequired = 521,
    /// 522: network protocol not supported (RFC 2428), and a data connection
    /// that did not resume its control connection's TLS session (RFC 4217 §10).
    NotSupported = 522,
    /// 530: not logged in (RFC 959).
    NotLoggedIn = 530,
    /// 533: command protection level denied for policy reasons (RFC 2228).
    ProtectionDenied = 533,
    /// 534: request denied for policy reasons (RFC 2228).
    PolicyDenied = 534,
    /// 536: requested protection level not supported (RFC 2228).
    ProtectionNotSupported = 536,
    /// 550: file unavailable: not found, no access (RFC 959).
    FileUnavailable = 550,
    /// 552: requested file action aborted, exceeded storage allocation (RFC 959).
    ExceededStorage = 552,
    /// 553: file name not allowed (RFC 959).
    NameNotAllowed = 553,
    /// 554: requested action not taken: invalid REST parameter (RFC 3659 §5.5).
    InvalidRestart = 554,
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// One reply to a command: a three-digit code and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    code: Code,
    lines: Vec<String>,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: Code, text: impl Into<String>) -> Self {
        Reply {
            code,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply: `first` on the opening line, `body` lines indented by one
    /// space (as FEAT and STAT use them), `last` on the closing line.
    pub fn multiline(
        code: Code,
        first: impl Into<String>,
        body: impl IntoIterator<Item = String>,
        last: impl Into<String>,
    ) -> Self {
        let mut lines = vec![first.into()];
        lines.extend(body.into_iter().map(|line| format!(" {line}")));
        lines.push(last.into());
        Reply { code, lines }
    }

    /// The reply code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The wire form, CRLF-terminated. Line breaks inside a text never end the reply early.
    pub fn to_wire(&self) -> String {
        let mut out = String::new();
        let last = self.lines.len() - 1;
        for (i, line) in self.lines.iter().enumerate() {
            let line = line.replace(['\r', '\n'], " ");
            let sep = if i == last { ' ' } else { '-' };
            if i == 0 || i == last {
                let _ = write!(out, "{}{sep}{line}\r\n", self.code);
            } else {
                // RFC 959: a body line must not look like a closing line.
                let _ = write!(out, "{line}\r\n");
            }
        }
        out
    }
}

/// A multi-line reply whose body is produced while it is sent, so a long
/// one (`STAT` of a big directory) costs a bounded buffer, not its length.
pub struct StreamedReply {
    /// The reply code.
    pub code: Code,
    /// The text of the first line.
    pub first: String,
    /// The body lines, each sent indented by one space.
    pub body: BoxStream<'static, String>,
    /// The text of the closing line.
    pub last: String,
}

impl StreamedReply {
    /// The wire form of the first line.
    pub fn first_wire(&self) -> String {
        format!(
            "{}-{}\r\n",
            self.code,
            self.first.replace(['\r', '\n'], " ")
        )
    }

    /// The wire form of the closing line.
    pub fn last_wire(&self) -> String {
        Reply::new(self.code, self.last.as_str()).to_wire()
    }
}

/// Appends body line `line` in its wire form: indented, its own line breaks
/// made blanks so that no name can end the reply early or forge another.
pub fn push_body_line(out: &mut String, line: &str) {
    out.push(' ');
    out.extend(
        line.chars()
            .map(|c| if c == '\r' || c == '\n' { ' ' } else { c }),
    );
    out.push_str("\r\n");
}

/// The one table from storage errors to replies (RFC 959 §4.2: 45x
/// transient, 55x permanent).
impl From<StorageError> for Reply {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::NotFound => {
                Reply::new(Code::FileUnavailable, "No such file or directory")
            }
            StorageError::AlreadyExists => Reply::new(Code::FileUnavailable, "File exists"),
            StorageError::NotADirectory => Reply::new(Code::FileUnavailable, "Not a directory"),
            StorageError::IsADirectory => Reply::new(Code::FileUnavailable, "Is a directory"),
            StorageError::DirectoryNotEmpty => {
                Reply::new(Code::FileUnavailable, "Directory not empty")
            }
            StorageError::PermissionDenied => {
                Reply::new(Code::FileUnavailable, "Permission denied")
            }
            StorageError::InvalidName => Reply::new(Code::NameNotAllowed, "File name not allowed"),
            StorageError::StorageFull => {
                Reply::new(Code::InsufficientStorage, "Insufficient storage space")
            }
            StorageError::QuotaExceeded => Reply::new(Code::ExceededStorage, "Quota exceeded"),
            StorageError::Unsupported => Reply::new(
                Code::NotImplemented,
                "Operation not supported by this storage",
            ),
            StorageError::TimedOut => Reply::new(Code::LocalError, "Storage operation timed out"),
            StorageError::Io(err) => {
                tracing::warn!(%err, "storage error");
                Reply::new(Code::LocalError, "Local error in processing")
            }
        }
    }
}

/// How a transfer that failed once under way is answered.
impl From<TransferError> for Reply {
    fn from(err: TransferError) -> Self {
        match err {
            TransferError::Connection(_) => {
                Reply::new(Code::TransferAborted, "Connection closed; transfer aborted")
            }
            TransferError::Stalled => Reply::new(
                Code::TransferAborted,
                "Data connection stalled; transfer aborted",
            ),
            TransferError::Storage(err) => Reply::from(err),
            TransferError::TlsHandshake(_) => Reply::new(
                Code::CannotOpenData,
                "TLS handshake on the data connection failed",
            ),
            // RFC 4217 §10 leaves the code open; vsftpd answers 522 here too.
            TransferError::SessionNotResumed => Reply::new(
                Code::NotSupported,
                "Data connection must resume the control connection's TLS session",
            ),
        }
    }
}

/// What a connection refused before its session starts is told.
impl From<Refusal> for Reply {
    fn from(refusal: Refusal) -> Self {
        let text = match refusal {
            Refusal::ServerFull => "Too many connections, try again later",
            Refusal::AddressFull => "Too many connections from your address",
            Refusal::AddressBlocked => "Too many failed logins from your address, try again later",
        };
        Reply::new(Code::ServiceUnavailable, text)
    }
}

#[cfg(test)]
mod tests {
    use super::{Code, Reply};

    #[test]
    fn every_code_is_a_distinct_reply_number_of_rfc_959s_five_classes() {
        let mut numbers: Vec<u16> = Code::ALL.iter().map(|c| c.number()).collect();
        assert!(
            numbers.iter().all(|n| (100..600).contains(n)),
            "{numbers:?}"
        );
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), Code::ALL.len());
    }

    #[test]
    fn single_line_reply() {
        assert_eq!(Reply::new(Code::Ok, "OK").to_wire(), "200 OK\r\n");
    }

    #[test]
    fn multiline_reply_indents_its_body() {
        let reply = Reply::multiline(Code::SystemStatus, "Features:", ["SIZE".to_owned()], "End");
        assert_eq!(reply.to_wire(), "211-Features:\r\n SIZE\r\n211 End\r\n");
    }

    #[test]
    fn a_streamed_body_line_cannot_end_the_reply_or_forge_another() {
        let mut out = String::new();
        super::push_body_line(&mut out, "evil\r\n213 End\n");
        assert_eq!(out, " evil  213 End \r\n");
    }

    #[test]
    fn line_breaks_in_text_cannot_inject_replies() {
        assert_eq!(
            Reply::new(Code::FileUnavailable, "a\r\n200 b").to_wire(),
            "550 a  200 b\r\n"
        );
    }
}
