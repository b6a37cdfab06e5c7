//! Turns the words of the command line into a fully valid `Config`: defaults,
//! units, ranges and cross-checks. Nothing after this module re-validates; an
//! error here names the flag (or `KEEPUP_*` variable) and the value.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::backoff::{Policy, RestartPolicy};
use crate::cli::{Settings, UsageError};
use crate::logs::clock::{DEFAULT_FORMAT, TimeFormat};
use crate::units::{parse_duration, parse_signal, parse_size};

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub merged: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub err: Option<PathBuf>,
    pub timestamps: bool,
    pub quiet: bool,
    pub time_format: TimeFormat,
    pub utc: bool,
    /// `0` never rotates.
    pub max_size: u64,
    pub keep: u32,
    /// `--log-format json`: one JSON object per line in the files.
    pub json: bool,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub name: String,
    pub command: Vec<OsString>,
    pub policy: Policy,
    pub success_codes: Vec<i32>,
    pub max_memory: Option<u64>,
    pub memory_interval: Duration,
    pub stop_signal: i32,
    pub kill_timeout: Duration,
    pub own_group: bool,
    pub parent_death: Option<i32>,
    pub detach: bool,
    pub logs: LogConfig,
    pub probes: Probes,
    /// `--listen`: bound in order, passed as fds 3, 4, ...
    pub listen: Vec<crate::sockets::Listen>,
    pub reuseport: bool,
    pub backlog: u32,
    /// `-i N` (with `-d`): how many instances to start.
    pub instances: Option<u32>,
    /// Which of the `-i` instances this keepup is (1-based), set by the
    /// fan-out in main; `KEEPUP_INSTANCE` for the child.
    pub instance: Option<u32>,
    /// `--env-file`, in order (a later file wins).
    pub env_files: Vec<PathBuf>,
    /// `--env NAME=VALUE`, in order; they win over the files.
    pub env: Vec<(String, OsString)>,
    pub cwd: Option<PathBuf>,
    /// `--user` as given; resolved (`users::resolve`) before the first start.
    pub user: Option<String>,
    /// How to run this instance again (`keepup start`, a boot unit): a
    /// canonical argv and the `KEEPUP_*` settings, without `--detach`.
    pub recorded_argv: Vec<OsString>,
    pub recorded_env: Vec<(String, String)>,
    /// `--watch` PATHs (each exists), and what counts as a change.
    pub watch: Vec<PathBuf>,
    pub watch_ignore: Vec<String>,
    pub watch_ext: Option<Vec<String>>,
    pub watch_delay: Duration,
}

/// How a run becomes ready (SPEC section 8). With none of these options a
/// child is ready once started.
#[derive(Clone, Debug)]
pub enum ReadyCheck {
    Port(u16),
    Command(String),
    Fd(i32),
    /// `--notify`: `READY=1` on the notify socket.
    Notify,
}

#[derive(Clone, Debug)]
pub enum HealthCheck {
    Command(String),
    Http(crate::probe::HttpUrl),
}

#[derive(Clone, Debug)]
pub struct Probes {
    pub ready: Option<ReadyCheck>,
    pub ready_timeout: Duration,
    pub health: Option<HealthCheck>,
    pub health_interval: Duration,
    pub health_timeout: Duration,
    pub health_retries: u32,
    /// `--watchdog` (with `--notify`): the longest gap between pings.
    pub watchdog: Option<Duration>,
}

struct Reader<'a> {
    settings: &'a Settings,
}

