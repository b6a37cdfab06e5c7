//! The state folder: where each instance publishes what `keepup status` shows
//! and listens for `stop`, `restart` and `signal`. Per instance NAME:
//!
//! - `NAME.lock`: held with `flock` for the life of keepup, so a second live
//!   instance of the same name is refused, and a crashed keepup's lock is
//!   released by the kernel for its successor.
//! - `NAME.state`: `key=value` lines, rewritten atomically (temporary file
//!   then `rename`) on every change; it stays after exit with the final state.
//! - `NAME.ctl`: a FIFO that the supervisor's poll loop reads commands from,
//!   so control never steals a signal the child may use (HUP, USR1, USR2).
//!
//! Every file is opened relative to the folder's descriptor with
//! `O_NOFOLLOW`: no symlink planted in the folder is ever followed.

use crate::protocol::RunState;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

/// Where state lives: `$KEEPUP_HOME`, else the nearest `.keepup` folder in
/// the working directory or one of its parents (a project's own, as git
/// finds `.git`), else `$XDG_RUNTIME_DIR/keepup`, else `/tmp/keepup-$UID`.
pub fn folder() -> PathBuf {
    // Looked up once: the start path asks more than once, and the answer
    // depends only on the environment and the working directory, which
    // keepup does not change.
    static FOLDER: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FOLDER.get_or_init(find_folder).clone()
}

fn find_folder() -> PathBuf {
    if let Some(h) = std::env::var_os("KEEPUP_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    if let Ok(here) = std::env::current_dir()
        && let Some(project) = nearest_keepup(&here, |p| std::fs::symlink_metadata(p).is_ok())
    {
        // Returned as found, a symlink included: `Folder::open` refuses an
        // unsafe one, and keepup does not fall back to another folder.
        return project;
    }
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|h| !h.is_empty()) {
        return PathBuf::from(x).join("keepup");
    }
    // SAFETY: getuid has no arguments.
    PathBuf::from(format!("/tmp/keepup-{}", unsafe { libc::getuid() }))
}

/// The nearest `DIR/.keepup` from `start` up to `/` that `exists`.
pub fn nearest_keepup(
    start: &std::path::Path,
    exists: impl Fn(&std::path::Path) -> bool,
) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join(".keepup"))
        .find(|candidate| exists(candidate))
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// An open state folder, checked to be ours and private.
pub struct Folder {
    pub path: PathBuf,
    dir: OwnedFd,
}

#[derive(Debug)]
pub enum FolderError {
    /// Cannot be used at all for a reason the user must fix (wrong owner,
    /// writable by others): refused.
    Unsafe(String),
    /// Cannot be created or opened (read-only file system, permissions):
    /// supervision goes on without state.
    Unavailable(String),
}

