//! The one place that calls `waitpid`: reaps every child that has exited
//! (the main child, orphans re-parented to keepup, probes) in one loop,
//! because SIGCHLDs coalesce. Also makes keepup a child subreaper, and owns
//! what a wait status means (`ExitKind`) and the one way it is rendered.

/// How a child ended, as `waitpid` reported it (or as exec failed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    Code(i32),
    Signal(i32),
}

impl ExitKind {
    /// keepup's own exit status for this child status (SPEC section 6).
    pub fn status(self) -> i32 {
        match self {
            ExitKind::Code(c) => c,
            ExitKind::Signal(s) => 128 + s,
        }
    }

    /// `code 1`, `killed by SIGTERM`: the form `status` and `gave up` use.
    pub fn describe(self) -> String {
        match self {
            ExitKind::Code(c) => format!("code {c}"),
            ExitKind::Signal(s) => format!("killed by {}", crate::units::signal_name(s)),
        }
    }

    /// `exited with code 1`, `killed by SIGTERM`: the form of event lines.
    pub fn as_event(self) -> String {
        match self {
            ExitKind::Code(c) => format!("exited with code {c}"),
            ExitKind::Signal(s) => format!("killed by {}", crate::units::signal_name(s)),
        }
    }

    /// `exited with code 1`, `was killed by SIGTERM`: as a sentence's verb.
    pub fn as_verb(self) -> String {
        match self {
            ExitKind::Code(_) => self.as_event(),
            ExitKind::Signal(_) => format!("was {}", self.as_event()),
        }
    }
}

/// What `waitpid` reported for one child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reaped {
    Exited(ExitKind),
    /// Stopped by a job-control signal (only the main child is asked for
    /// this, so Ctrl-Z on an interactive child can stop keepup too).
    Stopped(i32),
}

/// Becomes the reaper of every orphaned descendant, so that a grandchild that
/// calls `setsid` still comes back to keepup to be stopped and reaped. PID 1
/// is already the reaper of its namespace.
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: getpid and prctl with integer arguments.
    unsafe {
        if libc::getpid() == 1 {
            return Ok(());
        }
        if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

pub fn exit_kind(status: libc::c_int) -> ExitKind {
    if libc::WIFSIGNALED(status) {
        ExitKind::Signal(libc::WTERMSIG(status))
    } else {
        ExitKind::Code(libc::WEXITSTATUS(status))
    }
}

/// Reaps everything that has exited, calling `on_exit` for each, and reports
/// a stop of `watch_stops` (the main child; 0 for none). Returns true when
/// keepup has no children left at all (ECHILD).
pub fn reap_all(watch_stops: i32, mut on_exit: impl FnMut(i32, Reaped)) -> bool {
    loop {
        let mut status = 0;
        // WUNTRACED reports stops of any child; only the main child's are
        // passed on, the others are none of keepup's business.
        // SAFETY: status is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG | libc::WUNTRACED) };
        match pid {
            0 => return false,
            p if p > 0 && libc::WIFSTOPPED(status) => {
                if p == watch_stops {
                    on_exit(p, Reaped::Stopped(libc::WSTOPSIG(status)));
                }
            }
            p if p > 0 => on_exit(p, Reaped::Exited(exit_kind(status))),
            _ => {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return true;
            }
        }
    }
}
