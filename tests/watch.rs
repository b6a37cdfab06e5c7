//! Watch mode (SPEC 11), for real with inotify: one change, one restart; a
//! burst, one restart; new directories; atomic saves; what is ignored;
//! give-up waits for a change; no wake-up while nothing changes.
mod util;
use std::path::Path;
use std::time::{Duration, Instant};
use util::*;

fn starts(log: &Path) -> usize {
    read(log).matches("started pid").count()
}

/// A project: src/index.js, node_modules/x.js, .git/HEAD; a keepup that
/// watches it with `extra` options and logs into it (its own log, inside the
/// watched tree, must not restart it).
fn project(extra: &[&str]) -> (TempDir, Running) {
    let dir = TempDir::new();
    for d in ["src", "node_modules/dep", ".git"] {
        std::fs::create_dir_all(dir.path(d)).unwrap();
    }
    std::fs::write(dir.path("src/index.js"), "1").unwrap();
    let mut args = vec![
        "--watch",
        ".",
        "--log",
        "app.log",
        "--min-uptime",
        "1h",
        "--max-restarts",
        "2",
        "--delay",
        "10ms",
    ];
    args.extend_from_slice(extra);
    // The child writes to its log (inside the watched tree) and runs on.
    args.extend([
        "--",
        "sh",
        "-c",
        "echo running; while :; do sleep 1; echo tick; done",
    ]);
    let k = keepup(&args).current_dir(&dir.0).spawn();
    let log = dir.path("app.log");
    wait_for("first start", Duration::from_secs(10), || starts(&log) == 1);
    (dir, k)
}

/// Waits `window` and returns the number of starts then.
fn starts_after(log: &Path, window: Duration) -> usize {
    let since = Instant::now();
    wait_for("a quiet window", window + Duration::from_secs(5), || {
        since.elapsed() >= window
    });
    starts(log)
}