impl Folder {
    /// Opens (creating `0700` if missing) the state folder.
    pub fn open(create: bool) -> Result<Folder, FolderError> {
        let path = folder();
        let shown = path.display().to_string();
        if create {
            if let Err(e) = std::fs::create_dir_all(path.parent().unwrap_or(&path))
                && e.kind() != io::ErrorKind::AlreadyExists
            {
                return Err(FolderError::Unavailable(format!(
                    "cannot create state folder '{shown}': {}",
                    crate::diag::os_reason(&e)
                )));
            }
            let c = CString::new(path.as_os_str().as_bytes()).unwrap_or_default();
            // SAFETY: c is a valid C string.
            if unsafe { libc::mkdir(c.as_ptr(), 0o700) } != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EEXIST) {
                    return Err(FolderError::Unavailable(format!(
                        "cannot create state folder '{shown}': {}",
                        crate::diag::os_reason(&e)
                    )));
                }
            }
        }
        // A symlink is refused, never followed. O_NOFOLLOW below would say
        // so with ELOOP, but together with O_DIRECTORY the kernel answers
        // ENOTDIR, which reads as "unavailable": look first.
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(FolderError::Unsafe(format!(
                "state folder '{shown}' is a symlink; refusing it"
            )));
        }
        let c = CString::new(path.as_os_str().as_bytes()).unwrap_or_default();
        // SAFETY: c is a valid C string. O_NOFOLLOW refuses a symlinked folder.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ELOOP) {
                return Err(FolderError::Unsafe(format!(
                    "state folder '{shown}' is a symlink; refusing it"
                )));
            }
            return Err(FolderError::Unavailable(format!(
                "cannot open state folder '{shown}': {}",
                crate::diag::os_reason(&e)
            )));
        }
        // SAFETY: fd is a fresh descriptor we own.
        let dir = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: st is plain data filled by fstat.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        check(unsafe { libc::fstat(dir.as_raw_fd(), &mut st) }).map_err(|e| {
            FolderError::Unavailable(format!("cannot stat state folder '{shown}': {e}"))
        })?;
        // SAFETY: geteuid has no arguments.
        if st.st_uid != unsafe { libc::geteuid() } {
            return Err(FolderError::Unsafe(format!(
                "state folder '{shown}' belongs to another user (uid {}); refusing it",
                st.st_uid
            )));
        }
        if st.st_mode & 0o022 != 0 {
            return Err(FolderError::Unsafe(format!(
                "state folder '{shown}' is writable by others (mode {:o}); refusing it",
                st.st_mode & 0o777
            )));
        }
        Ok(Folder { path, dir })
    }

    fn openat(&self, name: &str, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
        let c = cstr(name);
        // SAFETY: valid dirfd and C string.
        let fd = check(unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                c.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        })?;
        // SAFETY: fresh descriptor.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn unlink(&self, name: &str) {
        let c = cstr(name);
        // SAFETY: valid dirfd and C string.
        unsafe { libc::unlinkat(self.dir.as_raw_fd(), c.as_ptr(), 0) };
    }

    /// Reads a whole state file (no symlinks followed).
    pub fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        let fd = self.openat(name, libc::O_RDONLY, 0)?;
        let mut f = std::fs::File::from(fd);
        let mut v = Vec::new();
        io::Read::read_to_end(&mut f, &mut v)?;
        Ok(v)
    }

    /// Writes `NAME` atomically: a temporary file, then `rename` over it
    /// (which replaces a planted symlink instead of following it).
    ///
    /// The rename is an exchange (`RENAME_EXCHANGE`) followed by an unlink
    /// of the old file under the temporary name. A plain rename over an
    /// existing file makes ext4 start writing the new file out at once
    /// (`auto_da_alloc`), and the replaced inode's release then waits for
    /// that I/O: in a crash loop, every state write waited on the disk. An
    /// exchange replaces nothing, and a state file that lives less than the
    /// kernel's writeback delay is never written to disk at all. Where the
    /// file system has no exchange (or the name is new), a plain rename.
    pub fn write_atomic(&self, name: &str, data: &[u8]) -> io::Result<()> {
        // SAFETY: getpid has no arguments.
        let tmp = format!(".{name}.{}.tmp", unsafe { libc::getpid() });
        // O_NOFOLLOW (in openat) refuses a symlink planted at the name.
        let fd = self.openat(&tmp, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o600)?;
        if let Err((_, e)) = crate::sys::write_all(fd.as_raw_fd(), data) {
            self.unlink(&tmp);
            return Err(e);
        }
        drop(fd);
        let (a, b) = (cstr(&tmp), cstr(name));
        let dir = self.dir.as_raw_fd();
        // SAFETY: valid dirfd and C strings.
        let exchanged = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                dir,
                a.as_ptr(),
                dir,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        } == 0;
        if exchanged {
            self.unlink(&tmp);
            return Ok(());
        }
        // SAFETY: valid dirfd and C strings.
        let r = unsafe { libc::renameat(dir, a.as_ptr(), dir, b.as_ptr()) };
        if r != 0 {
            let e = io::Error::last_os_error();
            self.unlink(&tmp);
            return Err(e);
        }
        Ok(())
    }

    /// The instance names that have a state file here.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.path)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()?
                            .strip_suffix(".state")
                            .map(str::to_string)
                    })
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        names.sort_by(|a, b| crate::names::natural(a, b));
        names
    }

    /// Whether a live keepup holds NAME's lock.
    pub fn is_locked(&self, name: &str) -> bool {
        let Ok(fd) = self.openat(&format!("{name}.lock"), libc::O_RDONLY, 0) else {
            return false;
        };
        // SAFETY: flock on our descriptor; released when fd closes.
        let r = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
        r != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK)
    }

    /// Removes an instance's files (for `status --prune`), unless it is live.
    pub fn remove(&self, name: &str) -> bool {
        if self.is_locked(name) {
            return false;
        }
        for suffix in ["state", "ctl", "lock"] {
            self.unlink(&format!("{name}.{suffix}"));
        }
        true
    }

    /// Sends one command line to a live instance's control FIFO.
    pub fn send(&self, name: &str, command: crate::protocol::Control) -> io::Result<()> {
        // O_NONBLOCK: with no reader (keepup gone) this fails with ENXIO
        // instead of hanging.
        let fd = self.openat(&format!("{name}.ctl"), libc::O_WRONLY | libc::O_NONBLOCK, 0)?;
        // SAFETY: fstat into plain data.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
        if st.st_mode & libc::S_IFMT != libc::S_IFIFO {
            return Err(io::Error::other("control file is not a FIFO"));
        }
        let line = format!("{}\n", command.encode());
        crate::sys::write_all(fd.as_raw_fd(), line.as_bytes()).map_err(|(_, e)| e)
    }
}

