//! FTP replies: a code and one or more lines of text, formatted per RFC 959 §4.2.

use std::fmt::Write as _;

use futures::stream::BoxStream;

/// One reply to a command: a three-digit code and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, text: impl Into<String>) -> Self {
        Reply {
            code,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply: `first` on the opening line, `body` lines indented by one
    /// space (as FEAT and STAT use them), `last` on the closing line.
    pub fn multiline(
        code: u16,
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
    pub fn code(&self) -> u16 {
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
    pub code: u16,
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

#[cfg(test)]
mod tests {
    use super::Reply;

    #[test]
    fn single_line_reply() {
        assert_eq!(Reply::new(200, "OK").to_wire(), "200 OK\r\n");
    }

    #[test]
    fn multiline_reply_indents_its_body() {
        let reply = Reply::multiline(211, "Features:", ["SIZE".to_owned()], "End");
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
        assert_eq!(Reply::new(550, "a\r\n200 b").to_wire(), "550 a  200 b\r\n");
    }
}
