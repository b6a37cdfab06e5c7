//! Usage errors, help, version and environment configuration (SPEC section 1).
mod util;
use util::*;

/// Every kind of bad input: exit 2, one line on stderr naming what is wrong,
/// and nothing started (the command would create a file).
#[test]
fn bad_input_exits_2_with_one_line_and_starts_nothing() {
    let dir = TempDir::new();
    let marker = dir.s("started");
    let cases: &[(&[&str], &str)] = &[
        (&["--bogus"], "unknown option '--bogus'"),
        (&["-z"], "unknown option '-z'"),
        (
            &["--delay", "10"],
            "invalid duration '10' for --delay: add a unit, e.g. 10s or 1500ms",
        ),
        (
            &["--kill-timeout", "soon"],
            "invalid duration 'soon' for --kill-timeout",
        ),
        (
            &["--max-memory", "5X"],
            "invalid size '5X' for --max-memory",
        ),
        (&["--max-memory", "0"], "invalid size '0' for --max-memory"),
        (
            &["--log-max-size", "big"],
            "invalid size 'big' for --log-max-size",
        ),
        (
            &["--stop-signal", "SIGFOO"],
            "invalid signal 'SIGFOO' for --stop-signal",
        ),
        (
            &["--max-restarts", "-3"],
            "invalid count '-3' for --max-restarts",
        ),
        (
            &["--max-restarts", "lots"],
            "invalid count 'lots' for --max-restarts",
        ),
        (&["--log-keep", "x"], "invalid count 'x' for --log-keep"),
        (
            &["--restart", "sometimes"],
            "invalid restart policy 'sometimes' for --restart",
        ),
        (
            &["--success-exit", "0,x"],
            "invalid exit codes '0,x' for --success-exit",
        ),
        (
            &["--time-format", "%Q"],
            "invalid time format '%Q' for --time-format",
        ),
        (
            &["--memory-interval", "1ms"],
            "invalid duration '1ms' for --memory-interval",
        ),
        (&["--ready-port", "0"], "invalid port '0' for --ready-port"),
        (
            &["--health-http", "ftp://x"],
            "invalid URL 'ftp://x' for --health-http",
        ),
        (
            &["--ready-fd", "2"],
            "invalid file descriptor '2' for --ready-fd",
        ),
        // Durations are bounded, so no deadline can overflow (one this
        // large aborted keepup at its first stop).
        (
            &["--kill-timeout", "300000000000y"],
            "invalid duration '300000000000y' for --kill-timeout: at most 30 days",
        ),
        (
            &["--health-interval", "31days"],
            "invalid duration '31days' for --health-interval: at most 30 days",
        ),
    ];
    for (args, want) in cases {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(sh(&format!("touch {marker}")));
        let f = keepup(&v).run();
        f.expect_code(2);
        let lines: Vec<&str> = f.stderr.lines().collect();
        f.check(lines.len() == 1, "expected exactly one line on stderr");
        f.check(
            lines[0].starts_with("keepup: "),
            "expected the keepup: prefix",
        );
        f.check(lines[0].contains(want), &format!("expected '{want}'"));
        assert!(
            !dir.path("started").exists(),
            "{args:?} started the command"
        );
    }
}

/// Found by fuzzing: user input with a newline must not break the one-line
/// diagnostic (nor a log line).
#[test]
fn control_characters_in_input_stay_on_one_line() {
    let f = keepup(["--bad\noption", "true"]).run();
    f.expect_code(2);
    assert_eq!(
        f.stderr,
        "keepup: unknown option '--bad\\noption' (see keepup --help)\n"
    );
    let f = keepup(["--", "no\nsuch"]).run();
    f.expect_code(127);
    assert_eq!(f.stderr.lines().count(), 1, "{f}");
}

#[test]
fn missing_value() {
    let f = keepup(["--delay"]).run();
    f.expect_code(2);
    f.check(
        f.stderr.trim() == "keepup: missing value for --delay",
        "message",
    );
}

#[test]
fn missing_command() {
    let f = keepup(["--delay", "1s"]).run();
    f.expect_code(2);
    f.check(f.stderr.starts_with("keepup: missing command"), "message");
    let f = keepup(Vec::<String>::new()).run();
    f.expect_code(2);
}

/// The options of SPEC sections 1 to 8, as the spec names them.
const SPEC_OPTIONS: &[&str] = &[
    "-n, --name",
    "--restart",
    "--success-exit",
    "--delay",
    "--max-delay",
    "--min-uptime",
    "--max-restarts",
    "--max-memory",
    "--memory-interval",
    "--stop-signal",
    "--kill-timeout",
    "--no-group",
    "--parent-death",
    "--log",
    "--out-log",
    "--err-log",
    "-t, --timestamps",
    "-q, --quiet",
    "--time-format",
    "--utc",
    "--log-max-size",
    "--log-keep",
    "-d, --detach",
    "--ready-port",
    "--ready-cmd",
    "--ready-fd",
    "--ready-timeout",
    "--health-cmd",
    "--health-http",
    "--health-interval",
    "--health-timeout",
    "--health-retries",
];

