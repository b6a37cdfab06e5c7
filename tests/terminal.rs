//! keepup on a terminal: the child's group gets the foreground, Ctrl-C
//! reaches it exactly once, and the terminal is given back (SPEC section 4).
//! A pseudo-terminal comes from `script` (util-linux).
mod util;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;
use util::*;

/// Runs `shell_line` on a fresh pty; returns the process and a writer to type into it.
fn on_pty(shell_line: &str, home: &TempDir) -> Option<std::process::Child> {
    let child = default_signals(&mut Command::new("script"))
        .env("KEEPUP_HOME", &home.0)
        .args(["-qefc", shell_line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    match child {
        Ok(c) => Some(c),
        Err(e) => {
            cannot_run(&format!("cannot run 'script' for a pseudo-terminal: {e}"));
            None
        }
    }
}

fn finish(mut c: std::process::Child) -> String {
    drop(c.stdin.take());
    let ok = holds_within(Duration::from_secs(20), || {
        c.try_wait().ok().flatten().is_some()
    });
    if !ok {
        let _ = c.kill();
    }
    let out = c.wait_with_output().unwrap();
    assert!(
        ok,
        "script did not finish:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).replace('\r', "")
}

const STAT: &str = "set -- $(cat /proc/$$/stat)";

#[test]
fn child_gets_the_foreground_and_ctrl_c_stops_without_restart() {
    let dir = TempDir::new();
    let ready = dir.s("ready");
    let child = format!("{STAT}; echo child pgrp=$5 tpgid=$8; echo x > {ready}; exec sleep 100");
    let line = format!(
        "{BIN} --delay 10ms -- sh -c '{child}'; echo keepup-status=$?; {STAT}; echo shell pgrp=$5 tpgid=$8"
    );
    let Some(mut c) = on_pty(&line, &dir) else {
        return;
    };
    wait_for("child ready", Duration::from_secs(10), || {
        dir.path("ready").exists()
    });
    c.stdin.as_mut().unwrap().write_all(b"\x03").unwrap();
    let out = finish(c);
    let pair = |who: &str| -> (String, String) {
        let l = out
            .lines()
            .find(|l| l.starts_with(who))
            .unwrap_or_else(|| panic!("no '{who}' line in:\n{out}"));
        let v: Vec<&str> = l.split_whitespace().collect();
        (
            v[1].trim_start_matches("pgrp=").into(),
            v[2].trim_start_matches("tpgid=").into(),
        )
    };
    let (pg, tp) = pair("child ");
    assert_eq!(pg, tp, "child is not the foreground group:\n{out}");
    assert!(
        out.contains("keepup-status=130"),
        "Ctrl-C should end keepup with 130:\n{out}"
    );
    assert_eq!(
        out.matches("started pid").count(),
        1,
        "restarted after Ctrl-C:\n{out}"
    );
    let (pg, tp) = pair("shell ");
    assert_eq!(pg, tp, "terminal not given back:\n{out}");
}

#[test]
fn ctrl_c_reaches_the_child_once() {
    let dir = TempDir::new();
    let (log, ppid) = (dir.s("log"), dir.s("ppid"));
    let child = format!(
        "echo $PPID > {ppid}; trap \"echo int >> {log}\" INT; while :; do sleep 0.05; done"
    );
    let line = format!("{BIN} -- sh -c '{child}'");
    let Some(mut c) = on_pty(&line, &dir) else {
        return;
    };
    let keepup = pid_from(&dir.path("ppid"));
    c.stdin.as_mut().unwrap().write_all(b"\x03").unwrap();
    wait_for("INT reached child", Duration::from_secs(10), || {
        dir.path("log").exists()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        read(&dir.path("log")),
        "int\n",
        "child got Ctrl-C more than once"
    );
    unsafe { libc::kill(keepup, libc::SIGTERM) };
    finish(c);
}

/// In the background (npm, CI, `&`), keepup never touches the terminal.
#[test]
fn background_keepup_leaves_the_terminal_alone() {
    let dir = TempDir::new();
    let out = dir.s("out");
    let child = format!("{STAT}; echo child pgrp=$5 tpgid=$8 > {out}");
    let line = format!(
        "{BIN} --restart never -- sh -c '{child}' & wait; {STAT}; echo shell pgrp=$5 tpgid=$8"
    );
    let Some(c) = on_pty(&line, &dir) else { return };
    let shell = finish(c);
    let text = read(&dir.path("out"));
    let v: Vec<&str> = text.split_whitespace().collect();
    assert_ne!(
        v[1].trim_start_matches("pgrp="),
        v[2].trim_start_matches("tpgid="),
        "took the terminal:\n{text}"
    );
    let l = shell.lines().find(|l| l.starts_with("shell ")).unwrap();
    let v: Vec<&str> = l.split_whitespace().collect();
    assert_eq!(
        v[1].trim_start_matches("pgrp="),
        v[2].trim_start_matches("tpgid="),
        "{shell}"
    );
}

/// Inside an npm script keepup shares npm's foreground group but leaves the
/// terminal to npm (SPEC 4): the child is not made the foreground group.
#[test]
fn inside_npm_the_terminal_stays_npms() {
    let dir = TempDir::new();
    let out = dir.s("out");
    let child = format!("{STAT}; echo child pgrp=$5 tpgid=$8 > {out}");
    let line = format!("npm_lifecycle_event=start {BIN} --restart never -- sh -c '{child}'");
    let Some(c) = on_pty(&line, &dir) else { return };
    finish(c);
    let text = read(&dir.path("out"));
    let v: Vec<&str> = text.split_whitespace().collect();
    assert_ne!(
        v[1].trim_start_matches("pgrp="),
        v[2].trim_start_matches("tpgid="),
        "took the terminal inside npm:\n{text}"
    );
}

/// Job control on a terminal (SPEC 4): Ctrl-Z stops the child, which holds
/// the foreground, and keepup follows it so the shell sees the job stop;
/// `fg` continues both and the child's group takes the terminal again.
#[test]
fn ctrl_z_stops_child_and_keepup_and_fg_continues_both() {
    let dir = TempDir::new();
    let (kpid, cpid) = (dir.s("kpid"), dir.s("cpid"));
    let child = format!(
        "echo $PPID > {kpid}.t; mv {kpid}.t {kpid}; echo $$ > {cpid}.t; mv {cpid}.t {cpid}; exec sleep 100"
    );
    let Some(mut c) = on_pty("bash --norc --noprofile -i", &dir) else {
        return;
    };
    let mut type_in = |text: &str| {
        c.stdin
            .as_mut()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        c.stdin.as_mut().unwrap().flush().unwrap();
    };
    type_in(&format!("{BIN} -- sh -c '{child}'\n"));
    wait_for("child started", Duration::from_secs(10), || {
        dir.path("kpid").exists() && dir.path("cpid").exists()
    });
    let (k, ch) = (pid_from(&dir.path("kpid")), pid_from(&dir.path("cpid")));
    let state = |pid| stat_field(pid, 0).unwrap_or_default();
    // After the state: pgrp is field 2, tpgid (the terminal's foreground
    // group) field 5.
    let holds_terminal =
        |pid| stat_field(pid, 2).is_some() && stat_field(pid, 2) == stat_field(pid, 5);
    wait_for(
        "the child holds the terminal",
        Duration::from_secs(10),
        || holds_terminal(ch),
    );
    type_in("\x1a");
    wait_for("child and keepup stopped", Duration::from_secs(10), || {
        state(ch) == "T" && state(k) == "T"
    });
    type_in("fg\n");
    wait_for("both continued", Duration::from_secs(10), || {
        state(ch) == "S" && state(k) == "S"
    });
    wait_for(
        "the child holds the terminal again",
        Duration::from_secs(10),
        || holds_terminal(ch),
    );
    type_in("\x03");
    wait_for("keepup ended", Duration::from_secs(10), || !alive(k));
    type_in("echo keepup-status=$?\nexit\n");
    let out = finish(c);
    assert!(out.contains("keepup-status=130"), "{out}");
    assert_eq!(out.matches("started pid").count(), 1, "restarted:\n{out}");
}
