//! The control verbs: `status`, `stop`, `restart`, `logs`, `signal`. They
//! read the state folder and talk to a live instance through its control
//! FIFO; they never signal a pid from a state file, so a stale entry whose
//! pid was reused can do no harm.

use crate::cli::Verb;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::diag::complain;
use crate::protocol::{Control, ReloadOutcome, RunState, exit};
use crate::state::{Folder, FolderError, Snapshot, same_process};
use crate::units::{format_duration, format_size, format_uptime};

/// A verb's outcome: its exit status.
pub type Status = i32;

/// One instance as the verbs see it.
struct Entry {
    name: String,
    snap: Snapshot,
    live: bool,
}

impl Entry {
    fn load(folder: &Folder, name: &str) -> Option<Entry> {
        let text = folder.read(&format!("{name}.state")).ok()?;
        let snap = Snapshot::decode(&text);
        let live = folder.is_locked(name) && same_process(snap.keepup_pid, snap.keepup_start);
        Some(Entry {
            name: name.to_string(),
            snap,
            live,
        })
    }

    /// The state to show: a live instance's own, a final one, or `None`
    /// for `dead` (its keepup is gone without saying so).
    fn run_state(&self) -> Option<RunState> {
        (self.live || self.snap.state.is_final()).then_some(self.snap.state)
    }

    fn state(&self) -> &'static str {
        self.run_state().map_or("dead", RunState::as_str)
    }

    fn child_running(&self) -> bool {
        self.live && self.snap.state.is_live() && self.snap.child_pid > 0
    }
}

/// The state folder, `None` when there is none yet (nothing ever ran), or the
/// exit status after a complaint when it is unsafe.
fn open_folder() -> Result<Option<Folder>, Status> {
    match Folder::open(false) {
        Ok(f) => Ok(Some(f)),
        Err(FolderError::Unavailable(_)) => Ok(None),
        Err(FolderError::Unsafe(m)) => {
            complain(&m);
            Err(exit::FAILURE)
        }
    }
}

pub fn run(verb: Verb) -> Status {
    match verb {
        Verb::Status {
            names,
            json,
            watch,
            prune,
        } => status(names, json, watch, prune),
        Verb::Stop { names } => stop_or_restart(names, "stop"),
        Verb::Restart { names } => stop_or_restart(names, "restart"),
        Verb::Logs {
            name,
            lines,
            follow,
        } => logs(&name, lines, follow),
        Verb::Signal { name, signal: sig } => signal(&name, sig),
        Verb::Wait { names, timeout } => wait(names, timeout),
        Verb::Reload { names, timeout } => reload(names, timeout),
        Verb::Start { names } => start_verb(names),
        Verb::Delete { names } => delete(names),
        Verb::Startup {
            names,
            install,
            cron,
        } => startup(names, install, cron),
        Verb::Import { file, npm } => crate::import::run(&file, npm),
    }
}

/// `keepup startup NAME...` (SPEC 12).
fn startup(names: Vec<String>, install: bool, cron: bool) -> Status {
    let (names, folder) = match existing(names) {
        Ok(found) => found,
        Err(code) => return code,
    };
    // SAFETY: geteuid has no arguments.
    let system = unsafe { libc::geteuid() } == 0;
    let mut status = exit::OK;
    for (i, name) in names.iter().enumerate() {
        let Some(e) = Entry::load(&folder, name) else {
            complain(&format!("no instance named '{name}'"));
            status = exit::FAILURE;
            continue;
        };
        if e.snap.exe.as_os_str().is_empty() || e.snap.argv.is_empty() {
            complain(&format!(
                "'{name}' has no record of how it was started (an older keepup wrote it): start it again first"
            ));
            status = exit::FAILURE;
            continue;
        }
        if cron {
            println!("{}", crate::boot::cron_line(&e.snap, &folder.path));
            continue;
        }
        let unit = crate::boot::unit(&e.snap, &folder.path, system);
        let path = crate::boot::unit_path(name, system);
        if !install {
            if i > 0 {
                println!();
            }
            println!("# {}", path.display());
            print!("{unit}");
            continue;
        }
        if let Err(why) = install_unit(name, &path, &unit, system) {
            complain(&why);
            status = exit::FAILURE;
        }
    }
    status
}

