//! Which signals keepup catches, the self-pipe that turns them into poll
//! events, and the record of what keepup inherited (mask and ignored
//! signals) so the child gets exactly that back.
//!
//! keepup catches every signal that can be caught except the synchronous
//! faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP: keepup's own bugs must
//! kill it). So no signal kills keepup by its default action, and as PID 1
//! none is dropped by the kernel; the supervisor decides what each one
//! means (stop, job control, or forward to the child's group).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};

/// Synchronous faults and the two signals nobody can catch.
const NEVER_CAUGHT: [i32; 7] = [
    libc::SIGKILL,
    libc::SIGSTOP,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGTRAP,
];

/// Every signal keepup installs a handler for: 1..=31 but the above, and
/// the real-time signals the C library leaves to programs.
pub fn caught() -> impl Iterator<Item = i32> {
    (1..32)
        .filter(|s| !NEVER_CAUGHT.contains(s))
        .chain(libc::SIGRTMIN()..=libc::SIGRTMAX())
}

/// SIGPIPE's disposition before std's runtime set it to ignored: 0 unknown,
/// 1 default, 2 ignored. Read by `record_sigpipe`, which the dynamic
/// loader (or musl's start code) runs from `.init_array` before `main`.
static SIGPIPE_AT_START: AtomicU8 = AtomicU8::new(0);

#[used]
#[unsafe(link_section = ".init_array")]
static RECORD_SIGPIPE: extern "C" fn() = record_sigpipe;

extern "C" fn record_sigpipe() {
    // SAFETY: sigaction only reads the current disposition into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0 {
            let v = if old.sa_sigaction == libc::SIG_IGN {
                2
            } else {
                1
            };
            SIGPIPE_AT_START.store(v, Ordering::Relaxed);
        }
    }
}

/// What keepup inherited from its parent, restored in the child before exec.
#[derive(Clone, Copy)]
pub struct Inherited {
    mask: libc::sigset_t,
    /// Bit n set: signal n was ignored (SIG_IGN) when keepup started.
    ignored: u128,
}

impl Inherited {
    pub fn capture() -> Inherited {
        // SAFETY: sigset_t and sigaction are plain data filled by the kernel.
        unsafe {
            let mut mask: libc::sigset_t = std::mem::zeroed();
            libc::sigprocmask(libc::SIG_SETMASK, std::ptr::null(), &mut mask);
            let mut ignored = 0u128;
            for sig in caught() {
                let mut old: libc::sigaction = std::mem::zeroed();
                let was_ignored = if sig == libc::SIGPIPE {
                    // std has already replaced it; what it replaced was
                    // recorded before main (or, if that did not run, the
                    // default every program starts with is assumed).
                    SIGPIPE_AT_START.load(Ordering::Relaxed) == 2
                } else {
                    libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                        && old.sa_sigaction == libc::SIG_IGN
                };
                if was_ignored {
                    ignored |= 1 << sig;
                }
            }
            Inherited { mask, ignored }
        }
    }

    /// Whether `sig` was ignored when keepup started.
    pub fn was_ignored(&self, sig: i32) -> bool {
        self.ignored & (1 << sig) != 0
    }

    /// Puts back the inherited dispositions and mask. Runs between fork
    /// and exec: async-signal-safe only, no allocation.
    ///
    /// `execve` itself resets every caught signal to its default, so only
    /// the signals that were ignored need a call here (one or two, not the
    /// 54 of a full reset on every restart). A signal let in by the mask
    /// before the exec still finds keepup's handler, which in the child
    /// acts as the default would (see `on_signal`).
    pub fn restore_in_child(&self) {
        // SAFETY: signal() and sigprocmask() are async-signal-safe.
        unsafe {
            let mut ignored = self.ignored;
            while ignored != 0 {
                let sig = ignored.trailing_zeros() as i32;
                ignored &= ignored - 1;
                libc::signal(sig, libc::SIG_IGN);
            }
            libc::sigprocmask(libc::SIG_SETMASK, &self.mask, std::ptr::null_mut());
        }
    }
}

