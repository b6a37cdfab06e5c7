//! Which signals keepup catches and what it does with them, the self-pipe
//! that turns them into poll events, and the record of what keepup inherited
//! (mask and ignored signals) so the child gets exactly that back.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Signals that ask keepup to stop: forwarded as they are, then the stop
/// sequence; a second one during the stop kills at once.
pub const STOPPING: [i32; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT];

/// Signals passed to the child's group unchanged; keepup itself ignores them.
pub const FORWARDED: [i32; 6] = [
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCONT,
    libc::SIGALRM,
];

/// Job-control signals keepup blocks for itself: a background keepup must be
/// able to hand the terminal to its child (`tcsetpgrp`) without being stopped.
const BLOCKED: [i32; 2] = [libc::SIGTTOU, libc::SIGTTIN];

/// What keepup inherited from its parent, restored in the child before exec.
#[derive(Clone, Copy)]
pub struct Inherited {
    mask: libc::sigset_t,
    /// Bit n set: signal n was ignored (SIG_IGN) when keepup started.
    ignored: u64,
}

impl Inherited {
    pub fn capture() -> Inherited {
        // SAFETY: sigset_t and sigaction are plain data filled by the kernel.
        unsafe {
            let mut mask: libc::sigset_t = std::mem::zeroed();
            libc::sigprocmask(libc::SIG_SETMASK, std::ptr::null(), &mut mask);
            let mut ignored = 0u64;
            for sig in handled().chain(BLOCKED) {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                    && old.sa_sigaction == libc::SIG_IGN
                {
                    ignored |= 1 << sig;
                }
            }
            Inherited { mask, ignored }
        }
    }

    /// Puts back the inherited dispositions of every signal keepup changed and
    /// the inherited mask. Runs between fork and exec: async-signal-safe only.
    pub fn restore_in_child(&self) {
        // SAFETY: signal() and sigprocmask() are async-signal-safe.
        unsafe {
            for sig in handled().chain(BLOCKED) {
                let disp = if self.ignored & (1 << sig) != 0 {
                    libc::SIG_IGN
                } else {
                    libc::SIG_DFL
                };
                libc::signal(sig, disp);
            }
            libc::sigprocmask(libc::SIG_SETMASK, &self.mask, std::ptr::null_mut());
        }
    }
}

/// Every signal keepup installs a handler for.
fn handled() -> impl Iterator<Item = i32> {
    STOPPING.into_iter().chain(FORWARDED).chain([libc::SIGCHLD])
}

/// The read end of the self-pipe: each caught signal is one byte, its number.
pub struct SignalPipe {
    read: OwnedFd,
}

impl SignalPipe {
    /// Installs the handlers. Handlers for every signal keepup acts on are what
    /// make the kernel deliver them to keepup when it runs as PID 1.
    pub fn install() -> io::Result<SignalPipe> {
        let (read, write) = crate::sys::pipe_nonblocking()?;
        let write_fd: RawFd = write.as_raw_fd();
        // The write end lives as long as the process: handlers may run any time.
        std::mem::forget(write);
        for sig in handled() {
            let byte = sig as u8;
            // SAFETY: the handler only calls write(2) and touches errno, both
            // async-signal-safe.
            unsafe {
                signal_hook::low_level::register(sig, move || {
                    let errno = *libc::__errno_location();
                    libc::write(write_fd, (&byte as *const u8).cast(), 1);
                    *libc::__errno_location() = errno;
                })?;
            }
        }
        // SAFETY: plain sigset manipulation.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in BLOCKED {
                libc::sigaddset(&mut set, sig);
            }
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
        Ok(SignalPipe { read })
    }

    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Appends every signal caught since the last call, in arrival order.
    pub fn drain(&self, out: &mut Vec<i32>) {
        let mut buf = [0u8; 256];
        loop {
            // SAFETY: reading into a stack buffer of the given length.
            let n =
                unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
            out.extend(buf[..n as usize].iter().map(|&b| b as i32));
        }
    }
}

/// Sends `sig` to ourselves, as if it had come from outside (used when the
/// parent is found dead right after asking for a parent-death signal).
pub fn raise(sig: i32) {
    // SAFETY: kill on our own pid.
    unsafe { libc::kill(libc::getpid(), sig) };
}