/// Writes the unit, reloads systemd and enables it; says how to hand the
/// running instance over.
fn install_unit(name: &str, path: &Path, unit: &str, system: bool) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "cannot create '{}': {}",
                dir.display(),
                crate::diag::os_reason(&e)
            )
        })?;
    }
    std::fs::write(path, unit).map_err(|e| {
        format!(
            "cannot write '{}': {}",
            path.display(),
            crate::diag::os_reason(&e)
        )
    })?;
    let scope: &[&str] = if system { &[] } else { &["--user"] };
    let service = format!("keepup-{name}");
    for args in [vec!["daemon-reload"], vec!["enable", service.as_str()]] {
        let st = std::process::Command::new("systemctl")
            .args(scope)
            .args(&args)
            .status()
            .map_err(|e| format!("cannot run systemctl: {}", crate::diag::os_reason(&e)))?;
        if !st.success() {
            return Err(format!(
                "systemctl {}{} failed ({st})",
                if system { "" } else { "--user " },
                args.join(" ")
            ));
        }
    }
    let user = if system { "" } else { " --user" };
    println!("keepup: wrote {} and enabled {service}", path.display());
    println!(
        "keepup: to hand the running instance over to systemd: keepup stop {name} && systemctl{user} start {service}"
    );
    if !system {
        println!(
            "keepup: a user unit starts at boot only with lingering on: loginctl enable-linger $USER"
        );
    }
    Ok(())
}

/// Runs a stopped instance again, detached, from its record (SPEC 7):
/// keepup's own path, the options and command as given, in the directory
/// it was started in, with the caller's environment less its own keepup
/// settings, plus the recorded `KEEPUP_*` settings and `PATH`.
fn start_one(folder: &Folder, entry: &Entry) -> Status {
    run_recorded(folder, entry).0
}

/// `start_one`, also giving the child pid the detached keepup reported.
fn run_recorded(folder: &Folder, entry: &Entry) -> (Status, Option<i32>) {
    let s = &entry.snap;
    if s.exe.as_os_str().is_empty() || s.argv.is_empty() {
        complain(&format!(
            "'{}' has no record of how it was started (an older keepup wrote it): start it by hand",
            entry.name
        ));
        return (exit::FAILURE, None);
    }
    let mut cmd = std::process::Command::new(&s.exe);
    cmd.arg("--detach").args(&s.argv).current_dir(&s.cwd);
    for o in crate::cli::OPTIONS {
        cmd.env_remove(crate::cli::env_name(o.long));
    }
    for kv in &s.keepup_env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    if !s.path.is_empty() {
        cmd.env("PATH", &s.path);
    }
    cmd.env("KEEPUP_HOME", &folder.path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped());
    match cmd.output() {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            print!("{text}");
            let pid = text
                .lines()
                .find_map(|l| l.split("started (pid ").nth(1))
                .and_then(|p| p.trim_end_matches(')').parse().ok());
            (out.status.code().unwrap_or(exit::FAILURE), pid)
        }
        Err(e) => {
            complain(&format!(
                "cannot run '{}': {}",
                s.exe.display(),
                crate::diag::os_reason(&e)
            ));
            (exit::FAILURE, None)
        }
    }
}

fn start_verb(names: Vec<String>) -> Status {
    let (names, folder) = match existing(names) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let mut status = exit::OK;
    for name in &names {
        match Entry::load(&folder, name) {
            None => {
                complain(&format!("no instance named '{name}'"));
                status = exit::FAILURE;
            }
            Some(e) if e.live => {
                complain(&format!(
                    "'{name}' is already running (pid {})",
                    e.snap.keepup_pid
                ));
                status = exit::FAILURE;
            }
            Some(e) => {
                let code = start_one(&folder, &e);
                if code != exit::OK {
                    status = code;
                }
            }
        }
    }
    status
}

/// `keepup delete NAME...`: stop if running, then remove the entry.
fn delete(names: Vec<String>) -> Status {
    let (names, folder) = match existing(names) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let mut status = exit::OK;
    for name in &names {
        let Some(e) = Entry::load(&folder, name) else {
            complain(&format!("no instance named '{name}'"));
            status = exit::FAILURE;
            continue;
        };
        if e.live {
            let code = stop_or_restart(vec![name.clone()], "stop");
            if code != exit::OK {
                status = code;
                continue;
            }
        }
        if folder.remove(name) {
            println!("keepup: {name} deleted");
        } else {
            complain(&format!("cannot delete '{name}': it is still running"));
            status = exit::FAILURE;
        }
    }
    status
}

