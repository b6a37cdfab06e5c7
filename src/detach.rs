//! Leaving the foreground and watching the parent: `--detach` (fork, new
//! session, report the first start to the waiting invoker) and
//! `--parent-death` (act as if a signal came when keepup's parent dies).

use crate::diag::complain;
use crate::protocol::{DetachReport, exit};
use crate::sys;

/// `--parent-death SIG`: the kernel sends SIG when keepup's parent dies.
/// `parent` is the pid keepup had as its parent when it started: if that
/// one is already gone, the prctl came too late and no signal would come.
pub fn on_parent_death(sig: i32, parent: i32) {
    // SAFETY: prctl and getppid with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, sig, 0, 0, 0);
        if libc::getppid() != parent {
            crate::signals::raise(sig);
        }
    }
}

pub enum Detached {
    /// The invoking process: exit with this status.
    Parent(i32),
    /// The background keepup: report the first start on this pipe.
    Daemon(std::os::fd::OwnedFd),
}

/// `--detach`: forks; the child leaves the session and the terminal and
/// supervises; the parent waits on a pipe until the first start has
/// succeeded or failed, and exits with what keepup would have exited with.
pub fn detach(name: &str) -> Detached {
    use std::os::fd::AsRawFd;
    let (read_end, write_end) = match sys::pipe(0) {
        Ok(ends) => ends,
        Err(e) => {
            complain(&format!("cannot detach: {}", crate::diag::os_reason(&e)));
            return Detached::Parent(exit::FAILURE);
        }
    };
    // SAFETY: keepup is single-threaded here, so fork is safe.
    match unsafe { libc::fork() } {
        -1 => {
            complain(&format!(
                "cannot detach: {}",
                std::io::Error::last_os_error()
            ));
            Detached::Parent(exit::FAILURE)
        }
        0 => {
            drop(read_end);
            // SAFETY: plain syscalls on our own process and fds.
            unsafe {
                libc::setsid();
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if null >= 0 {
                    for fd in 0..3 {
                        libc::dup2(null, fd);
                    }
                    if null > 2 {
                        libc::close(null);
                    }
                }
            }
            Detached::Daemon(write_end)
        }
        _ => {
            drop(write_end);
            let mut text = Vec::new();
            let mut buf = [0u8; 512];
            while let Ok(n) = sys::read(read_end.as_raw_fd(), &mut buf) {
                if n == 0 {
                    break;
                }
                text.extend_from_slice(&buf[..n]);
            }
            match DetachReport::decode(&String::from_utf8_lossy(&text)) {
                Some(DetachReport::Started { pid }) => {
                    println!("keepup: {name} started (pid {pid})");
                    return Detached::Parent(exit::OK);
                }
                Some(DetachReport::Failed { status, why }) => {
                    complain(&why);
                    return Detached::Parent(status);
                }
                None => {}
            }
            complain(&format!("{name} exited before its command started"));
            Detached::Parent(exit::FAILURE)
        }
    }
}
