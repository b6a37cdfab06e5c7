//! Readiness (`--ready-*`), liveness (`--health-*`) and `keepup wait`
//! (SPEC section 8).
mod util;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};
use util::*;

fn state_of(home: &Path, name: &str) -> String {
    let text = read(&home.join(format!("{name}.state")));
    text.lines()
        .find_map(|l| l.strip_prefix("state="))
        .unwrap_or("")
        .to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A tiny HTTP server on a thread, answering every request with `status`
/// (changeable while it runs).
/// A local HTTP server answering `status`; `hits` counts its requests.
fn http_server() -> (u16, Arc<AtomicU16>, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let status = Arc::new(AtomicU16::new(200));
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (s, h) = (status.clone(), hits.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            h.fetch_add(1, Ordering::SeqCst);
            let mut conn = conn;
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let code = s.load(Ordering::SeqCst);
            let _ = conn
                .write_all(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes());
        }
    });
    (port, status, hits)
}

#[test]
fn ready_by_port_detach_waits_for_it() {
    let home = TempDir::new();
    let port = free_port();
    let script = format!(
        "sleep 0.7; exec python3 -c \"import socket, time; s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(100)\""
    );
    let t = Instant::now();
    let f = keepup(with_sh(
        &[
            "-d",
            "-n",
            "db",
            "--ready-port",
            &port.to_string(),
            "--log",
            &home.s("db.log"),
        ],
        &script,
    ))
    .env("KEEPUP_HOME", &home.0)
    .run();
    f.expect_code(0);
    assert!(
        t.elapsed() >= Duration::from_millis(600),
        "returned before ready: {:?}",
        t.elapsed()
    );
    assert_eq!(state_of(&home.0, "db"), "running");
    let log = read(&home.path("db.log"));
    assert!(log.contains("keepup db: ready after "), "{log}");
    verb(&home.0, &["stop", "db"]).expect_code(0);
}

#[test]
fn ready_by_command_and_by_fd() {
    let home = TempDir::new();
    let (flag, tries) = (home.s("flag"), home.path("tries"));
    let k = keepup(with_sh(
        &[
            "-n",
            "c",
            "--ready-cmd",
            &format!("echo x >> {}; test -e {flag}", tries.display()),
        ],
        "exec sleep 100",
    ))
    .env("KEEPUP_HOME", &home.0)
    .spawn();
    wait_for("starting", Duration::from_secs(10), || {
        state_of(&home.0, "c") == "starting"
    });
    wait_for(
        "three failed readiness commands",
        Duration::from_secs(10),
        || count_lines(&tries) >= 3,
    );
    assert_eq!(state_of(&home.0, "c"), "starting");
    std::fs::write(&flag, "").unwrap();
    wait_for("ready by command", Duration::from_secs(10), || {
        state_of(&home.0, "c") == "running"
    });
    k.signal(libc::SIGTERM);
    k.finish();

    // s6-style notification: a newline on fd 3.
    let f = keepup(with_sh(
        &["-d", "-n", "f", "--ready-fd", "3"],
        "sleep 0.3; echo >&3; exec sleep 100",
    ))
    .env("KEEPUP_HOME", &home.0)
    .run();
    f.expect_code(0);
    assert_eq!(state_of(&home.0, "f"), "running");
    verb(&home.0, &["stop", "f"]).expect_code(0);
}

#[test]
fn never_ready_is_stopped_restarted_then_gives_up() {
    let home = TempDir::new();
    let runs = home.s("runs");
    let f = keepup(with_sh(
        &[
            "-n",
            "n",
            "--ready-cmd",
            "false",
            "--ready-timeout",
            "300ms",
            "--max-restarts",
            "2",
            "--delay",
            "10ms",
        ],
        &format!("echo run >> {runs}; exec sleep 100"),
    ))
    .env("KEEPUP_HOME", &home.0)
    .run();
    f.expect_code(143);
    assert_eq!(count_lines(&home.path("runs")), 3, "{f}");
    f.check(
        f.stderr.matches("not ready after 300ms").count() == 3,
        "three timeouts",
    );
    f.check(
        f.stderr.contains("gave up after 2 unstable restarts"),
        "give-up",
    );
    // --detach of a run that never gets ready returns 1 with the reason.
    let f = keepup(with_sh(
        &[
            "-d",
            "-n",
            "d",
            "--ready-cmd",
            "false",
            "--ready-timeout",
            "200ms",
            "--max-restarts",
            "0",
        ],
        "exec sleep 100",
    ))
    .env("KEEPUP_HOME", &home.0)
    .run();
    f.expect_code(1);
    f.check(f.stderr.contains("'d' not ready after 200ms"), "reason");
}