/// The names a verb acts on: patterns (`api-*`) expanded against the
/// state folder in natural order, plain names as they are.
fn resolve(names: Vec<String>) -> Result<Vec<String>, Status> {
    if !names.iter().any(|n| crate::names::is_pattern(n)) {
        return Ok(names);
    }
    let known = match open_folder()? {
        Some(f) => f.names(),
        None => Vec::new(),
    };
    crate::names::expand(&names, &known).map_err(|pattern| {
        complain(&format!("no instance matches '{pattern}'"));
        exit::FAILURE
    })
}

/// The names (patterns expanded) and the state folder, which verbs on
/// recorded instances (start, delete, startup) need to exist.
fn existing(names: Vec<String>) -> Result<(Vec<String>, Folder), Status> {
    let names = resolve(names)?;
    match open_folder()? {
        Some(f) => Ok((names, f)),
        None => {
            complain(&format!("no instance named '{}'", names[0]));
            Err(exit::FAILURE)
        }
    }
}

/// A verb that takes one instance: a pattern must match exactly one.
fn resolve_one(name: &str) -> Result<String, Status> {
    let mut all = resolve(vec![name.to_string()])?;
    if all.len() != 1 {
        complain(&format!(
            "'{name}' matches {} instances ({}); this verb takes one",
            all.len(),
            all.join(", ")
        ));
        return Err(exit::FAILURE);
    }
    Ok(all.remove(0))
}

