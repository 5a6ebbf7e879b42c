//! FTP replies: a code and one or more lines of text, formatted per RFC 959 §4.2.

use std::fmt::Write as _;

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
    fn line_breaks_in_text_cannot_inject_replies() {
        assert_eq!(Reply::new(550, "a\r\n200 b").to_wire(), "550 a  200 b\r\n");
    }
}