/// The instance's published state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub name: String,
    pub keepup_pid: i32,
    /// keepup's start time in clock ticks after boot (`/proc/PID/stat` field
    /// 22): with the pid, it tells a live keepup from a reused pid.
    pub keepup_start: u64,
    pub child_pid: i32,
    pub state: crate::protocol::RunState,
    pub restarts: u64,
    pub last_exit: String,
    pub rss: Option<u64>,
    /// Unix time (seconds) the current run started.
    pub started_at: i64,
    pub log: Option<PathBuf>,
    pub out_log: Option<PathBuf>,
    pub err_log: Option<PathBuf>,
    pub command: Vec<OsString>,
    pub cwd: PathBuf,
    pub ready: bool,
    pub probe: String,
    /// The instance's `--kill-timeout`, so `stop` knows how long to wait.
    pub kill_timeout_ms: u64,
    /// How many `keepup reload`s were answered, and how the last one ended
    /// (`protocol::ReloadOutcome`).
    pub reload_seq: u64,
    pub reload: String,
    /// The last `STATUS=` of `--notify`.
    pub status_text: String,
    /// The child's working directory (`--cwd` against keepup's own), its
    /// `--user` as given, and its env files (paths, never values).
    pub child_cwd: PathBuf,
    pub user: String,
    pub env_files: Vec<PathBuf>,
    /// What runs this instance again (SPEC 7 `start`, SPEC 12 `startup`):
    /// keepup's absolute path, the canonical argv, the `KEEPUP_*` settings
    /// as `NAME=value`, `PATH`, and the uid keepup runs as. Never other
    /// variables, never env-file values.
    pub exe: PathBuf,
    pub argv: Vec<OsString>,
    pub keepup_env: Vec<String>,
    pub path: OsString,
    pub uid: u32,
}

/// `%`-escapes bytes that would break a `key=value` line.
fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if b == b'%' || b == b'\n' || b == b'\r' || !(0x20..0x7f).contains(&b) {
            s.push_str(&format!("%{b:02X}"));
        } else {
            s.push(b as char);
        }
    }
    s
}

fn unescape(s: &str) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn path_bytes(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map(|p| escape(p.as_os_str().as_bytes()))
        .unwrap_or_default()
}

