//! Timestamps for log lines: a strftime subset, rendered fast. The part of a
//! timestamp that changes once a second is rendered once per second into a
//! cached buffer; each line only patches the sub-second digits in place, so a
//! line costs a copy, not a `localtime_r` call or an allocation.

/// One piece of a parsed `--time-format`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    Lit(Vec<u8>),
    Year,
    Year2,
    Month,
    Day,
    DaySpace,
    Hour,
    Hour12,
    Minute,
    Second,
    YearDay,
    WeekdayAbbr,
    WeekdayFull,
    MonthAbbr,
    MonthFull,
    AmPm,
    Offset,
    OffsetColon,
    ZoneName,
    Epoch,
    /// `%.3f`, `%.6f`, `%.9f`: a dot and that many digits of the second.
    Frac(u8),
}

/// A validated `--time-format`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeFormat {
    items: Vec<Item>,
}

pub const DEFAULT_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3f%:z";

/// A moment.js format (PM2's `log_date_format`) in keepup's strftime:
/// `YYYY-MM-DD HH:mm:ss Z` -> `%Y-%m-%d %H:%M:%S %:z`. `[text]` is taken
/// literally. The same table as `keepup import`'s (src/import).
pub fn from_moment(m: &str) -> String {
    const TOKENS: [(&str, &str); 21] = [
        ("YYYY", "%Y"),
        ("YY", "%y"),
        ("MMMM", "%B"),
        ("MMM", "%b"),
        ("MM", "%m"),
        ("DDDD", "%j"),
        ("DD", "%d"),
        ("dddd", "%A"),
        ("ddd", "%a"),
        ("HH", "%H"),
        ("hh", "%I"),
        ("mm", "%M"),
        ("ss", "%S"),
        (".SSSSSS", "%.6f"),
        (".SSS", "%.3f"),
        ("SSS", "%.3f"),
        ("ZZ", "%z"),
        ("Z", "%:z"),
        ("A", "%p"),
        ("a", "%p"),
        ("X", "%s"),
    ];
    let mut out = String::new();
    let mut rest = m;
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('[') {
            let end = inner.find(']').unwrap_or(inner.len());
            out.push_str(&inner[..end].replace('%', "%%"));
            rest = inner.get(end + 1..).unwrap_or("");
            continue;
        }
        if let Some((t, f)) = TOKENS.iter().find(|(t, _)| rest.starts_with(t)) {
            out.push_str(f);
            rest = &rest[t.len()..];
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        if c == '%' {
            out.push_str("%%");
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

impl TimeFormat {
    pub fn parse(fmt: &str) -> Result<TimeFormat, String> {
        let mut items = Vec::new();
        let mut lit = Vec::new();
        let bytes = fmt.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != b'%' {
                lit.push(bytes[i]);
                i += 1;
                continue;
            }
            let rest = &fmt[i + 1..];
            let (item, used): (Vec<Item>, usize) = if let Some(r) = rest.strip_prefix('.') {
                match r.as_bytes().first().copied() {
                    Some(d @ (b'3' | b'6' | b'9')) if r.as_bytes().get(1) == Some(&b'f') => {
                        (vec![Item::Frac(d - b'0')], 3)
                    }
                    _ => {
                        return Err(format!(
                            "'%.{}' is not supported: use %.3f, %.6f or %.9f",
                            r.chars().take(2).collect::<String>()
                        ));
                    }
                }
            } else if rest.starts_with(":z") {
                (vec![Item::OffsetColon], 2)
            } else {
                let c = match rest.chars().next() {
                    Some(c) => c,
                    None => return Err("the format ends with a lone '%'".into()),
                };
                let single = match c {
                    'Y' => vec![Item::Year],
                    'y' => vec![Item::Year2],
                    'm' => vec![Item::Month],
                    'd' => vec![Item::Day],
                    'e' => vec![Item::DaySpace],
                    'H' => vec![Item::Hour],
                    'I' => vec![Item::Hour12],
                    'M' => vec![Item::Minute],
                    'S' => vec![Item::Second],
                    'j' => vec![Item::YearDay],
                    'a' => vec![Item::WeekdayAbbr],
                    'A' => vec![Item::WeekdayFull],
                    'b' | 'h' => vec![Item::MonthAbbr],
                    'B' => vec![Item::MonthFull],
                    'p' => vec![Item::AmPm],
                    'z' => vec![Item::Offset],
                    'Z' => vec![Item::ZoneName],
                    's' => vec![Item::Epoch],
                    'F' => vec![
                        Item::Year,
                        Item::Lit(b"-".to_vec()),
                        Item::Month,
                        Item::Lit(b"-".to_vec()),
                        Item::Day,
                    ],
                    'T' => vec![
                        Item::Hour,
                        Item::Lit(b":".to_vec()),
                        Item::Minute,
                        Item::Lit(b":".to_vec()),
                        Item::Second,
                    ],
                    'R' => vec![Item::Hour, Item::Lit(b":".to_vec()), Item::Minute],
                    '%' => vec![Item::Lit(b"%".to_vec())],
                    'n' => vec![Item::Lit(b"\n".to_vec())],
                    't' => vec![Item::Lit(b"\t".to_vec())],
                    other => {
                        return Err(format!(
                            "'%{other}' is not supported (see the README's time format table)"
                        ));
                    }
                };
                (single, c.len_utf8())
            };
            for it in item {
                match it {
                    Item::Lit(l) => lit.extend_from_slice(&l),
                    other => {
                        if !lit.is_empty() {
                            items.push(Item::Lit(std::mem::take(&mut lit)));
                        }
                        items.push(other);
                    }
                }
            }
            i += 1 + used;
        }
        if !lit.is_empty() {
            items.push(Item::Lit(lit));
        }
        Ok(TimeFormat { items })
    }
}

/// The wall clock now, as seconds and nanoseconds since the epoch.
pub fn wall_now() -> (i64, u32) {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec, ts.tv_nsec as u32)
}

/// Renders timestamps for one format, caching the per-second part.
pub struct Clock {
    format: TimeFormat,
    utc: bool,
    cached_sec: Option<i64>,
    buf: Vec<u8>,
    /// Where the sub-second digits go in `buf`, and how many.
    frac_slots: Vec<(usize, u8)>,
}

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl Clock {
    pub fn new(format: TimeFormat, utc: bool) -> Clock {
        if !utc {
            // Reads TZ and /etc/localtime once; localtime_r does not re-read them.
            unsafe extern "C" {
                fn tzset();
            }
            // SAFETY: tzset has no arguments and keepup is single-threaded.
            unsafe { tzset() };
        }
        Clock {
            format,
            utc,
            cached_sec: None,
            buf: Vec::with_capacity(64),
            frac_slots: Vec::new(),
        }
    }

    /// The timestamp for this instant. The slice lives until the next call.
    pub fn render(&mut self, sec: i64, nanos: u32) -> &[u8] {
        if self.cached_sec != Some(sec) {
            self.render_second(sec);
            self.cached_sec = Some(sec);
        }
        for &(pos, digits) in &self.frac_slots {
            let mut v = nanos / 10u32.pow(9 - digits as u32);
            for k in (0..digits as usize).rev() {
                self.buf[pos + k] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        }
        &self.buf
    }

    fn render_second(&mut self, sec: i64) {
        // SAFETY: tm is plain data; the _r variants write only into it.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        // time_t without naming it: libc deprecates the alias on musl.
        let t = sec as _;
        let ok = unsafe {
            if self.utc {
                !libc::gmtime_r(&t, &mut tm).is_null()
            } else {
                !libc::localtime_r(&t, &mut tm).is_null()
            }
        };
        if !ok {
            // SAFETY: as above; gmtime_r cannot fail for times we get from the clock.
            unsafe { libc::gmtime_r(&t, &mut tm) };
        }
        let offset = if self.utc { 0 } else { tm.tm_gmtoff };
        let zone = if self.utc || tm.tm_zone.is_null() {
            "UTC".to_string()
        } else {
            // SAFETY: tm_zone points to a NUL-terminated static string from libc.
            unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }
                .to_string_lossy()
                .into_owned()
        };
        self.buf.clear();
        self.frac_slots.clear();
        let b = &mut self.buf;
        use std::io::Write;
        for item in &self.format.items {
            let _ = match item {
                Item::Lit(l) => b.write_all(l),
                Item::Year => write!(b, "{:04}", tm.tm_year + 1900),
                Item::Year2 => write!(b, "{:02}", (tm.tm_year + 1900) % 100),
                Item::Month => write!(b, "{:02}", tm.tm_mon + 1),
                Item::Day => write!(b, "{:02}", tm.tm_mday),
                Item::DaySpace => write!(b, "{:2}", tm.tm_mday),
                Item::Hour => write!(b, "{:02}", tm.tm_hour),
                Item::Hour12 => write!(b, "{:02}", (tm.tm_hour + 11) % 12 + 1),
                Item::Minute => write!(b, "{:02}", tm.tm_min),
                Item::Second => write!(b, "{:02}", tm.tm_sec),
                Item::YearDay => write!(b, "{:03}", tm.tm_yday + 1),
                Item::WeekdayAbbr => {
                    b.write_all(&WEEKDAYS[tm.tm_wday.rem_euclid(7) as usize].as_bytes()[..3])
                }
                Item::WeekdayFull => {
                    b.write_all(WEEKDAYS[tm.tm_wday.rem_euclid(7) as usize].as_bytes())
                }
                Item::MonthAbbr => {
                    b.write_all(&MONTHS[tm.tm_mon.rem_euclid(12) as usize].as_bytes()[..3])
                }
                Item::MonthFull => {
                    b.write_all(MONTHS[tm.tm_mon.rem_euclid(12) as usize].as_bytes())
                }
                Item::AmPm => b.write_all(if tm.tm_hour < 12 { b"AM" } else { b"PM" }),
                Item::Offset | Item::OffsetColon => {
                    if offset == 0 && *item == Item::OffsetColon {
                        b.write_all(b"Z")
                    } else {
                        let sign = if offset < 0 { '-' } else { '+' };
                        let a = offset.abs();
                        let sep = if *item == Item::OffsetColon { ":" } else { "" };
                        write!(b, "{sign}{:02}{sep}{:02}", a / 3600, a / 60 % 60)
                    }
                }
                Item::ZoneName => b.write_all(zone.as_bytes()),
                Item::Epoch => write!(b, "{sec}"),
                Item::Frac(d) => {
                    b.push(b'.');
                    self.frac_slots.push((b.len(), *d));
                    b.resize(b.len() + *d as usize, b'0');
                    Ok(())
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moment_formats() {
        for (m, want) in [
            ("YYYY-MM-DD HH:mm:ss Z", "%Y-%m-%d %H:%M:%S %:z"),
            ("YYYY-MM-DDTHH:mm:ss.SSSZ", "%Y-%m-%dT%H:%M:%S%.3f%:z"),
            ("DD/MM/YY hh:mm A ZZ", "%d/%m/%y %I:%M %p %z"),
            ("[at] HH:mm", "at %H:%M"),
            ("MMM Do", "%b Do"),
        ] {
            assert_eq!(from_moment(m), want, "{m}");
            assert!(TimeFormat::parse(&from_moment(m)).is_ok(), "{m}");
        }
    }

    fn render(fmt: &str, utc: bool, sec: i64, nanos: u32) -> String {
        let mut c = Clock::new(TimeFormat::parse(fmt).unwrap(), utc);
        String::from_utf8(c.render(sec, nanos).to_vec()).unwrap()
    }

    // 2026-02-23T03:00:00Z, a Monday, day 54 of the year.
    const T: i64 = 1_771_815_600;

    #[test]
    fn default_format_utc() {
        assert_eq!(
            render(DEFAULT_FORMAT, true, T, 123_456_789),
            "2026-02-23T03:00:00.123Z"
        );
    }

    #[test]
    fn every_field() {
        let s = render(
            "%Y %y %m %d %e %H %I %M %S %j %a %A %b %h %B %p %z %Z %s %% %.6f %.9f %F %T",
            true,
            T + 13 * 3600 + 62,
            5,
        );
        assert_eq!(
            s,
            "2026 26 02 23 23 16 04 01 02 054 Mon Monday Feb Feb February PM +0000 UTC 1771862462 % .000000 .000000005 2026-02-23 16:01:02"
        );
    }

    #[test]
    fn sub_second_patched_within_a_second() {
        let mut c = Clock::new(TimeFormat::parse("%S%.3f").unwrap(), true);
        assert_eq!(c.render(T, 1_000_000), b"00.001");
        assert_eq!(c.render(T, 999_999_999), b"00.999");
        assert_eq!(c.render(T + 1, 0), b"01.000");
    }

    #[test]
    fn rejects_unknown() {
        assert!(TimeFormat::parse("%Q").is_err());
        assert!(TimeFormat::parse("%.4f").is_err());
        assert!(TimeFormat::parse("abc%").is_err());
        assert!(TimeFormat::parse("plain text").is_ok());
    }

    #[test]
    fn matches_date_for_local_zone() {
        // SAFETY: tests that touch TZ run in this one test only.
        unsafe { std::env::set_var("TZ", "Asia/Tokyo") };
        let ours = render("%Y-%m-%dT%H:%M:%S%:z %Z %z %a %j", false, T, 0);
        let date = std::process::Command::new("date")
            .args(["-d", &format!("@{T}"), "+%Y-%m-%dT%H:%M:%S%:z %Z %z %a %j"])
            .env("TZ", "Asia/Tokyo")
            .output();
        if let Ok(out) = date {
            assert_eq!(ours, String::from_utf8_lossy(&out.stdout).trim_end());
        }
        assert_eq!(ours, "2026-02-23T12:00:00+09:00 JST +0900 Mon 054");
    }
}
