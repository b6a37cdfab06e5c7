//! `keepup reload` and `-i` (SPEC 9): a new run beside the old one, the old
//! stopped only once the new one is ready, under real load with zero
//! connection errors; failures that keep the old run; rolling reloads of a
//! cluster; several keepups on one port.
mod util;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use util::net::*;
use util::*;

fn child_pid(home: &Path, name: &str) -> i32 {
    read(&home.join(format!("{name}.state")))
        .lines()
        .find_map(|l| l.strip_prefix("child_pid="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// `keepup -d -n NAME --listen 127.0.0.1:PORT [extra] -- python3 -c SERVER`.
fn serve(home: &TempDir, name: &str, port: u16, extra: &[&str]) -> Finished {
    let mut args = vec![
        "-d".to_string(),
        "-n".into(),
        name.into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--log".into(),
        home.s(&format!("{name}.log")),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["--", "python3", "-c", SERVER].map(String::from));
    keepup(&args).env("KEEPUP_HOME", &home.0).run()
}

fn addr(port: u16) -> SocketAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
}

#[test]
fn reload_under_load_refuses_nothing() {
    let home = TempDir::new();
    let port = free_port();
    serve(&home, "web", port, &[]).expect_code(0);
    let clients = load(addr(port), 4);
    let mut lines = vec![];
    for _ in 0..3 {
        clients.grow(50);
        let before = child_pid(&home.0, "web");
        let r = verb(&home.0, &["reload", "web"]);
        r.expect_code(0);
        let after = child_pid(&home.0, "web");
        assert_ne!(before, after, "{r}");
        assert_eq!(
            r.stdout.trim(),
            format!("keepup: web reloaded (pid {before} -> {after})")
        );
        assert!(!alive(before), "the old run is gone when reload returns");
        lines.push(r.stdout);
    }
    clients.grow(50);
    let l = clients.finish();
    verb(&home.0, &["stop", "web"]).expect_code(0);
    assert!(
        l.errors.is_empty(),
        "{} errors: {:?}",
        l.errors.len(),
        &l.errors[..l.errors.len().min(5)]
    );
    assert!(l.pids.len() >= 4, "answers came from {:?}", l.pids);
    let log = read(&home.path("web.log"));
    assert_eq!(log.matches("reloaded (pid").count(), 3, "{log}");
    let json = verb(&home.0, &["status", "--json"]).stdout;
    assert!(
        json.contains("\"restarts\":3"),
        "a reload counts as a restart: {json}"
    );
}

/// A new run that crashes before it is ready: the reload fails, the old
/// run serves on untouched, the verb exits 1, and it counts toward nothing.
/// (Without a readiness option a run is ready once started, and a crash
/// after that is an ordinary crash of the new run.)
#[test]
fn failed_reload_keeps_the_old_run() {
    let home = TempDir::new();
    let port = free_port();
    let broken = home.path("broken");
    let f = keepup([
        "-d",
        "-n",
        "web",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--log",
        &home.s("web.log"),
        "--max-restarts",
        "0",
        "--ready-fd",
        "4",
        "--",
        "python3",
        "-c",
        SERVER,
    ])
    .env("KEEPUP_HOME", &home.0)
    .env("SERVER_BROKEN", &broken)
    .env("SERVER_READY_FD", "4")
    .run();
    f.expect_code(0);
    let old = child_pid(&home.0, "web");
    let clients = load(addr(port), 2);
    // The first run is past its check of the file once it answers.
    clients.grow(20);
    std::fs::write(&broken, "").unwrap();
    let r = verb(&home.0, &["reload", "web"]);
    r.expect_code(1);
    r.check(
        r.stderr.contains("'web' reload failed: pid ")
            && r.stderr.contains(&format!(
                "exited with code 3 before it was ready; keeping pid {old}"
            )),
        "the failure, on stderr",
    );
    clients.grow(20);
    let l = clients.finish();
    assert!(
        l.errors.is_empty(),
        "{:?}",
        &l.errors[..l.errors.len().min(5)]
    );
    assert_eq!(l.pids.len(), 1, "only the old run answered: {:?}", l.pids);
    assert_eq!(child_pid(&home.0, "web"), old);
    // --max-restarts 0: had the failure counted, the instance would be gone.
    let json = verb(&home.0, &["status", "--json"]).stdout;
    assert!(json.contains("\"state\":\"running\""), "{json}");
    assert!(json.contains("\"restarts\":0"), "{json}");
    assert!(read(&home.path("web.log")).contains("reload failed: pid "));
    verb(&home.0, &["stop", "web"]).expect_code(0);
}

/// With a readiness option the old run stops only once the new one is
/// ready; a new run not ready within `--timeout` fails the reload.
#[test]
fn reload_waits_for_readiness_and_times_out() {
    let home = TempDir::new();
    let port = free_port();
    let hang = home.path("hang");
    let f = keepup([
        "-d",
        "-n",
        "web",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--ready-fd",
        "4",
        "--log",
        &home.s("web.log"),
        "--",
        "python3",
        "-c",
        SERVER,
    ])
    .env("KEEPUP_HOME", &home.0)
    .env("SERVER_READY_FD", "4")
    .env("SERVER_HANG", &hang)
    .run();
    f.expect_code(0);
    let first = child_pid(&home.0, "web");
    verb(&home.0, &["reload", "web"]).expect_code(0);
    let second = child_pid(&home.0, "web");
    assert_ne!(first, second);
    assert!(read(&home.path("web.log")).contains(&format!("reload: pid {second} ready after ")));

    std::fs::write(&hang, "").unwrap();
    let clients = load(addr(port), 2);
    clients.grow(20);
    let t = Instant::now();
    let r = verb(&home.0, &["reload", "web", "--timeout", "1s"]);
    r.expect_code(1);
    r.check(
        r.stderr.contains(&format!(
            "reload failed: not ready after 1s; keeping pid {second}"
        )),
        "timeout message",
    );
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    clients.grow(20);
    let l = clients.finish();
    assert!(
        l.errors.is_empty(),
        "{:?}",
        &l.errors[..l.errors.len().min(5)]
    );
    assert_eq!(child_pid(&home.0, "web"), second);
    verb(&home.0, &["stop", "web"]).expect_code(0);
}

/// `-d -i 2`: two keepups on one port (SO_REUSEPORT), both answering; a
/// rolling reload of both by pattern, under load, refuses nothing.
#[test]
fn cluster_of_two_and_rolling_reload() {
    let home = TempDir::new();
    let port = free_port();
    let f = keepup([
        "-d",
        "-i",
        "2",
        "-n",
        "api",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--log",
        &home.s("api.log"),
        "--",
        "python3",
        "-c",
        SERVER,
    ])
    .env("KEEPUP_HOME", &home.0)
    .run();
    f.expect_code(0);
    f.check(
        f.stdout.contains("keepup: api-1 started (pid ")
            && f.stdout.contains("keepup: api-2 started (pid "),
        "both started",
    );
    assert!(home.path("api-1.log").exists() && home.path("api-2.log").exists());
    let (one, two) = (child_pid(&home.0, "api-1"), child_pid(&home.0, "api-2"));
    assert!(environ_of(one).contains("KEEPUP_INSTANCE=1\n"));
    let env = environ_of(two);
    assert!(env.contains("KEEPUP_INSTANCE=2\n"), "{env}");
    assert!(env.contains("KEEPUP_INSTANCE_NAME=api-2\n"), "{env}");

    let clients = load(addr(port), 4);
    clients.grow(200);
    let r = verb(&home.0, &["reload", "api-*"]);
    r.expect_code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{r}");
    assert!(lines[0].starts_with(&format!("keepup: api-1 reloaded (pid {one} -> ")));
    assert!(lines[1].starts_with(&format!("keepup: api-2 reloaded (pid {two} -> ")));
    clients.grow(200);
    let l = clients.finish();
    verb(&home.0, &["stop", "api-*"]).expect_code(0);
    assert!(
        l.errors.is_empty(),
        "{:?}",
        &l.errors[..l.errors.len().min(5)]
    );
    assert!(
        l.pids.contains(&one) && l.pids.contains(&two),
        "kernel balancing: {:?}",
        l.pids
    );
    assert!(
        l.pids.len() >= 4,
        "old and new runs of both: {:?} ({r})",
        l.pids
    );
    let s = verb(&home.0, &["status", "api-*"]);
    s.check(
        s.stdout.contains("api-1") && s.stdout.contains("stopped"),
        "status by pattern",
    );
    let none = verb(&home.0, &["stop", "web-*"]);
    none.expect_code(1);
    none.check(
        none.stderr.contains("no instance matches 'web-*'"),
        "pattern matching nothing",
    );
}

/// In backoff there is no ready run to keep: reload restarts, as `keepup
/// restart` would.
#[test]
fn reload_in_backoff_is_a_restart() {
    let home = TempDir::new();
    keepup(with_sh(
        &["-d", "-n", "b", "--delay", "30s", "--max-delay", "30s"],
        "sleep 0.3; exit 1",
    ))
    .env("KEEPUP_HOME", &home.0)
    .run()
    .expect_code(0);
    wait_for("backoff", Duration::from_secs(10), || {
        read(&home.path("b.state")).contains("state=backoff")
    });
    let r = verb(&home.0, &["reload", "b"]);
    r.expect_code(0);
    r.check(
        r.stdout.starts_with("keepup: b restarted (pid "),
        "restart output",
    );
    verb(&home.0, &["stop", "b"]);
}
