//! Fault injection: keepup keeps supervising whatever its child, its disk or
//! its signals do. The slow ones (10-minute soak) live in tests/soak.rs
//! behind `make soak`.
mod util;
use std::time::{Duration, Instant};
use util::*;

/// A log on a tiny tmpfs that fills up: lines are dropped and counted while
/// it is full, the child never blocks, and once space is freed later lines
/// arrive and the drop is reported.
#[test]
fn full_disk_recovers_and_reports_dropped_lines() {
    let dir = TempDir::new();
    let mnt = dir.path("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let (go, done) = (dir.s("go"), dir.s("done"));
    let script = format!(
        "mount -t tmpfs -o size=64k none {m} && \
         head -c 60000 /dev/zero > {m}/filler && \
         {BIN} -q --log {m}/a.log --restart never -- sh -c '\
           i=0; while [ $i -lt 2000 ]; do echo \"before $i\"; i=$((i+1)); done; \
           touch {done}; while [ ! -e {go} ]; do sleep 0.02; done; \
           sleep 0.3; echo after-1; sleep 0.3; echo after-2; sleep 0.3; echo after-3' & \
         k=$!; n=0; while [ ! -e {done} ] && [ $n -lt 1000 ]; do sleep 0.02; n=$((n+1)); done; \
         [ -e {done} ] || echo child-blocked; rm {m}/filler; touch {go}; wait $k; echo status=$?; cat {m}/a.log",
        m = mnt.display()
    );
    let Some((_, stdout, stderr)) = in_mount_namespace(&script) else {
        return;
    };
    assert!(
        !stdout.contains("child-blocked"),
        "the child did not finish its 2000 writes to a full disk:\n{stdout}"
    );
    assert!(stdout.contains("status=0"), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(" out after-2"),
        "later lines must arrive:\n{stdout}"
    );
    let report = stdout
        .lines()
        .find(|l| l.contains("lines (No space left on device)"))
        .unwrap_or_else(|| panic!("no drop report:\n{stdout}"));
    let dropped: usize = report
        .split("dropped ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let before = stdout
        .lines()
        .filter(|l| l.contains(" out before "))
        .count();
    // Every line is either in the file or counted as dropped (one may be
    // split at the moment the disk filled).
    assert!(
        before + dropped >= 2000 && before + dropped <= 2001,
        "{before} written + {dropped} dropped"
    );
}

/// No descriptors left for a restart's pipes: keepup says so, backs off and
/// retries (no busy loop), and recovers once descriptors are available.
#[test]
fn no_file_descriptors_at_restart_backs_off() {
    if std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_err()
    {
        cannot_run("prlimit (util-linux) is not installed");
        return;
    }
    let dir = TempDir::new();
    let log = dir.path("a.log");
    let k = keepup(with_sh(
        &[
            "--log",
            log.to_str().unwrap(),
            "-q",
            "--delay",
            "50ms",
            "--max-delay",
            "400ms",
            "--max-restarts",
            "unlimited",
        ],
        "echo run; sleep 0.2; exit 1",
    ))
    .spawn();
    wait_for("first run", Duration::from_secs(10), || {
        read(&log).contains(" out run")
    });
    let fds = std::fs::read_dir(format!("/proc/{}/fd", k.pid()))
        .unwrap()
        .count();
    // Only the soft limit: raising a hard limit back needs CAP_SYS_RESOURCE.
    let limits = read(std::path::Path::new(&format!("/proc/{}/limits", k.pid())));
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .nth(3)
        .unwrap()
        .to_string();
    let limit = format!("--nofile={fds}:");
    let pid = k.pid().to_string();
    assert!(
        std::process::Command::new("prlimit")
            .args(["--pid", &pid, &limit])
            .status()
            .unwrap()
            .success()
    );
    wait_for("start failure reported", Duration::from_secs(10), || {
        read(&log).contains("Too many open files")
    });
    let before = switches(k.pid());
    std::thread::sleep(Duration::from_secs(1));
    let woke = switches(k.pid()) - before;
    assert!(
        woke < 40,
        "keepup spun while it could not start: {woke} wake-ups in 1s"
    );
    assert!(alive(k.pid()));
    assert!(
        std::process::Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={soft}:")])
            .status()
            .unwrap()
            .success()
    );
    let runs = read(&log).matches(" out run").count();
    wait_for("recovered", Duration::from_secs(10), || {
        read(&log).matches(" out run").count() > runs
    });
    k.signal(libc::SIGTERM);
    k.finish();
}

/// A child that closes stdout and stderr at once and lives on: keepup sees
/// end of file early and must neither spin nor lose the exit.
#[test]
fn child_closing_its_output_early() {
    let dir = TempDir::new();
    let log = dir.s("a.log");
    let k = keepup(with_sh(
        &["--log", &log, "--restart", "never", "-q"],
        "echo bye; exec >&- 2>&-; sleep 1; exit 5",
    ))
    .spawn();
    wait_for("line", Duration::from_secs(10), || {
        read(&dir.path("a.log")).contains(" out bye")
    });
    let before = switches(k.pid());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        switches(k.pid()) - before < 5,
        "keepup spun on closed pipes"
    );
    k.finish().expect_code(5);
}

/// 200 processes left behind by a child that exits: all stopped, quickly.
#[test]
fn child_forking_200_processes_then_exiting() {
    let dir = TempDir::new();
    let pids = dir.s("pids");
    let t = Instant::now();
    let f = keepup(with_sh(
        &["--restart", "never"],
        &format!(
            "i=0; while [ $i -lt 200 ]; do sleep 100 & echo $! >> {pids}; i=$((i+1)); done; exit 0"
        ),
    ))
    .run();
    f.expect_code(0);
    assert!(t.elapsed() < Duration::from_secs(10), "{f}");
    let all: Vec<i32> = read(&dir.path("pids"))
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(all.len(), 200);
    let survivors: Vec<&i32> = all.iter().filter(|&&p| alive(p)).collect();
    assert!(survivors.is_empty(), "{} survived", survivors.len());
}

/// 10,000 HUP/USR1/USR2 within a second: keepup stays up, the child stays
/// up and receives each kind, and TERM still stops it cleanly after.
#[test]
fn signal_storm() {
    let dir = TempDir::new();
    let log = dir.s("log");
    let script = format!(
        "trap 'echo HUP >> {log}' HUP; trap 'echo USR1 >> {log}' USR1; trap 'echo USR2 >> {log}' USR2; \
         trap 'exit 0' TERM; echo ready >> {log}; while :; do sleep 0.01; done"
    );
    let k = keepup(with_sh(&[], &script)).spawn();
    wait_for("ready", Duration::from_secs(10), || {
        read(&dir.path("log")).contains("ready")
    });
    let sigs = [libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2];
    let t = Instant::now();
    for i in 0..10_000 {
        unsafe { libc::kill(k.pid(), sigs[i % 3]) };
    }
    assert!(t.elapsed() < Duration::from_secs(5));
    wait_for("each kind forwarded", Duration::from_secs(10), || {
        let t = read(&dir.path("log"));
        t.contains("HUP") && t.contains("USR1") && t.contains("USR2")
    });
    assert!(alive(k.pid()));
    assert_eq!(
        read(&dir.path("log")).matches("ready").count(),
        1,
        "child restarted"
    );
    k.signal(libc::SIGTERM);
    k.finish().expect_code(0);
}

/// SIGSTOP is not an exit; SIGCONT resumes the same child.
#[test]
fn stopped_child_is_not_an_exit() {
    let dir = TempDir::new();
    let (pidf, ticks) = (dir.s("pid"), dir.s("ticks"));
    let k = keepup(with_sh(
        &[],
        &format!("echo $$ > {pidf}; while :; do echo t >> {ticks}; sleep 0.05; done"),
    ))
    .spawn();
    let pid = pid_from(&dir.path("pid"));
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    wait_for("stopped", Duration::from_secs(5), || {
        stat_field(pid, 0).as_deref() == Some("T")
    });
    let n = count_lines(&dir.path("ticks"));
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        count_lines(&dir.path("ticks")),
        n,
        "still writing while stopped?"
    );
    assert_eq!(
        read(&dir.path("pid")).trim(),
        pid.to_string(),
        "restarted while stopped"
    );
    unsafe { libc::kill(pid, libc::SIGCONT) };
    wait_for("resumed", Duration::from_secs(5), || {
        count_lines(&dir.path("ticks")) > n
    });
    assert_eq!(read(&dir.path("pid")).trim(), pid.to_string());
    k.signal(libc::SIGTERM);
    k.finish();
}

