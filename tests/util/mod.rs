//! The one harness every black-box test goes through: build a keepup command
//! with a clean environment, run it with a timeout, poll for conditions with
//! deadlines, and on failure print the command, status, stdout and stderr.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[allow(dead_code)]
pub mod net;

pub const BIN: &str = env!("CARGO_BIN_EXE_keepup");

/// keepup hands inherited dispositions on (SPEC 4), so a test run under
/// nohup (SIGHUP ignored) or as a background job of a script (SIGINT and
/// SIGQUIT ignored) would see children that cannot trap those. Every command
/// a test starts keepup through begins from the defaults; a test about an
/// inherited SIG_IGN sets its own in a later pre_exec.
pub fn default_signals(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: signal() and sigprocmask() are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT] {
                libc::signal(sig, libc::SIG_DFL);
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            Ok(())
        })
    }
}

/// A keepup command line under construction.
pub struct Keepup {
    cmd: Command,
    shown: Vec<String>,
    timeout: Duration,
    /// A private state folder, so parallel tests never share instance names.
    home: Option<TempDir>,
}

/// `keepup` with the given arguments, and no KEEPUP_* or npm variables
/// leaking in from the environment running the tests.
pub fn keepup<I, S>(args: I) -> Keepup
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("KEEPUP_") || k.starts_with("npm_") {
            cmd.env_remove(&*k);
        }
    }
    let mut shown = vec!["keepup".to_string()];
    for a in args {
        shown.push(a.as_ref().to_string_lossy().into_owned());
        cmd.arg(a);
    }
    cmd.stdin(Stdio::null());
    default_signals(&mut cmd);
    let home = TempDir::new();
    cmd.env("KEEPUP_HOME", &home.0);
    Keepup {
        cmd,
        shown,
        timeout: Duration::from_secs(30),
        home: Some(home),
    }
}

pub struct Finished {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub shown: String,
    pub elapsed: Duration,
}

impl Finished {
    /// Panics with everything known about the run unless `ok`.
    pub fn check(&self, ok: bool, what: &str) {
        if !ok {
            panic!("{what}\n{self}");
        }
    }

    pub fn expect_code(&self, code: i32) -> &Self {
        self.check(
            self.code == Some(code),
            &format!("expected exit status {code}"),
        );
        self
    }
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "command: {}\nstatus: {:?} signal: {:?} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.shown, self.code, self.signal, self.elapsed, self.stdout, self.stderr
        )
    }
}

pub struct Running {
    pub child: Child,
    _home: Option<TempDir>,
    shown: String,
    started: Instant,
    timeout: Duration,
    out: Option<JoinHandle<String>>,
    err: Option<JoinHandle<String>>,
}

fn collect(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    })
}

