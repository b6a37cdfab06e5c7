//! Starting a child: fork, then in the child only async-signal-safe calls on
//! memory prepared before the fork (no allocation, no lock, no logging),
//! then exec. The child gets its own process group, the terminal when
//! keepup has it, a parent-death signal, its descriptors at fixed numbers
//! (stdio pipes, sockets, the ready fd), its pid written into the
//! environment (`LISTEN_PID`), and the signal state keepup inherited. An
//! exec failure comes back as an errno over a close-on-exec pipe, so the
//! 126/127 distinction needs no guessing.
//!
//! keepup does this itself rather than through `std::process::Command`
//! because std builds the environment out of reach before it forks, and
//! a child's own pid must go into it (the socket-activation protocol).

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

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
    /// The program, arguments and environment, laid out (see `Image`).
    pub image: &'a mut Image,
    pub own_group: bool,
    pub stdout: Output,
    pub stderr: Output,
    /// keepup holds the terminal's foreground: hand it to the child.
    pub take_terminal: bool,
    pub inherited: Inherited,
    /// Descriptors the child gets at fixed numbers: (the fd here, its
    /// number in the child): sockets at 3.., the `--ready-fd` pipe.
    pub extra_fds: &'a [(RawFd, i32)],
    /// `--cwd`: entered by path in the child, before the command is looked
    /// up (so a `current -> releases/N` symlink is followed anew).
    pub cwd: Option<&'a std::path::Path>,
    /// `--user`: groups, group, then user, dropped in the child.
    pub user: Option<&'a crate::users::User>,
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
    /// A step in the child before exec failed (entering `--cwd`, becoming
    /// `--user`): what it was, and the OS error.
    Setup(&'static str, io::Error),
}

impl SpawnError {
    /// The status keepup reports for a command that could not be started,
    /// as `sh` and tini do.
    pub fn status(&self) -> i32 {
        match self {
            SpawnError::NotFound(_) => crate::protocol::exit::NOT_FOUND,
            SpawnError::NotExecutable(_) => crate::protocol::exit::NOT_EXECUTABLE,
            SpawnError::Other(_) | SpawnError::Setup(..) => crate::protocol::exit::FAILURE,
        }
    }

    pub fn error(&self) -> &io::Error {
        match self {
            SpawnError::NotFound(e)
            | SpawnError::NotExecutable(e)
            | SpawnError::Other(e)
            | SpawnError::Setup(_, e) => e,
        }
    }

    fn from_report(stage: i32, errno: i32) -> SpawnError {
        let e = io::Error::from_raw_os_error(errno);
        match stage {
            STAGE_CWD => return SpawnError::Setup("cannot enter the working directory", e),
            STAGE_USER => return SpawnError::Setup("cannot become the user", e),
            STAGE_FDS => return SpawnError::Other(e),
            _ => {}
        }
        match errno {
            libc::ENOENT | libc::ENOTDIR => SpawnError::NotFound(e),
            libc::EACCES | libc::ENOEXEC | libc::EISDIR | libc::EPERM => {
                SpawnError::NotExecutable(e)
            }
            _ => SpawnError::Other(e),
        }
    }
}

/// What failed in the child, written with the errno into `Failure`.
const STAGE_EXEC: i32 = 0;
const STAGE_FDS: i32 = 1;
const STAGE_CWD: i32 = 2;
const STAGE_USER: i32 = 3;

/// Variables whose value is the child's own pid, which only the child
/// knows: their slots are filled between fork and exec.
pub const PID_VARIABLES: &[&str] = &["LISTEN_PID", "WATCHDOG_PID"];

/// A child's environment, as names and values.
#[derive(Clone, Debug, Default)]
pub struct Env {
    vars: Vec<(OsString, OsString)>,
    /// Names set to the child's pid (from `PID_VARIABLES`).
    pid_vars: Vec<&'static str>,
}