/// `kill -9` of keepup in its backoff, in its stop sequence, and while the
/// child writes: no process it started survives.
#[test]
fn kill_9_of_keepup_at_bad_moments_leaves_no_orphan() {
    // While the child writes as fast as it can.
    let dir = TempDir::new();
    let pidf = dir.s("pid");
    let k = keepup(with_sh(
        &["--log", &dir.s("a.log"), "-q"],
        &format!("echo $$ > {pidf}; exec yes"),
    ))
    .spawn();
    let pid = pid_from(&dir.path("pid"));
    wait_for("the child writing", Duration::from_secs(10), || {
        std::fs::metadata(dir.path("a.log")).is_ok_and(|m| m.len() > 100_000)
    });
    k.signal(libc::SIGKILL);
    k.finish();
    assert!(
        holds_within(Duration::from_secs(10), || !alive(pid)),
        "writer survived"
    );

    // During the stop sequence: the child ignores TERM.
    let dir = TempDir::new();
    let pidf = dir.s("pid");
    let log = dir.path("a.log");
    let k = keepup(with_sh(
        &["--kill-timeout", "30s", "--log", log.to_str().unwrap()],
        &format!("trap '' TERM; echo $$ > {pidf}; while :; do sleep 0.05; done"),
    ))
    .spawn();
    let pid = pid_from(&dir.path("pid"));
    k.signal(libc::SIGTERM);
    wait_for("in the stop sequence", Duration::from_secs(10), || {
        read(&log).contains("received SIGTERM; stopping")
    });
    assert!(alive(pid), "the child ignores TERM");
    k.signal(libc::SIGKILL);
    k.finish();
    assert!(
        holds_within(Duration::from_secs(10), || !alive(pid)),
        "child survived kill -9 during the stop"
    );

    // During the backoff: the previous run's leftovers were already stopped.
    let dir = TempDir::new();
    let pids = dir.s("pids");
    let k = keepup(with_sh(
        &["--delay", "30s", "--min-uptime", "1h"],
        &format!("sleep 100 & echo $! >> {pids}; exit 1"),
    ))
    .spawn();
    let gc = pid_from(&dir.path("pids"));
    wait_for(
        "leftover stopped before the backoff",
        Duration::from_secs(10),
        || !alive(gc),
    );
    assert!(
        children_of(k.pid()).is_empty(),
        "keepup has children during its backoff"
    );
    k.signal(libc::SIGKILL);
    k.finish();
}
