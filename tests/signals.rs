//! Signal forwarding, the stop sequence and signal state passed to the child
//! (SPEC section 4).
mod util;
use std::time::Duration;
use util::*;

/// A child that logs each signal it gets to `log` and keeps running (or exits
/// 0 on TERM/INT when `exit_on_stop`).
fn trapping_child(log: &str, exit_on_stop: bool) -> String {
    let stop = if exit_on_stop { "exit 0" } else { ":" };
    format!(
        "trap 'echo TERM >> {log}; {stop}' TERM; trap 'echo INT >> {log}; {stop}' INT; \
         trap 'echo HUP >> {log}' HUP; trap 'echo USR1 >> {log}' USR1; trap 'echo USR2 >> {log}' USR2; \
         echo ready >> {log}; while :; do sleep 0.05; done"
    )
}

fn started(log: &std::path::Path) {
    wait_for("child ready", Duration::from_secs(10), || {
        read(log).contains("ready")
    });
}

#[test]
fn term_and_int_are_forwarded_and_stop_without_restart() {
    for (sig, name) in [(libc::SIGTERM, "TERM"), (libc::SIGINT, "INT")] {
        let dir = TempDir::new();
        let log = dir.s("log");
        let k = keepup(with_sh(&["--delay", "10ms"], &trapping_child(&log, true))).spawn();
        started(&dir.path("log"));
        k.signal(sig);
        let f = k.finish();
        f.expect_code(0);
        assert_eq!(read(&dir.path("log")).matches(name).count(), 1, "{f}");
        assert_eq!(
            read(&dir.path("log")).matches("ready").count(),
            1,
            "restarted\n{f}"
        );
        f.check(
            f.stderr.contains(&format!("received SIG{name}; stopping")),
            "event",
        );
    }
}

#[test]
fn other_signals_are_forwarded_unchanged() {
    let dir = TempDir::new();
    let log = dir.s("log");
    let k = keepup(with_sh(&[], &trapping_child(&log, true))).spawn();
    started(&dir.path("log"));
    for (sig, name) in [
        (libc::SIGHUP, "HUP"),
        (libc::SIGUSR1, "USR1"),
        (libc::SIGUSR2, "USR2"),
    ] {
        k.signal(sig);
        wait_for(name, Duration::from_secs(10), || {
            read(&dir.path("log")).contains(name)
        });
    }
    assert!(alive(k.pid()), "keepup must not react to them itself");
    assert_eq!(
        read(&dir.path("log")).matches("ready").count(),
        1,
        "no restart"
    );
    k.signal(libc::SIGTERM);
    k.finish().expect_code(0);
}

#[test]
fn kill_timeout_escalates_to_sigkill() {
    let dir = TempDir::new();
    let log = dir.path("a.log");
    let k = keepup(with_sh(
        &["--kill-timeout", "500ms", "--log", log.to_str().unwrap()],
        "trap '' TERM; echo ready; while :; do sleep 0.05; done",
    ))
    .spawn();
    // The child ignores TERM; sleep processes in its group die of it, which is fine.
    wait_for("the child's trap is set", Duration::from_secs(10), || {
        read(&log).contains(" out ready")
    });
    let sent = std::time::Instant::now();
    k.signal(libc::SIGTERM);
    let f = k.finish();
    let took = sent.elapsed();
    f.expect_code(137);
    f.check(
        took >= Duration::from_millis(450),
        "waited for the kill timeout",
    );
    f.check(took < Duration::from_secs(5), "but not much longer");
    f.check(
        f.stderr
            .contains("did not stop within 500ms; sending SIGKILL"),
        "event",
    );
}

#[test]
fn second_term_kills_at_once() {
    let dir = TempDir::new();
    let log = dir.s("log");
    let events = dir.path("k.log");
    let k = keepup(with_sh(
        &["--kill-timeout", "60s", "--log", events.to_str().unwrap()],
        &format!("trap '' TERM INT; echo ready >> {log}; while :; do sleep 0.05; done"),
    ))
    .spawn();
    started(&dir.path("log"));
    k.signal(libc::SIGTERM);
    wait_for("the first signal handled", Duration::from_secs(10), || {
        read(&events).contains("received SIGTERM; stopping")
    });
    let sent = std::time::Instant::now();
    k.signal(libc::SIGINT);
    let f = k.finish();
    f.expect_code(137);
    f.check(sent.elapsed() < Duration::from_secs(5), "killed at once");
    f.check(
        f.stderr.contains("received SIGINT again; sending SIGKILL"),
        "event",
    );
}

