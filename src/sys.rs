//! Thin, safe wrappers over the few raw syscalls keepup makes outside std:
//! each returns `io::Result` so callers decide, and none of them panics.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A pipe whose both ends are close-on-exec; `flags` adds to that
/// (`O_NONBLOCK` for both ends). The one pipe helper.
pub fn pipe(flags: libc::c_int) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | flags) })?;
    // SAFETY: pipe2 succeeded, so both are fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we hold.
    unsafe {
        let flags = check(libc::fcntl(fd, libc::F_GETFL))?;
        check(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
    }
    Ok(())
}

/// Reads once; `Ok(0)` is end of file, `WouldBlock` means drained.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Writes all of `buf` to a blocking descriptor. On error, returns how much
/// was written before it, so callers can account for the rest.
pub fn write_all(fd: RawFd, mut buf: &[u8]) -> Result<(), (usize, io::Error)> {
    let mut done = 0;
    while !buf.is_empty() {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err((done, e));
        }
        if n == 0 {
            return Err((done, io::Error::from(io::ErrorKind::WriteZero)));
        }
        done += n as usize;
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// `kill(2)`; ESRCH is reported as an error the caller may ignore.
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill has no memory arguments.
    check(unsafe { libc::kill(pid, sig) }).map(|_| ())
}

/// The process group of `pid`, or None once it is gone.
pub fn getpgid(pid: i32) -> Option<i32> {
    // SAFETY: getpgid has no memory arguments.
    let g = unsafe { libc::getpgid(pid) };
    (g >= 0).then_some(g)
}

/// Whether any process is left in process group `pgid`.
pub fn group_alive(pgid: i32) -> bool {
    if pgid <= 0 {
        return false;
    }
    match kill(-pgid, 0) {
        Ok(()) => true,
        // EPERM: a member exists that we may not signal.
        Err(e) => e.raw_os_error() == Some(libc::EPERM),
    }
}

/// poll(2) over `fds` for at most `timeout_ms` (-1: forever). EINTR is not an
/// error: a signal arrived and its byte is in the self-pipe.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: fds is a valid slice of pollfd.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(n as usize)
}

/// Grows a pipe so that a chatty child rarely blocks on it and keepup reads
/// in large chunks. Best-effort: the default 64 KiB works too.
pub fn grow_pipe(fd: &OwnedFd, size: i32) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, size) };
}

pub fn isatty(fd: RawFd) -> bool {
    // SAFETY: isatty has no memory arguments.
    unsafe { libc::isatty(fd) == 1 }
}

/// Whether keepup is the foreground job of the terminal on stdin.
pub fn in_foreground() -> bool {
    // SAFETY: no memory arguments.
    isatty(0) && unsafe { libc::tcgetpgrp(0) == libc::getpgrp() }
}

/// Hands the terminal on stdin to `pgid`. From the background `tcsetpgrp`
/// raises SIGTTOU unless it is blocked, and keepup catches SIGTTOU (job
/// control), so it is blocked around the call. Errors (no terminal any
/// more) are ignored.
pub fn give_terminal(pgid: i32) {
    // SAFETY: plain sigset manipulation and tcsetpgrp, no memory kept.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTTOU);
        libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
        libc::tcsetpgrp(0, pgid);
        libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
}