#[test]
fn wait_success_timeout_and_gave_up() {
    let home = TempDir::new();
    let flag = home.s("flag");
    let k = keepup(with_sh(
        &["-n", "w", "--ready-cmd", &format!("test -e {flag}")],
        "exec sleep 100",
    ))
    .env("KEEPUP_HOME", &home.0)
    .spawn();
    wait_for("starting", Duration::from_secs(10), || {
        state_of(&home.0, "w") == "starting"
    });
    let f = verb(&home.0, &["wait", "w", "--timeout", "300ms"]);
    f.expect_code(1);
    f.check(
        f.stderr.contains("timed out after 300ms waiting for w"),
        "timeout message",
    );
    let waiter = keepup(["wait", "w", "--timeout", "20s"])
        .env("KEEPUP_HOME", &home.0)
        .spawn();
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(&flag, "").unwrap();
    waiter.finish().expect_code(0);
    k.signal(libc::SIGTERM);
    k.finish();

    keepup(with_sh(&["-n", "g", "--max-restarts", "0"], "exit 3"))
        .env("KEEPUP_HOME", &home.0)
        .run()
        .expect_code(3);
    let f = verb(&home.0, &["wait", "g", "--timeout", "5s"]);
    f.expect_code(1);
    f.check(
        f.stderr.contains("'g' is gave-up (last exit: code 3)"),
        "message",
    );
}

/// A health command that passes, then fails: restart after exactly
/// `--health-retries` failures.
#[test]
fn health_command_restarts_after_retries() {
    let home = TempDir::new();
    let (flag, fails, pids) = (home.s("flag"), home.s("fails"), home.s("pids"));
    let passes = home.path("passes");
    let health = format!(
        "if [ -e {flag} ]; then echo f >> {fails}; exit 1; fi; echo p >> {}",
        passes.display()
    );
    let k = keepup(with_sh(
        &[
            "-n",
            "h",
            "--health-cmd",
            &health,
            "--health-interval",
            "100ms",
            "--health-retries",
            "3",
            "--log",
            &home.s("h.log"),
        ],
        &format!("echo $$ >> {pids}; exec sleep 100"),
    ))
    .env("KEEPUP_HOME", &home.0)
    .spawn();
    wait_for("first run", Duration::from_secs(10), || {
        count_lines(&home.path("pids")) == 1
    });
    // Passing probes for a while: no restart.
    wait_for("five passing probes", Duration::from_secs(10), || {
        count_lines(&passes) >= 5
    });
    assert_eq!(count_lines(&home.path("pids")), 1);
    std::fs::write(&flag, "").unwrap();
    wait_for("restart", Duration::from_secs(10), || {
        count_lines(&home.path("pids")) == 2
    });
    std::fs::remove_file(&flag).unwrap();
    assert_eq!(count_lines(&home.path("fails")), 3);
    let log = read(&home.path("h.log"));
    assert!(
        log.contains("unhealthy after 3 failed checks (last: exit 1)"),
        "{log}"
    );
    k.signal(libc::SIGTERM);
    k.finish();
}