impl Snapshot {
    pub fn encode(&self) -> String {
        let mut s = String::new();
        let mut kv = |k: &str, v: String| {
            s.push_str(k);
            s.push('=');
            s.push_str(&v);
            s.push('\n');
        };
        kv("name", escape(self.name.as_bytes()));
        kv("keepup_pid", self.keepup_pid.to_string());
        kv("keepup_start", self.keepup_start.to_string());
        kv("child_pid", self.child_pid.to_string());
        kv("state", self.state.as_str().to_string());
        kv("restarts", self.restarts.to_string());
        kv("last_exit", escape(self.last_exit.as_bytes()));
        kv("rss", self.rss.map(|r| r.to_string()).unwrap_or_default());
        kv("started_at", self.started_at.to_string());
        kv("log", path_bytes(&self.log));
        kv("out_log", path_bytes(&self.out_log));
        kv("err_log", path_bytes(&self.err_log));
        kv("cwd", escape(self.cwd.as_os_str().as_bytes()));
        kv("ready", (self.ready as u8).to_string());
        kv("probe", escape(self.probe.as_bytes()));
        kv("kill_timeout_ms", self.kill_timeout_ms.to_string());
        kv("reload_seq", self.reload_seq.to_string());
        kv("reload", escape(self.reload.as_bytes()));
        kv("status_text", escape(self.status_text.as_bytes()));
        kv("child_cwd", escape(self.child_cwd.as_os_str().as_bytes()));
        kv("user", escape(self.user.as_bytes()));
        for (i, f) in self.env_files.iter().enumerate() {
            kv(&format!("env_file{i}"), escape(f.as_os_str().as_bytes()));
        }
        kv("exe", escape(self.exe.as_os_str().as_bytes()));
        for (i, a) in self.argv.iter().enumerate() {
            kv(&format!("opt{i}"), escape(a.as_bytes()));
        }
        for (i, e) in self.keepup_env.iter().enumerate() {
            kv(&format!("kenv{i}"), escape(e.as_bytes()));
        }
        kv("path", escape(self.path.as_bytes()));
        kv("uid", self.uid.to_string());
        for (i, a) in self.command.iter().enumerate() {
            kv(&format!("arg{i}"), escape(a.as_bytes()));
        }
        s
    }

    pub fn decode(text: &[u8]) -> Snapshot {
        let mut snap = Snapshot::default();
        let text = String::from_utf8_lossy(text);
        let mut args: Vec<(usize, OsString)> = Vec::new();
        let mut files: Vec<(usize, PathBuf)> = Vec::new();
        let mut opts: Vec<(usize, OsString)> = Vec::new();
        let mut kenv: Vec<(usize, String)> = Vec::new();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let raw = unescape(v);
            let string = || String::from_utf8_lossy(&raw).into_owned();
            let path = || (!raw.is_empty()).then(|| PathBuf::from(OsStr::from_bytes(&raw)));
            match k {
                "name" => snap.name = string(),
                "keepup_pid" => snap.keepup_pid = v.parse().unwrap_or(0),
                "keepup_start" => snap.keepup_start = v.parse().unwrap_or(0),
                "child_pid" => snap.child_pid = v.parse().unwrap_or(0),
                "state" => snap.state = RunState::parse(v).unwrap_or_default(),
                "restarts" => snap.restarts = v.parse().unwrap_or(0),
                "last_exit" => snap.last_exit = string(),
                "rss" => snap.rss = v.parse().ok(),
                "started_at" => snap.started_at = v.parse().unwrap_or(0),
                "log" => snap.log = path(),
                "out_log" => snap.out_log = path(),
                "err_log" => snap.err_log = path(),
                "cwd" => snap.cwd = PathBuf::from(OsStr::from_bytes(&raw)),
                "ready" => snap.ready = v == "1",
                "probe" => snap.probe = string(),
                "kill_timeout_ms" => snap.kill_timeout_ms = v.parse().unwrap_or(0),
                "reload_seq" => snap.reload_seq = v.parse().unwrap_or(0),
                "reload" => snap.reload = string(),
                "status_text" => snap.status_text = string(),
                "child_cwd" => snap.child_cwd = PathBuf::from(OsStr::from_bytes(&raw)),
                "user" => snap.user = string(),
                "exe" => snap.exe = PathBuf::from(OsStr::from_bytes(&raw)),
                "path" => snap.path = OsString::from_vec(raw.clone()),
                "uid" => snap.uid = v.parse().unwrap_or(u32::MAX),
                _ => {
                    if let Some(i) = k.strip_prefix("arg").and_then(|i| i.parse().ok()) {
                        args.push((i, OsString::from_vec(raw.clone())));
                    } else if let Some(i) = k.strip_prefix("env_file").and_then(|i| i.parse().ok())
                    {
                        files.push((i, PathBuf::from(OsString::from_vec(raw.clone()))));
                    } else if let Some(i) = k.strip_prefix("opt").and_then(|i| i.parse().ok()) {
                        opts.push((i, OsString::from_vec(raw.clone())));
                    } else if let Some(i) = k.strip_prefix("kenv").and_then(|i| i.parse().ok()) {
                        kenv.push((i, string()));
                    }
                }
            }
        }
        args.sort_by_key(|(i, _)| *i);
        snap.command = args.into_iter().map(|(_, a)| a).collect();
        files.sort_by_key(|(i, _)| *i);
        snap.env_files = files.into_iter().map(|(_, f)| f).collect();
        opts.sort_by_key(|(i, _)| *i);
        snap.argv = opts.into_iter().map(|(_, a)| a).collect();
        kenv.sort_by_key(|(i, _)| *i);
        snap.keepup_env = kenv.into_iter().map(|(_, e)| e).collect();
        snap
    }
}