impl Reader<'_> {
    fn raw(&self, long: &str) -> Option<(&str, &str)> {
        self.settings
            .get(long)
            .map(|s| (s.value.as_str(), s.origin.as_str()))
    }

    fn parsed<T>(
        &self,
        long: &str,
        default: &str,
        what: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, UsageError> {
        let (value, origin) = self.raw(long).unwrap_or((default, ""));
        parse(value).map_err(|reason| {
            let origin = if origin.is_empty() {
                format!("--{long}")
            } else {
                origin.to_string()
            };
            UsageError(format!("invalid {what} '{value}' for {origin}: {reason}"))
        })
    }

    /// Like `parsed`, for an option with no default: `None` when not given.
    fn optional<T>(
        &self,
        long: &str,
        what: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, UsageError> {
        match self.raw(long) {
            None => Ok(None),
            Some(_) => self.parsed(long, "", what, parse).map(Some),
        }
    }

    fn duration(&self, long: &str, default: &str) -> Result<Duration, UsageError> {
        self.parsed(long, default, "duration", parse_duration)
    }

    fn flag(&self, long: &str) -> bool {
        self.raw(long).is_some_and(|(v, _)| v == "true")
    }

    fn path(&self, long: &str) -> Result<Option<PathBuf>, UsageError> {
        match self.raw(long) {
            None => Ok(None),
            Some(("", origin)) => Err(UsageError(format!("empty file name for {origin}"))),
            Some((v, _)) => Ok(Some(PathBuf::from(v))),
        }
    }
}

fn parse_count(v: &str) -> Result<u32, String> {
    v.trim()
        .parse::<u32>()
        .map_err(|_| "expected a whole number from 0 up".to_string())
}

fn parse_codes(v: &str) -> Result<Vec<i32>, String> {
    v.split(',')
        .map(|c| match c.trim().parse::<i32>() {
            Ok(n) if (0..=255).contains(&n) => Ok(n),
            _ => Err(format!("'{}' is not an exit code from 0 to 255", c.trim())),
        })
        .collect()
}

pub fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("a name has 1 to 64 characters".into());
    }
    if name.starts_with('.') || name.starts_with('-') {
        return Err("a name cannot start with '.' or '-'".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
    {
        return Err("use letters, digits and . _ - @".into());
    }
    Ok(())
}

/// `logs/api.log` -> `logs/api-2.log`: an `-i` member's own log file, as
/// PM2 names its instances' files, so that no two keepups rotate one file.
pub fn member_path(path: &std::path::Path, k: u32) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let member = match name.rfind('.') {
        Some(i) if i > 0 => format!("{}-{k}{}", &name[..i], &name[i..]),
        _ => format!("{name}-{k}"),
    };
    path.with_file_name(member)
}

impl Config {
    /// Member `k` of `-i N`: `NAME-k`, its own log files, no fan-out.
    pub fn instance_of(&self, k: u32) -> Config {
        let mut c = self.clone();
        c.name = format!("{}-{k}", self.name);
        c.instance = Some(k);
        c.instances = None;
        for p in [&mut c.logs.merged, &mut c.logs.out, &mut c.logs.err]
            .into_iter()
            .flatten()
        {
            *p = member_path(p, k);
        }
        // Recorded as the member alone: its name, its files, its number,
        // without the fan-out (`-i`), and with the port sharing `-i` implied.
        let dash = c
            .recorded_argv
            .iter()
            .position(|a| a == "--")
            .unwrap_or(c.recorded_argv.len());
        let mut opts: Vec<OsString> = c.recorded_argv[..dash]
            .iter()
            .filter(|a| {
                let a = a.to_string_lossy();
                !(a.starts_with("--instances=")
                    || a.starts_with("--name=")
                    || a.starts_with("--log=")
                    || a.starts_with("--out-log=")
                    || a.starts_with("--err-log="))
            })
            .cloned()
            .collect();
        opts.push(format!("--name={}", c.name).into());
        for (flag, p) in [
            ("log", &c.logs.merged),
            ("out-log", &c.logs.out),
            ("err-log", &c.logs.err),
        ] {
            if let Some(p) = p {
                let mut a = OsString::from(format!("--{flag}="));
                a.push(p.as_os_str());
                opts.push(a);
            }
        }
        if c.reuseport && !c.listen.is_empty() && !opts.iter().any(|a| a == "--reuseport") {
            opts.push("--reuseport".into());
        }
        opts.extend(c.recorded_argv[dash..].iter().cloned());
        c.recorded_argv = opts;
        c.recorded_env.retain(|(k, _)| {
            !matches!(
                k.as_str(),
                "KEEPUP_INSTANCES"
                    | "KEEPUP_NAME"
                    | "KEEPUP_LOG"
                    | "KEEPUP_OUT_LOG"
                    | "KEEPUP_ERR_LOG"
                    | "KEEPUP_DETACH"
            )
        });
        c.recorded_env
            .push(("KEEPUP_INSTANCE".into(), k.to_string()));
        c
    }

