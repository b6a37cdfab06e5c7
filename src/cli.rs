//! The command line as the user typed it: one lexopt loop over the arguments,
//! the `KEEPUP_*` environment underneath, and the help text. This module only
//! collects words; `config` decides whether they make sense.

use std::ffi::OsString;

/// Whether an option takes a value or is a switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Value,
    Flag,
}

#[derive(Debug)]
pub struct OptSpec {
    pub long: &'static str,
    pub short: Option<char>,
    pub kind: Kind,
}

const fn value(long: &'static str) -> OptSpec {
    OptSpec {
        long,
        short: None,
        kind: Kind::Value,
    }
}

const fn flag(long: &'static str, short: Option<char>) -> OptSpec {
    OptSpec {
        long,
        short,
        kind: Kind::Flag,
    }
}

/// Every long option keepup knows. Each is also `KEEPUP_<NAME>` in the
/// environment.
pub const OPTIONS: &[OptSpec] = &[
    OptSpec {
        long: "name",
        short: Some('n'),
        kind: Kind::Value,
    },
    value("restart"),
    value("success-exit"),
    value("delay"),
    value("max-delay"),
    value("min-uptime"),
    value("max-restarts"),
    value("max-memory"),
    value("memory-interval"),
    value("stop-signal"),
    value("kill-timeout"),
    flag("no-group", None),
    value("parent-death"),
    value("log"),
    value("out-log"),
    value("err-log"),
    flag("timestamps", Some('t')),
    flag("quiet", Some('q')),
    value("time-format"),
    flag("utc", None),
    value("log-max-size"),
    value("log-keep"),
    flag("detach", Some('d')),
    value("ready-port"),
    value("ready-cmd"),
    value("ready-fd"),
    value("ready-timeout"),
    value("health-cmd"),
    value("health-http"),
    value("health-interval"),
    value("health-timeout"),
    value("health-retries"),
];

/// The words that are verbs when they come first.
pub const VERBS: &[&str] = &["status", "stop", "restart", "logs", "signal", "wait"];