impl Keepup {
    pub fn env(mut self, k: &str, v: impl AsRef<OsStr>) -> Self {
        self.shown
            .insert(0, format!("{k}={}", v.as_ref().to_string_lossy()));
        self.cmd.env(k, v);
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    pub fn current_dir(mut self, d: &Path) -> Self {
        self.cmd.current_dir(d);
        self
    }

    pub fn command(&mut self) -> &mut Command {
        &mut self.cmd
    }

    pub fn spawn(mut self) -> Running {
        self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = self.cmd.spawn().expect("spawn keepup");
        let out = child.stdout.take().map(collect);
        let err = child.stderr.take().map(collect);
        Running {
            child,
            _home: self.home.take(),
            shown: self.shown.join(" "),
            started: Instant::now(),
            timeout: self.timeout,
            out,
            err,
        }
    }

    /// Runs to the end (killed at the timeout, which fails the test).
    pub fn run(self) -> Finished {
        self.spawn().finish()
    }
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Waits for the exit; on timeout kills keepup and fails with a dump.
    pub fn finish(mut self) -> Finished {
        let deadline = self.started + self.timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        use std::os::unix::process::ExitStatusExt;
        let f = Finished {
            code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            stdout: self
                .out
                .take()
                .map(|h| h.join().unwrap())
                .unwrap_or_default(),
            stderr: self
                .err
                .take()
                .map(|h| h.join().unwrap())
                .unwrap_or_default(),
            shown: self.shown.clone(),
            elapsed: self.started.elapsed(),
        };
        f.check(
            status.is_some(),
            &format!("keepup did not exit within {:?}", self.timeout),
        );
        f
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A test that cannot run on this machine. Under `CI=true` that is a
/// failure (`.ci/run` installs every tool the tests need, and CI runs as
/// root); elsewhere it says so on stderr, in capitals, and the caller
/// returns.
#[allow(dead_code)]
pub fn cannot_run(why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("this test cannot run, and CI was to provide what it needs: {why}");
    }
    eprintln!("SKIPPED, NOT TESTED: {why}");
}

/// Runs `script` with `sh` in a mount namespace of its own (for tmpfs
/// mounts). None, said through `cannot_run`, where the namespace or the
/// mount cannot be made; else (status, stdout, stderr).
pub fn in_mount_namespace(script: &str) -> Option<(std::process::ExitStatus, String, String)> {
    let out = Command::new("unshare")
        .args(["--mount", "sh", "-c", script])
        .output()
        .expect("run unshare");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if stderr.contains("mount:") || stderr.contains("unshare:") {
        cannot_run(&format!(
            "cannot mount a tmpfs in a mount namespace here: {stderr}"
        ));
        return None;
    }
    Some((out.status, stdout, stderr))
}

/// Polls `cond` every 10 ms until it holds; panics naming `what` at the deadline.
pub fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        if Instant::now() > deadline {
            panic!("timed out after {within:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Like `wait_for`, but returns whether it held instead of panicking.
pub fn holds_within(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A fresh folder under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "keepup-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn s(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // A failed test may leave a --detach instance behind in a state
        // folder here: stop it (TERM to the keepup a state file names, when
        // that pid is still a keepup) before removing the folder.
        if let Ok(entries) = std::fs::read_dir(&self.0) {
            for e in entries.flatten() {
                if !e.file_name().to_string_lossy().ends_with(".state") {
                    continue;
                }
                let text = read(&e.path());
                let pid = text
                    .lines()
                    .find_map(|l| l.strip_prefix("keepup_pid="))
                    .and_then(|p| p.parse::<i32>().ok())
                    .unwrap_or(0);
                let is_keepup = std::fs::read_link(format!("/proc/{pid}/exe"))
                    .is_ok_and(|p| p.to_string_lossy().contains("keepup"));
                if pid > 0 && is_keepup {
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn read(p: &Path) -> String {
    std::fs::read(p)
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .unwrap_or_default()
}

/// The environment a process was started with, `NAME=value` lines. A pid
/// reported right after its start may still be inside `execve`: the kernel
/// lets the spawner (a vfork parent) go on before it has laid out the new
/// image's environment, and /proc/PID/environ reads empty until then. So
/// this waits for it, as for any other condition.
pub fn environ_of(pid: i32) -> String {
    let path = std::path::PathBuf::from(format!("/proc/{pid}/environ"));
    let mut env = String::new();
    wait_for("the child's environment", Duration::from_secs(10), || {
        env = read(&path);
        !env.is_empty()
    });
    env.replace('\0', "\n")
}

pub fn count_lines(p: &Path) -> usize {
    read(p).lines().count()
}

/// A process exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => match s.rfind(')') {
            Some(i) => !s[i + 1..].trim_start().starts_with('Z'),
            None => false,
        },
        Err(_) => false,
    }
}

/// Field of `/proc/PID/stat` after the name: 0 is state, 1 ppid, 2 pgid.
pub fn stat_field(pid: i32, n: usize) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let i = s.rfind(')')?;
    s[i + 1..].split_whitespace().nth(n).map(str::to_string)
}

/// Pids whose parent is `ppid`.
pub fn children_of(ppid: i32) -> Vec<i32> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>()
            && stat_field(pid, 1).and_then(|p| p.parse().ok()) == Some(ppid)
        {
            out.push(pid);
        }
    }
    out
}

/// Reads a pid that a test's child wrote into a file, once it is there.
pub fn pid_from(p: &Path) -> i32 {
    let mut pid = 0;
    wait_for(
        &format!("pid in {}", p.display()),
        Duration::from_secs(10),
        || {
            pid = read(p)
                .lines()
                .last()
                .and_then(|l| l.trim().parse().ok())
                .unwrap_or(0);
            pid > 0
        },
    );
    pid
}

pub fn sh(script: &str) -> Vec<String> {
    vec!["--".into(), "sh".into(), "-c".into(), script.into()]
}

/// Arguments then `-- sh -c SCRIPT`.
pub fn with_sh(args: &[&str], script: &str) -> Vec<String> {
    let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    v.extend(sh(script));
    v
}

/// keepup's context switches so far (voluntary and not): its wake-ups.
pub fn switches(pid: i32) -> u64 {
    read(Path::new(&format!("/proc/{pid}/status")))
        .lines()
        .filter(|l| l.contains("ctxt_switches"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// A verb (`status`, `stop`, ...) run against the state folder `home`.
pub fn verb(home: &Path, args: &[&str]) -> Finished {
    keepup(args).env("KEEPUP_HOME", home).run()
}
