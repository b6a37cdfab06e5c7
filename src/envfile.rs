//! The env-file format of SPEC 10, what dotenv and `node --env-file` read:
//! `NAME=value` lines; blank lines and `#` lines skipped; an optional
//! `export ` prefix; spaces around `=` ignored; an unquoted value ends at
//! ` #` and is trimmed; `'...'` is literal; `"..."` understands `\n`, `\r`,
//! `\\` and `\"`; quoted values may span lines; CRLF and a leading BOM are
//! accepted; no variable expansion. A pure function: bytes in, variables
//! or the line that is wrong out.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// A line that is not valid: its 1-based number and what is wrong (the
/// caller adds the file name: `.env:12: invalid line 'foo bar' ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub line: usize,
    pub what: String,
}

pub fn valid_name(name: &[u8]) -> bool {
    match name.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_alphabetic() || *first == b'_')
                && rest.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        }
        None => false,
    }
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s
        && is_blank(*first)
    {
        s = rest;
    }
    while let [rest @ .., last] = s
        && is_blank(*last)
    {
        s = rest;
    }
    s
}

/// Shows a line in an error: at most 60 characters, control characters
/// escaped.
fn shown(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let short: String = text.chars().take(60).collect();
    let more = if text.chars().count() > 60 { "..." } else { "" };
    format!("{}{more}", crate::diag::one_line(&short))
}

