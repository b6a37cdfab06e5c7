//! The listening sockets keepup owns for its child (SPEC 9): `--listen`
//! addresses parsed (a pure function), bound once before the first start,
//! held close-on-exec for keepup's whole life, and handed to every run as
//! fds 3, 4, ... with the systemd socket-activation variables. Connections
//! that arrive while no run accepts wait in the kernel's backlog.

use std::ffi::OsString;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The first fd a run gets its sockets at (after stdin, stdout, stderr).
pub const FIRST_FD: i32 = 3;

/// Longest path a Unix socket address holds (`sun_path` less its NUL).
const UNIX_PATH_MAX: usize = 107;

/// Where to listen, as the user wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// `PORT`: every interface, IPv6 dual-stack where IPv6 is on.
    Port(u16),
    /// `HOST:PORT`, `[v6]:PORT`: resolved once, at bind time.
    Host(String, u16),
    /// `unix:PATH`.
    Unix(PathBuf),
}

/// One `--listen [NAME=]ADDR`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    pub name: String,
    pub address: Address,
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Address::Port(p) => write!(f, "{p}"),
            Address::Host(h, p) if h.contains(':') => write!(f, "[{h}]:{p}"),
            Address::Host(h, p) => write!(f, "{h}:{p}"),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

fn port(text: &str) -> Result<u16, String> {
    match text.parse::<u32>() {
        Ok(p @ 1..=65535) => Ok(p as u16),
        Ok(_) => Err(format!("port {text} is out of range (1 to 65535)")),
        Err(_) => Err(format!("'{text}' is not a port number")),
    }
}

/// Parses `[NAME=]ADDR`. NAME goes into `LISTEN_FDNAMES`, joined by `:`,
/// so it cannot hold one.
pub fn parse(text: &str) -> Result<Listen, String> {
    let (name, addr) = match text.split_once('=') {
        Some((n, a)) => (n, a),
        None => ("listen", text),
    };
    if name.is_empty()
        || name.len() > 255
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(format!(
            "invalid name '{name}': use letters, digits and _ - ."
        ));
    }
    let address = if let Some(path) = addr.strip_prefix("unix:") {
        if path.is_empty() {
            return Err("empty path after unix:".into());
        }
        if path.len() > UNIX_PATH_MAX {
            return Err(format!(
                "the path is {} bytes; a Unix socket path has at most {UNIX_PATH_MAX}",
                path.len()
            ));
        }
        Address::Unix(PathBuf::from(path))
    } else if let Some(v6) = addr.strip_prefix('[') {
        let (host, rest) = v6
            .split_once(']')
            .ok_or_else(|| "unclosed '[' in the address".to_string())?;
        let p = rest
            .strip_prefix(':')
            .ok_or_else(|| "expected [HOST]:PORT".to_string())?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("'{host}' is not an IPv6 address"));
        }
        Address::Host(host.to_string(), port(p)?)
    } else if let Some((host, p)) = addr.rsplit_once(':') {
        if host.is_empty() || host.contains(':') {
            return Err("expected PORT, HOST:PORT, [IPv6]:PORT or unix:PATH".into());
        }
        Address::Host(host.to_string(), port(p)?)
    } else {
        Address::Port(port(addr)?)
    };
    Ok(Listen {
        name: name.to_string(),
        address,
    })
}

/// A bound, listening socket.
pub struct Listener {
    pub spec: Listen,
    pub fd: OwnedFd,
    /// The socket file of a `unix:` listener, removed when keepup exits.
    unix_path: Option<PathBuf>,
}

impl Listener {
    /// The TCP port it listens on, if any.
    pub fn port(&self) -> Option<u16> {
        match &self.spec.address {
            Address::Port(p) | Address::Host(_, p) => Some(*p),
            Address::Unix(_) => None,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(path) = &self.unix_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn socket(family: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket call; the result is a fresh descriptor.
    let fd = check(unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fd was just created and is ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_int(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: v is a valid c_int for the length given.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

fn bind_tcp(addr: SocketAddr, dual_stack: bool, reuseport: bool) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let sock = socket(family)?;
    let fd = sock.as_raw_fd();
    // A keepup restarted by systemd rebinds at once, TIME_WAIT or not.
    set_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if reuseport {
        set_int(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    }
    if family == libc::AF_INET6 {
        set_int(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            !dual_stack as i32,
        )?;
    }
    let (ss, len) = crate::probe::sockaddr(&addr);
    // SAFETY: ss holds a valid address of length len.
    check(unsafe { libc::bind(fd, (&ss as *const libc::sockaddr_storage).cast(), len) })?;
    Ok(sock)
}

fn bind_unix(path: &std::path::Path) -> io::Result<OwnedFd> {
    // A socket file left by a keepup that died is replaced; anything else
    // at that path is not touched.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_socket() {
            std::fs::remove_file(path)?;
        } else {
            return Err(io::Error::from_raw_os_error(libc::EADDRINUSE));
        }
    }
    let sock = socket(libc::AF_UNIX)?;
    // SAFETY: sockaddr_un is plain data.
    let mut sun: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= sun.sun_path.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (d, s) in sun.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: sun is a valid sockaddr_un.
    check(unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&sun as *const libc::sockaddr_un).cast(),
            std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        )
    })?;
    // systemd's SocketMode= default: anyone may connect.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(sock)
}

/// Binds and listens on every address, in order. The error names the
/// address and the OS reason: `cannot listen on 127.0.0.1:3000: Address
/// already in use`.
pub fn bind_all(specs: &[Listen], reuseport: bool, backlog: u32) -> Result<Vec<Listener>, String> {
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let failed = |e: io::Error| {
            format!(
                "cannot listen on {}: {}",
                spec.address,
                crate::diag::os_reason(&e)
            )
        };
        let (fd, unix_path) = match &spec.address {
            Address::Port(p) => {
                let any6 = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, *p));
                match bind_tcp(any6, true, reuseport) {
                    Ok(fd) => (fd, None),
                    // IPv6 off in this kernel or namespace: IPv4 alone.
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL | libc::EPROTONOSUPPORT)
                        ) =>
                    {
                        let any4 = SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, *p));
                        (bind_tcp(any4, false, reuseport).map_err(failed)?, None)
                    }
                    Err(e) => return Err(failed(e)),
                }
            }
            Address::Host(host, p) => {
                let addr = (host.as_str(), *p)
                    .to_socket_addrs()
                    .map_err(|e| {
                        format!(
                            "cannot listen on {}: cannot resolve '{host}': {e}",
                            spec.address
                        )
                    })?
                    .next()
                    .ok_or_else(|| {
                        format!("cannot listen on {}: cannot resolve '{host}'", spec.address)
                    })?;
                (bind_tcp(addr, false, reuseport).map_err(failed)?, None)
            }
            Address::Unix(path) => (bind_unix(path).map_err(failed)?, Some(path.clone())),
        };
        let listener = Listener {
            spec: spec.clone(),
            fd,
            unix_path,
        };
        // SAFETY: listen on our own socket.
        check(unsafe {
            libc::listen(listener.fd.as_raw_fd(), backlog.min(i32::MAX as u32) as i32)
        })
        .map_err(failed)?;
        out.push(listener);
    }
    Ok(out)
}

