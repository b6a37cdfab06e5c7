//! `--notify` and `--watchdog` (SPEC 9): the systemd notify protocol, with
//! a real sender (python, as sd_notify does it): READY=1, STATUS=,
//! WATCHDOG=1, senders outside the child's tree ignored.
mod util;
use std::path::Path;
use std::time::{Duration, Instant};
use util::*;

/// Sends READY=1 and STATUS= after `delay` s (unless the file named by
/// NO_READY exists), then WATCHDOG=1 every 100 ms until the file named by
/// STOP_PINGS exists.
const NOTIFIER: &str = "import os, socket, time, sys\n\
addr = os.environ['NOTIFY_SOCKET']\n\
addr = '\\0' + addr[1:] if addr.startswith('@') else addr\n\
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
print('usec=%s wpid=%s' % (os.environ.get('WATCHDOG_USEC'), os.environ.get('WATCHDOG_PID') == str(os.getpid())), flush=True)\n\
time.sleep(float(sys.argv[1]))\n\
if not os.path.exists(os.environ.get('NO_READY', '/nonexistent')): s.sendto(b'READY=1\\nSTATUS=serving 3 clients', addr)\n\
while not os.path.exists(os.environ.get('STOP_PINGS', '/nonexistent')):\n    \
    s.sendto(b'WATCHDOG=1', addr); time.sleep(0.1)\n\
time.sleep(100)\n";

fn json_of(home: &Path) -> String {
    verb(home, &["status", "--json"]).stdout
}

#[test]
fn ready_by_notify_and_status_text() {
    let home = TempDir::new();
    let t = Instant::now();
    let f = keepup([
        "-d",
        "-n",
        "n",
        "--notify",
        "--log",
        &home.s("n.log"),
        "--",
        "python3",
        "-c",
        NOTIFIER,
        "0.5",
    ])
    .env("KEEPUP_HOME", &home.0)
    .run();
    f.expect_code(0);
    assert!(
        t.elapsed() >= Duration::from_millis(450),
        "-d waits for READY=1"
    );
    let json = json_of(&home.0);
    assert!(json.contains("\"state\":\"running\""), "{json}");
    wait_for("STATUS= shown", Duration::from_secs(10), || {
        json_of(&home.0).contains("\"status_text\":\"serving 3 clients\"")
    });
    let log = read(&home.path("n.log"));
    assert!(log.contains("keepup n: ready after "), "{log}");
    assert!(
        log.contains("out usec=None wpid=False"),
        "no watchdog variables without --watchdog"
    );
    verb(&home.0, &["stop", "n"]).expect_code(0);
}

#[test]
fn watchdog_restarts_when_pings_stop() {
    let home = TempDir::new();
    let stop_pings = home.path("stop-pings");
    let f = keepup([
        "-d",
        "-n",
        "w",
        "--notify",
        "--watchdog",
        "500ms",
        "--log",
        &home.s("w.log"),
        "--",
        "python3",
        "-c",
        NOTIFIER,
        "0.1",
    ])
    .env("KEEPUP_HOME", &home.0)
    .env("STOP_PINGS", &stop_pings)
    .run();
    f.expect_code(0);
    let log = home.path("w.log");
    // Pings every 100 ms: no restart over several periods.
    wait_for("ready", Duration::from_secs(10), || {
        read(&log).contains("ready after")
    });
    let since = Instant::now();
    wait_for("two seconds of pings", Duration::from_secs(10), || {
        since.elapsed() > Duration::from_secs(2)
    });
    assert_eq!(
        read(&log).matches("started pid").count(),
        1,
        "{}",
        read(&log)
    );
    assert!(
        read(&log).contains("out usec=500000 wpid=True"),
        "{}",
        read(&log)
    );
    std::fs::write(&stop_pings, "").unwrap();
    wait_for("watchdog restart", Duration::from_secs(10), || {
        read(&log).matches("started pid").count() == 2
    });
    let text = read(&log);
    assert!(
        text.contains("keepup w: watchdog: no ping for 500ms"),
        "{text}"
    );
    verb(&home.0, &["stop", "w"]).expect_code(0);
}

/// A datagram from outside the child's tree is ignored: READY=1 sent by a
/// stranger (this test) does not make the run ready.
#[test]
fn strangers_cannot_notify() {
    let home = TempDir::new();
    let no_ready = home.path("no-ready");
    std::fs::write(&no_ready, "").unwrap();
    let k = keepup([
        "-n",
        "s",
        "--notify",
        "--log",
        &home.s("s.log"),
        "--",
        "python3",
        "-c",
        NOTIFIER,
        "0",
    ])
    .env("KEEPUP_HOME", &home.0)
    .env("NO_READY", &no_ready)
    .spawn();
    wait_for("started", Duration::from_secs(10), || {
        read(&home.path("s.log")).contains("out usec")
    });
    let pid: i32 = read(&home.path("s.state"))
        .lines()
        .find_map(|l| l.strip_prefix("child_pid="))
        .and_then(|p| p.parse().ok())
        .unwrap();
    let env = read(Path::new(&format!("/proc/{pid}/environ")));
    let addr = env
        .split('\0')
        .find_map(|v| v.strip_prefix("NOTIFY_SOCKET="))
        .expect("NOTIFY_SOCKET")
        .to_string();
    assert!(addr.starts_with("@keepup/notify/"), "{addr}");
    use std::os::linux::net::SocketAddrExt;
    let to = std::os::unix::net::SocketAddr::from_abstract_name(&addr[1..]).unwrap();
    let c = std::os::unix::net::UnixDatagram::unbound().unwrap();
    for _ in 0..5 {
        c.send_to_addr(b"READY=1\nSTATUS=forged", &to).unwrap();
    }
    // The loop handles a datagram at once; give it a generous moment, then
    // make sure nothing changed.
    let since = Instant::now();
    wait_for("a second", Duration::from_secs(5), || {
        since.elapsed() > Duration::from_secs(1)
    });
    let json = json_of(&home.0);
    assert!(json.contains("\"state\":\"starting\""), "{json}");
    assert!(!json.contains("forged"), "{json}");
    k.signal(libc::SIGTERM);
    k.finish();
}

#[test]
fn notify_bad_usage() {
    for (args, want) in [
        (vec!["--watchdog", "1s"], "--watchdog needs --notify"),
        (
            vec!["--notify", "--ready-port", "3000"],
            "cannot be used together",
        ),
        (
            vec!["--notify", "--watchdog", "5ms"],
            "invalid duration '5ms' for --watchdog: at least 10ms",
        ),
    ] {
        let mut v: Vec<&str> = args.clone();
        v.push("true");
        let f = keepup(&v).run();
        f.expect_code(2);
        f.check(f.stderr.contains(want), want);
    }
}
