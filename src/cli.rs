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

/// The topics `--help` groups options under, in the order shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Restart,
    Memory,
    Stopping,
    Logs,
    Instances,
    Readiness,
    Sockets,
    Context,
    Watch,
}

impl Section {
    const ALL: [Section; 9] = [
        Section::Restart,
        Section::Memory,
        Section::Stopping,
        Section::Logs,
        Section::Instances,
        Section::Readiness,
        Section::Sockets,
        Section::Context,
        Section::Watch,
    ];

    fn title(self) -> &'static str {
        match self {
            Section::Restart => "Restart policy:",
            Section::Memory => "Memory limit:",
            Section::Stopping => "Stopping and signals:",
            Section::Logs => "Logs:",
            Section::Instances => "Instances:",
            Section::Readiness => "Readiness and health:",
            Section::Sockets => "Sockets, reload, cluster:",
            Section::Context => "The child's environment, directory and user:",
            Section::Watch => "Watch mode (development):",
        }
    }
}

/// One option: how it is written, where `--help` shows it and what it says.
#[derive(Debug)]
pub struct OptSpec {
    pub long: &'static str,
    pub short: Option<char>,
    pub kind: Kind,
    pub section: Section,
    /// The value's placeholder in `--help` (`DUR`, `FILE`); empty for flags.
    pub value: &'static str,
    /// One or more lines; later lines are indented under the first.
    pub help: &'static str,
}

const fn opt(
    long: &'static str,
    short: Option<char>,
    section: Section,
    value: &'static str,
    help: &'static str,
) -> OptSpec {
    OptSpec {
        long,
        short,
        kind: if value.is_empty() {
            Kind::Flag
        } else {
            Kind::Value
        },
        section,
        value,
        help,
    }
}

use Section::*;

