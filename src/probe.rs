//! Readiness and health probes: `sh -c CMD` probe processes (started and
//! reaped like any child of keepup) and a minimal non-blocking HTTP/1.1 GET
//! that lives inside the supervisor's poll loop, so a slow server never
//! blocks the log pump.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A `--health-http` URL as the user wrote it, checked but not resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: String,
    pub port: u16,
    pub path: String,
}

/// A `--health-http` URL with its host resolved, once, before the first
/// start (so a probe never blocks the loop on DNS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpTarget {
    pub url: HttpUrl,
    pub addr: SocketAddr,
}

impl HttpUrl {
    /// Splits `http://host[:port][/path]`. No TLS, no user info. Pure.
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        let (host, port, path) = parse_url(url)?;
        Ok(HttpUrl { host, port, path })
    }
}

/// Splits `http://host[:port][/path]`. No TLS, no user info.
pub fn parse_url(url: &str) -> Result<(String, u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| "only http:// URLs are supported (no TLS)".to_string())?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err("expected http://host:port/path".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6.find(']').ok_or("unclosed '[' in the host")?;
        let host = &v6[..end];
        let port = v6[end + 1..].strip_prefix(':');
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    let port = match port {
        None => 80,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("invalid port '{p}'"))?,
    };
    if host.is_empty() {
        return Err("missing host".into());
    }
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("the path has spaces or control characters".into());
    }
    Ok((host, port, path.to_string()))
}

impl HttpTarget {
    /// Resolves the URL's host (a blocking lookup: done once, at start).
    pub fn resolve(url: &HttpUrl) -> Result<HttpTarget, String> {
        let host = &url.host;
        let addr = (host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve '{host}': {e}"))?
            .next()
            .ok_or_else(|| format!("cannot resolve '{host}'"))?;
        Ok(HttpTarget {
            url: url.clone(),
            addr,
        })
    }
}

/// The status code of an HTTP/1.x status line (`HTTP/1.1 503 Service Unavailable`).
pub fn parse_status_line(line: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok().filter(|c| (100..=599).contains(c))
}

enum Stage {
    Connecting,
    Sending(usize),
    Reading(Vec<u8>),
}

/// One GET in flight.
pub struct HttpProbe {
    sock: OwnedFd,
    stage: Stage,
    request: Vec<u8>,
}

/// The outcome of a probe: `Ok` healthy, `Err` the reason it failed
/// (`exit 1`, `timeout`, `HTTP 503`, `connection refused`).
pub type Outcome = Result<(), String>;

pub fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data large enough for either family.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn reason(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => "connection refused".into(),
        Some(libc::ECONNRESET) => "connection reset".into(),
        _ => crate::diag::os_reason(e).to_lowercase(),
    }
}

/// A socket with a connect to `addr` under way (or made).
fn connect_nonblocking(addr: &SocketAddr) -> Result<OwnedFd, String> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket call.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(reason(&io::Error::last_os_error()));
    }
    // SAFETY: fresh descriptor.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let (ss, len) = sockaddr(addr);
    // SAFETY: ss holds a valid address of length len.
    let r = unsafe { libc::connect(fd, (&ss as *const libc::sockaddr_storage).cast(), len) };
    if r != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(reason(&e));
        }
    }
    Ok(sock)
}

impl HttpProbe {
    /// Starts a non-blocking connect to `addr` that succeeds once the
    /// connection is made (`--ready-port`): no request, no blocking.
    pub fn connect_only(addr: &SocketAddr) -> Result<HttpProbe, String> {
        Ok(HttpProbe {
            sock: connect_nonblocking(addr)?,
            stage: Stage::Connecting,
            request: Vec::new(),
        })
    }