impl Env {
    /// keepup's own environment.
    pub fn inherit() -> Env {
        Env {
            vars: std::env::vars_os().collect(),
            pid_vars: Vec::new(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&OsStr> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_os_str())
    }

    pub fn set(&mut self, name: &str, value: impl Into<OsString>) {
        self.remove(name);
        self.vars.push((name.into(), value.into()));
    }

    pub fn remove(&mut self, name: &str) {
        self.vars.retain(|(k, _)| k != name);
        self.pid_vars.retain(|v| *v != name);
    }

    /// Sets `name` (one of `PID_VARIABLES`) to the child's pid.
    pub fn set_child_pid(&mut self, name: &'static str) {
        self.remove(name);
        self.pid_vars.push(name);
    }

    pub fn names(&self) -> impl Iterator<Item = &OsStr> {
        self.vars.iter().map(|(k, _)| k.as_os_str())
    }
}

/// The program, its arguments and its environment as the child's execve
/// takes them. Every string is in one buffer and the pointer arrays are made
/// once it is complete. keepup keeps one across restarts and lays it out
/// again only when the environment changed (an env file edited): a restart
/// then copies no string at all.
pub struct Image {
    /// `NUL`-terminated strings: program candidates, argv, `NAME=value`
    /// entries (with room for the pid in the pid slots).
    strings: Vec<u8>,
    /// Candidate paths for the program, tried in order (a PATH search).
    programs: Vec<*const libc::c_char>,
    argv_ptrs: Vec<*const libc::c_char>,
    env_ptrs: Vec<*const libc::c_char>,
    /// Where in `strings` the pid digits go.
    pid_slots: Vec<usize>,
}

/// What the child needs besides the image, made for each spawn.
struct Prepared<'a> {
    image: &'a mut Image,
    /// (source fd, target) pairs, and scratch room for the moved sources.
    fds: Vec<(RawFd, i32)>,
    moved: Vec<RawFd>,
    cwd: Option<CString>,
    /// `--user`: (uid, gid, supplementary groups).
    user: Option<(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)>,
}

const PID_ROOM: usize = 12;

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Appends `parts` and a NUL to `buf`; returns where the string starts.
fn push_cstr(buf: &mut Vec<u8>, parts: &[&[u8]]) -> io::Result<usize> {
    if parts.iter().any(|p| p.contains(&0)) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let at = buf.len();
    for p in parts {
        buf.extend_from_slice(p);
    }
    buf.push(0);
    Ok(at)
}

/// The places to look for `program`, as `execvp` would: the name itself
/// when it has a slash, else each `PATH` entry (an empty one is `.`).
/// Appended to `buf`; returns their offsets.
fn candidates(buf: &mut Vec<u8>, program: &OsStr, path: Option<&OsStr>) -> io::Result<Vec<usize>> {
    let p = program.as_bytes();
    if p.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    if p.contains(&b'/') {
        return Ok(vec![push_cstr(buf, &[p])?]);
    }
    let path = path.map_or(&b"/usr/local/bin:/usr/bin:/bin"[..], |p| p.as_bytes());
    path.split(|&b| b == b':')
        .map(|dir| {
            let dir = if dir.is_empty() { &b"."[..] } else { dir };
            push_cstr(buf, &[dir, b"/", p])
        })
        .collect()
}