/// Every long option keepup knows, in `--help` order. Each is also
/// `KEEPUP_<NAME>` in the environment. `config` must read every one of
/// them (a unit test there checks), and `--help` is made from this table.
pub const OPTIONS: &[OptSpec] = &[
    opt(
        "name",
        Some('n'),
        Restart,
        "NAME",
        "instance name [default: file name of COMMAND]",
    ),
    opt(
        "restart",
        None,
        Restart,
        "POLICY",
        "always, on-failure or never [default: always]",
    ),
    opt(
        "success-exit",
        None,
        Restart,
        "CODES",
        "exit codes that count as success [default: 0]",
    ),
    opt(
        "delay",
        None,
        Restart,
        "DUR",
        "wait before a restart [default: 100ms]",
    ),
    opt(
        "max-delay",
        None,
        Restart,
        "DUR",
        "cap of the exponential backoff [default: 30s]",
    ),
    opt(
        "min-uptime",
        None,
        Restart,
        "DUR",
        "a shorter run is unstable [default: 10s]",
    ),
    opt(
        "max-restarts",
        None,
        Restart,
        "N",
        "consecutive unstable restarts before giving up,\n0 or unlimited [default: 10]",
    ),
    opt(
        "max-memory",
        None,
        Memory,
        "SIZE",
        "restart when the process tree's RSS exceeds SIZE",
    ),
    opt(
        "memory-interval",
        None,
        Memory,
        "DUR",
        "how often to sample [default: 1s]",
    ),
    opt(
        "stop-signal",
        None,
        Stopping,
        "SIG",
        "signal that asks the child to stop [default: TERM]",
    ),
    opt(
        "kill-timeout",
        None,
        Stopping,
        "DUR",
        "then SIGKILL after this long [default: 5s]",
    ),
    opt(
        "no-group",
        None,
        Stopping,
        "",
        "run the child in keepup's process group",
    ),
    opt(
        "parent-death",
        None,
        Stopping,
        "SIG",
        "act on SIG when keepup's parent dies, or none\n[default: TERM inside npm scripts, else none]",
    ),
    opt(
        "log",
        None,
        Logs,
        "FILE",
        "merged stdout and stderr, timestamped",
    ),
    opt("out-log", None, Logs, "FILE", "stdout only, timestamped"),
    opt("err-log", None, Logs, "FILE", "stderr only, timestamped"),
    opt(
        "timestamps",
        Some('t'),
        Logs,
        "",
        "prefix lines echoed to the console too",
    ),
    opt(
        "quiet",
        Some('q'),
        Logs,
        "",
        "nothing on the console but fatal errors",
    ),
    opt(
        "time-format",
        None,
        Logs,
        "FMT",
        "strftime-like [default: %Y-%m-%dT%H:%M:%S%.3f%:z]",
    ),
    opt(
        "utc",
        None,
        Logs,
        "",
        "timestamps in UTC instead of local time",
    ),
    opt(
        "log-max-size",
        None,
        Logs,
        "SIZE",
        "rotate before a file passes SIZE, 0 never [default: 10M]",
    ),
    opt(
        "log-keep",
        None,
        Logs,
        "N",
        "rotated files kept [default: 5]",
    ),
    opt(
        "log-format",
        None,
        Logs,
        "FORMAT",
        "text, or json: one JSON object per line in the files [default: text]",
    ),
    opt(
        "detach",
        Some('d'),
        Instances,
        "",
        "run in the background; return once the child started\n(manage it with keepup status, logs, stop)",
    ),
    opt(
        "ready-port",
        None,
        Readiness,
        "PORT",
        "ready when 127.0.0.1:PORT accepts a connection",
    ),
    opt(
        "ready-cmd",
        None,
        Readiness,
        "CMD",
        "ready when `sh -c CMD` exits 0",
    ),
    opt(
        "ready-fd",
        None,
        Readiness,
        "N",
        "ready when the child writes a newline to its fd N",
    ),
    opt(
        "ready-timeout",
        None,
        Readiness,
        "DUR",
        "not ready by then: stop, an unstable run [default: 60s]",
    ),
    opt(
        "health-cmd",
        None,
        Readiness,
        "CMD",
        "healthy while `sh -c CMD` exits 0",
    ),
    opt(
        "health-http",
        None,
        Readiness,
        "URL",
        "healthy while GET URL answers 2xx (http:// only)",
    ),
    opt(
        "health-interval",
        None,
        Readiness,
        "DUR",
        "between probes [default: 10s]",
    ),
    opt(
        "health-timeout",
        None,
        Readiness,
        "DUR",
        "a slower probe fails [default: 5s]",
    ),
    opt(
        "health-retries",
        None,
        Readiness,
        "N",
        "failed probes in a row that restart [default: 3]",
    ),
    opt(
        "listen",
        None,
        Sockets,
        "[NAME=]ADDR",
        "bind PORT, HOST:PORT, [v6]:PORT or unix:PATH once and pass it\nto every run as fd 3, 4, ... (LISTEN_FDS); repeatable",
    ),
    opt(
        "reuseport",
        None,
        Sockets,
        "",
        "SO_REUSEPORT, so several keepups share one port",
    ),
    opt(
        "notify",
        None,
        Readiness,
        "",
        "ready when the child sends READY=1 to NOTIFY_SOCKET (sd_notify)",
    ),
    opt(
        "watchdog",
        None,
        Readiness,
        "DUR",
        "with --notify: restart when no WATCHDOG=1 comes for DUR",
    ),
    opt(
        "backlog",
        None,
        Sockets,
        "N",
        "listen backlog [default: 511]",
    ),
    opt(
        "instances",
        Some('i'),
        Sockets,
        "N",
        "with -d: start NAME-1 .. NAME-N, each its own keepup\n(implies --reuseport with --listen)",
    ),
    opt(
        "env-file",
        None,
        Context,
        "FILE",
        "variables for the child (NAME=value lines), read again before\nevery start; repeatable, a later file wins",
    ),
    opt(
        "env",
        Some('e'),
        Context,
        "NAME=VALUE",
        "one variable for the child; repeatable; wins over env files",
    ),
    opt(
        "cwd",
        None,
        Context,
        "DIR",
        "the child's working directory, entered by path before every start",
    ),
    opt(
        "user",
        Some('u'),
        Context,
        "USER[:GROUP]",
        "run the child (and probes) as USER, in a session of its own",
    ),
    opt(
        "watch",
        Some('w'),
        Watch,
        "PATH",
        "restart when a file under PATH changes; repeatable",
    ),
    opt(
        "watch-ignore",
        None,
        Watch,
        "PATTERN",
        "ignore a name (dist, *.test.js) or a path under PATH (logs/*);\nrepeatable, added to .git, node_modules, dot-names, keepup's files",
    ),
    opt(
        "watch-ext",
        None,
        Watch,
        "LIST",
        "only these extensions count, e.g. js,mjs,json [default: all]",
    ),
    opt(
        "watch-delay",
        None,
        Watch,
        "DUR",
        "restart once no change came for DUR [default: 200ms]",
    ),
];