#[test]
fn help_and_version() {
    let f = keepup(["--help"]).run();
    f.expect_code(0);
    for topic in [
        "Restart policy:",
        "Memory limit:",
        "Stopping and signals:",
        "Logs:",
        "Instances:",
        "Readiness and health:",
    ] {
        f.check(f.stdout.contains(topic), &format!("help lacks {topic}"));
    }
    for option in SPEC_OPTIONS {
        f.check(f.stdout.contains(option), &format!("help lacks {option}"));
    }
    // Every option the help shows is one keepup takes.
    for word in f.stdout.split_whitespace() {
        let long = word.trim_end_matches([',', ')', '.', ']', ':']);
        if !long.starts_with("--") || long.len() < 3 || long == "--long-option" {
            continue;
        }
        let g = keepup([long, "--version"]).run();
        g.check(
            !g.stderr.contains("unknown option"),
            &format!("--help shows {long}, which keepup refuses"),
        );
    }
    for verb in [
        "status", "stop", "restart", "logs", "signal", "wait", "reload",
    ] {
        let v = keepup([verb, "--help"]).run();
        v.expect_code(0);
        v.check(
            v.stdout.starts_with(&format!("Usage: keepup {verb}")),
            "verb usage",
        );
        let h = keepup(["help", verb]).run();
        h.expect_code(0);
        h.check(
            h.stdout == v.stdout,
            "keepup help VERB = keepup VERB --help",
        );
    }
    let f = keepup(["--version"]).run();
    f.expect_code(0);
    f.check(
        f.stdout.trim() == format!("keepup {}", env!("CARGO_PKG_VERSION")),
        "version line",
    );
}

#[test]
fn environment_configures_and_command_line_wins() {
    let dir = TempDir::new();
    let runs = dir.s("runs");
    // KEEPUP_MAX_RESTARTS=2: three runs. The command line's 1 wins: two runs.
    let script = format!("echo x >> {runs}; exit 1");
    keepup(with_sh(&["--delay", "10ms"], &script))
        .env("KEEPUP_MAX_RESTARTS", "2")
        .env("KEEPUP_QUIET", "1")
        .run()
        .expect_code(1);
    assert_eq!(count_lines(&dir.path("runs")), 3);
    let f = keepup(with_sh(
        &["--delay", "10ms", "--max-restarts", "1"],
        &script,
    ))
    .env("KEEPUP_MAX_RESTARTS", "2")
    .env("KEEPUP_QUIET", "true")
    .run();
    f.expect_code(1);
    f.check(f.stderr.is_empty(), "KEEPUP_QUIET=true silences events");
    assert_eq!(count_lines(&dir.path("runs")), 5);
    let f = keepup(sh("true")).env("KEEPUP_DELAY", "10").run();
    f.expect_code(2);
    f.check(f.stderr.contains("for KEEPUP_DELAY"), "names the variable");
    let f = keepup(sh("true")).env("KEEPUP_QUIET", "perhaps").run();
    f.expect_code(2);
    f.check(f.stderr.contains("KEEPUP_QUIET"), "names the variable");
}

#[test]
fn verbs_only_as_first_word() {
    // `keepup -- status` runs a program called status, which does not exist.
    let f = keepup(["--", "status"]).run();
    f.expect_code(127);
    f.check(f.stderr.contains("cannot run 'status'"), "message");
}

#[test]
fn command_runs_without_a_shell() {
    let dir = TempDir::new();
    let out = dir.s("args");
    // Arguments with spaces and shell characters arrive unchanged.
    let f = keepup([
        "--restart",
        "never",
        "--",
        "sh",
        "-c",
        "printf '%s|' \"$@\" > \"$0\"",
        &out,
        "a b",
        "$HOME",
        "*",
    ])
    .run();
    f.expect_code(0);
    assert_eq!(read(&dir.path("args")), "a b|$HOME|*|");
}

/// PM2 habits (SPEC 1, 7): a bare memory size, a moment date format, a
/// PM2 verb taken for a command. Each says what to write instead.
#[test]
fn pm2_habits_get_a_hint() {
    let f = keepup(["--max-memory", "500", "true"]).run();
    f.expect_code(2);
    f.check(
        f.stderr.trim() == "keepup: invalid size '500' for --max-memory: below 1 MiB, which no program fits in; did you mean 500M?",
        "max-memory hint",
    );
    let f = keepup(["--time-format", "YYYY-MM-DD HH:mm:ss Z", "true"]).run();
    f.expect_code(2);
    f.check(
        f.stderr.contains("did you mean '%Y-%m-%d %H:%M:%S %:z'?"),
        "time-format hint",
    );
    let home = TempDir::new();
    let f = keepup(["monit"]).env("KEEPUP_HOME", &home.0).run();
    f.expect_code(127);
    f.check(
        f.stderr.contains(
            "cannot run 'monit': No such file or directory (PM2's 'monit' is keepup status -w)",
        ),
        "PM2 verb hint",
    );
    assert!(
        !home.path("monit.state").exists(),
        "a failed first start leaves no entry"
    );
}
