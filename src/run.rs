//! One run of the child: its pid and process group, its output pipes with
//! their partial lines, its readiness and health checks, and when it
//! started. The supervisor holds the current run; everything that belongs
//! to one child lives here, so two runs can be alive side by side.

use std::time::Instant;

use crate::checks::Checks;
use crate::logs::Pipes;

pub struct Run {
    pub pid: i32,
    /// The child's process group, when it has its own.
    pub pgid: Option<i32>,
    pub started: Instant,
    /// The main process has been reaped: its pid may belong to someone else.
    pub exited: bool,
    pub pipes: Pipes,
    pub checks: Checks,
}

impl Run {
    /// Sends `sig` to the run's process group, or to its pid under
    /// `--no-group`; never to a pid that was already reaped.
    pub fn signal(&self, sig: i32) {
        if self.exited || self.pid <= 0 {
            return;
        }
        let target = match self.pgid {
            Some(pgid) => -pgid,
            None => self.pid,
        };
        let _ = crate::sys::kill(target, sig);
    }

    /// Whether a process is left in the run's own group.
    pub fn group_alive(&self) -> bool {
        self.pgid.is_some_and(crate::sys::group_alive)
    }
}