/// The start time (clock ticks after boot) of a process, from its stat line.
pub fn start_time(pid: i32) -> Option<u64> {
    // One read (std's read of a whole file reads /proc in growing steps:
    // seven calls, not one). The fields up to the start time (22nd) fit in
    // far less than this; a longer line is cut after them.
    let mut buf = [0u8; 512];
    let n = crate::memory::read_proc(pid, "stat", &mut buf)?;
    crate::memory::parse_stat(&buf[..n]).map(|s| s.start_time)
}

/// Whether `pid` is still the keepup recorded in a state file: same pid and
/// same start time, so a reused pid is never taken for it.
pub fn same_process(pid: i32, recorded_start: u64) -> bool {
    pid > 0 && start_time(pid) == Some(recorded_start)
}

/// What a running keepup holds in the state folder.
pub struct Instance {
    folder: Folder,
    name: String,
    _lock: OwnedFd,
    ctl: Option<OwnedFd>,
    warned: bool,
    ctl_buf: Vec<u8>,
}

pub enum ClaimError {
    /// Another live keepup has this name: its pid, if its state says.
    Taken(Option<i32>),
    Folder(FolderError),
}

impl Instance {
    /// Takes the name: the lock, then the control FIFO.
    pub fn claim(name: &str) -> Result<Instance, ClaimError> {
        let folder = Folder::open(true).map_err(ClaimError::Folder)?;
        let lock = folder
            .openat(&format!("{name}.lock"), libc::O_RDWR | libc::O_CREAT, 0o600)
            .map_err(|e| {
                ClaimError::Folder(FolderError::Unavailable(format!(
                    "cannot create lock file in '{}': {}",
                    folder.path.display(),
                    crate::diag::os_reason(&e)
                )))
            })?;
        // SAFETY: flock on our descriptor.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let pid = folder
                .read(&format!("{name}.state"))
                .ok()
                .map(|t| Snapshot::decode(&t).keepup_pid)
                .filter(|&p| p > 0);
            return Err(ClaimError::Taken(pid));
        }
        let ctl_name = format!("{name}.ctl");
        folder.unlink(&ctl_name);
        let c = cstr(&ctl_name);
        // SAFETY: valid dirfd and C string.
        let ctl = if unsafe { libc::mkfifoat(folder.dir.as_raw_fd(), c.as_ptr(), 0o600) } == 0 {
            // O_RDWR: keepup is also a writer, so the FIFO never reports EOF
            // when a verb closes its end.
            folder
                .openat(&ctl_name, libc::O_RDWR | libc::O_NONBLOCK, 0)
                .ok()
        } else {
            None
        };
        Ok(Instance {
            folder,
            name: name.to_string(),
            _lock: lock,
            ctl,
            warned: false,
            ctl_buf: Vec::new(),
        })
    }

    pub fn ctl_fd(&self) -> Option<RawFd> {
        self.ctl.as_ref().map(|f| f.as_raw_fd())
    }

    /// Reads complete command lines from the control FIFO.
    pub fn commands(&mut self) -> Vec<String> {
        let Some(fd) = self.ctl_fd() else {
            return vec![];
        };
        let mut buf = [0u8; 512];
        while let Ok(n) = crate::sys::read(fd, &mut buf) {
            if n == 0 {
                break;
            }
            self.ctl_buf.extend_from_slice(&buf[..n]);
            if self.ctl_buf.len() > 64 * 1024 {
                self.ctl_buf.clear();
            }
        }
        let mut out = vec![];
        while let Some(i) = self.ctl_buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.ctl_buf.drain(..=i).collect();
            out.push(String::from_utf8_lossy(&line[..i]).trim().to_string());
        }
        out
    }

    /// Publishes a snapshot. Best-effort: a failure is reported once (the
    /// returned message) and never stops supervision.
    pub fn publish(&mut self, snap: &Snapshot) -> Option<String> {
        match self
            .folder
            .write_atomic(&format!("{}.state", self.name), snap.encode().as_bytes())
        {
            Ok(()) => None,
            Err(e) if !self.warned => {
                self.warned = true;
                Some(format!(
                    "cannot write state in '{}': {}; status and control verbs will not see this instance",
                    self.folder.path.display(),
                    crate::diag::os_reason(&e)
                ))
            }
            Err(_) => None,
        }
    }

    /// Removes the whole entry: a keepup whose first start failed leaves
    /// none (SPEC 7).
    pub fn remove(&mut self) {
        self.close();
        for suffix in ["state", "lock"] {
            self.folder.unlink(&format!("{}.{suffix}", self.name));
        }
    }

    /// Removes the control FIFO at exit; the state file stays.
    pub fn close(&mut self) {
        self.ctl = None;
        self.folder.unlink(&format!("{}.ctl", self.name));
    }
}

