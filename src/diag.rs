//! Diagnostics: the one way keepup prints a problem (`keepup: ...` on
//! stderr, one line, user input escaped) and renders an OS error.

use std::io;

/// Prints `keepup: <what>` on stderr. Best-effort: a closed stderr must not
/// change what keepup does.
pub fn complain(what: &str) {
    let _ = crate::sys::write_all(2, format!("keepup: {}\n", one_line(what)).as_bytes());
}

/// A diagnostic made safe to print as one line: control characters from
/// user input (a newline in an argument) are shown escaped (`\n`).
pub fn one_line(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for c in message.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The OS reason alone ("No space left on device"), without std's suffix.
pub fn os_reason(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostics_stay_on_one_line() {
        assert_eq!(
            one_line("unknown option '--a\nb\t'"),
            "unknown option '--a\\nb\\t'"
        );
        assert_eq!(one_line("plain 'é'"), "plain 'é'");
    }

    #[test]
    fn os_reason_drops_the_code() {
        let e = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(os_reason(&e), "No space left on device");
    }
}