impl Image {
    /// Lays out `command` with `env` (`None`: keepup's own environment).
    pub fn new(command: &[OsString], env: Option<&Env>) -> io::Result<Image> {
        let inherited;
        let env = match env {
            Some(e) => e,
            None => {
                inherited = Env::inherit();
                &inherited
            }
        };
        let program = command
            .first()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        let room: usize = command.iter().map(|a| a.len() + 1).sum::<usize>()
            + env
                .vars
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2)
                .sum::<usize>()
            + env.pid_vars.len() * (PID_ROOM + 16)
            + 512;
        let mut strings = Vec::with_capacity(room);
        let programs = candidates(&mut strings, program, env.get("PATH"))?;
        let argv = command
            .iter()
            .map(|a| push_cstr(&mut strings, &[a.as_bytes()]))
            .collect::<io::Result<Vec<_>>>()?;
        let mut entries = Vec::with_capacity(env.vars.len() + env.pid_vars.len());
        for (k, v) in &env.vars {
            // A variable with a NUL cannot be passed; it is left out.
            if let Ok(at) = push_cstr(&mut strings, &[k.as_bytes(), b"=", v.as_bytes()]) {
                entries.push(at);
            }
        }
        let mut pid_slots = Vec::new();
        for name in &env.pid_vars {
            let at = push_cstr(&mut strings, &[name.as_bytes(), b"="])?;
            pid_slots.push(strings.len() - 1);
            strings.resize(strings.len() + PID_ROOM - 1, 0);
            entries.push(at);
        }
        // The buffer is complete: its heap block never moves again (moving
        // the Image does not move it), so pointers into it hold.
        let base = strings.as_ptr();
        let ptrs = |offsets: &[usize]| -> Vec<*const libc::c_char> {
            let mut v: Vec<*const libc::c_char> = Vec::with_capacity(offsets.len() + 1);
            // SAFETY: every offset is within `strings`.
            v.extend(offsets.iter().map(|&o| unsafe { base.add(o) }.cast()));
            v.push(std::ptr::null());
            v
        };
        let mut programs = ptrs(&programs);
        programs.pop();
        let argv_ptrs = ptrs(&argv);
        let env_ptrs = ptrs(&entries);
        Ok(Image {
            strings,
            programs,
            argv_ptrs,
            env_ptrs,
            pid_slots,
        })
    }
}

fn prepare<'a>(spec: SpawnSpec<'a>, fds: Vec<(RawFd, i32)>) -> io::Result<Prepared<'a>> {
    let moved = vec![-1; fds.len()];
    let cwd = spec
        .cwd
        .map(|d| cstring(d.as_os_str().as_bytes()))
        .transpose()?;
    let user = spec.user.map(|u| (u.uid, u.gid, u.groups.clone()));
    Ok(Prepared {
        image: spec.image,
        fds,
        moved,
        cwd,
        user,
    })
}

/// Writes `n` in decimal and a NUL at `dst` (room for `PID_ROOM` bytes).
/// Async-signal-safe: no allocation, no formatting machinery.
unsafe fn write_pid(dst: *mut u8, n: i32) {
    let mut digits = [0u8; PID_ROOM];
    let mut len = 0;
    let mut v = n.max(0) as u32;
    loop {
        digits[len] = b'0' + (v % 10) as u8;
        len += 1;
        v /= 10;
        if v == 0 || len == PID_ROOM - 1 {
            break;
        }
    }
    for i in 0..len {
        // SAFETY: the caller guarantees PID_ROOM bytes at dst.
        unsafe { *dst.add(i) = digits[len - 1 - i] };
    }
    // SAFETY: len < PID_ROOM.
    unsafe { *dst.add(len) = 0 };
}

