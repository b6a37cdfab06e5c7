//! Process groups, leftovers, the subreaper and parent death: nothing keepup
//! started outlives it, and no zombie stays (SPEC section 4).
mod util;
use std::time::Duration;
use util::*;

fn gone(pid: i32) -> bool {
    holds_within(Duration::from_secs(10), || !alive(pid))
}

#[test]
fn grandchildren_are_stopped_with_the_group() {
    let dir = TempDir::new();
    let gc = dir.s("gc");
    // npm start -> sh -> node: a chain of shells, the last one sleeping.
    let k = keepup(with_sh(
        &[],
        &format!("sh -c 'sleep 100 & echo $! > {gc}; wait' ; exit 1"),
    ))
    .spawn();
    let pid = pid_from(&dir.path("gc"));
    assert!(alive(pid));
    k.signal(libc::SIGTERM);
    k.finish();
    assert!(gone(pid), "grandchild {pid} survived keepup");
}

#[test]
fn setsid_grandchild_is_stopped_too() {
    let dir = TempDir::new();
    let gc = dir.s("gc");
    let k = keepup(with_sh(
        &[],
        &format!("setsid sleep 100 & echo $! > {gc}; wait"),
    ))
    .spawn();
    let pid = pid_from(&dir.path("gc"));
    wait_for(
        "grandchild in its own session",
        Duration::from_secs(10),
        || stat_field(pid, 2).and_then(|g| g.parse::<i32>().ok()) == Some(pid),
    );
    k.signal(libc::SIGTERM);
    k.finish();
    assert!(gone(pid), "setsid grandchild {pid} survived keepup");
}

/// Leftovers of a run that ended on its own are stopped before the restart,
/// so nothing of the old run still holds a port.
#[test]
fn leftovers_are_stopped_before_each_restart() {
    let dir = TempDir::new();
    let (gcs, bad) = (dir.s("gcs"), dir.s("bad"));
    let script = format!(
        "for p in $(cat {gcs} 2>/dev/null); do kill -0 $p 2>/dev/null && echo $p >> {bad}; done; \
         sleep 100 & echo $! >> {gcs}; setsid sleep 100 & echo $! >> {gcs}; exit 1"
    );
    let f = keepup(with_sh(
        &["--delay", "10ms", "--max-restarts", "2"],
        &script,
    ))
    .run();
    f.expect_code(1);
    assert_eq!(
        read(&dir.path("bad")),
        "",
        "old run's processes alive at restart\n{f}"
    );
    let pids: Vec<i32> = read(&dir.path("gcs"))
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 6);
    for p in pids {
        assert!(gone(p), "{p} survived");
    }
}

#[test]
fn orphaned_zombies_are_reaped() {
    let dir = TempDir::new();
    let gc = dir.s("gc");
    // The inner shell exits at once, orphaning a sleep that then exits: it is
    // re-parented to keepup, which must reap it.
    let k = keepup(with_sh(
        &[],
        &format!("sh -c 'sleep 2 & echo $! > {gc}'; sleep 100"),
    ))
    .spawn();
    let pid = pid_from(&dir.path("gc"));
    // Re-parented to keepup, not to init: only a subreaper gets it.
    wait_for(
        "orphan re-parented to keepup",
        Duration::from_secs(10),
        || stat_field(pid, 1).and_then(|p| p.parse::<i32>().ok()) == Some(k.pid()),
    );
    wait_for("orphan reaped (no zombie)", Duration::from_secs(10), || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    });
    k.signal(libc::SIGTERM);
    k.finish();
}

#[test]
fn kill_9_of_keepup_leaves_no_child() {
    let dir = TempDir::new();
    let pidf = dir.s("pid");
    let k = keepup(with_sh(&[], &format!("echo $$ > {pidf}; exec sleep 100"))).spawn();
    let pid = pid_from(&dir.path("pid"));
    assert!(alive(pid));
    k.signal(libc::SIGKILL);
    let f = k.finish();
    assert_eq!(f.signal, Some(libc::SIGKILL));
    assert!(gone(pid), "child {pid} outlived kill -9 of keepup");
}

#[test]
fn no_group_signals_only_the_child() {
    let dir = TempDir::new();
    let pidf = dir.s("pid");
    let k = keepup(with_sh(
        &["--no-group"],
        &format!("echo $$ > {pidf}; exec sleep 100"),
    ))
    .spawn();
    let pid = pid_from(&dir.path("pid"));
    // Same process group as keepup.
    assert_eq!(stat_field(pid, 2), stat_field(k.pid(), 2));
    k.signal(libc::SIGTERM);
    k.finish().expect_code(143);
    assert!(gone(pid));
}

/// The default: a keepup started with `&` from a shell that exits stays up.
/// Inside an npm script (npm_lifecycle_event set) it stops with its parent.
#[test]
fn parent_death_only_inside_npm_scripts() {
    for (npm, should_survive) in [(false, true), (true, false)] {
        let dir = TempDir::new();
        let (kpid, cpid) = (dir.s("kpid"), dir.s("cpid"));
        let env = if npm {
            "npm_lifecycle_event=start "
        } else {
            ""
        };
        // A parent shell that starts keepup in the background and exits.
        let parent = format!(
            "{env}{} -- sh -c 'echo $$ > {cpid}; exec sleep 100' 2>/dev/null & echo $! > {kpid}; sleep 0.5",
            BIN
        );
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(&parent)
            .env("KEEPUP_HOME", &dir.0)
            .status()
            .unwrap();
        assert!(status.success());
        let k = pid_from(&dir.path("kpid"));
        let c = pid_from(&dir.path("cpid"));
        if should_survive {
            std::thread::sleep(Duration::from_millis(300));
            assert!(alive(k) && alive(c), "keepup or child died with the shell");
            unsafe { libc::kill(k, libc::SIGTERM) };
            assert!(gone(k) && gone(c));
        } else {
            assert!(gone(k), "keepup {k} outlived its npm parent");
            assert!(gone(c), "child {c} outlived its npm parent");
        }
    }
}
