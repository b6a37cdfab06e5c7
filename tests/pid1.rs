//! keepup as PID 1 of a PID namespace, as in a container (`docker run`,
//! Kubernetes): exit status, signal handling, reaping and leftovers. Runs
//! under `unshare --pid --fork --mount-proc`; where that is not allowed the
//! tests fail under CI=true and elsewhere say they were skipped.
mod util;
use std::process::Command;
use std::time::Duration;
use util::*;

fn unshare_works() -> bool {
    let ok = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        cannot_run(
            "'unshare --pid --fork --mount-proc' is not available here (needs root and util-linux)",
        );
    }
    ok
}

/// `unshare ... keepup ARGS`, returning the harness handle (on unshare).
fn as_pid1(args: &[String]) -> Keepup {
    let mut k = keepup(Vec::<String>::new());
    let cmd = k.command();
    // Replace the program with unshare, keeping the cleaned environment.
    let mut real = Command::new("unshare");
    real.args(["--pid", "--fork", "--mount-proc", BIN])
        .args(args);
    for (key, val) in cmd.get_envs() {
        match val {
            Some(v) => real.env(key, v),
            None => real.env_remove(key),
        };
    }
    *cmd = real;
    k
}

/// keepup's pid as seen from here: the one child of unshare.
fn keepup_pid(unshare: i32) -> i32 {
    let mut pid = 0;
    wait_for("keepup under unshare", Duration::from_secs(10), || {
        pid = children_of(unshare).first().copied().unwrap_or(0);
        pid > 0
            && std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e.ends_with("keepup"))
    });
    pid
}

#[test]
fn exit_status_passes_through() {
    if !unshare_works() {
        return;
    }
    as_pid1(&with_sh(
        &["--restart", "never"],
        "[ $PPID -eq 1 ] || exit 99; exit 3",
    ))
    .run()
    .expect_code(3);
}

/// The kernel drops default-action signals sent to PID 1: keepup must have
/// handlers, forward TERM, and exit with the child's status.
#[test]
fn term_is_forwarded_as_pid1() {
    if !unshare_works() {
        return;
    }
    let dir = TempDir::new();
    let log = dir.s("log");
    let script = format!(
        "trap 'echo TERM >> {log}; exit 0' TERM; echo ready >> {log}; while :; do sleep 0.05; done"
    );
    let k = as_pid1(&with_sh(&[], &script)).spawn();
    let pid = keepup_pid(k.pid());
    wait_for("ready", Duration::from_secs(10), || {
        read(&dir.path("log")).contains("ready")
    });
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let f = k.finish();
    f.expect_code(0);
    assert_eq!(read(&dir.path("log")), "ready\nTERM\n", "{f}");

    // A child without a handler dies of the forwarded TERM: 143.
    let k = as_pid1(&with_sh(&[], "exec sleep 100")).spawn();
    let pid = keepup_pid(k.pid());
    wait_for("child started", Duration::from_secs(10), || {
        !children_of(pid).is_empty()
    });
    unsafe { libc::kill(pid, libc::SIGTERM) };
    k.finish().expect_code(143);
}

/// Orphans re-parented to PID 1 are reaped: no zombie in the namespace.
#[test]
fn zombies_are_reaped_as_pid1() {
    if !unshare_works() {
        return;
    }
    let script = "sh -c 'sleep 0.1 &'; sleep 0.8; \
                  if grep -q '^State:.*Z' /proc/[0-9]*/status; then exit 9; fi; exit 0";
    as_pid1(&with_sh(&["--restart", "never"], script))
        .run()
        .expect_code(0);
}

/// When PID 1 exits the kernel SIGKILLs everything left. keepup runs its stop
/// sequence on leftovers first, so their TERM handlers get to run.
#[test]
fn leftovers_get_a_graceful_stop_before_pid1_exits() {
    if !unshare_works() {
        return;
    }
    let dir = TempDir::new();
    let log = dir.s("log");
    let script = format!(
        "setsid sh -c 'trap \"echo graceful >> {log}; exit 0\" TERM; echo up >> {log}; while :; do sleep 0.05; done' & \
         while ! grep -q up {log} 2>/dev/null; do sleep 0.05; done; exit 4"
    );
    let f = as_pid1(&with_sh(&["--restart", "never"], &script)).run();
    f.expect_code(4);
    assert_eq!(read(&dir.path("log")), "up\ngraceful\n", "{f}");
}

/// `docker stop`: SIGTERM to PID 1, SIGKILL 10 s later. With a
/// `--kill-timeout` under that, keepup stops an app that ignores SIGTERM
/// itself and exits first; an app that handles SIGTERM exits cleanly.
#[test]
fn docker_stop_within_its_grace_period() {
    if !unshare_works() {
        return;
    }
    let dir = TempDir::new();
    let ready = dir.s("ready");
    let stubborn = format!("trap '' TERM; touch {ready}; while :; do sleep 0.05; done");
    let k = as_pid1(&with_sh(&["--kill-timeout", "1s"], &stubborn)).spawn();
    let pid = keepup_pid(k.pid());
    wait_for("ready", Duration::from_secs(10), || {
        dir.path("ready").exists()
    });
    let sent = std::time::Instant::now();
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let f = k.finish();
    f.expect_code(137);
    let took = sent.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(8),
        "took {took:?}\n{f}"
    );
}

/// LXC stops a container by sending SIGPWR to its init. As PID 1 the kernel
/// would drop it without a handler; keepup forwards it like any signal it
/// does not act on, and lives on.
#[test]
fn pwr_is_forwarded_as_pid1() {
    if !unshare_works() {
        return;
    }
    let dir = TempDir::new();
    let log = dir.s("log");
    let script = format!(
        "trap 'echo PWR >> {log}; exit 0' PWR; echo ready >> {log}; while :; do sleep 0.05; done"
    );
    let k = as_pid1(&with_sh(&["--restart", "never"], &script)).spawn();
    let pid = keepup_pid(k.pid());
    wait_for("ready", Duration::from_secs(10), || {
        read(&dir.path("log")).contains("ready")
    });
    unsafe { libc::kill(pid, libc::SIGPWR) };
    let f = k.finish();
    f.expect_code(0);
    assert_eq!(read(&dir.path("log")), "ready\nPWR\n", "{f}");
}