/// Words PM2 users type as verbs that are no keepup verb, with what keepup
/// does instead: said when such a word, taken as a command, is not found.
pub const PM2_VERBS: &[(&str, &str)] = &[
    ("ls", "keepup list"),
    ("monit", "keepup status -w"),
    ("jlist", "keepup status --json"),
    ("prettylist", "keepup status --json"),
    ("describe", "keepup status NAME --json"),
    ("show", "keepup status NAME --json"),
    ("info", "keepup status NAME --json"),
    ("env", "keepup status NAME --json"),
    ("flush", "nothing: keepup rotates its logs (--log-max-size)"),
    ("save", "keepup startup NAME --install"),
    ("resurrect", "keepup start NAME"),
    ("kill", "keepup stop '*'"),
    ("scale", "keepup -d -i N"),
];

/// A control verb, parsed: what `keepup VERB ...` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verb {
    Status {
        names: Vec<String>,
        json: bool,
        watch: bool,
        prune: bool,
    },
    Stop {
        names: Vec<String>,
    },
    Restart {
        names: Vec<String>,
    },
    Logs {
        name: String,
        lines: usize,
        follow: bool,
    },
    Signal {
        name: String,
        signal: i32,
    },
    Wait {
        names: Vec<String>,
        timeout: std::time::Duration,
    },
    Reload {
        names: Vec<String>,
        timeout: Option<std::time::Duration>,
    },
    /// Start stopped instances again, as they were started.
    Start {
        names: Vec<String>,
    },
    /// Stop if running, then remove the entry.
    Delete {
        names: Vec<String>,
    },
    /// A boot unit (or crontab line) per instance.
    Startup {
        names: Vec<String>,
        install: bool,
        cron: bool,
    },
    /// A PM2 ecosystem file as keepup commands.
    Import {
        file: std::path::PathBuf,
        npm: bool,
    },
}

/// A verb's name, usage and help, for `keepup VERB --help`.
pub struct VerbSpec {
    pub name: &'static str,
    pub usage: &'static str,
    pub about: &'static str,
    /// Option lines shown under the usage.
    pub options: &'static str,
}