/// Polls the state file of `name` every 20 ms until `done` holds for it
/// (or it is gone), at most `budget`; `None` at the timeout, after saying so.
fn wait_entry(
    folder: &Folder,
    name: &str,
    budget: Duration,
    what: &str,
    mut done: impl FnMut(Option<&Entry>) -> bool,
) -> Option<Option<Entry>> {
    let deadline = Instant::now() + budget;
    loop {
        let e = Entry::load(folder, name);
        if done(e.as_ref()) {
            return Some(e);
        }
        if Instant::now() > deadline {
            complain(&format!(
                "'{name}' did not {what} within {}",
                format_duration(budget)
            ));
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `keepup reload NAME...`: one instance after the other; the first
/// failure stops the roll (SPEC 9).
fn reload(names: Vec<String>, timeout: Option<Duration>) -> Status {
    let names = match resolve(names) {
        Ok(n) => n,
        Err(code) => return code,
    };
    let folder = match open_folder() {
        Ok(f) => f,
        Err(code) => return code,
    };
    for name in &names {
        let Some(entry) = live(folder.as_ref(), name) else {
            return exit::FAILURE;
        };
        let Some(folder) = folder.as_ref() else {
            return exit::FAILURE;
        };
        let seq = entry.snap.reload_seq;
        let timeout_ms = timeout.map(|t| t.as_millis() as u64);
        if let Err(e) = folder.send(name, Control::Reload { timeout_ms }) {
            complain(&format!(
                "cannot reach '{name}': {}",
                crate::diag::os_reason(&e)
            ));
            return exit::FAILURE;
        }
        // The new run's readiness, then the old run's stop sequence.
        let budget = timeout.unwrap_or(Duration::from_secs(60))
            + Duration::from_millis(entry.snap.kill_timeout_ms) * 3
            + Duration::from_secs(10);
        let answered = wait_entry(folder, name, budget, "reload", |e| {
            e.is_none_or(|e| !e.live || e.snap.reload_seq > seq)
        });
        let Some(Some(after)) = answered else {
            if answered.is_some() {
                complain(&format!("'{name}' is gone"));
            }
            return exit::FAILURE;
        };
        if after.snap.reload_seq <= seq {
            complain(&format!("'{name}' exited during the reload"));
            return exit::FAILURE;
        }
        match ReloadOutcome::decode(&after.snap.reload) {
            Some(ReloadOutcome::Reloaded { old, new }) => {
                println!("keepup: {name} reloaded (pid {old} -> {new})")
            }
            Some(ReloadOutcome::Restarted) => {
                // As `keepup restart` would: until a new child runs.
                let before = entry.snap.child_pid;
                let budget =
                    Duration::from_millis(entry.snap.kill_timeout_ms) * 2 + Duration::from_secs(10);
                match wait_entry(folder, name, budget, "restart", |e| {
                    e.is_none_or(|e| {
                        !e.live
                            || (e.snap.child_pid != before
                                && e.snap.child_pid > 0
                                && matches!(e.snap.state, RunState::Running | RunState::Starting))
                    })
                }) {
                    Some(Some(e)) if e.live => {
                        println!("keepup: {name} restarted (pid {})", e.snap.child_pid)
                    }
                    Some(_) => {
                        complain(&format!("'{name}' exited during the restart"));
                        return exit::FAILURE;
                    }
                    None => return exit::FAILURE,
                }
            }
            Some(ReloadOutcome::Failed { why }) => {
                complain(&format!("'{name}' reload failed: {why}"));
                return exit::FAILURE;
            }
            None => {
                complain(&format!("'{name}' answered the reload in an unknown way"));
                return exit::FAILURE;
            }
        }
    }
    exit::OK
}

fn status(names: Vec<String>, json: bool, watch: bool, prune: bool) -> Status {
    let names = match resolve(names) {
        Ok(n) => n,
        Err(code) => return code,
    };
    let folder = match open_folder() {
        Ok(f) => f,
        Err(code) => return code,
    };
    if prune {
        let Some(folder) = folder else {
            return exit::OK;
        };
        // Only the named instances (or patterns), or all when none is named.
        let targets = if names.is_empty() {
            folder.names()
        } else {
            names.clone()
        };
        for name in targets {
            if let Some(e) = Entry::load(&folder, &name)
                && !e.live
                && folder.remove(&name)
            {
                println!("keepup: pruned '{name}' ({})", e.state());
            }
        }
        return exit::OK;
    }
    let mut cpu = CpuMeter::default();
    loop {
        let mut entries = vec![];
        let mut missing = false;
        if let Some(folder) = &folder {
            let wanted = if names.is_empty() {
                folder.names()
            } else {
                names.clone()
            };
            for name in &wanted {
                match Entry::load(folder, name) {
                    Some(e) => entries.push(e),
                    None => {
                        missing = true;
                        complain(&format!("no instance named '{name}'"));
                    }
                }
            }
        } else if !names.is_empty() {
            missing = true;
            for name in &names {
                complain(&format!("no instance named '{name}'"));
            }
        }
        // One scan of /proc for every instance shown.
        let procs = crate::memory::ProcTable::scan();
        cpu.watch = watch;
        let rows: Vec<Row> = entries
            .iter()
            .map(|e| Row::of(e, &procs, &mut cpu))
            .collect();
        let text = if json { to_json(&rows) } else { table(&rows) };
        if watch {
            let tty = crate::sys::isatty(1);
            let mut out = std::io::stdout().lock();
            if tty {
                let _ = out.write_all(b"\x1b[H\x1b[2J");
            }
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        print!("{text}");
        return if missing { 1 } else { 0 };
    }
}

struct Row {
    name: String,
    state: String,
    pid: Option<i32>,
    keepup_pid: i32,
    uptime: Option<Duration>,
    restarts: u64,
    memory: Option<u64>,
    /// Percent of one core: since the run started, or over the last
    /// refresh under `-w`.
    cpu: Option<f64>,
    last_exit: String,
    log: String,
    ready: bool,
    probe: String,
    status_text: String,
    cwd: String,
    user: String,
    env_files: Vec<String>,
    command: Vec<String>,
}

impl Row {
    fn of(e: &Entry, table: &crate::memory::ProcTable, cpu: &mut CpuMeter) -> Row {
        let running = e.child_running();
        let now = crate::logs::clock::wall_now().0;
        let memory = running.then(|| table.tree_rss(e.snap.keepup_pid).0);
        let cpu = running
            .then(|| cpu.percent(&e.name, table, e.snap.keepup_pid, e.snap.child_pid))
            .flatten();
        let log = e
            .snap
            .log
            .as_ref()
            .or(e.snap.out_log.as_ref())
            .or(e.snap.err_log.as_ref());
        Row {
            name: e.name.clone(),
            state: e.state().to_string(),
            pid: running.then_some(e.snap.child_pid),
            keepup_pid: e.snap.keepup_pid,
            uptime: running.then(|| Duration::from_secs((now - e.snap.started_at).max(0) as u64)),
            restarts: e.snap.restarts,
            memory,
            cpu,
            last_exit: e.snap.last_exit.clone(),
            log: log.map(|p| p.display().to_string()).unwrap_or_default(),
            ready: e.live && e.snap.ready,
            probe: e.snap.probe.clone(),
            status_text: e.snap.status_text.clone(),
            cwd: e.snap.child_cwd.display().to_string(),
            user: e.snap.user.clone(),
            env_files: e
                .snap
                .env_files
                .iter()
                .map(|f| f.display().to_string())
                .collect(),
            command: e
                .snap
                .command
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
        }
    }
}

fn colour(state: &str) -> &'static str {
    match state {
        "running" => "\x1b[32m",
        "starting" | "backoff" | "stopping" => "\x1b[33m",
        "stopped" => "",
        _ => "\x1b[31m",
    }
}

/// CPU use of instances' trees: since each run started, or between two
/// refreshes of `status -w`.
#[derive(Default)]
struct CpuMeter {
    watch: bool,
    last: std::collections::HashMap<String, (u64, Instant)>,
}

impl CpuMeter {
    fn percent(
        &mut self,
        name: &str,
        table: &crate::memory::ProcTable,
        keepup: i32,
        child: i32,
    ) -> Option<f64> {
        // SAFETY: sysconf has no memory arguments.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let ticks = table.tree_cpu(keepup);
        let now = Instant::now();
        if self.watch
            && let Some((before, at)) = self.last.insert(name.to_string(), (ticks, now))
        {
            let secs = now.duration_since(at).as_secs_f64();
            return (secs > 0.0).then(|| (ticks.saturating_sub(before) as f64 / hz) / secs * 100.0);
        }
        let uptime: f64 = std::fs::read_to_string("/proc/uptime")
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        let started = table.start_time(child)? as f64 / hz;
        let secs = uptime - started;
        (secs > 0.0).then(|| (ticks as f64 / hz) / secs * 100.0)
    }
}

fn table(rows: &[Row]) -> String {
    let dash = |s: String| if s.is_empty() { "-".to_string() } else { s };
    let cells: Vec<[String; 10]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.state.clone(),
                r.pid.map(|p| p.to_string()).unwrap_or("-".into()),
                r.uptime.map(format_uptime).unwrap_or("-".into()),
                r.restarts.to_string(),
                r.memory.map(format_size).unwrap_or("-".into()),
                r.cpu.map(|c| format!("{c:.1}%")).unwrap_or("-".into()),
                dash(r.last_exit.clone()),
                dash(r.probe.clone()),
                dash(r.log.clone()),
            ]
        })
        .collect();
    let head = [
        "NAME",
        "STATE",
        "PID",
        "UPTIME",
        "RESTARTS",
        "MEMORY",
        "CPU",
        "LAST EXIT",
        "CHECK",
        "LOG",
    ];
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for c in &cells {
        for (i, v) in c.iter().enumerate() {
            widths[i] = widths[i].max(v.chars().count());
        }
    }
    let paint = crate::sys::isatty(1) && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut out = String::new();
    let line = |out: &mut String, vals: &[String], state: Option<&str>| {
        for (i, v) in vals.iter().enumerate() {
            let pad = widths[i] - v.chars().count();
            let last = i + 1 == vals.len();
            if i == 1 && paint {
                if let Some(s) = state {
                    out.push_str(colour(s));
                    out.push_str(v);
                    out.push_str("\x1b[0m");
                } else {
                    out.push_str(v);
                }
            } else {
                out.push_str(v);
            }
            if !last {
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push('\n');
    };
    line(&mut out, &head.map(String::from), None);
    for c in &cells {
        line(&mut out, c, Some(&c[1]));
    }
    out
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn to_json(rows: &[Row]) -> String {
    let opt = |v: Option<String>| v.unwrap_or("null".into());
    let items: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{{\"name\":{},\"state\":{},\"pid\":{},\"keepup_pid\":{},\"uptime_ms\":{},\"restarts\":{},\"memory_bytes\":{},\"cpu_percent\":{},\"last_exit\":{},\"log\":{},\"ready\":{},\"last_probe\":{},\"status_text\":{},\"cwd\":{},\"user\":{},\"env_files\":[{}],\"command\":[{}]}}",
                json_str(&r.name),
                json_str(&r.state),
                opt(r.pid.map(|p| p.to_string())),
                r.keepup_pid,
                opt(r.uptime.map(|u| u.as_millis().to_string())),
                r.restarts,
                opt(r.memory.map(|m| m.to_string())),
                opt(r.cpu.map(|c| format!("{c:.1}"))),
                if r.last_exit.is_empty() { "null".into() } else { json_str(&r.last_exit) },
                if r.log.is_empty() { "null".into() } else { json_str(&r.log) },
                r.ready,
                if r.probe.is_empty() { "null".into() } else { json_str(&r.probe) },
                if r.status_text.is_empty() { "null".into() } else { json_str(&r.status_text) },
                json_str(&r.cwd),
                if r.user.is_empty() { "null".into() } else { json_str(&r.user) },
                r.env_files.iter().map(|f| json_str(f)).collect::<Vec<_>>().join(","),
                r.command.iter().map(|a| json_str(a)).collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    format!("[{}]\n", items.join(","))
}

/// The live instance NAME, or a complaint and `None`.
fn live(folder: Option<&Folder>, name: &str) -> Option<Entry> {
    let e = folder.and_then(|f| Entry::load(f, name));
    match e {
        Some(e) if e.live => Some(e),
        _ => {
            complain(&format!("'{name}' is not running"));
            None
        }
    }
}

fn stop_or_restart(names: Vec<String>, verb: &str) -> Status {
    let names = match resolve(names) {
        Ok(n) => n,
        Err(code) => return code,
    };
    let folder = match open_folder() {
        Ok(f) => f,
        Err(code) => return code,
    };
    let mut status = exit::OK;
    for name in &names {
        // `restart` of an instance that is not running starts it (SPEC 7).
        if verb == "restart"
            && let Some(f) = folder.as_ref()
            && let Some(e) = Entry::load(f, name)
            && !e.live
        {
            match run_recorded(f, &e) {
                (exit::OK, Some(pid)) => println!("keepup: {name} restarted (pid {pid})"),
                (exit::OK, None) => {}
                (code, _) => status = code,
            }
            continue;
        }
        let Some(entry) = live(folder.as_ref(), name) else {
            status = exit::FAILURE;
            continue;
        };
        let Some(folder) = folder.as_ref() else {
            status = exit::FAILURE;
            continue;
        };
        let control = if verb == "stop" {
            Control::Stop
        } else {
            Control::Restart
        };
        if let Err(e) = folder.send(name, control) {
            complain(&format!(
                "cannot reach '{name}': {}",
                crate::diag::os_reason(&e)
            ));
            status = exit::FAILURE;
            continue;
        }
        let budget =
            Duration::from_millis(entry.snap.kill_timeout_ms) * 2 + Duration::from_secs(10);
        let deadline = Instant::now() + budget;
        let done = loop {
            let now_entry = Entry::load(folder, name);
            let finished = match verb {
                "stop" => now_entry.as_ref().is_none_or(|e| !e.live),
                _ => now_entry.as_ref().is_some_and(|e| {
                    !e.live
                        || (e.snap.child_pid != entry.snap.child_pid
                            && matches!(e.snap.state, RunState::Running | RunState::Starting))
                }),
            };
            if finished {
                break now_entry;
            }
            if Instant::now() > deadline {
                complain(&format!(
                    "'{name}' did not {verb} within {}",
                    format_duration(budget)
                ));
                status = exit::FAILURE;
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        match (verb, done) {
            ("stop", Some(e)) => println!(
                "keepup: {name} stopped ({})",
                if e.snap.last_exit.is_empty() {
                    "-".into()
                } else {
                    e.snap.last_exit
                }
            ),
            ("restart", Some(e)) if e.live => {
                println!("keepup: {name} restarted (pid {})", e.snap.child_pid)
            }
            ("restart", Some(_)) => {
                complain(&format!("'{name}' exited during the restart"));
                status = exit::FAILURE;
            }
            _ => {}
        }
    }
    status
}

fn signal(name: &str, sig: i32) -> Status {
    let name = &match resolve_one(name) {
        Ok(n) => n,
        Err(code) => return code,
    };
    let folder = match open_folder() {
        Ok(f) => f,
        Err(code) => return code,
    };
    if live(folder.as_ref(), name).is_none() {
        return exit::FAILURE;
    }
    match folder.as_ref().map(|f| f.send(name, Control::Signal(sig))) {
        Some(Ok(())) => exit::OK,
        Some(Err(e)) => {
            complain(&format!(
                "cannot reach '{name}': {}",
                crate::diag::os_reason(&e)
            ));
            exit::FAILURE
        }
        None => exit::FAILURE,
    }
}

/// `keepup wait NAME... [--timeout DUR]`: 0 once every NAME is ready
/// (`running`), 1 as soon as one is stopped, gave up or is dead, or at the
/// timeout (60s unless given).
fn wait(names: Vec<String>, timeout: Duration) -> Status {
    let names = match resolve(names) {
        Ok(n) => n,
        Err(code) => return code,
    };
    let deadline = Instant::now() + timeout;
    loop {
        let folder = match open_folder() {
            Ok(f) => f,
            Err(code) => return code,
        };
        let mut all_ready = true;
        for name in &names {
            // Not there yet: it may still be starting up.
            let Some(e) = folder.as_ref().and_then(|f| Entry::load(f, name)) else {
                all_ready = false;
                continue;
            };
            match e.run_state() {
                Some(RunState::Running) => {}
                Some(RunState::Starting | RunState::Backoff | RunState::Stopping) => {
                    all_ready = false
                }
                _ => {
                    let other = e.state();
                    let last = if e.snap.last_exit.is_empty() {
                        String::new()
                    } else {
                        format!(" (last exit: {})", e.snap.last_exit)
                    };
                    complain(&format!("'{name}' is {other}{last}"));
                    return exit::FAILURE;
                }
            }
        }
        if all_ready {
            return exit::OK;
        }
        if Instant::now() >= deadline {
            complain(&format!(
                "timed out after {} waiting for {}",
                format_duration(timeout),
                names.join(", ")
            ));
            return exit::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn logs(name: &str, lines: usize, follow: bool) -> Status {
    let name = &match resolve_one(name) {
        Ok(n) => n,
        Err(code) => return code,
    };
    let folder = match open_folder() {
        Ok(Some(f)) => f,
        Ok(None) => {
            complain(&format!("no instance named '{name}'"));
            return exit::FAILURE;
        }
        Err(code) => return code,
    };
    let Some(entry) = Entry::load(&folder, name) else {
        complain(&format!("no instance named '{name}'"));
        return exit::FAILURE;
    };
    let resolve = |p: &PathBuf| {
        if p.is_absolute() {
            p.clone()
        } else {
            entry.snap.cwd.join(p)
        }
    };
    let files: Vec<PathBuf> = match &entry.snap.log {
        Some(l) => vec![resolve(l)],
        None => entry
            .snap
            .out_log
            .iter()
            .chain(entry.snap.err_log.iter())
            .map(resolve)
            .collect(),
    };
    if files.is_empty() {
        complain(&format!(
            "'{name}' has no log file (start it with --log FILE)"
        ));
        return exit::FAILURE;
    }
    let mut out = std::io::stdout().lock();
    for f in &files {
        let _ = out.write_all(&tail(f, lines));
    }
    let _ = out.flush();
    if !follow {
        return exit::OK;
    }
    let mut followers: Vec<Follower> = files.iter().map(|p| Follower::new(p)).collect();
    // `logs -f` in an npm script: when npm (the parent) is gone, or nobody
    // reads stdout any more, following ends.
    // SAFETY: getppid has no arguments.
    let parent = unsafe { libc::getppid() };
    loop {
        for f in &mut followers {
            let data = f.poll();
            if !data.is_empty() && (out.write_all(&data).is_err() || out.flush().is_err()) {
                return exit::OK;
            }
        }
        // SAFETY: getppid has no arguments.
        if unsafe { libc::getppid() } != parent || stdout_closed() {
            return exit::OK;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether the reader of stdout went away (a pipe whose other end closed).
fn stdout_closed() -> bool {
    let mut p = libc::pollfd {
        fd: 1,
        events: 0,
        revents: 0,
    };
    // SAFETY: one pollfd, no timeout.
    unsafe { libc::poll(&mut p, 1, 0) > 0 && p.revents & (libc::POLLERR | libc::POLLHUP) != 0 }
}

/// The last `n` lines of a file, reading backwards in blocks.
fn tail(path: &Path, n: usize) -> Vec<u8> {
    let Ok(mut f) = std::fs::File::open(path) else {
        return vec![];
    };
    let Ok(len) = f.seek(SeekFrom::End(0)) else {
        return vec![];
    };
    let mut pos = len;
    let mut buf: Vec<u8> = Vec::new();
    const BLOCK: u64 = 64 * 1024;
    while pos > 0 {
        let start = pos.saturating_sub(BLOCK);
        let mut chunk = vec![0u8; (pos - start) as usize];
        if f.seek(SeekFrom::Start(start)).is_err() || f.read_exact(&mut chunk).is_err() {
            break;
        }
        chunk.extend_from_slice(&buf);
        buf = chunk;
        pos = start;
        // n lines need n+1 newlines before them (the last line's own included).
        if buf.iter().filter(|&&b| b == b'\n').count() > n {
            break;
        }
    }
    let body = buf.strip_suffix(b"\n").unwrap_or(&buf);
    let mut cut = 0;
    let mut seen = 0;
    for (i, &b) in body.iter().enumerate().rev() {
        if b == b'\n' {
            seen += 1;
            if seen == n {
                cut = i + 1;
                break;
            }
        }
    }
    if n == 0 {
        return vec![];
    }
    buf[cut..].to_vec()
}

/// Follows a file by name across rotation (rename) and truncation.
struct Follower {
    path: PathBuf,
    file: Option<std::fs::File>,
    pos: u64,
    ino: u64,
}

impl Follower {
    fn new(path: &Path) -> Follower {
        use std::os::unix::fs::MetadataExt;
        let file = std::fs::File::open(path).ok();
        let (pos, ino) = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| (m.len(), m.ino()))
            .unwrap_or((0, 0));
        Follower {
            path: path.to_path_buf(),
            file,
            pos,
            ino,
        }
    }

    fn poll(&mut self) -> Vec<u8> {
        use std::os::unix::fs::MetadataExt;
        let mut out = self.read_new();
        match std::fs::metadata(&self.path) {
            Ok(m) if m.ino() != self.ino => {
                // Rotated, maybe several times since the last look. First
                // what the held file got before the rename, then: it is now
                // FILE.k, and FILE.k-1 .. FILE.1 came after it.
                out.extend(self.read_new());
                let numbered = |k: u32| {
                    let mut p = self.path.clone().into_os_string();
                    p.push(format!(".{k}"));
                    PathBuf::from(p)
                };
                let held = (1..1000u32)
                    .map_while(|k| std::fs::metadata(numbered(k)).ok().map(|m| (k, m.ino())))
                    .find(|&(_, ino)| ino == self.ino)
                    .map(|(k, _)| k);
                if let Some(k) = held {
                    for j in (1..k).rev() {
                        if let Ok(mut f) = std::fs::File::open(numbered(j)) {
                            let _ = f.read_to_end(&mut out);
                        }
                    }
                }
                self.file = std::fs::File::open(&self.path).ok();
                self.ino = self
                    .file
                    .as_ref()
                    .and_then(|f| f.metadata().ok())
                    .map_or(m.ino(), |m| m.ino());
                self.pos = 0;
                out.extend(self.read_new());
            }
            Ok(m) if m.len() < self.pos => {
                self.pos = 0;
                out.extend(self.read_new());
            }
            _ => {}
        }
        out
    }

    fn read_new(&mut self) -> Vec<u8> {
        let mut v = vec![];
        if let Some(f) = &mut self.file
            && f.seek(SeekFrom::Start(self.pos)).is_ok()
        {
            let _ = f.read_to_end(&mut v);
            self.pos += v.len() as u64;
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_lines() {
        let dir = std::env::temp_dir().join(format!("keepup-tail-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let p = dir.join("f");
        let text: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, &text).unwrap();
        assert_eq!(tail(&p, 2), b"line 99998\nline 99999\n");
        assert_eq!(tail(&p, 0), b"");
        std::fs::write(&p, "a\nb").unwrap();
        assert_eq!(tail(&p, 1), b"b");
        assert_eq!(tail(&p, 5), b"a\nb");
        std::fs::write(&p, "").unwrap();
        assert_eq!(tail(&p, 3), b"");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn json_escapes() {
        assert_eq!(json_str("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }
}