/// One option's value and where it came from (`--delay` or `KEEPUP_DELAY`),
/// so that an error can name what the user actually wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub value: String,
    pub origin: String,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settings {
    settings: Vec<(&'static str, Setting)>,
    pub command: Vec<OsString>,
}

impl Settings {
    pub fn get(&self, long: &str) -> Option<&Setting> {
        self.settings
            .iter()
            .rev()
            .find(|(l, _)| *l == long)
            .map(|(_, s)| s)
    }

    fn set(&mut self, long: &'static str, value: String, origin: String) {
        self.settings.push((long, Setting { value, origin }));
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    Run(Settings),
    Verb { verb: String, args: Vec<OsString> },
    Help,
    Version,
}

/// A usage error: the text after `keepup: `.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl From<String> for UsageError {
    fn from(s: String) -> Self {
        UsageError(s)
    }
}

pub fn env_name(long: &str) -> String {
    format!("KEEPUP_{}", long.to_ascii_uppercase().replace('-', "_"))
}

/// Parses the arguments after the program name. `env` looks up an
/// environment variable; tests pass a closure over a table.
pub fn parse_from<I, E>(args: I, env: E) -> Result<Invocation, UsageError>
where
    I: IntoIterator<Item = OsString>,
    E: Fn(&str) -> Option<OsString>,
{
    let args: Vec<OsString> = args.into_iter().collect();
    if let Some(first) = args.first().and_then(|a| a.to_str())
        && VERBS.contains(&first)
    {
        return Ok(Invocation::Verb {
            verb: first.to_string(),
            args: args[1..].to_vec(),
        });
    }

    let mut settings = Settings::default();
    for spec in OPTIONS {
        let var = env_name(spec.long);
        if let Some(v) = env(&var) {
            let v = v
                .into_string()
                .map_err(|_| format!("{var} is not valid UTF-8"))?;
            let v = match spec.kind {
                Kind::Value => v,
                Kind::Flag => parse_bool(&v)
                    .ok_or_else(|| {
                        format!("invalid value '{v}' for {var}: use 1, 0, true or false")
                    })?
                    .to_string(),
            };
            settings.set(spec.long, v, var);
        }
    }

    let mut parser =
        lexopt::Parser::from_iter(std::iter::once(OsString::from("keepup")).chain(args));
    loop {
        let arg = match parser.next() {
            Ok(Some(arg)) => arg,
            Ok(None) => break,
            Err(e) => return Err(lexopt_error(e)),
        };
        let (spec, origin) = match arg {
            lexopt::Arg::Long("help") | lexopt::Arg::Short('h') => return Ok(Invocation::Help),
            lexopt::Arg::Long("version") | lexopt::Arg::Short('V') => {
                return Ok(Invocation::Version);
            }
            lexopt::Arg::Long(long) => match OPTIONS.iter().find(|s| s.long == long) {
                Some(spec) => (spec, format!("--{long}")),
                None => {
                    return Err(UsageError(format!(
                        "unknown option '--{long}' (see keepup --help)"
                    )));
                }
            },
            lexopt::Arg::Short(c) => match OPTIONS.iter().find(|s| s.short == Some(c)) {
                Some(spec) => (spec, format!("-{c}")),
                None => {
                    return Err(UsageError(format!(
                        "unknown option '-{c}' (see keepup --help)"
                    )));
                }
            },
            lexopt::Arg::Value(first) => {
                settings.command.push(first);
                match parser.raw_args() {
                    Ok(rest) => settings.command.extend(rest),
                    Err(e) => return Err(lexopt_error(e)),
                }
                break;
            }
        };
        let v = match spec.kind {
            Kind::Flag => "true".to_string(),
            Kind::Value => {
                let v = parser
                    .value()
                    .map_err(|_| UsageError(format!("missing value for {origin}")))?;
                v.into_string()
                    .map_err(|_| UsageError(format!("value for {origin} is not valid UTF-8")))?
            }
        };
        settings.set(spec.long, v, origin);
    }
    if settings.command.is_empty() {
        return Err(UsageError(
            "missing command: keepup [OPTIONS] [--] COMMAND [ARG...] (see keepup --help)".into(),
        ));
    }
    Ok(Invocation::Run(settings))
}

fn lexopt_error(e: lexopt::Error) -> UsageError {
    match e {
        lexopt::Error::UnexpectedValue { option, value } => UsageError(format!(
            "{option} takes no value (got '{}')",
            value.to_string_lossy()
        )),
        other => UsageError(other.to_string()),
    }
}

pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

pub const HELP: &str = "\
keepup keeps one command running: restarts with backoff, merged timestamped
logs, memory limit, signal forwarding, zombie reaping, correct as PID 1.

Usage: keepup [OPTIONS] [--] COMMAND [ARG...]
       keepup status|stop|restart|logs|signal|wait ...

Restart policy:
  -n, --name NAME           instance name [default: file name of COMMAND]
      --restart POLICY      always, on-failure or never [default: always]
      --success-exit CODES  exit codes that count as success [default: 0]
      --delay DUR           wait before a restart [default: 100ms]
      --max-delay DUR       cap of the exponential backoff [default: 30s]
      --min-uptime DUR      a shorter run is unstable [default: 10s]
      --max-restarts N      consecutive unstable restarts before giving up,
                            0 or unlimited [default: 10]

Memory limit:
      --max-memory SIZE     restart when the process tree's RSS exceeds SIZE
      --memory-interval DUR how often to sample [default: 1s]

Stopping and signals:
      --stop-signal SIG     signal that asks the child to stop [default: TERM]
      --kill-timeout DUR    then SIGKILL after this long [default: 5s]
      --no-group            run the child in keepup's process group
      --parent-death SIG    act on SIG when keepup's parent dies, or none
                            [default: TERM inside npm scripts, else none]

Logs:
      --log FILE            merged stdout and stderr, timestamped
      --out-log FILE        stdout only, timestamped
      --err-log FILE        stderr only, timestamped
  -t, --timestamps          prefix lines echoed to the console too
  -q, --quiet               nothing on the console but fatal errors
      --time-format FMT     [default: %Y-%m-%dT%H:%M:%S%.3f%:z]
      --utc                 timestamps in UTC instead of local time
      --log-max-size SIZE   rotate before a file passes SIZE, 0 never [default: 10M]
      --log-keep N          rotated files kept [default: 5]

Durations take a unit (100ms, 1.5s, 1m30s, 2h). Sizes: 500M, 1.5G, 512K are
binary; 500MB is decimal; a bare number is bytes. Signals: TERM, SIGTERM, 15.
Every --long-option may be set as KEEPUP_LONG_OPTION in the environment.

Exit status: the child's code, 128+N if it died of signal N, 127 command not
found, 126 not executable, 2 bad usage.
";

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn parse(v: &[&str]) -> Result<Invocation, UsageError> {
        parse_from(os(v), |_| None)
    }

    fn run(v: &[&str]) -> Settings {
        match parse(v) {
            Ok(Invocation::Run(s)) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn command_taken_whole() {
        let s = run(&["--delay", "1s", "sh", "-c", "echo --delay"]);
        assert_eq!(s.command, os(&["sh", "-c", "echo --delay"]));
        assert_eq!(s.get("delay").unwrap().value, "1s");
        let s = run(&["-n", "api", "--", "--weird", "-x"]);
        assert_eq!(s.command, os(&["--weird", "-x"]));
        assert_eq!(s.get("name").unwrap().origin, "-n");
        let s = run(&["-tq", "--delay=2s", "true"]);
        assert_eq!(s.get("timestamps").unwrap().value, "true");
        assert_eq!(s.get("quiet").unwrap().value, "true");
        assert_eq!(s.get("delay").unwrap().value, "2s");
    }

    #[test]
    fn verbs_only_first() {
        assert!(matches!(parse(&["status"]), Ok(Invocation::Verb { .. })));
        let s = run(&["--", "status"]);
        assert_eq!(s.command, os(&["status"]));
        let s = run(&["-q", "stop"]);
        assert_eq!(s.command, os(&["stop"]));
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse(&["--help"]), Ok(Invocation::Help));
        assert_eq!(parse(&["--version"]), Ok(Invocation::Version));
    }

    #[test]
    fn errors() {
        let e = |v: &[&str]| parse(v).unwrap_err().0;
        assert_eq!(
            e(&["--bogus", "x"]),
            "unknown option '--bogus' (see keepup --help)"
        );
        assert_eq!(e(&["-z", "x"]), "unknown option '-z' (see keepup --help)");
        assert_eq!(e(&["--delay"]), "missing value for --delay");
        assert!(e(&[]).starts_with("missing command"));
        assert!(e(&["--quiet=yes", "x"]).contains("takes no value"));
    }

    #[test]
    fn environment_under_command_line() {
        let env = |k: &str| match k {
            "KEEPUP_DELAY" => Some(OsString::from("3s")),
            "KEEPUP_QUIET" => Some(OsString::from("1")),
            "KEEPUP_UTC" => Some(OsString::from("false")),
            _ => None,
        };
        let s = match parse_from(os(&["true"]), env).unwrap() {
            Invocation::Run(s) => s,
            _ => unreachable!(),
        };
        assert_eq!(s.get("delay").unwrap().value, "3s");
        assert_eq!(s.get("delay").unwrap().origin, "KEEPUP_DELAY");
        assert_eq!(s.get("quiet").unwrap().value, "true");
        assert_eq!(s.get("utc").unwrap().value, "false");
        let s = match parse_from(os(&["--delay", "5s", "true"]), env).unwrap() {
            Invocation::Run(s) => s,
            _ => unreachable!(),
        };
        assert_eq!(s.get("delay").unwrap().value, "5s");
        let bad = |k: &str| (k == "KEEPUP_QUIET").then(|| OsString::from("maybe"));
        let e = parse_from(os(&["true"]), bad).unwrap_err().0;
        assert_eq!(
            e,
            "invalid value 'maybe' for KEEPUP_QUIET: use 1, 0, true or false"
        );
    }
}
