//! Parsing and display of the three kinds of value that keepup's options take:
//! durations (`1500ms`, `1m30s`), sizes (`500M`, `1.5GiB`, `10MB`) and signals
//! (`TERM`, `SIGTERM`, `15`). Parsers return a short reason; the caller adds
//! the flag name and the offending value, so every message has one shape.

use std::time::Duration;

/// Parses a duration with a unit. A bare number is refused with a hint,
/// because `--delay 10` is ambiguous between seconds and milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err("add a unit, e.g. 10s or 1500ms".into());
    }
    if t.starts_with('-') {
        return Err("a duration cannot be negative".into());
    }
    let d = humantime::parse_duration(t).map_err(|e| e.to_string())?;
    if d > MAX_DURATION {
        return Err("at most 30 days".into());
    }
    Ok(d)
}

/// The longest duration any option takes. Far beyond any sensible timeout,
/// and far below what `Instant` arithmetic can overflow on.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Renders a duration the way keepup's event lines print it: `100ms`,
/// `1.5s`, `4s`, `1m30s`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        let tenths = (ms + 50) / 100;
        return if tenths.is_multiple_of(10) {
            format!("{}s", tenths / 10)
        } else {
            format!("{}.{}s", tenths / 10, tenths % 10)
        };
    }
    let secs = (ms + 500) / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Renders an uptime for `status`: whole seconds, two units at most
/// (`45s`, `3m12s`, `2h5m`, `3d4h`).
pub fn format_uptime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, s / 60 % 60),
        _ => format!("{}d{}h", s / 86400, s / 3600 % 24),
    }
}

/// Parses a size. Single letters and `KiB`-style suffixes are binary (as in
/// PM2 and Docker, where `500M` means MiB); `KB`-style suffixes are decimal;
/// a bare number is bytes. Case does not matter.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err("expected a number, e.g. 500M".into());
    }
    let value: f64 = num
        .parse()
        .map_err(|_| format!("'{num}' is not a number"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        other => {
            return Err(format!(
                "unknown unit '{other}': use K, M, G (binary), KB, MB, GB (decimal) or bytes"
            ));
        }
    };
    let bytes = value * mult;
    if !bytes.is_finite() || bytes > u64::MAX as f64 / 2.0 {
        return Err("too large".into());
    }
    if num.contains('.') && unit.is_empty() {
        return Err("a number of bytes must be whole".into());
    }
    Ok(bytes.round() as u64)
}

/// Renders a size in binary units with one decimal: `612.4MiB`, `512B`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

const SIGNAL_NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// Parses `TERM`, `SIGTERM`, `term` or a number from 1 to 64.
pub fn parse_signal(text: &str) -> Result<i32, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err("signal numbers go from 1 to 64".into())
        };
    }
    let upper = t.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNAL_NAMES
        .iter()
        .find(|(name, _)| *name == bare)
        .map(|&(_, n)| n)
        .ok_or_else(|| "unknown signal: use a name like TERM or a number like 15".into())
}

/// `SIGTERM` for 15, `SIG34` for a real-time signal without a name.
pub fn signal_name(sig: i32) -> String {
    match SIGNAL_NAMES.iter().find(|&&(_, n)| n == sig) {
        Some((name, _)) => format!("SIG{name}"),
        None => format!("SIG{sig}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(
            parse_duration("10").unwrap_err(),
            "add a unit, e.g. 10s or 1500ms"
        );
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("10parsecs").is_err());
        assert_eq!(parse_duration("30days"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("31d").unwrap_err(), "at most 30 days");
        assert_eq!(
            parse_duration("300000000000y").unwrap_err(),
            "at most 30 days"
        );
    }

    #[test]
    fn duration_display() {
        assert_eq!(format_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(4)), "4s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_millis(59_990)), "60s");
    }

    #[test]
    fn uptime_display() {
        let f = |s| format_uptime(Duration::from_secs(s));
        assert_eq!(
            [f(0), f(59), f(192), f(7500), f(273600)],
            ["0s", "59s", "3m12s", "2h5m", "3d4h"]
        );
    }

    #[test]
    fn sizes() {
        let mib = 1024 * 1024;
        assert_eq!(parse_size("500M"), Ok(500 * mib));
        assert_eq!(parse_size("500m"), Ok(500 * mib));
        assert_eq!(parse_size("500MiB"), Ok(500 * mib));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("1.5G"), Ok(1536 * mib));
        assert_eq!(parse_size("512K"), Ok(512 * 1024));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("M").is_err());
        assert!(parse_size("5X").is_err());
        assert!(parse_size("1.5").is_err());
        assert!(parse_size("-5M").is_err());
        assert!(parse_size("1e400G").is_err());
    }

    #[test]
    fn size_display() {
        assert_eq!(format_size(512), "512B");
        assert_eq!(format_size(500 * 1024 * 1024), "500.0MiB");
        assert_eq!(format_size(642_150_000), "612.4MiB");
        assert_eq!(format_size(3 * 1024 * 1024 * 1024 / 2), "1.5GiB");
    }

    #[test]
    fn signals() {
        for t in ["TERM", "SIGTERM", "term", "sigterm", "15"] {
            assert_eq!(parse_signal(t), Ok(libc::SIGTERM), "{t}");
        }
        assert_eq!(parse_signal("USR1"), Ok(libc::SIGUSR1));
        assert_eq!(parse_signal("34"), Ok(34));
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("65").is_err());
        assert!(parse_signal("FOO").is_err());
        assert_eq!(signal_name(libc::SIGKILL), "SIGKILL");
        assert_eq!(signal_name(40), "SIG40");
    }
}
