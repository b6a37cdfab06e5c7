//! Starting the child: its own process group, the terminal when keepup has
//! it, a parent-death signal, and the signal state keepup inherited. Exec
//! failures come back through std's close-on-exec error pipe, so the 126/127
//! distinction needs no guessing.

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::signals::Inherited;

/// Where one of the child's output streams goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// keepup's own stdout/stderr, untouched.
    Inherit,
    /// A pipe that keepup reads (log files, timestamps).
    Pipe,
    /// Nowhere (`--quiet` with no file for this stream).
    Null,
}

pub struct SpawnSpec<'a> {
    pub command: &'a [OsString],
    pub own_group: bool,
    pub stdout: Output,
    pub stderr: Output,
    /// keepup holds the terminal's foreground: hand it to the child.
    pub take_terminal: bool,
    pub inherited: Inherited,
    /// Descriptors the child gets at fixed numbers: (the fd here, its
    /// number in the child). The `--ready-fd` pipe now; sockets next.
    pub extra_fds: &'a [(std::os::fd::RawFd, i32)],
}

pub struct Spawned {
    pub pid: i32,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

#[derive(Debug)]
pub enum SpawnError {
    NotFound(io::Error),
    NotExecutable(io::Error),
    /// Anything else: fork failed, no pipes (EMFILE), ...
    Other(io::Error),
}

impl SpawnError {
    /// The status keepup reports for a command that could not be started,
    /// as `sh` and tini do.
    pub fn status(&self) -> i32 {
        match self {
            SpawnError::NotFound(_) => 127,
            SpawnError::NotExecutable(_) => 126,
            SpawnError::Other(_) => 1,
        }
    }

    pub fn error(&self) -> &io::Error {
        match self {
            SpawnError::NotFound(e) | SpawnError::NotExecutable(e) | SpawnError::Other(e) => e,
        }
    }
}

fn stdio(o: Output) -> Stdio {
    match o {
        Output::Inherit => Stdio::inherit(),
        Output::Pipe => Stdio::piped(),
        Output::Null => Stdio::null(),
    }
}

pub fn spawn(spec: &SpawnSpec) -> Result<Spawned, SpawnError> {
    let mut cmd = Command::new(&spec.command[0]);
    cmd.args(&spec.command[1..])
        .stdout(stdio(spec.stdout))
        .stderr(stdio(spec.stderr));
    if spec.own_group {
        cmd.process_group(0);
    }
    let inherited = spec.inherited;
    let take_terminal = spec.take_terminal && spec.own_group;
    // Owned by the closure, which must be 'static; copied before the fork.
    let extra_fds = spec.extra_fds.to_vec();
    // SAFETY: getpid has no arguments.
    let keepup_pid = unsafe { libc::getpid() };
    // SAFETY: the closure makes only async-signal-safe calls (sigprocmask,
    // tcsetpgrp, prctl, getppid, signal, _exit) and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if take_terminal {
                // std emptied the mask: block SIGTTOU again, or taking the
                // terminal from the background stops us.
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGTTOU);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                libc::tcsetpgrp(0, libc::getpid());
            }
            // If keepup dies (even by SIGKILL), the child goes with it. keepup
            // may already be gone before this prctl: then no signal would come.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            if libc::getppid() != keepup_pid {
                libc::_exit(1);
            }
            for &(src, target) in &extra_fds {
                // dup2 leaves the new descriptor without close-on-exec; when
                // the numbers are equal, clear the flag by hand.
                if src == target {
                    libc::fcntl(src, libc::F_SETFD, 0);
                } else {
                    libc::dup2(src, target);
                }
            }
            inherited.restore_in_child();
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => SpawnError::NotFound(e),
        Some(libc::EACCES) | Some(libc::ENOEXEC) | Some(libc::EISDIR) | Some(libc::EPERM) => {
            SpawnError::NotExecutable(e)
        }
        _ => SpawnError::Other(e),
    })?;
    let pid = child.id() as i32;
    if take_terminal {
        // Also from the parent, so the terminal is the child's whichever of
        // the two runs first.
        crate::sys::give_terminal(pid);
    }
    let stdout = child.stdout.take().map(OwnedFd::from);
    let stderr = child.stderr.take().map(OwnedFd::from);
    // `child` is dropped without waiting: keepup's one reaper collects it.
    drop(child);
    for fd in stdout.iter().chain(stderr.iter()) {
        crate::sys::grow_pipe(fd, 1 << 20);
        let _ = crate::sys::set_nonblocking(std::os::fd::AsRawFd::as_raw_fd(fd));
    }
    Ok(Spawned {
        pid,
        stdout,
        stderr,
    })
}