/// Parses a whole file. A later assignment of a name wins (the returned
/// list keeps both, in order).
pub fn parse(input: &[u8]) -> Result<Vec<(String, OsString)>, Invalid> {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    // CRLF becomes LF everywhere, as dotenv does.
    let mut text = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'\r' && input.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        text.push(input[i]);
        i += 1;
    }
    let mut out = Vec::new();
    let mut pos = 0;
    let mut line_no = 0;
    while pos < text.len() {
        line_no += 1;
        let end = text[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |e| pos + e);
        let line = &text[pos..end];
        let start_line = line_no;
        let mut next = end + 1;
        let t = trim(line);
        if t.is_empty() || t[0] == b'#' {
            pos = next;
            continue;
        }
        let invalid = |what: &str| Invalid {
            line: start_line,
            what: format!("invalid line '{}' ({what})", shown(t)),
        };
        let mut t = t;
        if let Some(rest) = t.strip_prefix(b"export")
            && rest.first().is_some_and(|&b| is_blank(b))
        {
            t = trim(rest);
        }
        let Some(eq) = t.iter().position(|&b| b == b'=') else {
            return Err(invalid("expected NAME=value"));
        };
        let name = trim(&t[..eq]);
        if !valid_name(name) {
            return Err(invalid(
                "a name is letters, digits and _, not starting with a digit",
            ));
        }
        // The value starts after `=` in the whole text (a quoted one may run
        // past this line); `t` is a part of `text`, so its offset is the
        // distance between the two.
        let value_start = (t.as_ptr() as usize - text.as_ptr() as usize) + eq + 1;
        let mut v = value_start;
        while v < end && is_blank(text[v]) {
            v += 1;
        }
        let value: Vec<u8> = match text.get(v) {
            Some(&q @ (b'"' | b'\'')) if v < end => {
                let mut value = Vec::new();
                let mut j = v + 1;
                let mut closed = None;
                while j < text.len() {
                    let b = text[j];
                    if b == b'\n' {
                        line_no += 1;
                    }
                    if b == q {
                        closed = Some(j);
                        break;
                    }
                    if q == b'"' && b == b'\\' && j + 1 < text.len() {
                        match text[j + 1] {
                            b'n' => value.push(b'\n'),
                            b'r' => value.push(b'\r'),
                            b'\\' => value.push(b'\\'),
                            b'"' => value.push(b'"'),
                            other => {
                                value.push(b'\\');
                                value.push(other);
                                if other == b'\n' {
                                    line_no += 1;
                                }
                            }
                        }
                        j += 2;
                        continue;
                    }
                    value.push(b);
                    j += 1;
                }
                let Some(close) = closed else {
                    return Err(Invalid {
                        line: start_line,
                        what: format!(
                            "unterminated {} quote in the value of {}",
                            if q == b'"' { "double" } else { "single" },
                            String::from_utf8_lossy(name)
                        ),
                    });
                };
                // After the closing quote: nothing but blanks or a comment.
                let after_end = text[close..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(text.len(), |e| close + e);
                let after = trim(&text[close + 1..after_end]);
                if !after.is_empty() && after[0] != b'#' {
                    return Err(Invalid {
                        line: line_no,
                        what: format!(
                            "unexpected text after the closing quote of {}",
                            String::from_utf8_lossy(name)
                        ),
                    });
                }
                next = after_end + 1;
                value
            }
            _ => {
                // From right after `=`, so that `A= #x` is an empty value.
                let raw = &text[value_start.min(end)..end];
                // An unquoted value ends at a blank followed by `#`.
                let cut = raw
                    .windows(2)
                    .position(|w| is_blank(w[0]) && w[1] == b'#')
                    .map_or(raw.len(), |c| c);
                trim(&raw[..cut]).to_vec()
            }
        };
        out.push((
            String::from_utf8_lossy(name).into_owned(),
            OsString::from_vec(value),
        ));
        pos = next;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(text: &str) -> Vec<(String, String)> {
        parse(text.as_bytes())
            .unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
            .into_iter()
            .map(|(k, v)| (k, v.into_string().unwrap()))
            .collect()
    }

    fn one(text: &str) -> String {
        let v = vars(text);
        assert_eq!(v.len(), 1, "{text:?}: {v:?}");
        v[0].1.clone()
    }

    #[test]
    fn values() {
        let table: &[(&str, &str)] = &[
            ("A=b", "b"),
            ("A = b ", "b"),
            ("A=", ""),
            ("A= ", ""),
            ("export A=b", "b"),
            ("  export   A = b", "b"),
            ("A=b # comment", "b"),
            ("A=b\t# comment", "b"),
            ("A=b#not-a-comment", "b#not-a-comment"),
            ("A=#hash", "#hash"),
            ("A= #comment", ""),
            ("A=a b  c", "a b  c"),
            ("A='single # not a comment'", "single # not a comment"),
            ("A='lit\\n\\\\'", "lit\\n\\\\"),
            ("A=\"dq\\n\\r\\\\\\\"x\"", "dq\n\r\\\"x"),
            ("A=\"keep \\t as is\"", "keep \\t as is"),
            ("A=\"x\" # trailing comment", "x"),
            ("A='a=b=c'", "a=b=c"),
            ("A=a=b", "a=b"),
            ("A=\"\"", ""),
            ("A=''", ""),
            ("A=\"multi\nline\"", "multi\nline"),
            ("A='multi\n  line'", "multi\n  line"),
            ("A=\"ünïcödé\"", "ünïcödé"),
            ("export=1", "1"),
            ("_X1=y", "y"),
        ];
        for (text, want) in table {
            assert_eq!(one(text), *want, "{text:?}");
        }
    }

    #[test]
    fn whole_files() {
        let text = "\u{feff}# comment\r\n\r\nA=1\r\nexport B=\"two\r\nlines\"\r\n  # indented comment\nC='3'\nA=4\n";
        assert_eq!(
            vars(text),
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two\nlines".into()),
                ("C".into(), "3".into()),
                ("A".into(), "4".into()),
            ]
        );
        assert_eq!(vars(""), vec![]);
        assert_eq!(vars("\n\n# only\n"), vec![]);
    }

    #[test]
    fn errors_name_the_line() {
        let e = |text: &str| parse(text.as_bytes()).unwrap_err();
        assert_eq!(
            e("A=1\nfoo bar\n"),
            Invalid {
                line: 2,
                what: "invalid line 'foo bar' (expected NAME=value)".into()
            }
        );
        assert_eq!(e("1A=x").line, 1);
        assert!(e("1A=x").what.contains("a name is letters, digits and _"));
        assert!(e("A-B=x").what.contains("a name is"));
        assert!(e("=x").what.contains("a name is"));
        assert!(e("export A").what.contains("expected NAME=value"));
        let u = e("A=1\nB=\"open\nC=2\n");
        assert_eq!(u.line, 2);
        assert_eq!(u.what, "unterminated double quote in the value of B");
        let after = e("A='x' y\n");
        assert_eq!(after.what, "unexpected text after the closing quote of A");
        // Line numbers count the lines a quoted value spans.
        assert_eq!(e("A=\"1\n2\"\nbad\n").line, 3);
    }

    #[test]
    fn no_expansion() {
        assert_eq!(one("A=$HOME"), "$HOME");
        assert_eq!(one("A=\"${HOME}\""), "${HOME}");
    }
}