#[test]
fn one_change_one_restart_and_a_burst_one_restart() {
    let (dir, k) = project(&[]);
    let log = dir.path("app.log");
    std::fs::write(dir.path("src/index.js"), "2").unwrap();
    wait_for("a restart", Duration::from_secs(10), || starts(&log) == 2);
    assert!(
        read(&log).contains(" keepup sh: change: src/index.js; restarting"),
        "{}",
        read(&log)
    );
    // 20 writes in 100 ms: one restart.
    for i in 0..20 {
        std::fs::write(dir.path("src/index.js"), format!("burst {i}")).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_for("the burst's restart", Duration::from_secs(10), || {
        starts(&log) == 3
    });
    assert_eq!(
        starts_after(&log, Duration::from_millis(800)),
        3,
        "{}",
        read(&log)
    );
    // Watch restarts never exhaust --max-restarts (2) nor count as unstable.
    for n in 4..=6 {
        std::fs::write(dir.path("src/index.js"), format!("again {n}")).unwrap();
        wait_for("another restart", Duration::from_secs(10), || {
            starts(&log) == n
        });
    }
    assert!(!read(&log).contains("gave up"));
    assert!(!read(&log).contains("unstable"));
    k.signal(libc::SIGTERM);
    k.finish();
}

#[test]
fn new_directories_atomic_saves_and_what_is_ignored() {
    let (dir, k) = project(&["--watch-ignore", "dist"]);
    let log = dir.path("app.log");
    // Ignored: node_modules, .git, dot-files, the pattern, keepup's own log
    // (written every second by the child), none of these restarts it.
    std::fs::write(dir.path("node_modules/dep/index.js"), "x").unwrap();
    std::fs::write(dir.path(".git/HEAD"), "x").unwrap();
    std::fs::write(dir.path(".env"), "A=1").unwrap();
    std::fs::create_dir_all(dir.path("dist")).unwrap();
    std::fs::write(dir.path("dist/bundle.js"), "x").unwrap();
    assert_eq!(
        starts_after(&log, Duration::from_millis(1500)),
        1,
        "{}",
        read(&log)
    );
    // A new subdirectory's file.
    std::fs::create_dir_all(dir.path("src/lib/deep")).unwrap();
    std::fs::write(dir.path("src/lib/deep/new.js"), "x").unwrap();
    wait_for(
        "restart for the new directory's file",
        Duration::from_secs(10),
        || starts(&log) == 2,
    );
    assert!(
        read(&log).contains("src/lib/deep/new.js; restarting"),
        "{}",
        read(&log)
    );
    // An editor's atomic save: write a temporary file, rename it over.
    std::fs::write(dir.path("src/.index.js.swp"), "new").unwrap();
    std::fs::rename(dir.path("src/.index.js.swp"), dir.path("src/index.js")).unwrap();
    wait_for(
        "restart for the atomic save",
        Duration::from_secs(10),
        || starts(&log) == 3,
    );
    assert!(
        read(&log).contains("src/index.js; restarting"),
        "{}",
        read(&log)
    );
    k.signal(libc::SIGTERM);
    k.finish();
}

#[test]
fn only_the_listed_extensions_count() {
    let (dir, k) = project(&["--watch-ext", "js,json"]);
    let log = dir.path("app.log");
    std::fs::write(dir.path("src/notes.md"), "x").unwrap();
    std::fs::write(dir.path("src/style.css"), "x").unwrap();
    assert_eq!(starts_after(&log, Duration::from_millis(800)), 1);
    std::fs::write(dir.path("package.json"), "{}").unwrap();
    wait_for("restart for .json", Duration::from_secs(10), || {
        starts(&log) == 2
    });
    k.signal(libc::SIGTERM);
    k.finish();
}

/// With --watch, giving up waits for a change; the change starts it anew.
#[test]
fn gave_up_then_a_change_restarts() {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path("src")).unwrap();
    std::fs::write(dir.path("src/app.sh"), "exit 3\n").unwrap();
    let k = keepup([
        "--watch",
        "src",
        "--log",
        "app.log",
        "--max-restarts",
        "1",
        "--delay",
        "10ms",
        "--",
        "sh",
        "src/app.sh",
    ])
    .current_dir(&dir.0)
    .spawn();
    let log = dir.path("app.log");
    wait_for("gave up", Duration::from_secs(10), || {
        read(&log).contains("gave up; waiting for a change")
    });
    assert!(alive(k.pid()), "keepup must not exit");
    let before = switches(k.pid());
    let since = Instant::now();
    wait_for("a second", Duration::from_secs(5), || {
        since.elapsed() >= Duration::from_secs(1)
    });
    assert!(switches(k.pid()) - before <= 1, "keepup woke while waiting");
    std::fs::write(dir.path("src/app.sh"), "echo fixed; sleep 100\n").unwrap();
    wait_for("started again", Duration::from_secs(10), || {
        read(&log).contains("out fixed")
    });
    assert!(
        read(&log).contains("change: src/app.sh; restarting"),
        "{}",
        read(&log)
    );
    k.signal(libc::SIGTERM);
    k.finish();
}

/// With --watch and nothing changing, keepup still never wakes on its own.
#[test]
fn no_wake_ups_while_nothing_changes() {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path("src")).unwrap();
    let k = keepup(["--watch", "src", "--", "sleep", "100"])
        .current_dir(&dir.0)
        .spawn();
    wait_for("child", Duration::from_secs(10), || {
        !children_of(k.pid()).is_empty()
    });
    let start = Instant::now();
    wait_for("settled", Duration::from_secs(5), || {
        start.elapsed() >= Duration::from_millis(300)
    });
    let before = switches(k.pid());
    let since = Instant::now();
    wait_for("three seconds", Duration::from_secs(10), || {
        since.elapsed() >= Duration::from_secs(3)
    });
    let woke = switches(k.pid()) - before;
    assert!(
        woke <= 1,
        "{woke} wake-ups in 3 s with --watch and no change"
    );
    k.signal(libc::SIGTERM);
    k.finish();
}

#[test]
fn watch_bad_input() {
    for (args, want) in [
        (
            vec!["--watch", "/nonexistent/src"],
            "invalid path '/nonexistent/src' for --watch: No such file or directory",
        ),
        (
            vec!["--watch", ".", "--watch-delay", "200"],
            "invalid duration '200' for --watch-delay: add a unit",
        ),
        (
            vec!["--watch", ".", "--watch-ext", ""],
            "invalid extension list '' for --watch-ext: an empty list",
        ),
        (vec!["--watch", ".", "--watch-ext", " , "], "an empty list"),
    ] {
        let mut v = args.clone();
        v.push("true");
        let f = keepup(&v).run();
        f.expect_code(2);
        f.check(
            f.stderr.lines().count() == 1 && f.stderr.contains(want),
            want,
        );
    }
}
