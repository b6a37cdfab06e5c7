//! Sockets keepup owns (SPEC 9): bound once, passed to every run by the
//! socket-activation protocol, so that no restart refuses a connection.
//! The zero-downtime claims are tested under real load: client threads
//! making real TCP connections while keepup restarts the server.
mod util;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;
use util::net::*;
use util::*;

fn started_pids(log: &std::path::Path) -> Vec<i32> {
    read(log)
        .lines()
        .filter_map(|l| l.split("started pid ").nth(1))
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

/// Crashes under load: every connection waits in the backlog for the next
/// run; none is refused or reset.
#[test]
fn crash_restarts_refuse_no_connection() {
    let dir = TempDir::new();
    let log = dir.path("a.log");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let k = keepup([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--log",
        log.to_str().unwrap(),
        "--delay",
        "50ms",
        "--max-delay",
        "200ms",
        "--max-restarts",
        "unlimited",
        "-q",
        "--",
        "python3",
        "-c",
        SERVER,
        "40",
    ])
    .spawn();
    wait_for("first run", Duration::from_secs(10), || {
        !started_pids(&log).is_empty()
    });
    let clients = load(addr, 4);
    wait_for(
        "four crash restarts under load",
        Duration::from_secs(60),
        || started_pids(&log).len() >= 5,
    );
    let l = clients.finish();
    k.signal(libc::SIGTERM);
    k.finish();
    assert!(
        l.errors.is_empty(),
        "{} errors: {:?}",
        l.errors.len(),
        &l.errors[..l.errors.len().min(5)]
    );
    assert!(l.pids.len() >= 3, "answers came from {:?}", l.pids);
    assert!(l.answers >= 100, "only {} answers", l.answers);
}

/// `keepup restart` under load: the same, with the stop sequence.
#[test]
fn restart_verb_refuses_no_connection() {
    let home = TempDir::new();
    let log = home.path("r.log");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let k = keepup([
        "-n",
        "r",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--log",
        log.to_str().unwrap(),
        "-q",
        "--",
        "python3",
        "-c",
        SERVER,
    ])
    .env("KEEPUP_HOME", &home.0)
    .spawn();
    wait_for("first run", Duration::from_secs(10), || {
        !started_pids(&log).is_empty()
    });
    let clients = load(addr, 4);
    for _ in 0..3 {
        clients.grow(50);
        verb(&home.0, &["restart", "r"]).expect_code(0);
    }
    clients.grow(50);
    let l = clients.finish();
    k.signal(libc::SIGTERM);
    k.finish();
    assert!(
        l.errors.is_empty(),
        "{} errors: {:?}",
        l.errors.len(),
        &l.errors[..l.errors.len().min(5)]
    );
    assert!(l.pids.len() >= 3, "answers came from {:?}", l.pids);
}

/// The socket-activation variables, as the child sees them; an inherited
/// LISTEN_* is replaced; a unix socket is created 0666 and removed at exit.
#[test]
fn listen_variables_and_unix_sockets() {
    let dir = TempDir::new();
    let sock = dir.path("app.sock");
    let port = free_port();
    let script = "import os, stat\n\
print('pid-ok' if os.environ['LISTEN_PID'] == str(os.getpid()) else 'pid-wrong')\n\
print('fds=' + os.environ['LISTEN_FDS'] + ' names=' + os.environ['LISTEN_FDNAMES'])\n\
print('fd3=%s fd4=%s' % (stat.S_ISSOCK(os.fstat(3).st_mode), stat.S_ISSOCK(os.fstat(4).st_mode)))\n\
try:\n    os.fstat(5); print('fd5 leaked')\nexcept OSError: print('no fd5')\n";
    let f = keepup([
        "--restart",
        "never",
        "--listen",
        &format!("web=127.0.0.1:{port}"),
        "--listen",
        &format!("admin=unix:{}", sock.display()),
        "--",
        "python3",
        "-c",
        script,
    ])
    .env("LISTEN_FDS", "7")
    .env("LISTEN_PID", "1")
    .env("LISTEN_FDNAMES", "stale")
    .run();
    f.expect_code(0);
    for want in [
        "pid-ok",
        "fds=2 names=web:admin",
        "fd3=True fd4=True",
        "no fd5",
    ] {
        f.check(f.stdout.contains(want), want);
    }
    assert!(!sock.exists(), "the unix socket file outlived keepup");

    // While it runs: mode 0666, and it answers.
    let log = dir.path("u.log");
    let k = keepup([
        "--listen",
        &format!("unix:{}", sock.display()),
        "--log",
        log.to_str().unwrap(),
        "--",
        "python3",
        "-c",
        SERVER,
    ])
    .spawn();
    wait_for("the socket file", Duration::from_secs(10), || sock.exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666);
    let mut c = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    c.write_all(b"hi\n").unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.trim().parse::<i32>().is_ok(), "{answer:?}");
    k.signal(libc::SIGTERM);
    k.finish();
    assert!(!sock.exists());
}

