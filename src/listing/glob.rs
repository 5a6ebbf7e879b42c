//! The wildcards of `NLST *.txt` and `mget`: `*` and `?`, as a shell matches one name.

/// Whether a name is a wildcard pattern (`*` or `?`), as `mget` and `mdelete` send.
pub fn has_wildcard(name: &str) -> bool {
    name.contains(['*', '?'])
}

/// Shell-style match of one name: `*` is any run of characters, `?` any one.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was, and which name position it is trying to cover up to.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_a_shell() {
        assert!(wildcard_match("*.txt", "a.txt"));
        assert!(wildcard_match("*.txt", ".txt"));
        assert!(!wildcard_match("*.txt", "a.txt.gz"));
        assert!(wildcard_match("a?c*", "abcdef"));
        assert!(wildcard_match("*a*b*", "xxaxxbxx"));
        assert!(!wildcard_match("?", ""));
        assert!(wildcard_match("*", ""));
        assert!(has_wildcard("*.log") && !has_wildcard("plain"));
    }
}