/// keepup's own start time, for the state file.
pub fn own_start_time() -> u64 {
    // SAFETY: getpid has no arguments.
    start_time(unsafe { libc::getpid() }).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_folders_are_found_upwards() {
        let have = ["/srv/app/.keepup", "/home/u/.keepup"];
        let exists = |p: &std::path::Path| have.iter().any(|h| p == std::path::Path::new(h));
        let f = |p: &str| nearest_keepup(std::path::Path::new(p), exists);
        assert_eq!(f("/srv/app"), Some("/srv/app/.keepup".into()));
        assert_eq!(f("/srv/app/src/lib"), Some("/srv/app/.keepup".into()));
        assert_eq!(f("/home/u/x"), Some("/home/u/.keepup".into()));
        assert_eq!(f("/tmp"), None);
    }

    #[test]
    fn snapshot_round_trip() {
        let snap = Snapshot {
            name: "api".into(),
            keepup_pid: 42,
            keepup_start: 123456,
            child_pid: 43,
            state: RunState::Running,
            restarts: 3,
            last_exit: "code 1".into(),
            rss: Some(1 << 20),
            started_at: 1_700_000_000,
            log: Some("logs/a=b%.log".into()),
            out_log: None,
            err_log: Some("/tmp/err\nlog".into()),
            command: vec![
                "node".into(),
                "a b".into(),
                OsString::from_vec(vec![0xff, b'=', b'\n']),
            ],
            cwd: "/srv/app".into(),
            ready: true,
            probe: "exit 0".into(),
            kill_timeout_ms: 5000,
            reload_seq: 2,
            reload: "reloaded 4 5".into(),
            status_text: "serving".into(),
            child_cwd: "/srv/app/current".into(),
            user: "node".into(),
            env_files: vec![".env".into(), "/etc/app.env".into()],
            exe: "/usr/local/bin/keepup".into(),
            argv: vec![
                "--name=api".into(),
                "--".into(),
                "node".into(),
                "x y.js".into(),
            ],
            keepup_env: vec!["KEEPUP_DELAY=1s".into()],
            path: "/usr/bin:/bin".into(),
            uid: 1000,
        };
        let text = snap.encode();
        assert_eq!(text.lines().count(), 21 + 3 + 2 + 3 + 4 + 1);
        assert_eq!(Snapshot::decode(text.as_bytes()), snap);
    }

    #[test]
    fn escaping() {
        assert_eq!(escape(b"a%b\nc"), "a%25b%0Ac");
        assert_eq!(unescape("a%25b%0Ac"), b"a%b\nc");
        assert_eq!(unescape("100%"), b"100%");
        assert_eq!(unescape("%zz"), b"%zz");
    }
}