/// The self-pipe's write end and keepup's pid, for the handler.
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);
static OWN_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: getpid, write and errno are async-signal-safe; `info` comes
    // from the kernel for an SA_SIGINFO handler.
    unsafe {
        let errno = *libc::__errno_location();
        let me = OWN_PID.load(Ordering::Relaxed);
        // Between fork and exec the child still has this handler: a signal
        // there is the child's, not keepup's.
        let mine = libc::getpid() == me;
        // A SIGPIPE that keepup's own write to a closed pipe raised carries
        // keepup's pid; only one sent with kill(2) is passed on.
        let own_pipe_error = sig == libc::SIGPIPE && !info.is_null() && (*info).si_pid() == me;
        if !mine {
            // In the child between fork and exec (see restore_in_child): the
            // signal gets its default action, as it would have after exec.
            // It is blocked while this handler runs, so it is delivered
            // again, with SIG_DFL, the moment the handler returns.
            libc::signal(sig, libc::SIG_DFL);
            libc::kill(libc::getpid(), sig);
        } else if !own_pipe_error {
            let byte = sig as u8;
            libc::write(
                WRITE_FD.load(Ordering::Relaxed),
                (&byte as *const u8).cast(),
                1,
            );
        }
        *libc::__errno_location() = errno;
    }
}

/// The read end of the self-pipe: each caught signal is one byte, its number.
pub struct SignalPipe {
    read: OwnedFd,
}

impl SignalPipe {
    /// Installs the handlers. A handler for every signal is also what makes
    /// the kernel deliver them to keepup when it runs as PID 1.
    pub fn install() -> io::Result<SignalPipe> {
        let (read, write) = crate::sys::pipe(libc::O_NONBLOCK)?;
        // The write end lives as long as the process: handlers may run any time.
        WRITE_FD.store(write.as_raw_fd(), Ordering::Relaxed);
        std::mem::forget(write);
        // SAFETY: getpid has no arguments.
        OWN_PID.store(unsafe { libc::getpid() }, Ordering::Relaxed);
        for sig in caught() {
            // SAFETY: the handler is async-signal-safe (see on_signal).
            unsafe {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = on_signal as *const () as usize;
                act.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                libc::sigfillset(&mut act.sa_mask);
                if libc::sigaction(sig, &act, std::ptr::null_mut()) != 0 {
                    // Real-time signals the C library reserves are refused;
                    // nothing else should be.
                    let e = io::Error::last_os_error();
                    if sig < libc::SIGRTMIN() {
                        return Err(e);
                    }
                }
            }
        }
        // Job-control signals may arrive blocked from the parent; keepup
        // must see them (SPEC 4: never with job-control signals blocked).
        // SAFETY: plain sigset manipulation.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU] {
                libc::sigaddset(&mut set, sig);
            }
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
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
            match crate::sys::read(self.read.as_raw_fd(), &mut buf) {
                Ok(n) if n > 0 => {
                    out.extend(buf[..n].iter().map(|&b| b as i32));
                    // A short read took all there was: no second read just
                    // to be told EAGAIN (a byte written after it wakes poll
                    // again).
                    if n < buf.len() {
                        return;
                    }
                }
                _ => return,
            }
        }
    }
}

/// Sends `sig` to ourselves, as if it had come from outside (used when the
/// parent is found dead right after asking for a parent-death signal).
pub fn raise(sig: i32) {
    // SAFETY: kill on our own pid.
    unsafe { libc::kill(libc::getpid(), sig) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_all_but_faults() {
        let all: Vec<i32> = caught().collect();
        for s in [
            libc::SIGPWR,
            libc::SIGXCPU,
            libc::SIGURG,
            libc::SIGPIPE,
            libc::SIGABRT,
            libc::SIGSYS,
            libc::SIGTSTP,
            libc::SIGCHLD,
            libc::SIGRTMAX(),
        ] {
            assert!(all.contains(&s), "{s}");
        }
        for s in NEVER_CAUGHT {
            assert!(!all.contains(&s), "{s}");
        }
        assert!(all.iter().all(|&s| s < 128));
    }
}