    /// Starts a non-blocking connect. `Err` is an immediate failure.
    pub fn start(target: &HttpTarget) -> Result<HttpProbe, String> {
        let sock = connect_nonblocking(&target.addr)?;
        let host = if target.url.host.contains(':') {
            format!("[{}]", target.url.host)
        } else {
            target.url.host.clone()
        };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {host}:{}\r\nUser-Agent: keepup\r\nConnection: close\r\n\r\n",
            target.url.path, target.url.port
        )
        .into_bytes();
        Ok(HttpProbe {
            sock,
            stage: Stage::Connecting,
            request,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// What poll should wait for.
    pub fn events(&self) -> i16 {
        match self.stage {
            Stage::Connecting | Stage::Sending(_) => libc::POLLOUT,
            Stage::Reading(_) => libc::POLLIN,
        }
    }

    /// Advances after poll said the socket is ready; `Some` when finished.
    pub fn advance(&mut self) -> Option<Outcome> {
        let fd = self.sock.as_raw_fd();
        loop {
            match &mut self.stage {
                Stage::Connecting => {
                    let mut err: libc::c_int = 0;
                    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                    // SAFETY: err and len are valid out-pointers.
                    unsafe {
                        libc::getsockopt(
                            fd,
                            libc::SOL_SOCKET,
                            libc::SO_ERROR,
                            (&mut err as *mut libc::c_int).cast(),
                            &mut len,
                        )
                    };
                    if err != 0 {
                        return Some(Err(reason(&io::Error::from_raw_os_error(err))));
                    }
                    if self.request.is_empty() {
                        return Some(Ok(()));
                    }
                    self.stage = Stage::Sending(0);
                }
                Stage::Sending(sent) => {
                    let rest = &self.request[*sent..];
                    // SAFETY: rest is a valid slice. MSG_NOSIGNAL: no SIGPIPE.
                    let n = unsafe {
                        libc::send(fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL)
                    };
                    if n < 0 {
                        let e = io::Error::last_os_error();
                        if e.kind() == io::ErrorKind::WouldBlock {
                            return None;
                        }
                        return Some(Err(reason(&e)));
                    }
                    *sent += n as usize;
                    if *sent < self.request.len() {
                        return None;
                    }
                    self.stage = Stage::Reading(Vec::new());
                    return None;
                }
                Stage::Reading(buf) => {
                    let mut chunk = [0u8; 1024];
                    match crate::sys::read(fd, &mut chunk) {
                        Ok(0) => return Some(Err("no HTTP response".into())),
                        Ok(n) => {
                            buf.extend_from_slice(&chunk[..n]);
                            if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
                                return Some(match parse_status_line(&buf[..end]) {
                                    Some(code) if (200..300).contains(&code) => Ok(()),
                                    Some(code) => Err(format!("HTTP {code}")),
                                    None => Err("not an HTTP response".into()),
                                });
                            }
                            if buf.len() > 8192 {
                                return Some(Err("not an HTTP response".into()));
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                        Err(e) => return Some(Err(reason(&e))),
                    }
                }
            }
        }
    }
}

/// How a probe process ended, as a failure reason (or healthy).
pub fn command_outcome(exit: crate::reap::ExitKind) -> Outcome {
    match exit {
        crate::reap::ExitKind::Code(0) => Ok(()),
        crate::reap::ExitKind::Code(c) => Err(format!("exit {c}")),
        crate::reap::ExitKind::Signal(s) => {
            Err(format!("killed by {}", crate::units::signal_name(s)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("http://127.0.0.1:8080/health"),
            Ok(("127.0.0.1".into(), 8080, "/health".into()))
        );
        assert_eq!(
            parse_url("http://localhost"),
            Ok(("localhost".into(), 80, "/".into()))
        );
        assert_eq!(
            parse_url("http://[::1]:9000/x?y=1"),
            Ok(("::1".into(), 9000, "/x?y=1".into()))
        );
        assert!(parse_url("https://x/").unwrap_err().contains("TLS"));
        assert!(parse_url("http://:80/").is_err());
        assert!(parse_url("http://h:0/").is_err());
        assert!(parse_url("http://h:99999/").is_err());
        assert!(parse_url("http://u@h/").is_err());
        assert!(parse_url("http://h/a b").is_err());
        assert!(parse_url("127.0.0.1:80").is_err());
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK"), Some(200));
        assert_eq!(
            parse_status_line(b"HTTP/1.0 503 Service Unavailable"),
            Some(503)
        );
        assert_eq!(parse_status_line(b"HTTP/1.1 204"), Some(204));
        assert_eq!(parse_status_line(b"HTTP/2 200"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 2000 OK"), None);
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 099 x"), None);
        assert_eq!(parse_status_line(b"\xff\xfe"), None);
    }

    #[test]
    fn probe_against_a_local_server() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 1024];
            let n = s.read(&mut req).unwrap();
            s.write_all(b"HTTP/1.1 503 Busy\r\n\r\n").unwrap();
            String::from_utf8_lossy(&req[..n]).into_owned()
        });
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/hz")).unwrap();
        let target = HttpTarget::resolve(&url).unwrap();
        let mut p = HttpProbe::start(&target).unwrap();
        let outcome = loop {
            let mut pfd = libc::pollfd {
                fd: p.fd(),
                events: p.events(),
                revents: 0,
            };
            unsafe { libc::poll(&mut pfd, 1, 5000) };
            if let Some(o) = p.advance() {
                break o;
            }
        };
        assert_eq!(outcome, Err("HTTP 503".into()));
        let req = server.join().unwrap();
        assert!(
            req.starts_with("GET /hz HTTP/1.1\r\nHost: 127.0.0.1:"),
            "{req}"
        );
        drop(p);
        // A port bound but not listening refuses, and stays ours while the
        // probe runs (a freed port could be taken by a test in parallel).
        let closed = unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            let (ss, len) = sockaddr(&"127.0.0.1:0".parse().unwrap());
            assert_eq!(
                libc::bind(fd, (&ss as *const libc::sockaddr_storage).cast(), len),
                0
            );
            fd
        };
        let port = unsafe {
            let mut sin: libc::sockaddr_in = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            libc::getsockname(
                closed,
                (&mut sin as *mut libc::sockaddr_in).cast(),
                &mut len,
            );
            u16::from_be(sin.sin_port)
        };
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/hz")).unwrap();
        let target = HttpTarget::resolve(&url).unwrap();
        let refused = HttpProbe::start(&target).and_then(|mut p| {
            let mut pfd = libc::pollfd {
                fd: p.fd(),
                events: p.events(),
                revents: 0,
            };
            unsafe { libc::poll(&mut pfd, 1, 5000) };
            p.advance().unwrap_or(Ok(())).map(|_| p)
        });
        assert_eq!(refused.err(), Some("connection refused".into()));
        unsafe { libc::close(closed) };
    }
}

/// The inodes of the sockets that listen on TCP `port` (any address), from
/// `/proc/net/tcp` and `/proc/net/tcp6` ("sl local rem st ... inode").
pub fn listening_inodes(port: u16) -> Vec<u64> {
    let mut out = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        out.extend(parse_listening(&text, port));
    }
    out
}

/// The pure part of `listening_inodes`, for one file's text.
pub fn parse_listening(text: &str, port: u16) -> Vec<u64> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                return None;
            }
            let p = u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()?;
            (p == port).then(|| f[9].parse().ok()).flatten()
        })
        .collect()
}

/// Whether a process of `root`'s tree holds one of the sockets `inodes`:
/// a port answered by a stranger (another program holding it while the
/// child crash-loops) never makes a run ready.
pub fn tree_holds(root: i32, inodes: &[u64]) -> bool {
    if inodes.is_empty() {
        return false;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|t| wanted.iter().any(|w| t.as_os_str() == w.as_str()))
        });
        if holds && crate::notify::in_tree(pid, root) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod listen_tests {
    use super::*;

    #[test]
    fn listening_lines() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:0BB8 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 99999 1 0000000000000000 20 4 30 10 -1\n\
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(
            parse_listening(text, 3000),
            vec![12345],
            "listening only, not connections"
        );
        assert_eq!(parse_listening(text, 8080), vec![777]);
        assert!(parse_listening(text, 1).is_empty());
    }

    #[test]
    fn a_socket_of_this_process_is_in_its_tree() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let inodes = listening_inodes(port);
        assert_eq!(inodes.len(), 1);
        let me = std::process::id() as i32;
        assert!(tree_holds(me, &inodes));
        // A stranger's tree (a child of ours holds nothing) does not.
        let mut other = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(!tree_holds(other.id() as i32, &inodes));
        let _ = other.kill();
        let _ = other.wait();
    }
}