/// The child's side of the fork. Never returns: execs or `_exit`s.
/// Async-signal-safe calls only, on memory laid out before the fork.
unsafe fn in_child(
    p: &mut Prepared,
    new_session: bool,
    spec_group: bool,
    take_terminal: bool,
    inherited: &Inherited,
    keepup_pid: i32,
    failure: &mut Failure,
) -> ! {
    // SAFETY (whole body): plain syscalls on descriptors and memory this
    // process owns; nothing allocates.
    unsafe {
        if new_session {
            // `--user`: a session of its own, so no terminal of keepup's is
            // its controlling terminal (TIOCSTI); it leads its own group too.
            if libc::setsid() < 0 {
                failure.stage = STAGE_USER;
                failure.errno = *libc::__errno_location();
                libc::_exit(127);
            }
        } else if spec_group {
            libc::setpgid(0, 0);
        }
        if take_terminal {
            // All signals are blocked here (see spawn), SIGTTOU included,
            // so taking the terminal from the background cannot stop us.
            libc::tcsetpgrp(0, libc::getpid());
        }
        // Descriptors: first move every source that is not already above
        // every target up there, so that no dup2 overwrites a source still
        // to be copied (and none is its own target, which would keep
        // close-on-exec); dup2 then clears close-on-exec on the targets, and
        // the moved copies close at exec.
        let floor = p.fds.iter().map(|&(_, t)| t).max().unwrap_or(2) + 1;
        // A failure is written into keepup's memory, which this child
        // shares until it execs or exits (CLONE_VM, CLONE_VFORK): keepup
        // reads it when it resumes. No pipe to make, read and close.
        let mut fail_at = |stage: i32, errno: i32| -> ! {
            failure.stage = stage;
            failure.errno = errno;
            libc::_exit(127)
        };
        let errno = || *libc::__errno_location();
        for i in 0..p.fds.len() {
            let source = p.fds[i].0;
            if source >= floor {
                p.moved[i] = source;
                continue;
            }
            // The raw system call: musl's fcntl follows F_DUPFD_CLOEXEC with
            // an F_SETFD for kernels older than 2.6.24.
            let moved = libc::syscall(libc::SYS_fcntl, source, libc::F_DUPFD_CLOEXEC, floor) as i32;
            if moved < 0 {
                fail_at(STAGE_FDS, errno());
            }
            p.moved[i] = moved;
        }
        for i in 0..p.fds.len() {
            if libc::dup2(p.moved[i], p.fds[i].1) < 0 {
                fail_at(STAGE_FDS, errno());
            }
        }
        // Groups, then group, then user: after setuid nothing else may
        // change. The descriptors above were opened as root already.
        if let Some((uid, gid, groups)) = &p.user
            && (libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(*gid) != 0
                || libc::setuid(*uid) != 0)
        {
            fail_at(STAGE_USER, errno());
        }
        // If keepup dies (even by SIGKILL), the child goes with it. After
        // the change of user: a change of credentials clears this setting.
        // keepup may already be gone before this prctl: then no signal
        // would come, hence the getppid check.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        if libc::getppid() != keepup_pid {
            libc::_exit(1);
        }
        // Entered as the user, as systemd's WorkingDirectory= is; by path,
        // so a symlink switched by a deploy is followed.
        if let Some(dir) = &p.cwd
            && libc::chdir(dir.as_ptr()) != 0
        {
            fail_at(STAGE_CWD, errno());
        }
        let image = &mut *p.image;
        if !image.pid_slots.is_empty() {
            let pid = libc::getpid();
            for &at in &image.pid_slots {
                write_pid(image.strings.as_mut_ptr().add(at), pid);
            }
        }
        // Last, the signal state keepup inherited: dispositions first, then
        // the mask, which lets pending signals in with default actions.
        inherited.restore_in_child();
        let mut reported = libc::ENOENT;
        for &program in &image.programs {
            libc::execve(program, image.argv_ptrs.as_ptr(), image.env_ptrs.as_ptr());
            let e = errno();
            // As execvp: a candidate that exists but cannot be run is what
            // gets reported, unless a later one runs.
            match e {
                libc::ENOENT | libc::ENOTDIR => {}
                libc::EACCES => reported = e,
                _ => fail_at(STAGE_EXEC, e),
            }
        }
        fail_at(STAGE_EXEC, reported)
    }
}

/// The child's stack under `clone`: `in_child` needs little (under 1 KiB
/// measured: no allocation, a few small buffers), so 64 KiB is ample for
/// what libc's calls use.
const CHILD_STACK: usize = 64 * 1024;

