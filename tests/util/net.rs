//! Real TCP for the zero-downtime tests: a small server that takes its
//! socket from keepup (fd 3) and answers with its pid, and client threads
//! that count every answer and every error.
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::wait_for;

/// A server on the inherited fd 3 that answers each connection with its
/// pid; with an argument N it crashes (exit 1) after N answers. On SIGTERM
/// it stops as real servers do: it accepts nothing more, and what it has
/// accepted it answers; connections still in the backlog are the next
/// run's.
///
/// For the reload tests: `SERVER_BROKEN=FILE` makes it exit 3 at start
/// while FILE exists; `SERVER_READY_FD=N` makes it write a newline to fd N
/// once it accepts, unless `SERVER_HANG=FILE` exists.
pub const SERVER: &str = "import os, select, signal, socket, sys\n\
n = int(sys.argv[1]) if len(sys.argv) > 1 else 0\n\
if os.path.exists(os.environ.get('SERVER_BROKEN', '/nonexistent')): sys.exit(3)\n\
s = socket.socket(fileno=3)\n\
s.setblocking(False)\n\
r, w = os.pipe()\n\
os.set_blocking(w, False)\n\
signal.set_wakeup_fd(w)\n\
signal.signal(signal.SIGTERM, lambda *_: None)\n\
fd = os.environ.get('SERVER_READY_FD')\n\
if fd and not os.path.exists(os.environ.get('SERVER_HANG', '/nonexistent')): os.write(int(fd), b'\\n')\n\
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

/// One real TCP request (an HTTP/1.0 GET, which the Python server reads
/// as any line): connect, send, read the pid the server answers as the
/// first word of its last line.
pub fn request(addr: SocketAddr) -> Result<i32, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    answer
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| l.split_whitespace().next())
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| format!("answer {answer:?}"))
}

/// Client threads making requests back to back until `finish`, with
/// their own count of answers (tests run in parallel: no global counter).
pub struct LoadRun {
    handles: Vec<JoinHandle<Load>>,
    answered: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

/// Starts `clients` threads on `addr`.
pub fn load(addr: SocketAddr, clients: usize) -> LoadRun {
    let answered = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let handles = (0..clients)
        .map(|_| {
            let (stop, answered) = (stop.clone(), answered.clone());
            std::thread::spawn(move || {
                let mut l = Load::default();
                // Bounded: at most 100,000 requests or the stop flag.
                for _ in 0..100_000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match request(addr) {
                        Ok(pid) => {
                            answered.fetch_add(1, Ordering::SeqCst);
                            l.answers += 1;
                            l.pids.insert(pid);
                        }
                        Err(e) => l.errors.push(e),
                    }
                }
                l
            })
        })
        .collect();
    LoadRun {
        handles,
        answered,
        stop,
    }
}

impl LoadRun {
    /// Waits until these clients got `n` more answers.
    pub fn grow(&self, n: usize) {
        let start = self.answered.load(Ordering::SeqCst);
        wait_for(
            &format!("{n} more answers"),
            Duration::from_secs(30),
            || self.answered.load(Ordering::SeqCst) >= start + n,
        );
    }

    /// Stops the clients and sums up what they saw.
    pub fn finish(self) -> Load {
        self.stop.store(true, Ordering::SeqCst);
        let mut t = Load::default();
        for h in self.handles {
            let l = h.join().unwrap();
            t.answers += l.answers;
            t.errors.extend(l.errors);
            t.pids.extend(l.pids);
        }
        t
    }
}
