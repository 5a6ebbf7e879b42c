//! `TYPE A` line-ending conversion (RFC 959 §3.1.1.1): LF on disk, CRLF on
//! the wire. Stateful across blocks, so a CR and its LF may arrive apart.

/// Converts local text (LF) to network text (CRLF); an existing CRLF is kept as is.
#[derive(Debug, Default)]
pub(super) struct ToNetwork {
    last_was_cr: bool,
}

impl ToNetwork {
    /// Appends the converted form of `input` to `out`.
    pub(super) fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 16);
        for &b in input {
            if b == b'\n' && !self.last_was_cr {
                out.push(b'\r');
            }
            out.push(b);
            self.last_was_cr = b == b'\r';
        }
    }
}

/// Converts network text (CRLF) to local text (LF); a lone CR is kept.
#[derive(Debug, Default)]
pub(super) struct FromNetwork {
    pending_cr: bool,
}

impl FromNetwork {
    /// Appends the converted form of `input` to `out`.
    pub(super) fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len());
        for &b in input {
            if std::mem::take(&mut self.pending_cr) && b != b'\n' {
                out.push(b'\r');
            }
            if b == b'\r' {
                self.pending_cr = true;
            } else {
                out.push(b);
            }
        }
    }

    /// Emits a CR held back at the very end of the stream.
    pub(super) fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) {
            out.push(b'\r');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lf_becomes_crlf_and_crlf_stays() {
        let mut out = Vec::new();
        let mut conv = ToNetwork::default();
        conv.convert(b"a\nb\r", &mut out);
        conv.convert(b"\nc\n", &mut out);
        assert_eq!(out, b"a\r\nb\r\nc\r\n");
    }

    #[test]
    fn crlf_becomes_lf_across_block_boundaries() {
        let mut out = Vec::new();
        let mut conv = FromNetwork::default();
        conv.convert(b"a\r", &mut out);
        conv.convert(b"\nb\rc\r", &mut out);
        conv.finish(&mut out);
        assert_eq!(out, b"a\nb\rc\r");
    }
}
