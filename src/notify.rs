//! The systemd notify protocol (SPEC 9, `--notify`): a datagram socket whose
//! address the child gets as `NOTIFY_SOCKET`. `READY=1` makes a run ready,
//! `STATUS=` shows in `status`, `WATCHDOG=1` feeds `--watchdog`. The kernel
//! stamps every datagram with its sender's pid (`SO_PASSCRED`), and keepup
//! accepts only those from its child's tree.
//!
//! The socket lives in the abstract namespace (`@keepup/...`): no file to
//! clean up, and a `--user` child can send to it without permissions;
//! strangers can send too, which is why the sender is checked.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub struct NotifySocket {
    fd: OwnedFd,
    /// `@keepup/notify/PID/N`, as `NOTIFY_SOCKET` writes it.
    pub address: String,
}

/// One assignment a datagram carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Ready,
    Status(String),
    Watchdog,
}

/// Parses a datagram: newline-separated `NAME=value` assignments; those
/// keepup does not act on are ignored, as systemd ignores unknown ones.
pub fn parse(datagram: &[u8]) -> Vec<Message> {
    let text = String::from_utf8_lossy(datagram);
    text.split('\n')
        .filter_map(|line| match line.split_once('=') {
            Some(("READY", "1")) => Some(Message::Ready),
            Some(("WATCHDOG", "1")) => Some(Message::Watchdog),
            Some(("STATUS", s)) => Some(Message::Status(
                crate::diag::one_line(s).chars().take(200).collect(),
            )),
            _ => None,
        })
        .collect()
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

impl NotifySocket {
    pub fn bind() -> io::Result<NotifySocket> {
        // SAFETY: plain socket call; a fresh descriptor.
        let fd = check(unsafe {
            libc::socket(
                libc::AF_UNIX,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        })?;
        // SAFETY: fd was just created and is ours.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let one: libc::c_int = 1;
        // SAFETY: one is a valid c_int.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PASSCRED,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
        // SAFETY: getpid has no arguments.
        let pid = unsafe { libc::getpid() };
        let (secs, nanos) = crate::logs::clock::wall_now();
        let name = format!("keepup/notify/{pid}/{secs}{nanos:09}");
        // SAFETY: sockaddr_un is plain data.
        let mut sun: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
        // sun_path[0] == 0: the abstract namespace.
        for (d, s) in sun.sun_path[1..].iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sa_family_t>() + 1 + name.len();
        // SAFETY: sun is a valid address of length len.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sun as *const libc::sockaddr_un).cast(),
                len as libc::socklen_t,
            )
        })?;
        Ok(NotifySocket {
            fd,
            address: format!("@{name}"),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Every datagram waiting, with its sender's pid (0 when the kernel
    /// gave none).
    pub fn receive(&self) -> Vec<(i32, Vec<u8>)> {
        let mut out = Vec::new();
        for _ in 0..64 {
            let mut buf = [0u8; 4096];
            // Room for one SCM_CREDENTIALS message, 8-byte aligned.
            let mut control = [0u64; 8];
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            // SAFETY: msghdr is plain data; the pointers stay valid for the call.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&control) as _;
            // SAFETY: msg describes buffers we own.
            let n = unsafe {
                libc::recvmsg(
                    self.fd.as_raw_fd(),
                    &mut msg,
                    libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
                )
            };
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            let mut pid = 0;
            // SAFETY: walking the control messages the kernel wrote.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&msg);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_SOCKET
                        && (*c).cmsg_type == libc::SCM_CREDENTIALS
                    {
                        let cred: libc::ucred = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                        pid = cred.pid;
                    } else if (*c).cmsg_level == libc::SOL_SOCKET
                        && (*c).cmsg_type == libc::SCM_RIGHTS
                    {
                        // Descriptors sent along (FDSTORE) are not kept.
                        let data = libc::CMSG_DATA(c) as *const RawFd;
                        let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                            / std::mem::size_of::<RawFd>();
                        for i in 0..count {
                            libc::close(std::ptr::read_unaligned(data.add(i)));
                        }
                    }
                    c = libc::CMSG_NXTHDR(&msg, c);
                }
            }
            out.push((pid, buf[..n as usize].to_vec()));
        }
        out
    }
}

/// Whether `pid` is `root` or one of its descendants: its parents are
/// walked up through `/proc` (at most 64 steps, never past pid 1).
pub fn in_tree(pid: i32, root: i32) -> bool {
    let mut p = pid;
    for _ in 0..64 {
        if p == root {
            return true;
        }
        if p <= 1 {
            return false;
        }
        let Ok(stat) = std::fs::read(format!("/proc/{p}/stat")) else {
            return false;
        };
        match crate::memory::parse_stat(&stat) {
            Some(s) => p = s.ppid,
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        assert_eq!(
            parse(b"READY=1\nSTATUS=serving 3 clients\nMAINPID=4\nWATCHDOG=1"),
            vec![
                Message::Ready,
                Message::Status("serving 3 clients".into()),
                Message::Watchdog
            ]
        );
        assert_eq!(parse(b"READY=0\nWATCHDOG=trigger\n"), vec![]);
        assert_eq!(parse(b"STATUS=a\rb"), vec![Message::Status("a\\rb".into())]);
    }

    #[test]
    fn a_datagram_carries_its_senders_pid() {
        let s = NotifySocket::bind().unwrap();
        assert!(s.address.starts_with("@keepup/notify/"));
        let c = std::os::unix::net::UnixDatagram::unbound().unwrap();
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&s.address[1..]).unwrap();
        c.send_to_addr(b"READY=1", &addr).unwrap();
        let got = s.receive();
        assert_eq!(got, vec![(std::process::id() as i32, b"READY=1".to_vec())]);
        assert!(in_tree(
            std::process::id() as i32,
            std::process::id() as i32
        ));
        assert!(!in_tree(1, std::process::id() as i32));
    }
}