    /// `in_npm` is whether `npm_lifecycle_event` is set, which decides the
    /// `--parent-death` default.
    pub fn from_settings(settings: Settings, in_npm: bool) -> Result<Config, UsageError> {
        Config::read(&settings, in_npm)
    }

    fn read(settings: &Settings, in_npm: bool) -> Result<Config, UsageError> {
        let r = Reader { settings };
        let restart = r.parsed("restart", "always", "restart policy", |v| match v {
            "always" => Ok(RestartPolicy::Always),
            "on-failure" => Ok(RestartPolicy::OnFailure),
            "never" => Ok(RestartPolicy::Never),
            _ => Err("use always, on-failure or never".into()),
        })?;
        let max_restarts = r.parsed("max-restarts", "10", "count", |v| {
            if v == "unlimited" {
                Ok(None)
            } else {
                parse_count(v)
                    .map(Some)
                    .map_err(|_| "expected a whole number from 0 up, or unlimited".into())
            }
        })?;
        let policy = Policy {
            restart,
            delay: r.duration("delay", "100ms")?,
            max_delay: r.duration("max-delay", "30s")?,
            min_uptime: r.duration("min-uptime", "10s")?,
            max_restarts,
        };
        if policy.max_delay < policy.delay {
            return Err(UsageError(format!(
                "--max-delay ({}) is shorter than --delay ({})",
                crate::units::format_duration(policy.max_delay),
                crate::units::format_duration(policy.delay)
            )));
        }

        let max_memory = r.optional("max-memory", "size", |v| match parse_size(v)? {
            0 => Err("the limit must be above 0".into()),
            // PM2 users write `500` for 500 MB; a limit under 1 MiB would
            // restart any program every second.
            n if n < 1 << 20 => Err(format!(
                "below 1 MiB, which no program fits in; did you mean {}M?",
                v.trim()
            )),
            n => Ok(n),
        })?;
        let memory_interval = r.parsed("memory-interval", "1s", "duration", |v| {
            let d = parse_duration(v)?;
            if d < Duration::from_millis(10) {
                Err("the interval must be at least 10ms".into())
            } else {
                Ok(d)
            }
        })?;

        let parent_death = match r.raw("parent-death") {
            None => in_npm.then_some(libc::SIGTERM),
            Some(("none", _)) => None,
            Some(_) => Some(r.parsed("parent-death", "", "signal", parse_signal)?),
        };

        let time_format = r.parsed("time-format", DEFAULT_FORMAT, "time format", |v| {
            // A PM2 habit: a moment.js format, which would be written
            // literally on every line.
            if !v.contains('%') {
                return Err(format!(
                    "no % directive, so it would print as it is; did you mean '{}'?",
                    crate::logs::clock::from_moment(v)
                ));
            }
            TimeFormat::parse(v)
        })?;
        let logs = LogConfig {
            merged: r.path("log")?,
            out: r.path("out-log")?,
            err: r.path("err-log")?,
            timestamps: r.flag("timestamps"),
            quiet: r.flag("quiet"),
            time_format,
            utc: r.flag("utc"),
            max_size: r.parsed("log-max-size", "10M", "size", parse_size)?,
            keep: r.parsed("log-keep", "5", "count", parse_count)?,
            json: r.parsed("log-format", "text", "log format", |v| match v {
                "text" => Ok(false),
                "json" => Ok(true),
                _ => Err("use text or json".into()),
            })?,
        };

        let command = settings.command.clone();
        let name = match r.raw("name") {
            Some((n, origin)) => {
                valid_name(n)
                    .map_err(|why| UsageError(format!("invalid name '{n}' for {origin}: {why}")))?;
                n.to_string()
            }
            None => default_name(&command[0]),
        };

        let listen = r
            .settings
            .get_all("listen")
            .into_iter()
            .map(|s| {
                crate::sockets::parse(&s.value).map_err(|why| {
                    UsageError(format!(
                        "invalid address '{}' for {}: {why}",
                        s.value, s.origin
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let backlog = r.parsed("backlog", "511", "count", |v| match parse_count(v)? {
            0 => Err("at least 1".into()),
            n => Ok(n),
        })?;
        let instances = r.optional("instances", "count", |v| match parse_count(v)? {
            0 => Err("at least 1".into()),
            n => Ok(n),
        })?;
        let detach = r.flag("detach");
        if let (Some(_), false) = (instances, detach) {
            return Err(UsageError(
                "-i/--instances starts detached instances: add -d".into(),
            ));
        }
        // With several instances on one port, the kernel balances them.
        let reuseport = r.flag("reuseport") || instances.is_some_and(|n| n > 1);
        let probes = probes(&r)?;
        if let Some(ReadyCheck::Port(p)) = probes.ready {
            let own = listen.iter().any(|l| match &l.address {
                crate::sockets::Address::Port(q) | crate::sockets::Address::Host(_, q) => *q == p,
                crate::sockets::Address::Unix(_) => false,
            });
            if own {
                return Err(UsageError(format!(
                    "--ready-port {p} is a port keepup itself listens on (--listen), so it would always \
                     answer: use --ready-fd, --ready-cmd or --notify"
                )));
            }
        }
        if let Some(ReadyCheck::Fd(n)) = probes.ready {
            let first = crate::sockets::FIRST_FD;
            let last = first + listen.len() as i32 - 1;
            if (first..=last).contains(&n) {
                return Err(UsageError(format!(
                    "--ready-fd {n} is the fd of a --listen socket ({first} to {last}): choose {} or above",
                    last + 1
                )));
            }
        }

        let env_files = r
            .settings
            .get_all("env-file")
            .into_iter()
            .map(|s| {
                if s.value.is_empty() {
                    Err(UsageError(format!("empty file name for {}", s.origin)))
                } else {
                    Ok(PathBuf::from(&s.value))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let env = r
            .settings
            .get_all("env")
            .into_iter()
            .map(|s| match s.value.split_once('=') {
                Some((k, v)) if crate::envfile::valid_name(k.as_bytes()) => {
                    Ok((k.to_string(), OsString::from(v)))
                }
                Some((k, _)) => Err(UsageError(format!(
                    "invalid variable name '{k}' for {}: letters, digits and _, not starting with a digit",
                    s.origin
                ))),
                None => Err(UsageError(format!(
                    "invalid value '{}' for {}: expected NAME=VALUE",
                    s.value, s.origin
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cwd = r.path("cwd")?;
        let user = match r.raw("user") {
            Some(("", origin)) => return Err(UsageError(format!("empty user for {origin}"))),
            Some((u, _)) => Some(u.to_string()),
            None => None,
        };

        let watch = r
            .settings
            .get_all("watch")
            .into_iter()
            .map(|s| {
                let p = PathBuf::from(&s.value);
                match std::fs::metadata(&p) {
                    _ if s.value.is_empty() => {
                        Err(UsageError(format!("empty path for {}", s.origin)))
                    }
                    Ok(_) => Ok(p),
                    Err(e) => Err(UsageError(format!(
                        "invalid path '{}' for {}: {}",
                        s.value,
                        s.origin,
                        crate::diag::os_reason(&e)
                    ))),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let watch_ignore = r
            .settings
            .get_all("watch-ignore")
            .into_iter()
            .map(|s| s.value.clone())
            .filter(|p| !p.is_empty())
            .collect();
        let watch_ext = r.optional("watch-ext", "extension list", |v| {
            let exts: Vec<String> = v
                .split(',')
                .map(|e| e.trim().trim_start_matches('.').to_string())
                .filter(|e| !e.is_empty())
                .collect();
            if exts.is_empty() {
                Err("an empty list: give extensions like js,mjs,json".into())
            } else {
                Ok(exts)
            }
        })?;
        let watch_delay = r.duration("watch-delay", "200ms")?;
        let (recorded_argv, recorded_env) = settings.recorded();

        Ok(Config {
            name,
            command,
            policy,
            success_codes: r.parsed("success-exit", "0", "exit codes", parse_codes)?,
            max_memory,
            memory_interval,
            stop_signal: r.parsed("stop-signal", "TERM", "signal", parse_signal)?,
            kill_timeout: r.duration("kill-timeout", "5s")?,
            own_group: !r.flag("no-group"),
            parent_death,
            detach,
            logs,
            probes,
            listen,
            reuseport,
            backlog,
            instances,
            instance: None,
            env_files,
            env,
            cwd,
            user,
            recorded_argv,
            recorded_env,
            watch,
            watch_ignore,
            watch_ext,
            watch_delay,
        })
    }
}

fn probes(r: &Reader) -> Result<Probes, UsageError> {
    let only_one = |names: &[&str]| -> Result<(), UsageError> {
        let given: Vec<&str> = names
            .iter()
            .filter_map(|n| r.raw(n).map(|(_, o)| o))
            .collect();
        if given.len() > 1 {
            return Err(UsageError(format!(
                "{} and {} cannot be used together: choose one",
                given[0], given[1]
            )));
        }
        Ok(())
    };
    only_one(&["ready-port", "ready-cmd", "ready-fd", "notify"])?;
    only_one(&["health-cmd", "health-http"])?;
    let command = |v: &str| -> Result<String, String> {
        if v.trim().is_empty() {
            Err("the command is empty".into())
        } else {
            Ok(v.to_string())
        }
    };
    let port = |v: &str| {
        v.parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| "expected a TCP port from 1 to 65535".to_string())
    };
    let fd = |v: &str| {
        v.parse::<i32>()
            .ok()
            .filter(|&n| (3..=1023).contains(&n))
            .ok_or_else(|| "expected a number from 3 to 1023 (0, 1 and 2 are stdio)".to_string())
    };
    // At most one of each group is given (checked above).
    let ready = r
        .optional("ready-port", "port", port)?
        .map(ReadyCheck::Port)
        .or(r
            .optional("ready-cmd", "command", command)?
            .map(ReadyCheck::Command))
        .or(r
            .optional("ready-fd", "file descriptor", fd)?
            .map(ReadyCheck::Fd))
        .or(r.flag("notify").then_some(ReadyCheck::Notify));
    let watchdog = r.optional("watchdog", "duration", |v| match parse_duration(v)? {
        d if d < Duration::from_millis(10) => Err("at least 10ms".into()),
        d => Ok(d),
    })?;
    if watchdog.is_some() && !matches!(ready, Some(ReadyCheck::Notify)) {
        return Err(UsageError(
            "--watchdog needs --notify: the child pings with WATCHDOG=1 on the notify socket"
                .into(),
        ));
    }
    let health = r
        .optional("health-cmd", "command", command)?
        .map(HealthCheck::Command)
        .or(r
            .optional("health-http", "URL", crate::probe::HttpUrl::parse)?
            .map(HealthCheck::Http));
    Ok(Probes {
        ready,
        ready_timeout: r.duration("ready-timeout", "60s")?,
        health,
        health_interval: r.duration("health-interval", "10s")?,
        health_timeout: r.duration("health-timeout", "5s")?,
        health_retries: r.parsed("health-retries", "3", "count", |v| match parse_count(v) {
            Ok(0) => Err("at least 1".into()),
            other => other,
        })?,
        watchdog,
    })
}

/// The file name of the command, cleaned into a valid instance name.
fn default_name(program: &OsString) -> String {
    let base = std::path::Path::new(program)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches(['.', '-']);
    let cleaned: String = cleaned.chars().take(64).collect();
    if cleaned.is_empty() {
        "keepup".into()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Invocation, parse_from};

    fn config(args: &[&str]) -> Result<Config, String> {
        let args = args.iter().map(OsString::from);
        match parse_from(args, |_| None).map_err(|e| e.0)? {
            Invocation::Run(s) => Config::from_settings(s, false).map_err(|e| e.0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn member_log_paths() {
        let m = |p: &str, k| member_path(std::path::Path::new(p), k);
        assert_eq!(m("logs/api.log", 1), PathBuf::from("logs/api-1.log"));
        assert_eq!(
            m("/var/log/app.out.log", 12),
            PathBuf::from("/var/log/app.out-12.log")
        );
        assert_eq!(m("logs/api", 2), PathBuf::from("logs/api-2"));
        assert_eq!(m(".hidden", 2), PathBuf::from(".hidden-2"));
    }

    /// An option in `cli::OPTIONS` that config never reads would be
    /// accepted and silently ignored: every one must be asked for, both when
    /// all are given and when none is.
    #[test]
    fn every_option_is_read() {
        use crate::cli::{Kind, OPTIONS};
        let sample = |value: &str| match value {
            "DUR" => "1s",
            "SIZE" => "10M",
            "N" => "3",
            "FILE" => "/tmp/keepup-test.log",
            "NAME" => "api",
            "POLICY" => "on-failure",
            "CODES" => "0,3",
            "SIG" => "HUP",
            "FMT" => "%H:%M",
            "PORT" => "3000",
            "CMD" => "true",
            "[NAME=]ADDR" => "web=3001",
            "NAME=VALUE" => "A=1",
            "DIR" => "/",
            "USER[:GROUP]" => "root",
            "PATH" => "/",
            "PATTERN" => "dist",
            "LIST" => "js,json",
            "FORMAT" => "json",
            "URL" => "http://127.0.0.1:1/",
            other => panic!("no sample value for {other}: add one here"),
        };
        // One of each exclusive group; the others are still looked at.
        let exclusive = ["ready-cmd", "ready-fd", "health-http", "notify", "watchdog"];
        let mut args: Vec<OsString> = vec![];
        for o in OPTIONS.iter().filter(|o| !exclusive.contains(&o.long)) {
            args.push(format!("--{}", o.long).into());
            if o.kind == Kind::Value {
                args.push(sample(o.value).into());
            }
        }
        args.push("true".into());
        for args in [args, vec!["true".into()]] {
            let Ok(Invocation::Run(s)) = parse_from(args.clone(), |_| None) else {
                panic!("{args:?}");
            };
            if let Err(e) = Config::read(&s, false) {
                panic!("{args:?}: {}", e.0);
            }
            assert_eq!(
                s.never_asked(),
                Vec::<&str>::new(),
                "options config ignores"
            );
        }
    }

    #[test]
    fn defaults() {
        let c = config(&["/usr/bin/node", "x.js"]).unwrap();
        assert_eq!(c.name, "node");
        assert_eq!(c.policy.restart, RestartPolicy::Always);
        assert_eq!(c.policy.delay, Duration::from_millis(100));
        assert_eq!(c.policy.max_delay, Duration::from_secs(30));
        assert_eq!(c.policy.min_uptime, Duration::from_secs(10));
        assert_eq!(c.policy.max_restarts, Some(10));
        assert_eq!(c.success_codes, vec![0]);
        assert_eq!(c.stop_signal, libc::SIGTERM);
        assert_eq!(c.kill_timeout, Duration::from_secs(5));
        assert!(c.own_group);
        assert_eq!(c.parent_death, None);
        assert_eq!(c.max_memory, None);
        assert_eq!(c.memory_interval, Duration::from_secs(1));
        assert_eq!(c.logs.max_size, 10 * 1024 * 1024);
        assert_eq!(c.logs.keep, 5);
    }

    #[test]
    fn errors_name_flag_and_value() {
        let e = |a: &[&str]| config(a).unwrap_err();
        assert_eq!(
            e(&["--delay", "10", "x"]),
            "invalid duration '10' for --delay: add a unit, e.g. 10s or 1500ms"
        );
        assert!(
            e(&["--max-memory", "lots", "x"]).starts_with("invalid size 'lots' for --max-memory")
        );
        assert!(e(&["--max-memory", "0", "x"]).starts_with("invalid size '0' for --max-memory"));
        assert!(
            e(&["--stop-signal", "FOO", "x"]).starts_with("invalid signal 'FOO' for --stop-signal")
        );
        assert!(
            e(&["--max-restarts", "-1", "x"]).starts_with("invalid count '-1' for --max-restarts")
        );
        assert!(e(&["--max-restarts", "many", "x"]).starts_with("invalid count 'many'"));
        assert!(
            e(&["--restart", "sometimes", "x"])
                .starts_with("invalid restart policy 'sometimes' for --restart")
        );
        assert!(e(&["--success-exit", "0,300", "x"]).contains("'300' is not an exit code"));
        assert!(e(&["--memory-interval", "1ms", "x"]).contains("at least 10ms"));
        assert!(e(&["--time-format", "%Q", "x"]).starts_with("invalid time format '%Q'"));
        assert!(e(&["--name", "a/b", "x"]).starts_with("invalid name 'a/b' for --name"));
        assert!(e(&["--ready-port", "0", "x"]).starts_with("invalid port '0' for --ready-port"));
        assert!(
            e(&["--ready-fd", "1", "x"]).starts_with("invalid file descriptor '1' for --ready-fd")
        );
        assert!(
            e(&["--health-http", "https://x/", "x"])
                .starts_with("invalid URL 'https://x/' for --health-http")
        );
        assert!(
            e(&["--health-retries", "0", "x"])
                .starts_with("invalid count '0' for --health-retries")
        );
        assert!(
            e(&["--ready-port", "80", "--ready-cmd", "true", "x"])
                .contains("cannot be used together")
        );
        assert!(
            e(&["--ready-timeout", "5", "x"])
                .starts_with("invalid duration '5' for --ready-timeout")
        );
        assert!(e(&["--delay", "2s", "--max-delay", "1s", "x"]).contains("shorter than --delay"));
    }

    #[test]
    fn values() {
        let c = config(&[
            "-n",
            "api",
            "--restart",
            "on-failure",
            "--success-exit",
            "0,3",
            "--max-restarts",
            "unlimited",
            "--max-memory",
            "500M",
            "--stop-signal",
            "SIGINT",
            "--no-group",
            "--parent-death",
            "KILL",
            "--log-max-size",
            "0",
            "x",
        ])
        .unwrap();
        assert_eq!(c.name, "api");
        assert_eq!(c.success_codes, vec![0, 3]);
        assert_eq!(c.policy.max_restarts, None);
        assert_eq!(c.max_memory, Some(500 << 20));
        assert_eq!(c.stop_signal, libc::SIGINT);
        assert!(!c.own_group);
        assert_eq!(c.parent_death, Some(libc::SIGKILL));
        assert_eq!(c.logs.max_size, 0);
    }

    #[test]
    fn parent_death_default_follows_npm() {
        let s = |a: &[&str]| match parse_from(a.iter().map(OsString::from), |_| None).unwrap() {
            Invocation::Run(s) => s,
            _ => unreachable!(),
        };
        assert_eq!(
            Config::from_settings(s(&["x"]), true).unwrap().parent_death,
            Some(libc::SIGTERM)
        );
        let c = Config::from_settings(s(&["--parent-death", "none", "x"]), true).unwrap();
        assert_eq!(c.parent_death, None);
    }

    #[test]
    fn default_names() {
        assert_eq!(default_name(&OsString::from("/usr/bin/node")), "node");
        assert_eq!(default_name(&OsString::from("./my app")), "my_app");
        assert_eq!(default_name(&OsString::from(".hidden")), "hidden");
    }
}
