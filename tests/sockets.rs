//! Sockets keepup owns (SPEC 9): bound once, passed to every run by the
//! socket-activation protocol, so that no restart refuses a connection.
//! The zero-downtime claims are tested under real load: client threads
//! making real TCP connections while keepup restarts the server.
mod util;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use util::*;

/// A server on the inherited fd 3 that answers each connection with its
/// pid; with an argument N it crashes (exit 1) after N answers. On SIGTERM
/// it stops as real servers do: it accepts nothing more, and what it has
/// accepted it answers; connections still in the backlog are the next
/// run's.
pub const SERVER: &str = "import os, select, signal, socket, sys\n\
n = int(sys.argv[1]) if len(sys.argv) > 1 else 0\n\
s = socket.socket(fileno=3)\n\
s.setblocking(False)\n\
r, w = os.pipe()\n\
os.set_blocking(w, False)\n\
signal.set_wakeup_fd(w)\n\
signal.signal(signal.SIGTERM, lambda *_: None)\n\
count = 0\n\
while True:\n    \
    ready, _, _ = select.select([s, r], [], [])\n    \
    if r in ready: os._exit(0)\n    \
    try: c, _ = s.accept()\n    \
    except BlockingIOError: continue\n    \
    c.setblocking(True)\n    \
    c.recv(64)\n    \
    c.sendall(b'%d\\n' % os.getpid())\n    \
    c.close()\n    \
    count += 1\n    \
    if n and count >= n: os._exit(1)\n";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[derive(Default)]
pub struct Load {
    pub answers: usize,
    pub errors: Vec<String>,
    pub pids: HashSet<i32>,
}

/// One real TCP request: connect, send, read the pid the server answers.
fn request(addr: SocketAddr) -> Result<i32, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"hi\n").map_err(|e| format!("send: {e}"))?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    answer
        .trim()
        .parse()
        .map_err(|_| format!("answer {answer:?}"))
}

/// Answers received by every client so far.
pub static ANSWERED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Waits until the clients got `n` more answers.
pub fn answers_grow(n: usize) {
    let start = ANSWERED.load(Ordering::SeqCst);
    wait_for(
        &format!("{n} more answers"),
        Duration::from_secs(30),
        || ANSWERED.load(Ordering::SeqCst) >= start + n,
    );
}

/// `clients` threads making requests back to back until `stop`.
pub fn load(addr: SocketAddr, clients: usize, stop: Arc<AtomicBool>) -> Vec<JoinHandle<Load>> {
    (0..clients)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut l = Load::default();
                // Bounded: at most 100,000 requests or the stop flag.
                for _ in 0..100_000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match request(addr) {
                        Ok(pid) => {
                            ANSWERED.fetch_add(1, Ordering::SeqCst);
                            l.answers += 1;
                            l.pids.insert(pid);
                        }
                        Err(e) => l.errors.push(e),
                    }
                }
                l
            })
        })
        .collect()
}

pub fn total(handles: Vec<JoinHandle<Load>>) -> Load {
    let mut t = Load::default();
    for h in handles {
        let l = h.join().unwrap();
        t.answers += l.answers;
        t.errors.extend(l.errors);
        t.pids.extend(l.pids);
    }
    t
}

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
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(addr, 4, stop.clone());
    wait_for(
        "four crash restarts under load",
        Duration::from_secs(60),
        || started_pids(&log).len() >= 5,
    );
    stop.store(true, Ordering::SeqCst);
    let l = total(clients);
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
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(addr, 4, stop.clone());
    for _ in 0..3 {
        answers_grow(50);
        verb(&home.0, &["restart", "r"]).expect_code(0);
    }
    answers_grow(50);
    stop.store(true, Ordering::SeqCst);
    let l = total(clients);
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
