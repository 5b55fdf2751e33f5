//! The glob patterns of [`Client::list_locks`](crate::Client::list_locks):
//! Redis's `MATCH` syntax, matched here against lock names, and turned into
//! the `SCAN MATCH` pattern that narrows the scan on the server.
//!
//! The syntax: `*` any run of characters, `?` one character, `[abc]`,
//! `[a-z]` and `[^abc]` one character of (or not of) a set, `\x` the
//! character `x` itself. A pattern with an unclosed `[` or a trailing `\`
//! is refused (Redis would read it some way of its own).
//!
//! The server pattern only narrows the scan: it is the pattern's literal
//! start followed by `*`, so it matches every key whose name the pattern
//! matches (and some more, which the match here drops). The names are
//! matched here, not by Redis, so that a name's braces, colons and leading
//! `}` (whose keys have another layout, see `keys.rs`) need no care.

use crate::error::{Error, Result};

/// A checked glob pattern.
#[derive(Debug, Clone)]
pub(crate) struct Glob {
    pattern: Vec<char>,
}

impl Glob {
    /// Checks `pattern`: no unclosed `[`, no trailing `\`, no NUL.
    pub(crate) fn new(pattern: &str) -> Result<Glob> {
        let chars: Vec<char> = pattern.chars().collect();
        let bad = |why: &str| Error::invalid(format!("bad name pattern {pattern:?}: {why}"));
        if chars.contains(&'\0') {
            return Err(bad("it contains a NUL character"));
        }
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '\\' if i + 1 == chars.len() => return Err(bad("it ends with a lone '\\'")),
                '\\' => i += 2,
                '[' => i = class_end(&chars, i).ok_or_else(|| bad("a '[' is not closed"))?,
                _ => i += 1,
            }
        }
        Ok(Glob { pattern: chars })
    }

    /// Whether `name` matches the whole pattern.
    pub(crate) fn matches(&self, name: &str) -> bool {
        let text: Vec<char> = name.chars().collect();
        let pattern = &self.pattern;
        let (mut p, mut t) = (0, 0);
        // Where the last '*' was, and the text position it now stands for.
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            if p < pattern.len() {
                if pattern[p] == '*' {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                if let Some(next) = match_one(pattern, p, text[t]) {
                    p = next;
                    t += 1;
                    continue;
                }
            }
            match star {
                // Let the last '*' take one more character.
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            }
        }
        pattern[p..].iter().all(|&c| c == '*')
    }

    /// The characters every matching name starts with (up to the first
    /// `*`, `?` or `[`; escapes resolved).
    fn literal_start(&self) -> String {
        let mut start = String::new();
        let mut chars = self.pattern.iter();
        while let Some(&c) = chars.next() {
            match c {
                '*' | '?' | '[' => break,
                '\\' => match chars.next() {
                    Some(&escaped) => start.push(escaped),
                    None => break,
                },
                c => start.push(c),
            }
        }
        start
    }

    /// The `SCAN MATCH` pattern for the lock keys under `prefix` whose
    /// names may match: `prefix:{START*}` (`prefix:{\0}{START*}` when the
    /// names start with `}`, see `keys.rs`), or `prefix:{*}` for every
    /// lock key when the pattern starts with a wildcard. Every pattern
    /// ends with `}`, which no derived key (`:fence`, `:ch`, `:q`, `:qa`)
    /// does.
    pub(crate) fn scan_pattern(&self, prefix: &str) -> Vec<u8> {
        let start = self.literal_start();
        let escape = if start.starts_with('}') { "{\0}" } else { "" };
        format!(
            "{}:{escape}{{{}*}}",
            escape_glob(prefix),
            escape_glob(&start)
        )
        .into_bytes()
    }
}

/// `text` with every character that a Redis glob treats specially escaped.
fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The index after the `]` that closes the class opened at `open`.
fn class_end(pattern: &[char], open: usize) -> Option<usize> {
    let mut i = open + 1;
    if pattern.get(i) == Some(&'^') {
        i += 1;
    }
    loop {
        match pattern.get(i)? {
            '\\' => i += 2,
            ']' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// Whether the single-character element at `p` (not `*`) matches `c`;
/// the index after it if so.
fn match_one(pattern: &[char], p: usize, c: char) -> Option<usize> {
    match pattern[p] {
        '?' => Some(p + 1),
        '\\' => (pattern.get(p + 1) == Some(&c)).then_some(p + 2),
        '[' => {
            let end = class_end(pattern, p)?;
            let mut i = p + 1;
            let negated = pattern[i] == '^';
            if negated {
                i += 1;
            }
            let mut found = false;
            while i < end - 1 {
                let (low, next) = if pattern[i] == '\\' {
                    (pattern[i + 1], i + 2)
                } else {
                    (pattern[i], i + 1)
                };
                if pattern.get(next) == Some(&'-') && next + 1 < end - 1 {
                    let (high, after) = if pattern[next + 1] == '\\' {
                        (pattern.get(next + 2).copied().unwrap_or('\\'), next + 3)
                    } else {
                        (pattern[next + 1], next + 2)
                    };
                    let (low, high) = if low <= high {
                        (low, high)
                    } else {
                        (high, low)
                    };
                    found |= low <= c && c <= high;
                    i = after;
                } else {
                    found |= low == c;
                    i = next;
                }
            }
            (found != negated).then_some(end)
        }
        literal => (literal == c).then_some(p + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        Glob::new(pattern).unwrap().matches(name)
    }

    #[test]
    fn matches_like_redis() {
        assert!(m("*", "anything:at{all}"));
        assert!(m("job:1*", "job:1"));
        assert!(m("job:1*", "job:1234"));
        assert!(!m("job:1*", "job:2"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("*x*y", "aaxbbxcy"));
        assert!(m("[abc]1", "b1"));
        assert!(!m("[^abc]1", "b1"));
        assert!(m("[a-c]", "b"));
        assert!(m("[c-a]", "b"));
        assert!(!m("[a-c]", "d"));
        assert!(m("a\\*", "a*"));
        assert!(!m("a\\*", "ab"));
        assert!(m("}*", "}x"));
        assert!(m("{a}*", "{a}:b"));
        assert!(m("ключ*", "ключ-1"));
        assert!(!m("", "x"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["a[bc", "a\\", "x\0"] {
            assert!(Glob::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_scan_pattern_is_the_literal_start() {
        let pattern = |glob: &str, prefix: &str| {
            String::from_utf8(Glob::new(glob).unwrap().scan_pattern(prefix)).unwrap()
        };
        assert_eq!(pattern("*", "latchkey"), "latchkey:{*}");
        assert_eq!(pattern("job:1*", "p"), "p:{job:1*}");
        assert_eq!(pattern("a?b", "p"), "p:{a*}");
        assert_eq!(pattern("}x*", "p"), "p:{\0}{}x*}");
        assert_eq!(pattern("a\\*b", "p*"), "p\\*:{a\\*b*}");
    }
}