/// The child's stack, mapped once with a guard page below it and reused:
/// only one child at a time runs on it (keepup is suspended until it execs
/// or exits), and a fresh mapping per spawn cost an mmap, page faults and
/// an munmap with its TLB flush on every restart. Only the pages a child
/// touched stay resident (one, in practice).
fn child_stack() -> io::Result<*mut u8> {
    use std::sync::atomic::{AtomicPtr, Ordering};
    static STACK: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
    let top = STACK.load(Ordering::Relaxed);
    if !top.is_null() {
        return Ok(top);
    }
    // The system's page (16 or 64 KiB on some arm64 kernels), or the guard
    // would take the stack it is meant to guard.
    let page = crate::memory::page_size() as usize;
    // SAFETY: a fresh anonymous mapping; the lowest page becomes the guard.
    let base = unsafe {
        let m = libc::mmap(
            std::ptr::null_mut(),
            CHILD_STACK + page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
            -1,
            0,
        );
        if m == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        libc::mprotect(m, page, libc::PROT_NONE);
        m.cast::<u8>()
    };
    // SAFETY: within the mapping; the top is 16-byte aligned (page-aligned).
    let top = unsafe { base.add(CHILD_STACK + page) };
    STACK.store(top, Ordering::Relaxed);
    Ok(top)
}

/// What `child_main` gets through `clone`'s one pointer.
struct ChildArgs<'a> {
    prepared: *mut Prepared<'a>,
    new_session: bool,
    own_group: bool,
    take_terminal: bool,
    inherited: *const Inherited,
    keepup_pid: i32,
    failure: *mut Failure,
}

/// What the child writes before it exits when a step or the exec failed.
#[derive(Default)]
struct Failure {
    stage: i32,
    /// 0: nothing failed.
    errno: i32,
}

extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the ChildArgs of `spawn`, alive while keepup waits.
    unsafe {
        let a = &*(arg as *const ChildArgs<'_>);
        in_child(
            &mut *a.prepared,
            a.new_session,
            a.own_group,
            a.take_terminal,
            &*a.inherited,
            a.keepup_pid,
            &mut *a.failure,
        )
    }
}

/// /dev/null, opened once (close-on-exec) and kept: a quiet child gets it
/// on every restart.
fn dev_null() -> io::Result<RawFd> {
    use std::sync::atomic::{AtomicI32, Ordering};
    static NULL: AtomicI32 = AtomicI32::new(-1);
    let fd = NULL.load(Ordering::Relaxed);
    if fd >= 0 {
        return Ok(fd);
    }
    let fd: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?
        .into();
    let fd = std::os::fd::IntoRawFd::into_raw_fd(fd);
    NULL.store(fd, Ordering::Relaxed);
    Ok(fd)
}

