//! Restart policy, backoff, minimum uptime and the restart cap (SPEC section 2).
mod util;
use std::time::Duration;
use util::*;

/// Runs `script` (which appends a line to `runs` each start) and returns the
/// number of runs and keepup's outcome.
fn runs_of(args: &[&str], script: &str) -> (usize, Finished) {
    let dir = TempDir::new();
    let runs = dir.s("runs");
    let f = keepup(with_sh(args, &format!("echo run >> {runs}; {script}"))).run();
    (count_lines(&dir.path("runs")), f)
}

#[test]
fn always_restarts_success_and_failure() {
    let (n, f) = runs_of(&["--delay", "10ms", "--max-restarts", "3"], "exit 0");
    f.expect_code(0);
    assert_eq!(n, 4, "{f}");
    let (n, f) = runs_of(&["--delay", "10ms", "--max-restarts", "3"], "exit 4");
    f.expect_code(4);
    assert_eq!(n, 4, "{f}");
}

#[test]
fn on_failure_stops_on_success_codes() {
    let (n, f) = runs_of(&["--restart", "on-failure", "--delay", "10ms"], "exit 0");
    f.expect_code(0);
    assert_eq!(n, 1);
    let (n, f) = runs_of(
        &[
            "--restart",
            "on-failure",
            "--success-exit",
            "0,3",
            "--delay",
            "10ms",
        ],
        "exit 3",
    );
    f.expect_code(3);
    assert_eq!(n, 1);
    let (n, f) = runs_of(
        &[
            "--restart",
            "on-failure",
            "--delay",
            "10ms",
            "--max-restarts",
            "2",
        ],
        "exit 3",
    );
    f.expect_code(3);
    assert_eq!(n, 3);
    // A signal death is a failure.
    let (n, f) = runs_of(
        &[
            "--restart",
            "on-failure",
            "--delay",
            "10ms",
            "--max-restarts",
            "1",
        ],
        "kill -KILL $$",
    );
    f.expect_code(137);
    assert_eq!(n, 2);
}

#[test]
fn never_runs_once() {
    let (n, f) = runs_of(&["--restart", "never"], "exit 5");
    f.expect_code(5);
    assert_eq!(n, 1);
    f.check(
        f.stderr.contains("not restarting (--restart never)"),
        "reason logged",
    );
}

#[test]
fn max_restarts_zero_never_restarts() {
    let (n, f) = runs_of(&["--max-restarts", "0"], "exit 6");
    f.expect_code(6);
    assert_eq!(n, 1);
}

#[test]
fn unlimited_keeps_going() {
    let dir = TempDir::new();
    let runs = dir.path("runs");
    let k = keepup(with_sh(
        &[
            "--delay",
            "1ms",
            "--max-delay",
            "1ms",
            "--max-restarts",
            "unlimited",
        ],
        &format!("echo run >> {}; exit 1", runs.display()),
    ))
    .spawn();
    // Far past the default cap of 10.
    wait_for("30 runs", Duration::from_secs(20), || {
        count_lines(&runs) >= 30
    });
    k.signal(libc::SIGTERM);
    let f = k.finish();
    // TERM lands during a run (143) or during the backoff (the last status, 1).
    f.check(
        matches!(f.code, Some(1) | Some(143)),
        "last status after stop",
    );
}

/// The child writes a timestamp at each start; the gaps between starts follow
/// `delay * 2^(k-1)` capped at `--max-delay`.
#[test]
fn backoff_gaps_double_up_to_the_cap() {
    let dir = TempDir::new();
    let stamps = dir.s("stamps");
    let f = keepup(with_sh(
        &[
            "--delay",
            "200ms",
            "--max-delay",
            "800ms",
            "--max-restarts",
            "4",
        ],
        &format!("date +%s.%N >> {stamps}; exit 1"),
    ))
    .run();
    f.expect_code(1);
    let t: Vec<f64> = read(&dir.path("stamps"))
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(t.len(), 5, "{f}");
    let expected = [0.2, 0.4, 0.8, 0.8];
    for (i, want) in expected.iter().enumerate() {
        let gap = t[i + 1] - t[i];
        assert!(
            gap >= want * 0.95,
            "gap {i} was {gap:.3}s, expected at least {want}s\n{f}"
        );
        assert!(
            gap <= want + 1.0,
            "gap {i} was {gap:.3}s, expected about {want}s\n{f}"
        );
    }
    f.check(
        f.stderr.contains("(unstable 2/4); restarting in 400ms"),
        "event line",
    );
}

/// A run that lasts past `--min-uptime` resets the unstable counter: with a
/// cap of 3, two quick crashes, one stable run, then four quick crashes give
/// seven runs (without the reset it would be five).
#[test]
fn stable_run_resets_the_counter() {
    let dir = TempDir::new();
    let runs = dir.s("runs");
    let script = format!(
        "echo run >> {runs}; n=$(wc -l < {runs}); if [ $n -eq 3 ]; then sleep 0.6; fi; exit 1"
    );
    let f = keepup(with_sh(
        &[
            "--delay",
            "10ms",
            "--min-uptime",
            "400ms",
            "--max-restarts",
            "3",
        ],
        &script,
    ))
    .run();
    f.expect_code(1);
    assert_eq!(count_lines(&dir.path("runs")), 7, "{f}");
}

/// The binary disappearing after the first start is an unstable run like any
/// other, not an exit.
#[test]
fn exec_failure_after_first_start_is_an_unstable_run() {
    let dir = TempDir::new();
    let prog = dir.path("prog");
    std::fs::write(
        &prog,
        format!("#!/bin/sh\nrm -f {}\nexit 1\n", prog.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    let f = keepup([
        "--delay",
        "10ms",
        "--max-restarts",
        "2",
        "--",
        prog.to_str().unwrap(),
    ])
    .run();
    f.expect_code(127);
    f.check(
        f.stderr.matches("cannot run").count() == 2,
        "two failed restarts logged",
    );
    f.check(
        f.stderr
            .contains("gave up after 2 unstable restarts; last exit: code 127"),
        "give-up",
    );
}

/// A binary removed during a deploy while keepup restarts it with no
/// delay: each failed start is an unstable run, and keepup supervises on
/// (it used to recurse until the stack overflowed, within a second).
#[test]
fn binary_removed_while_restarting_never_crashes_keepup() {
    let dir = TempDir::new();
    let bin = dir.path("s");
    std::fs::copy("/bin/sleep", &bin).unwrap();
    let log = dir.path("a.log");
    let k = keepup([
        "--delay",
        "0s",
        "--max-restarts",
        "unlimited",
        "--log",
        log.to_str().unwrap(),
        "-q",
        "--",
        bin.to_str().unwrap(),
        "0.2",
    ])
    .spawn();
    wait_for("first start", Duration::from_secs(10), || {
        read(&log).contains("started pid")
    });
    std::fs::remove_file(&bin).unwrap();
    wait_for("failed starts", Duration::from_secs(10), || {
        read(&log).matches("could not start").count() >= 1000
    });
    assert!(alive(k.pid()), "keepup died");
    k.signal(libc::SIGTERM);
    let f = k.finish();
    f.expect_code(127);
    f.check(
        read(&log).contains("received SIGTERM; stopping"),
        "stopped by the signal",
    );
}
