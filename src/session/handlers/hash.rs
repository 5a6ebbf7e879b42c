//! HASH (draft-bryan-ftpext-hash-02) and the older XCRC, XMD5, XSHA1,
//! XSHA256 and XSHA512: a file's digest, so a client can check a transfer
//! without downloading the file again.
//!
//! The bytes are read as a download is (the user's download limits hold,
//! and the read needs the right to read), and hashed on the blocking pool,
//! a chunk at a time, never on the async workers. A range larger than
//! `server.hash_max_size` is refused at once (`550`), so one command cannot
//! hold a session for long; `0` turns hashing off.

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use tokio::io::AsyncReadExt;

use super::super::Handled;
use super::{Cx, Target};
use crate::reply::{Code, Reply};
use crate::storage::FileKind;
use crate::throttle::Throttle;

/// How much is read and hashed at a time.
const CHUNK: usize = 1 << 20;

/// The algorithms offered, in the order `FEAT` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// SHA-256 (FIPS 180-4), the default.
    Sha256,
    /// SHA-512 (FIPS 180-4).
    Sha512,
    /// SHA-1, for clients that know no other.
    Sha1,
    /// MD5 (RFC 1321), for clients that know no other.
    Md5,
    /// CRC-32 as zlib and `crc32` compute it.
    Crc32,
}

impl Algorithm {
    const ALL: [Algorithm; 5] = [
        Algorithm::Sha256,
        Algorithm::Sha512,
        Algorithm::Sha1,
        Algorithm::Md5,
        Algorithm::Crc32,
    ];

    /// Its name as the draft (and IANA's hash function registry) spells it.
    pub(in crate::session) fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha512 => "SHA-512",
            Algorithm::Sha1 => "SHA-1",
            Algorithm::Md5 => "MD5",
            Algorithm::Crc32 => "CRC32",
        }
    }

    fn named(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|algorithm| algorithm.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The `FEAT` line: every algorithm, the selected one starred.
    pub(in crate::session) fn feature_line(selected: Algorithm) -> String {
        let names: Vec<String> = Self::ALL
            .into_iter()
            .map(|a| {
                let star = if a == selected { "*" } else { "" };
                format!("{}{star}", a.name())
            })
            .collect();
        format!("HASH {}", names.join(";"))
    }

    fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
            Algorithm::Sha1 => Hasher::Sha1(Sha1::new()),
            Algorithm::Md5 => Hasher::Md5(Md5::new()),
            Algorithm::Crc32 => Hasher::Crc32(crc32fast::Hasher::new()),
        }
    }
}

enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
    Sha1(Sha1),
    Md5(Md5),
    Crc32(crc32fast::Hasher),
}

impl Hasher {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
            Hasher::Sha1(h) => h.update(bytes),
            Hasher::Md5(h) => h.update(bytes),
            Hasher::Crc32(h) => h.update(bytes),
        }
    }

    /// Lower-case hex, as `sha256sum` and friends print it.
    fn finish(self) -> String {
        let bytes = match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// How the command asked, and so how it is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// `HASH`: the selected algorithm, from the restart offset;
    /// `213 <name> <start>-<end> <hex> <path>` (end exclusive, as ProFTPD's
    /// mod_digest answers).
    Hash,
    /// `XCRC`, `XMD5`, ...: that algorithm over the whole file; `250 <hex>`.
    Alias(Algorithm),
}

/// `OPTS HASH [<name>]`: selects the algorithm, or says which is selected.
pub(in crate::session) fn opts(selected: &mut Algorithm, value: &str) -> Handled {
    if value.trim().is_empty() {
        return Ok(Reply::new(Code::Ok, selected.name()).into());
    }
    match Algorithm::named(value) {
        Some(algorithm) => {
            *selected = algorithm;
            Ok(Reply::new(Code::Ok, algorithm.name()).into())
        }
        None => Err(Reply::new(
            Code::BadArguments,
            "Unknown algorithm, see FEAT",
        )),
    }
}

pub(in crate::session) async fn hash(cx: Cx<'_>, target: Target, style: Style) -> Handled {
    let limit = cx.server.settings.session.hash_max_size;
    if limit == 0 {
        return Err(Reply::new(Code::NotImplemented, "Hashing is turned off"));
    }
    let (algorithm, start) = match style {
        Style::Hash => (
            cx.state.hash_algorithm,
            std::mem::take(&mut cx.state.restart_offset),
        ),
        Style::Alias(algorithm) => (algorithm, 0),
    };
    let Target { user, path, .. } = target;
    let meta = user.storage.metadata(&path).await?;
    if meta.kind != FileKind::File {
        return Err(Reply::new(Code::NameNotAllowed, "Not a regular file"));
    }
    if start > meta.size {
        return Err(Reply::new(
            Code::InvalidRestart,
            "Restart offset past the end of the file",
        ));
    }
    let len = meta.size - start;
    if len > limit {
        return Err(Reply::new(
            Code::FileUnavailable,
            format!("Too large to hash here ({len} bytes; server.hash_max_size is {limit})"),
        ));
    }
    let throttle = cx
        .state
        .account()
        .map_or_else(Throttle::unlimited, |account| {
            account.throttle(cx.server, false)
        });
    let mut reader = user.storage.open_read(&path, start).await?;
    let mut hasher = algorithm.hasher();
    let mut buf = vec![0u8; CHUNK.min(usize::try_from(len).unwrap_or(CHUNK)).max(1)];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = reader.read(&mut buf[..want]).await.map_err(|err| {
            tracing::warn!(%err, path = %path, "HASH: read failed");
            Reply::new(Code::LocalError, "Could not read the file")
        })?;
        if n == 0 {
            // Shorter than its size said: it changed while being hashed.
            return Err(Reply::new(
                Code::FileBusy,
                "The file changed while it was hashed, try again",
            ));
        }
        throttle.take(n).await;
        (hasher, buf) = tokio::task::spawn_blocking(move || {
            hasher.update(&buf[..n]);
            (hasher, buf)
        })
        .await
        .map_err(|_| Reply::new(Code::LocalError, "Hashing failed"))?;
        left -= n as u64;
    }
    let hex = hasher.finish();
    Ok(match style {
        Style::Hash => Reply::new(
            Code::FileStatus,
            format!("{} {start}-{} {hex} {path}", algorithm.name(), meta.size),
        ),
        Style::Alias(_) => Reply::new(Code::FileActionOk, hex),
    }
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(algorithm: Algorithm, bytes: &[u8]) -> String {
        let mut hasher = algorithm.hasher();
        hasher.update(bytes);
        hasher.finish()
    }

    #[test]
    fn each_algorithm_gives_its_known_answer() {
        // The check values of each algorithm for "123456789" and "abc".
        assert_eq!(digest(Algorithm::Crc32, b"123456789"), "cbf43926");
        assert_eq!(
            digest(Algorithm::Md5, b"abc"),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            digest(Algorithm::Sha1, b"abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            digest(Algorithm::Sha256, b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(digest(Algorithm::Sha512, b"abc").starts_with("ddaf35a193617aba"));
    }

    #[test]
    fn names_are_read_case_blind_and_the_selected_one_is_starred() {
        assert_eq!(Algorithm::named("sha-512"), Some(Algorithm::Sha512));
        assert_eq!(Algorithm::named("SHA256"), None, "the draft's names only");
        assert_eq!(
            Algorithm::feature_line(Algorithm::Md5),
            "HASH SHA-256;SHA-512;SHA-1;MD5*;CRC32"
        );
    }
}