/// The words that are verbs when they come first.
pub const VERBS: &[VerbSpec] = &[
    VerbSpec {
        name: "status",
        usage: "keepup status [NAME...] [--json] [-w] [--prune]",
        about: "Shows each instance: state, pid, uptime, restarts, memory, last exit.",
        options: "      --json    one JSON array, an object per instance\n  -w, --watch   refresh every second\n      --prune   remove the entries of stopped and dead instances\n",
    },
    VerbSpec {
        name: "stop",
        usage: "keepup stop NAME...",
        about: "Stops an instance gracefully (its --stop-signal, then its kill timeout);\nreturns once its keepup has exited.",
        options: "",
    },
    VerbSpec {
        name: "restart",
        usage: "keepup restart NAME...",
        about: "Restarts an instance's child gracefully, at once; never counted as a crash.",
        options: "",
    },
    VerbSpec {
        name: "logs",
        usage: "keepup logs NAME [-n N] [-f]",
        about: "Prints the last lines of an instance's log file.",
        options: "  -n, --lines N   how many lines [default: 20]\n  -f, --follow    keep printing new lines, across rotations\n",
    },
    VerbSpec {
        name: "signal",
        usage: "keepup signal NAME SIG",
        about: "Sends SIG (TERM, SIGHUP, 10) to the child's process group.",
        options: "",
    },
    VerbSpec {
        name: "start",
        usage: "keepup start NAME...",
        about: "Starts a stopped, gave-up or dead instance again, detached, as it was\nstarted (its options, command, directory and KEEPUP_* settings).",
        options: "",
    },
    VerbSpec {
        name: "delete",
        usage: "keepup delete NAME...",
        about: "Stops an instance if it runs, then removes its entry (PM2's delete).",
        options: "",
    },
    VerbSpec {
        name: "list",
        usage: "keepup list [NAME...] [--json] [-w]",
        about: "The same as keepup status (PM2's ls and list).",
        options: "      --json    one JSON array, an object per instance\n  -w, --watch   refresh every second\n",
    },
    VerbSpec {
        name: "startup",
        usage: "keepup startup NAME... [--install] [--cron]",
        about: "Prints, for each instance, a systemd unit that starts it at boot exactly as\nit was started (PM2's startup + save).",
        options: "      --install   write the unit (system unit as root, else a user unit),\n                  systemctl daemon-reload and enable it\n      --cron      print a crontab @reboot line instead (no systemd)\n",
    },
    VerbSpec {
        name: "import",
        usage: "keepup import FILE [--npm]",
        about: "Reads a PM2 ecosystem file (ecosystem.config.js, .cjs, .json; evaluated\nwith node) and prints the keepup command for each app, ready for sh.",
        options: "      --npm   print a package.json \"scripts\" block instead\n",
    },
    VerbSpec {
        name: "reload",
        usage: "keepup reload NAME... [--timeout DUR]",
        about: "Starts a new run beside the running one, waits until it is ready, then\nstops the old one: no connection refused. Several names (or a pattern,\n'api-*') are reloaded one after the other; the first failure stops the\nroll and keeps the old run. In backoff or starting: a restart.",
        options: "      --timeout DUR   the new run must be ready within DUR\n                      [default: its --ready-timeout]\n",
    },
    VerbSpec {
        name: "wait",
        usage: "keepup wait NAME... [--timeout DUR]",
        about: "Returns 0 once every instance is ready (running); 1 when one stopped,\ngave up or is dead, or at the timeout.",
        options: "      --timeout DUR   give up after DUR [default: 60s]\n",
    },
];

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
    /// Every option `config` asked for, given or not: a test checks that
    /// no option of `OPTIONS` is accepted and then ignored.
    asked: std::cell::RefCell<Vec<String>>,
}

impl Settings {
    /// The invocation as a canonical argv (`--long=value`, `--flag`, then
    /// `--` and the command) from what the command line gave, and the
    /// `KEEPUP_*` variables that gave the rest: what re-runs it (SPEC 7,
    /// 12). `--detach` is left out: who re-runs it decides.
    pub fn recorded(&self) -> (Vec<OsString>, Vec<(String, String)>) {
        let mut argv: Vec<OsString> = Vec::new();
        let mut env = Vec::new();
        for (long, s) in &self.settings {
            if *long == "detach" {
                continue;
            }
            if s.origin.starts_with("KEEPUP_") {
                env.push((s.origin.clone(), s.value.clone()));
                continue;
            }
            let spec = OPTIONS.iter().find(|o| o.long == *long);
            match spec.map(|o| o.kind) {
                Some(Kind::Flag) => argv.push(format!("--{long}").into()),
                _ => argv.push(format!("--{long}={}", s.value).into()),
            }
        }
        argv.push("--".into());
        argv.extend(self.command.iter().cloned());
        (argv, env)
    }

    /// Every value of a repeatable option (`--listen`): those of the
    /// command line, or else the one of the environment.
    pub fn get_all(&self, long: &str) -> Vec<&Setting> {
        self.asked.borrow_mut().push(long.to_string());
        let all: Vec<&Setting> = self
            .settings
            .iter()
            .filter(|(l, _)| *l == long)
            .map(|(_, s)| s)
            .collect();
        let given: Vec<&Setting> = all
            .iter()
            .copied()
            .filter(|s| !s.origin.starts_with("KEEPUP_"))
            .collect();
        if given.is_empty() { all } else { given }
    }