/// A bare PORT listens on every interface: IPv4 and, where the kernel has
/// IPv6, IPv6 too (dual-stack).
#[test]
fn bare_port_is_dual_stack() {
    let port = free_port();
    let log = TempDir::new();
    let logf = log.path("a.log");
    let k = keepup([
        "--listen",
        &port.to_string(),
        "--log",
        logf.to_str().unwrap(),
        "--",
        "python3",
        "-c",
        SERVER,
    ])
    .spawn();
    wait_for("started", Duration::from_secs(10), || {
        read(&logf).contains("started pid")
    });
    assert!(request(format!("127.0.0.1:{port}").parse().unwrap()).is_ok());
    let v6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    if v6 {
        assert!(request(format!("[::1]:{port}").parse().unwrap()).is_ok());
    } else {
        eprintln!("no IPv6 on this machine: only the IPv4 half was checked");
    }
    k.signal(libc::SIGTERM);
    k.finish();
}

#[test]
fn a_port_in_use_fails_before_anything_starts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = TempDir::new();
    let marker = dir.s("started");
    let f = keepup(with_sh(
        &["--listen", &format!("127.0.0.1:{port}")],
        &format!("touch {marker}"),
    ))
    .run();
    f.expect_code(1);
    f.check(
        f.stderr.trim()
            == format!("keepup: cannot listen on 127.0.0.1:{port}: Address already in use"),
        "message",
    );
    assert!(!dir.path("started").exists());
}

#[test]
fn bad_socket_options_exit_2_and_bind_nothing() {
    let port = free_port();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--listen".into(), "0".into()],
            "invalid address '0' for --listen: port 0 is out of range",
        ),
        (
            vec!["--listen".into(), "99999".into()],
            "port 99999 is out of range",
        ),
        (
            vec!["--listen".into(), "nohost:".into()],
            "invalid address 'nohost:' for --listen",
        ),
        (
            vec!["--listen".into(), format!("unix:/{}", "x".repeat(200))],
            "a Unix socket path has at most 107",
        ),
        (
            vec!["--backlog".into(), "0".into()],
            "invalid count '0' for --backlog: at least 1",
        ),
        (
            vec!["-i".into(), "2".into()],
            "-i/--instances starts detached instances: add -d",
        ),
        (
            vec!["-d".into(), "-i".into(), "0".into()],
            "invalid count '0' for -i: at least 1",
        ),
        (
            vec![
                "--listen".into(),
                port.to_string(),
                "--ready-port".into(),
                port.to_string(),
            ],
            "is a port keepup itself listens on",
        ),
        (
            vec![
                "--listen".into(),
                port.to_string(),
                "--listen".into(),
                "unix:/tmp/x.sock".into(),
                "--ready-fd".into(),
                "4".into(),
            ],
            "--ready-fd 4 is the fd of a --listen socket (3 to 4): choose 5 or above",
        ),
    ];
    for (args, want) in cases {
        let mut v = args.clone();
        v.extend(["true".to_string()]);
        let f = keepup(&v).run();
        f.expect_code(2);
        f.check(
            f.stderr.lines().count() == 1 && f.stderr.contains(want),
            want,
        );
    }
    // Nothing was bound: the port is still free.
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
}
