//! The memory limit over the whole process tree (SPEC section 3). Hogs are
//! small python3 programs that touch their memory so it is resident.
mod util;
use std::time::Duration;
use util::*;

/// A python3 command that holds `mib` MiB resident, writes its pid to
/// `pidfile` (appending) once it does, then sleeps.
fn hog(mib: u32, pidfile: &str) -> String {
    format!(
        "python3 -c \"import os, time; x = b'x' * ({mib} << 20); open('{pidfile}', 'a').write(str(os.getpid()) + chr(10)); time.sleep(100)\""
    )
}

#[test]
fn direct_child_over_the_limit_is_restarted() {
    let dir = TempDir::new();
    let (pids, log) = (dir.s("pids"), dir.s("a.log"));
    let home = TempDir::new();
    let k = keepup([
        "-n",
        "hog",
        "--max-memory",
        "40M",
        "--memory-interval",
        "50ms",
        "--min-uptime",
        "0s",
        "--log",
        &log,
        "-q",
        "--",
        "sh",
        "-c",
        &format!("exec {}", hog(80, &pids)),
    ])
    .env("KEEPUP_HOME", &home.0)
    .spawn();
    // The hog may be stopped before it writes its pid (it crosses the limit
    // while it allocates): wait on keepup's own account of it.
    wait_for("a restart after the limit", Duration::from_secs(20), || {
        let t = read(&dir.path("a.log"));
        t.contains("over limit") && t.matches("started pid").count() >= 2
    });
    // SPEC 7: status says why the run ended, not only its exit status.
    // Restarts this fast are merged into one state write per 50 ms, so
    // status may trail the log by that much.
    wait_for(
        "status to show the memory limit",
        Duration::from_secs(5),
        || {
            verb(&home.0, &["status", "--json"])
                .stdout
                .contains("\"last_exit\":\"memory limit\"")
        },
    );
    k.signal(libc::SIGTERM);
    k.finish();
    let text = read(&dir.path("a.log"));
    let line = text
        .lines()
        .find(|l| l.contains(" memory "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("MiB over limit 40.0MiB (pid "), "{line}");
    assert!(line.contains(" and 0 descendants)"), "{line}");
    assert!(
        text.contains("restarting in 0ms"),
        "immediate restart\n{text}"
    );
}

#[test]
fn grandchild_under_a_shell_counts() {
    let dir = TempDir::new();
    let (pids, log) = (dir.s("pids"), dir.s("a.log"));
    // sh stays as the parent (two commands), python is its child: only the
    // grandchild's memory can cross the limit.
    let script = format!("{}; true", hog(80, &pids));
    let k = keepup(with_sh(
        &[
            "--max-memory",
            "40M",
            "--memory-interval",
            "50ms",
            "--min-uptime",
            "0s",
            "--log",
            &log,
            "-q",
        ],
        &script,
    ))
    .spawn();
    wait_for("a restart after the limit", Duration::from_secs(20), || {
        let t = read(&dir.path("a.log"));
        t.contains("over limit") && t.matches("started pid").count() >= 2
    });
    k.signal(libc::SIGTERM);
    k.finish();
    let text = read(&dir.path("a.log"));
    let line = text
        .lines()
        .find(|l| l.contains(" memory "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains(" and 1 descendant)"),
        "sh and its python child: {line}"
    );
    for pid in read(&dir.path("pids"))
        .lines()
        .filter_map(|l| l.parse::<i32>().ok())
    {
        assert!(!alive(pid), "hog {pid} survived");
    }
}

#[test]
fn tree_over_the_limit_together() {
    let dir = TempDir::new();
    let (pids, log) = (dir.s("pids"), dir.s("a.log"));
    // Four processes of 20 MiB each: none over 50M alone, 80 MiB together.
    let h = hog(20, &pids);
    let script = format!("{h} & {h} & {h} & {h} & wait");
    let k = keepup(with_sh(
        &[
            "--max-memory",
            "50M",
            "--memory-interval",
            "50ms",
            "--min-uptime",
            "0s",
            "--log",
            &log,
            "-q",
        ],
        &script,
    ))
    .spawn();
    wait_for("restart of the whole tree", Duration::from_secs(20), || {
        count_lines(&dir.path("pids")) >= 8
            || read(&dir.path("a.log")).matches("started pid").count() >= 2
    });
    k.signal(libc::SIGTERM);
    k.finish();
    let text = read(&dir.path("a.log"));
    assert!(text.contains("over limit 50.0MiB"), "{text}");
}

#[test]
fn under_the_limit_is_left_alone() {
    let dir = TempDir::new();
    let (pids, log) = (dir.s("pids"), dir.s("a.log"));
    let k = keepup(with_sh(
        &[
            "--max-memory",
            "200M",
            "--memory-interval",
            "20ms",
            "--log",
            &log,
            "-q",
        ],
        &hog(10, &pids),
    ))
    .spawn();
    wait_for("hog started", Duration::from_secs(10), || {
        count_lines(&dir.path("pids")) >= 1
    });
    // Many intervals pass: 50 samples.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(count_lines(&dir.path("pids")), 1);
    k.signal(libc::SIGTERM);
    k.finish();
    assert!(!read(&dir.path("a.log")).contains(" memory "));
}

#[test]
fn fast_leak_ends_in_give_up() {
    let dir = TempDir::new();
    let pids = dir.s("pids");
    let f = keepup(with_sh(
        &[
            "--max-memory",
            "30M",
            "--memory-interval",
            "50ms",
            "--max-restarts",
            "1",
            "--min-uptime",
            "30s",
        ],
        &hog(60, &pids),
    ))
    .run();
    // sh runs python as its only command and may exec it; either way the
    // stop signal ends the run: 143.
    f.expect_code(143);
    f.check(f.stderr.matches("started pid").count() == 2, "two runs");
    f.check(
        f.stderr
            .contains("gave up after 1 unstable restarts; last exit: killed by SIGTERM"),
        "give-up line",
    );
}