    pub fn get(&self, long: &str) -> Option<&Setting> {
        self.asked.borrow_mut().push(long.to_string());
        self.settings
            .iter()
            .rev()
            .find(|(l, _)| *l == long)
            .map(|(_, s)| s)
    }

    /// The options of the table that were never asked for.
    pub fn never_asked(&self) -> Vec<&'static str> {
        let asked = self.asked.borrow();
        OPTIONS
            .iter()
            .map(|o| o.long)
            .filter(|l| !asked.iter().any(|a| a == l))
            .collect()
    }

    fn set(&mut self, long: &'static str, value: String, origin: String) {
        self.settings.push((long, Setting { value, origin }));
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    Run(Settings),
    Verb(Verb),
    /// Print this help text and exit 0.
    Help(String),
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
    if let Some(first) = args.first().and_then(|a| a.to_str()) {
        if first == "help" {
            return help_for(&args[1..]);
        }
        if let Some(spec) = VERBS.iter().find(|v| v.name == first) {
            return parse_verb(spec, &args[1..]);
        }
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
            lexopt::Arg::Long("help") | lexopt::Arg::Short('h') => {
                return Ok(Invocation::Help(help()));
            }
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

/// `keepup help [VERB]`.
fn help_for(args: &[OsString]) -> Result<Invocation, UsageError> {
    match args {
        [] => Ok(Invocation::Help(help())),
        [verb] => {
            let verb = verb.to_string_lossy();
            VERBS
                .iter()
                .find(|v| v.name == verb)
                .map(|v| Invocation::Help(verb_help(v)))
                .ok_or_else(|| {
                    UsageError(format!(
                        "unknown verb '{verb}' for keepup help (verbs: {})",
                        verb_names()
                    ))
                })
        }
        _ => Err(UsageError("usage: keepup help [VERB]".into())),
    }
}

fn verb_names() -> String {
    VERBS.iter().map(|v| v.name).collect::<Vec<_>>().join(", ")
}

/// A verb's words: its positional arguments and options, typed.
fn parse_verb(spec: &VerbSpec, args: &[OsString]) -> Result<Invocation, UsageError> {
    let verb = spec.name;
    let usage = || UsageError(format!("usage: {}", spec.usage));
    let mut parser = lexopt::Parser::from_iter(
        std::iter::once(OsString::from(verb)).chain(args.iter().cloned()),
    );
    let mut words: Vec<String> = vec![];
    let (mut json, mut watch, mut prune, mut follow) = (false, false, false, false);
    let mut lines = 20usize;
    let mut timeout = std::time::Duration::from_secs(60);
    let mut timeout_given = false;
    let (mut install, mut cron, mut npm) = (false, false, false);
    loop {
        let arg = match parser.next() {
            Ok(None) => break,
            Ok(Some(arg)) => arg,
            Err(e) => return Err(lexopt_error(e)),
        };
        use lexopt::Arg::{Long, Short, Value};
        match (verb, arg) {
            (_, Long("help") | Short('h')) => return Ok(Invocation::Help(verb_help(spec))),
            (_, Value(v)) => words.push(v.into_string().map_err(|_| {
                UsageError(format!("an argument of 'keepup {verb}' is not valid UTF-8"))
            })?),
            ("status" | "list", Long("json")) => json = true,
            ("status" | "list", Long("watch") | Short('w')) => watch = true,
            ("status", Long("prune")) => prune = true,
            ("logs", Long("follow") | Short('f')) => follow = true,
            ("startup", Long("install")) => install = true,
            ("startup", Long("cron")) => cron = true,
            ("import", Long("npm")) => npm = true,
            ("logs", Long("lines") | Short('n')) => {
                let v = verb_value(&mut parser, "-n")?;
                lines = v.parse().map_err(|_| {
                    UsageError(format!(
                        "invalid count '{v}' for -n: expected a whole number"
                    ))
                })?;
            }
            ("wait" | "reload", Long("timeout")) => {
                timeout_given = true;
                let v = verb_value(&mut parser, "--timeout")?;
                timeout = crate::units::parse_duration(&v).map_err(|why| {
                    UsageError(format!("invalid duration '{v}' for --timeout: {why}"))
                })?;
            }
            (_, Long(l)) => {
                return Err(UsageError(format!(
                    "unknown option '--{l}' for 'keepup {verb}' (see keepup {verb} --help)"
                )));
            }
            (_, Short(c)) => {
                return Err(UsageError(format!(
                    "unknown option '-{c}' for 'keepup {verb}' (see keepup {verb} --help)"
                )));
            }
        }
    }
    let need_names = |words: Vec<String>| {
        if words.is_empty() {
            Err(UsageError(format!("missing instance name: {}", spec.usage)))
        } else {
            Ok(words)
        }
    };
    let parsed = match verb {
        "status" | "list" => Verb::Status {
            names: words,
            json,
            watch,
            prune,
        },
        "start" => Verb::Start {
            names: need_names(words)?,
        },
        "delete" => Verb::Delete {
            names: need_names(words)?,
        },
        "startup" => Verb::Startup {
            names: need_names(words)?,
            install,
            cron,
        },
        "import" => match <[String; 1]>::try_from(words) {
            Ok([file]) => Verb::Import {
                file: file.into(),
                npm,
            },
            Err(_) => return Err(usage()),
        },
        "stop" => Verb::Stop {
            names: need_names(words)?,
        },
        "restart" => Verb::Restart {
            names: need_names(words)?,
        },
        "wait" => Verb::Wait {
            names: need_names(words)?,
            timeout,
        },
        "reload" => Verb::Reload {
            names: need_names(words)?,
            timeout: timeout_given.then_some(timeout),
        },
        "logs" => match <[String; 1]>::try_from(words) {
            Ok([name]) => Verb::Logs {
                name,
                lines,
                follow,
            },
            Err(_) => return Err(usage()),
        },
        "signal" => match <[String; 2]>::try_from(words) {
            Ok([name, sig]) => Verb::Signal {
                signal: crate::units::parse_signal(&sig)
                    .map_err(|why| UsageError(format!("invalid signal '{sig}': {why}")))?,
                name,
            },
            Err(_) => return Err(usage()),
        },
        _ => return Err(usage()),
    };
    Ok(Invocation::Verb(parsed))
}

fn verb_value(parser: &mut lexopt::Parser, shown: &str) -> Result<String, UsageError> {
    parser
        .value()
        .map_err(|_| UsageError(format!("missing value for {shown}")))?
        .into_string()
        .map_err(|_| UsageError(format!("value for {shown} is not valid UTF-8")))
}

/// `keepup --help`: made from `OPTIONS`, so no option can be left out.
pub fn help() -> String {
    let mut out = String::from(HELP_HEAD);
    for section in Section::ALL {
        out.push('\n');
        out.push_str(section.title());
        out.push('\n');
        for o in OPTIONS.iter().filter(|o| o.section == section) {
            let short = o.short.map_or("    ".to_string(), |c| format!("-{c}, "));
            let left = if o.value.is_empty() {
                format!("  {short}--{}", o.long)
            } else {
                format!("  {short}--{} {}", o.long, o.value)
            };
            let mut help_lines = o.help.lines();
            let first = help_lines.next().unwrap_or("");
            if left.len() < HELP_COLUMN {
                out.push_str(&format!("{left:HELP_COLUMN$}{first}\n"));
            } else {
                out.push_str(&format!("{left}\n{:HELP_COLUMN$}{first}\n", ""));
            }
            for more in help_lines {
                out.push_str(&format!("{:HELP_COLUMN$}{more}\n", ""));
            }
        }
    }
    out.push_str(HELP_TAIL);
    out
}

/// `keepup VERB --help`.
pub fn verb_help(spec: &VerbSpec) -> String {
    let mut out = format!("Usage: {}\n\n{}\n", spec.usage, spec.about);
    if !spec.options.is_empty() {
        out.push_str("\nOptions:\n");
        out.push_str(spec.options);
    }
    out
}

const HELP_COLUMN: usize = 28;

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

const HELP_HEAD: &str = "\
keepup keeps one command running: restarts with backoff, merged timestamped
logs, memory limit, signal forwarding, zombie reaping, correct as PID 1.

Usage: keepup [OPTIONS] [--] COMMAND [ARG...]
       keepup status|stop|restart|logs|signal|wait ...   (keepup help VERB)
";

const HELP_TAIL: &str = "
Durations take a unit (100ms, 1.5s, 1m30s, 2h; at most 30 days). Sizes: 500M,
1.5G, 512K are binary; 500MB is decimal; a bare number is bytes. Signals:
TERM, SIGTERM, 15. Every --long-option may be set as KEEPUP_LONG_OPTION in
the environment.

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
        assert!(matches!(
            parse(&["status"]),
            Ok(Invocation::Verb(Verb::Status { .. }))
        ));
        let s = run(&["--", "status"]);
        assert_eq!(s.command, os(&["status"]));
        let s = run(&["-q", "stop"]);
        assert_eq!(s.command, os(&["stop"]));
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse(&["--help"]), Ok(Invocation::Help(help())));
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

    #[test]
    fn help_lists_every_option_of_the_table() {
        let h = help();
        for o in OPTIONS {
            let shown = if o.value.is_empty() {
                format!("--{} ", o.long)
            } else {
                format!("--{} {}", o.long, o.value)
            };
            assert!(
                h.contains(&shown) || h.contains(&format!("--{}\n", o.long)),
                "--help lacks {shown}"
            );
            if let Some(c) = o.short {
                assert!(h.contains(&format!("-{c}, --{}", o.long)), "-{c}");
            }
        }
        // And nothing that is not an option: every --word in the help text
        // is in the table (or is --help / --version).
        for word in h
            .split_whitespace()
            .filter(|w| w.starts_with("--") && w.len() > 2)
        {
            let long = word
                .trim_start_matches("--")
                .trim_end_matches([',', ')', '.', ':']);
            assert!(
                OPTIONS.iter().any(|o| o.long == long)
                    || ["help", "version", "long-option"].contains(&long),
                "--help shows unknown {word}"
            );
        }
        assert!(h.lines().all(|l| l.len() <= 100), "{h}");
    }

    #[test]
    fn verbs_parse_to_typed_invocations() {
        let verb = |v: &[&str]| match parse(v) {
            Ok(Invocation::Verb(v)) => v,
            other => panic!("{v:?}: {other:?}"),
        };
        assert_eq!(
            verb(&["status", "api", "--json", "-w"]),
            Verb::Status {
                names: vec!["api".into()],
                json: true,
                watch: true,
                prune: false
            }
        );
        assert_eq!(
            verb(&["logs", "api", "-n", "5", "-f"]),
            Verb::Logs {
                name: "api".into(),
                lines: 5,
                follow: true
            }
        );
        assert_eq!(
            verb(&["signal", "api", "HUP"]),
            Verb::Signal {
                name: "api".into(),
                signal: libc::SIGHUP
            }
        );
        assert_eq!(
            verb(&["wait", "a", "b", "--timeout", "2s"]),
            Verb::Wait {
                names: vec!["a".into(), "b".into()],
                timeout: std::time::Duration::from_secs(2)
            }
        );
        let e = |v: &[&str]| parse(v).unwrap_err().0;
        assert_eq!(e(&["stop"]), "missing instance name: keepup stop NAME...");
        assert_eq!(e(&["signal", "api"]), "usage: keepup signal NAME SIG");
        assert_eq!(
            e(&["status", "--bogus"]),
            "unknown option '--bogus' for 'keepup status' (see keepup status --help)"
        );
        assert!(e(&["signal", "api", "NOPE"]).starts_with("invalid signal 'NOPE'"));
        for v in VERBS {
            assert_eq!(
                parse(&[v.name, "--help"]),
                Ok(Invocation::Help(verb_help(v)))
            );
            assert_eq!(parse(&["help", v.name]), Ok(Invocation::Help(verb_help(v))));
        }
        assert_eq!(parse(&["help"]), Ok(Invocation::Help(help())));
        assert!(e(&["help", "bogus"]).starts_with("unknown verb 'bogus'"));
    }
}