pub fn spawn(spec: SpawnSpec) -> Result<Spawned, SpawnError> {
    let other = SpawnError::Other;
    // Output pipes (read end ours, write end the child's) or /dev/null.
    let mut keep: Vec<OwnedFd> = Vec::new();
    let mut fds: Vec<(RawFd, i32)> = Vec::new();
    let mut ours = [None, None];
    for (i, (out, target)) in [(spec.stdout, 1), (spec.stderr, 2)].into_iter().enumerate() {
        match out {
            Output::Inherit => {}
            Output::Null => {
                fds.push((dev_null().map_err(other)?, target));
            }
            Output::Pipe => {
                let (r, w) = crate::sys::pipe(0).map_err(other)?;
                fds.push((w.as_raw_fd(), target));
                keep.push(w);
                ours[i] = Some(r);
            }
        }
    }
    fds.extend_from_slice(spec.extra_fds);
    let take_terminal = spec.take_terminal && spec.own_group && spec.user.is_none();
    let (own_group, new_session, inherited) = (spec.own_group, spec.user.is_some(), spec.inherited);
    let mut prepared = prepare(spec, fds).map_err(other)?;
    let top = child_stack().map_err(other)?;
    // SAFETY: getpid has no arguments.
    let keepup_pid = unsafe { libc::getpid() };

    // Every signal blocked across the fork: the child restores the
    // inherited dispositions before anything can be delivered to it, then
    // takes the inherited mask; keepup gets its own mask back right after.
    // SAFETY: plain sigset manipulation.
    let old_mask = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, &mut old);
        old
    };
    // vfork semantics: the child shares keepup's memory and runs on a
    // stack of its own until it execs or exits, while keepup waits; no
    // page table is copied, which is what makes a restart cheaper than a
    // shell's fork+exec. The child only reads what was prepared above and
    // writes into the scratch parts of `prepared` (moved fds, pid digits);
    // all signals are blocked, and it never returns into keepup's code.
    let mut failure = Failure::default();
    let mut args = ChildArgs {
        prepared: &mut prepared,
        new_session,
        own_group,
        take_terminal,
        inherited: &inherited,
        keepup_pid,
        failure: &mut failure,
    };
    // SAFETY: the stack grows down from its 16-byte aligned top; `args`
    // outlives the child's use of it, since keepup is suspended
    // (CLONE_VFORK) until the child has exec'd or exited.
    let pid = unsafe {
        libc::clone(
            child_main,
            top.cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&mut args as *mut ChildArgs).cast(),
        )
    };
    let fork_error = io::Error::last_os_error();
    // SAFETY: restoring keepup's own mask.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut()) };
    // The child's ends close here, in keepup: EOF on the pipes then means
    // the child (and whoever inherited them) closed them.
    drop(keep);
    if pid < 0 {
        return Err(SpawnError::Other(fork_error));
    }
    // No setpgid from this side: under CLONE_VFORK keepup resumes only once
    // the child has exec'd or exited, so its own setpgid has already run.
    if take_terminal {
        crate::sys::give_terminal(pid);
    }
    drop(prepared);
    // SAFETY: the child has exec'd or exited; volatile, since the writes
    // came from another task through a pointer the compiler cannot see.
    let (stage, errno) = unsafe {
        (
            std::ptr::read_volatile(&failure.stage),
            std::ptr::read_volatile(&failure.errno),
        )
    };
    if errno != 0 {
        // A step failed and the child exited: keepup's one reaper collects
        // it like any other.
        return Err(SpawnError::from_report(stage, errno));
    }
    for fd in ours.iter().flatten() {
        crate::sys::grow_pipe(fd, 1 << 20);
        let _ = crate::sys::set_nonblocking(fd.as_raw_fd());
    }
    let [stdout, stderr] = ours;
    Ok(Spawned {
        pid,
        stdout,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_digits() {
        for n in [0, 7, 42, 1234567, i32::MAX] {
            let mut buf = [0xffu8; PID_ROOM];
            unsafe { write_pid(buf.as_mut_ptr(), n) };
            let end = buf.iter().position(|&b| b == 0).unwrap();
            assert_eq!(std::str::from_utf8(&buf[..end]).unwrap(), n.to_string());
        }
    }

    #[test]
    fn path_search_candidates() {
        let c = |prog: &str, path: Option<&str>| -> Vec<String> {
            let mut buf = Vec::new();
            let offsets = candidates(&mut buf, OsStr::new(prog), path.map(OsStr::new)).unwrap();
            offsets
                .into_iter()
                .map(|o| {
                    let end = o + buf[o..].iter().position(|&b| b == 0).unwrap();
                    String::from_utf8(buf[o..end].to_vec()).unwrap()
                })
                .collect()
        };
        assert_eq!(c("./x", Some("/bin")), ["./x"]);
        assert_eq!(c("/usr/bin/env", None), ["/usr/bin/env"]);
        assert_eq!(c("node", Some("/a::/b")), ["/a/node", "./node", "/b/node"]);
        assert_eq!(c("sh", None)[0], "/usr/local/bin/sh");
        assert!(candidates(&mut Vec::new(), OsStr::new(""), None).is_err());
    }
}