#[test]
fn custom_stop_signal() {
    let dir = TempDir::new();
    let log = dir.s("log");
    // --stop-signal applies to stops keepup decides on (here the memory limit
    // is not set, so check through the leftover path): the child exits on its
    // own and its leftover gets INT.
    let script = format!(
        "sh -c 'trap \"echo USR1 >> {log}; exit 0\" USR1; trap \"echo TERM >> {log}; exit 0\" TERM; while :; do sleep 0.05; done' & sleep 0.3; exit 0"
    );
    let f = keepup(with_sh(
        &["--restart", "never", "--stop-signal", "USR1"],
        &script,
    ))
    .run();
    f.expect_code(0);
    assert_eq!(read(&dir.path("log")).trim(), "USR1", "{f}");
}

/// Each step of the stop sequence reaches a leftover once, even when it is
/// also a re-parented orphan and other orphans are reaped meanwhile.
#[test]
fn leftover_gets_the_stop_signal_once() {
    let dir = TempDir::new();
    let log = dir.s("log");
    // The leftover counts every TERM and ends on its own after 1 s; an
    // orphan that ignores TERM ends at 0.3 s and is reaped by keepup
    // during the clean-up.
    let script = format!(
        "sh -c 'trap \"echo T >> {log}\" TERM; i=0; while [ $i -lt 20 ]; do sleep 0.05; i=$((i+1)); done' & \
         sh -c 'trap \"\" TERM; sleep 0.3' & sleep 0.2; exit 0"
    );
    let f = keepup(with_sh(&["--restart", "never"], &script)).run();
    f.expect_code(0);
    assert_eq!(read(&dir.path("log")), "T\n", "{f}");
}

/// The child starts with the mask and ignored signals keepup inherited, and
/// nothing keepup itself blocks (SIGTTOU, SIGTTIN) or catches.
#[test]
fn signal_state_is_restored_in_child() {
    // No shell in between: dash clears the mask at start.
    let mut k = keepup(["--restart", "never", "--", "cat", "/proc/self/status"]);
    use std::os::unix::process::CommandExt;
    unsafe {
        k.command().pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR2);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let f = k.run();
    f.expect_code(0);
    let text = f.stdout.clone();
    let field = |name: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    let bit = |sig: i32| 1u64 << (sig - 1);
    assert_eq!(field("SigBlk:"), bit(libc::SIGUSR2), "mask\n{text}");
    let ign = field("SigIgn:");
    assert_ne!(ign & bit(libc::SIGHUP), 0, "HUP stays ignored\n{text}");
    assert_eq!(ign & bit(libc::SIGTERM), 0, "TERM is not ignored\n{text}");
    assert_eq!(ign & bit(libc::SIGINT), 0, "INT is not ignored\n{text}");
}

/// A python child that notes every signal it gets as `got N` in `log`.
fn noting_child(log: &str) -> String {
    format!(
        "import os, signal, time\n\
         fd = os.open('{log}', os.O_WRONLY | os.O_APPEND | os.O_CREAT)\n\
         def note(n, _):\n    os.write(fd, b'got %d\\n' % n)\n    \
             if n == signal.SIGTERM: os._exit(0)\n\
         for s in signal.valid_signals():\n    \
             try: signal.signal(s, note)\n    \
             except (OSError, ValueError): pass\n\
         os.write(fd, b'ready\\n')\n\
         while True: time.sleep(1)\n"
    )
}

/// The signals keepup must pass on unchanged (SPEC 4): every catchable one
/// but those it acts on itself, real-time signals included. Listed here
/// from the spec, not from keepup's own table.
fn forwarded_signals() -> Vec<i32> {
    let own = [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGFPE,
        libc::SIGILL,
        libc::SIGTRAP,
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGCHLD,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
    ];
    (1..32)
        .filter(|s| !own.contains(s))
        .chain(libc::SIGRTMIN()..=libc::SIGRTMAX())
        .collect()
}

#[test]
fn every_other_signal_is_forwarded_and_none_kills_keepup() {
    let dir = TempDir::new();
    let log = dir.s("got");
    let k = keepup(["--", "python3", "-c", &noting_child(&log)]).spawn();
    wait_for("child ready", Duration::from_secs(10), || {
        read(&dir.path("got")).contains("ready")
    });
    for sig in forwarded_signals() {
        k.signal(sig);
        wait_for(
            &format!("signal {sig} at the child"),
            Duration::from_secs(5),
            || read(&dir.path("got")).contains(&format!("got {sig}\n")),
        );
        assert!(alive(k.pid()), "keepup died of signal {sig}");
    }
    assert_eq!(
        read(&dir.path("got")).matches("ready").count(),
        1,
        "restarted"
    );
    k.signal(libc::SIGTERM);
    k.finish().expect_code(0);
}

