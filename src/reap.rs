//! The one place that calls `waitpid`: reaps every child that has exited
//! (the main child, orphans re-parented to keepup, probes) in one loop,
//! because SIGCHLDs coalesce. Also makes keepup a child subreaper.

use crate::backoff::ExitKind;

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

/// Reaps everything that has exited, calling `on_exit` for each. Returns true
/// when keepup has no children left at all (ECHILD).
pub fn reap_all(mut on_exit: impl FnMut(i32, ExitKind)) -> bool {
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        match pid {
            0 => return false,
            p if p > 0 => on_exit(p, exit_kind(status)),
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
