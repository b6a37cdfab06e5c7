//! `--log-format json` (SPEC 5): each line one JSON object, as log
//! shippers read them. The text is escaped as JSON strings require;
//! invalid UTF-8 becomes U+FFFD. The common case, a line of printable
//! ASCII with no quote or backslash, is copied as it is.

/// Appends `bytes` to `out` as the inside of a JSON string.
pub fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.extend_from_slice(bytes);
        return;
    }
    let text = String::from_utf8_lossy(bytes);
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

/// `{"time":"TS","stream":"out","name":"api","pid":4242,"msg":"` — the
/// part of a record before the text, rendered once per read.
pub fn prefix(out: &mut Vec<u8>, time: &[u8], stream: &str, name_json: &[u8], pid: i32) {
    out.clear();
    out.extend_from_slice(b"{\"time\":\"");
    escape_into(out, time);
    out.extend_from_slice(b"\",\"stream\":\"");
    out.extend_from_slice(stream.as_bytes());
    out.extend_from_slice(b"\",\"name\":\"");
    out.extend_from_slice(name_json);
    out.extend_from_slice(b"\",\"pid\":");
    out.extend_from_slice(pid.to_string().as_bytes());
    out.extend_from_slice(b",\"msg\":\"");
}

/// What closes a record after the text.
pub const SUFFIX: &[u8] = b"\"}";

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(b: &[u8]) -> String {
        let mut out = Vec::new();
        escape_into(&mut out, b);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes() {
        assert_eq!(esc(b"plain text 123"), "plain text 123");
        assert_eq!(esc(b"say \"hi\" \\ back"), "say \\\"hi\\\" \\\\ back");
        assert_eq!(esc(b"tab\tcr\rbell\x07"), "tab\\tcr\\rbell\\u0007");
        assert_eq!(esc("ünï €".as_bytes()), "ünï €");
        assert_eq!(esc(b"bad \xff\xfe utf8"), "bad \u{fffd}\u{fffd} utf8");
        assert_eq!(esc(b""), "");
    }

    #[test]
    fn records() {
        let mut p = Vec::new();
        prefix(&mut p, b"2026-01-01T00:00:00Z", "err", b"api", 42);
        p.extend_from_slice(b"boom");
        p.extend_from_slice(SUFFIX);
        assert_eq!(
            String::from_utf8(p).unwrap(),
            r#"{"time":"2026-01-01T00:00:00Z","stream":"err","name":"api","pid":42,"msg":"boom"}"#
        );
    }
}