fn state_of(pid: i32) -> String {
    stat_field(pid, 0).unwrap_or_default()
}

#[test]
fn job_control_signals_stop_the_child_then_keepup() {
    for sig in [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU] {
        let dir = TempDir::new();
        let k = keepup(with_sh(
            &[],
            &format!("echo $$ > {}; exec sleep 100", dir.s("cpid")),
        ))
        .spawn();
        wait_for("child pid", Duration::from_secs(10), || {
            dir.path("cpid").exists() && !read(&dir.path("cpid")).is_empty()
        });
        let child = pid_from(&dir.path("cpid"));
        k.signal(sig);
        wait_for("child and keepup stopped", Duration::from_secs(5), || {
            state_of(child) == "T" && state_of(k.pid()) == "T"
        });
        k.signal(libc::SIGCONT);
        wait_for("both running again", Duration::from_secs(5), || {
            state_of(child) == "S" && state_of(k.pid()) == "S"
        });
        k.signal(libc::SIGTERM);
        let f = k.finish();
        f.expect_code(143);
        f.check(!f.stderr.contains("exited"), "a stop is not an exit");
    }
}

/// SPEC 4: the child starts with the signal dispositions keepup inherited;
/// std ignores SIGPIPE before main, which must not leak into the child,
/// nor hide an inherited SIG_IGN.
#[test]
fn sigpipe_disposition_is_inherited() {
    const SIGPIPE_BIT: u64 = 1 << (libc::SIGPIPE - 1);
    let ignored_mask = |out: &str| -> u64 {
        let line = out
            .lines()
            .find(|l| l.starts_with("SigIgn:"))
            .unwrap_or_else(|| panic!("no SigIgn in:\n{out}"));
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    // The test harness starts keepup with SIGPIPE at its default.
    let f = keepup(["--restart", "never", "grep", "SigIgn", "/proc/self/status"]).run();
    f.expect_code(0);
    assert_eq!(ignored_mask(&f.stdout) & SIGPIPE_BIT, 0, "{f}");
    // A parent that ignores SIGPIPE: the child must ignore it too.
    let script = format!(
        "import os, signal\n\
         signal.signal(signal.SIGPIPE, signal.SIG_IGN)\n\
         os.execv('{BIN}', ['keepup', '--restart', 'never', 'grep', 'SigIgn', '/proc/self/status'])"
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .env("KEEPUP_HOME", TempDir::new().0.as_os_str())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_ne!(ignored_mask(&stdout) & SIGPIPE_BIT, 0, "{stdout}");
}

/// keepup's own write to a closed stdout raises SIGPIPE in keepup: that one
/// is not the child's and is not forwarded.
#[test]
fn own_broken_pipe_is_not_forwarded() {
    let dir = TempDir::new();
    let noted = dir.s("noted");
    let log = dir.path("a.log");
    let mut k = keepup(with_sh(
        &["-t", "--restart", "never", "--log", log.to_str().unwrap()],
        &format!(
            "trap 'echo PIPE >> {noted}' PIPE; for i in 1 2 3 4 5 6 7 8; do echo line $i; sleep 0.05; done"
        ),
    ));
    // keepup echoes the child's lines (-t) to a pipe nobody reads.
    let (r, w) = std::io::pipe().unwrap();
    drop(r);
    k.command().stdout(w).stderr(std::process::Stdio::null());
    let mut child = k.command().spawn().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(read(&log).contains("out line 8"), "{}", read(&log));
    assert!(
        !dir.path("noted").exists(),
        "the child got keepup's own SIGPIPE"
    );
}

/// The longest kill timeout there is: a stop still works, no overflow.
#[test]
fn longest_kill_timeout_stops_cleanly() {
    let dir = TempDir::new();
    let log = dir.path("a.log");
    let k = keepup([
        "--kill-timeout",
        "30days",
        "--log",
        log.to_str().unwrap(),
        "--",
        "sleep",
        "60",
    ])
    .spawn();
    wait_for("started", Duration::from_secs(10), || {
        read(&log).contains("started pid")
    });
    k.signal(libc::SIGTERM);
    k.finish().expect_code(143);
}