#[test]
fn health_http_200_keeps_503_restarts() {
    let home = TempDir::new();
    let (port, status, hits) = http_server();
    let pids = home.s("pids");
    let url = format!("http://127.0.0.1:{port}/health");
    let k = keepup(with_sh(
        &[
            "-n",
            "web",
            "--health-http",
            &url,
            "--health-interval",
            "50ms",
            "--health-retries",
            "2",
            "--log",
            &home.s("w.log"),
        ],
        &format!("echo $$ >> {pids}; exec sleep 100"),
    ))
    .env("KEEPUP_HOME", &home.0)
    .spawn();
    wait_for("first run", Duration::from_secs(10), || {
        count_lines(&home.path("pids")) == 1
    });
    wait_for("ten healthy probes", Duration::from_secs(10), || {
        hits.load(Ordering::SeqCst) >= 10
    });
    assert_eq!(
        count_lines(&home.path("pids")),
        1,
        "restarted while healthy"
    );
    assert!(read(&home.path("web.state")).contains("probe=ok"));
    status.store(503, Ordering::SeqCst);
    wait_for("restart on 503", Duration::from_secs(10), || {
        count_lines(&home.path("pids")) >= 2
    });
    let log = read(&home.path("w.log"));
    assert!(
        log.contains("unhealthy after 2 failed checks (last: HTTP 503)"),
        "{log}"
    );
    k.signal(libc::SIGTERM);
    k.finish();
}

#[test]
fn hung_probe_is_killed_at_timeout_and_leaves_nothing() {
    let home = TempDir::new();
    let probes = home.s("probes");
    let health = format!("echo $$ >> {probes}; exec sleep 100");
    let f = keepup(with_sh(
        &[
            "-n",
            "p",
            "--health-cmd",
            &health,
            "--health-interval",
            "50ms",
            "--health-timeout",
            "200ms",
            "--health-retries",
            "2",
            "--max-restarts",
            "0",
        ],
        "exec sleep 100",
    ))
    .env("KEEPUP_HOME", &home.0)
    .run();
    f.expect_code(143);
    f.check(
        f.stderr
            .contains("unhealthy after 2 failed checks (last: timeout)"),
        "event",
    );
    let pids: Vec<i32> = read(&home.path("probes"))
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "{f}");
    for p in pids {
        assert!(!alive(p), "probe {p} survived");
    }
}

#[test]
fn probes_leave_no_zombie() {
    let home = TempDir::new();
    let ran = home.path("ran");
    let probe = format!("echo x >> {}", ran.display());
    let k = keepup(with_sh(
        &[
            "-n",
            "z",
            "--health-cmd",
            &probe,
            "--health-interval",
            "10ms",
        ],
        "exec sleep 100",
    ))
    .env("KEEPUP_HOME", &home.0)
    .spawn();
    wait_for("20 probes", Duration::from_secs(20), || {
        count_lines(&ran) >= 20
    });
    // A probe may be caught between exit and reap; none may stay a zombie.
    let zombies = |pid: i32| -> Vec<i32> {
        children_of(pid)
            .into_iter()
            .filter(|&c| stat_field(c, 0).as_deref() == Some("Z"))
            .collect()
    };
    let first = zombies(k.pid());
    let n = count_lines(&ran);
    wait_for("10 more probes", Duration::from_secs(20), || {
        count_lines(&ran) >= n + 10
    });
    let second = zombies(k.pid());
    let stuck: Vec<&i32> = first.iter().filter(|p| second.contains(p)).collect();
    assert!(stuck.is_empty(), "zombie probes: {stuck:?}");
    k.signal(libc::SIGTERM);
    k.finish();
}

/// A port held by another program never makes a run ready (SPEC 8): only a
/// socket of the child's own tree counts.
#[test]
fn a_strangers_port_is_not_readiness() {
    let stranger = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = stranger.local_addr().unwrap().port();
    let home = TempDir::new();
    let log = home.path("s.log");
    let k = keepup(with_sh(
        &[
            "-n",
            "s",
            "--ready-port",
            &port.to_string(),
            "--ready-timeout",
            "1s",
            "--max-restarts",
            "1",
            "--delay",
            "10ms",
            "--log",
            log.to_str().unwrap(),
        ],
        "exec sleep 100",
    ))
    .env("KEEPUP_HOME", &home.0)
    .spawn();
    // The stranger answers every connect; the child never listens.
    let f = k.finish();
    f.expect_code(143);
    let text = read(&log);
    assert!(
        !text.contains("keepup s: ready after"),
        "a stranger's port made it ready:\n{text}"
    );
    assert!(text.contains("not ready after 1s"), "{text}");
    drop(stranger);
}