/// `--user`: the files of `unix:` sockets belong to the child's user, so
/// it may remove or re-create them as it would its own. Best-effort.
pub fn give_to(listeners: &[Listener], uid: u32, gid: u32) {
    for path in listeners.iter().filter_map(|l| l.unix_path.as_ref()) {
        let _ = std::os::unix::fs::chown(path, Some(uid), Some(gid));
    }
}

/// The fds a run gets: `(keepup's fd, the child's)`.
pub fn child_fds(listeners: &[Listener]) -> Vec<(RawFd, i32)> {
    listeners
        .iter()
        .zip(FIRST_FD..)
        .map(|(l, n)| (l.fd.as_raw_fd(), n))
        .collect()
}

/// The variables that describe them (`LISTEN_PID` is set per child by the
/// spawn, which alone knows the pid).
pub fn child_vars(listeners: &[Listener]) -> [(&'static str, OsString); 2] {
    let names: Vec<&str> = listeners.iter().map(|l| l.spec.name.as_str()).collect();
    [
        ("LISTEN_FDS", listeners.len().to_string().into()),
        ("LISTEN_FDNAMES", names.join(":").into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let ok = |t: &str| parse(t).unwrap();
        assert_eq!(
            ok("3000"),
            Listen {
                name: "listen".into(),
                address: Address::Port(3000)
            }
        );
        assert_eq!(
            ok("127.0.0.1:80").address,
            Address::Host("127.0.0.1".into(), 80)
        );
        assert_eq!(
            ok("localhost:3000").address,
            Address::Host("localhost".into(), 3000)
        );
        assert_eq!(ok("[::1]:3000").address, Address::Host("::1".into(), 3000));
        assert_eq!(ok("web=[::]:443").name, "web");
        assert_eq!(
            ok("unix:/run/app.sock").address,
            Address::Unix("/run/app.sock".into())
        );
        assert_eq!(ok("admin=unix:rel.sock").name, "admin");
        for a in ["3000", "127.0.0.1:80", "[::1]:3000", "unix:/run/app.sock"] {
            assert_eq!(ok(a).address.to_string(), a);
        }
    }

    #[test]
    fn bad_addresses() {
        let err = |t: &str| parse(t).unwrap_err();
        assert_eq!(err("0"), "port 0 is out of range (1 to 65535)");
        assert_eq!(err("70000"), "port 70000 is out of range (1 to 65535)");
        assert_eq!(err("http"), "'http' is not a port number");
        assert_eq!(err("host:"), "'' is not a port number");
        assert_eq!(
            err(":80"),
            "expected PORT, HOST:PORT, [IPv6]:PORT or unix:PATH"
        );
        assert_eq!(
            err("::1:80"),
            "expected PORT, HOST:PORT, [IPv6]:PORT or unix:PATH"
        );
        assert_eq!(err("[::1:80"), "unclosed '[' in the address");
        assert_eq!(err("[nope]:80"), "'nope' is not an IPv6 address");
        assert_eq!(
            err("a:b=3000"),
            "invalid name 'a:b': use letters, digits and _ - ."
        );
        assert_eq!(err("unix:"), "empty path after unix:");
        assert!(err(&format!("unix:/{}", "x".repeat(120))).contains("at most 107"));
    }

    #[test]
    fn bind_listen_and_refuse_a_taken_port() {
        let a = parse("127.0.0.1:0").unwrap_err();
        assert!(a.contains("out of range"));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = l.local_addr().unwrap().port();
        let spec = parse(&format!("127.0.0.1:{taken}")).unwrap();
        let e = bind_all(&[spec], false, 16).err().unwrap();
        assert_eq!(
            e,
            format!("cannot listen on 127.0.0.1:{taken}: Address already in use")
        );
    }
}
