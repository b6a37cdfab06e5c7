//! The supervisor's loop: one thread, one wait point. Every wake-up comes
//! from `poll(2)` over the signal self-pipe, the run's output pipes, the
//! control FIFO and the checks' fds, with the nearest deadline as its
//! timeout; with nothing pending it sleeps until something happens.
//!
//! The loop decides nothing. It turns what woke it into `machine::Event`s,
//! feeds them to `Machine::step` one at a time from a queue, and carries out
//! the `Action`s that come back; an action's result (a spawned pid) is one
//! more event on the queue, never a nested call. Besides the machine's one
//! deadline the loop keeps its own housekeeping deadlines: partial log
//! lines, merged state writes, the checks' polls and memory samples.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::checks::{self, Checks};
use crate::child::{Image, SpawnError, SpawnSpec, spawn};
use crate::config::Config;
use crate::context::Context;
use crate::logs::{Logs, Pipes, Stream};
use crate::machine::{Action, Event, Machine, Rules, Seen, later};
use crate::memory::Sampler;
use crate::notify::{Message, NotifySocket};
use crate::probe::HttpTarget;
use crate::protocol::{Control, RunState};
use crate::reap::Reaped;
use crate::run::Run;
use crate::signals::{Inherited, SignalPipe};
use crate::sockets::Listener;
use crate::state::{Instance, Snapshot};
use crate::watch::Watcher;

/// State writes closer together than this are merged (see `publish`).
const PUBLISH_GAP: Duration = Duration::from_millis(50);

/// What `status` shows; the state file is rewritten when it changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct View {
    state: RunState,
    child_pid: i32,
    restarts: u64,
    last_exit: String,
    probe: String,
    reload_seq: u64,
    status_text: String,
}

/// The state folder entry and the merging of its writes.
struct Publisher {
    instance: Option<Instance>,
    snapshot: Snapshot,
    shown: Option<View>,
    last_write: Option<Instant>,
    due: Option<Instant>,
}

/// What main has set up before supervision starts.
pub struct Parts {
    pub cfg: Config,
    pub logs: Logs,
    pub signals: SignalPipe,
    pub inherited: Inherited,
    /// The state folder entry, when there is one.
    pub instance: Option<Instance>,
    /// `--detach`: where to report the first start.
    pub detach_notify: Option<OwnedFd>,
    pub http_target: Option<HttpTarget>,
    pub listeners: Vec<Listener>,
    /// `--notify`: the socket the child's tree reports to.
    pub notify: Option<NotifySocket>,
    pub context: Context,
}

pub struct Supervisor {
    cfg: Config,
    rules: Rules,
    machine: Machine,
    logs: Logs,
    signals: SignalPipe,
    inherited: Inherited,
    my_pid: i32,
    my_pgrp: i32,
    /// The current run: alive, or being cleaned up.
    run: Option<Run>,
    /// During a reload, the new run beside the current one.
    next: Option<Run>,
    /// A run being stopped beside the current one (the old run after a
    /// reload, or a new run whose reload failed).
    retiring: Option<Run>,
    /// The last run's last probe result, for `status`.
    last_probe: String,
    /// The last `STATUS=` the child sent (`--notify`).
    status_text: String,
    /// keepup had no children at all at the last reap.
    no_children: bool,
    /// Something besides the main child was reaped in this turn.
    reaped_other: bool,
    /// Leftover pids already sent the current clean-up signal.
    signalled: Vec<i32>,
    sampler: Sampler,
    next_sample: Option<Instant>,
    last_rss: Option<u64>,
    publisher: Publisher,
    /// `--detach`: where to tell the waiting parent how the first start went.
    detach_notify: Option<OwnedFd>,
    /// That report, sent once the state it describes is written.
    report: Option<crate::protocol::DetachReport>,
    http_target: Option<HttpTarget>,
    /// `--listen` sockets, held for keepup's whole life.
    listeners: Vec<Listener>,
    notify: Option<NotifySocket>,
    /// The environment, directory and user every run starts with.
    context: Context,
    /// The command laid out with the context's environment (which
    /// generation), reused by every restart until the environment changes.
    image: Option<(u64, Image)>,
    /// The machine's actions for one event; kept for its allocation.
    actions: Vec<crate::machine::Action>,
    /// `--watch`: the watcher, the first change of the current quiet
    /// period, and when that period ends.
    watcher: Option<Watcher>,
    changed: Option<String>,
    quiet_until: Option<Instant>,
    events: VecDeque<Event>,
    sig_buf: Vec<i32>,
    /// Said once supervision starts (inotify limits).
    startup_warnings: Vec<String>,
}

// The `#[inline(never)]` marks in this impl keep each handler's locals in
// its own frame, popped when it returns: inlined into `run`, their sum
// would be one frame of about 17 KiB, and every stack page keepup touches
// stays resident for its whole life (44 KiB of stack before, 20 KiB after;
// bench/RESULTS.md section 10).
impl Supervisor {
    #[inline(never)]
    pub fn new(parts: Parts) -> Box<Supervisor> {
        let Parts {
            cfg,
            logs,
            signals,
            inherited,
            instance,
            detach_notify,
            http_target,
            listeners,
            notify,
            mut context,
        } = parts;
        protocol_vars(&mut context, &cfg, &listeners, notify.as_ref());
        let (watcher, watch_warnings) = watcher_for(&cfg);
        // SAFETY: getpid/getpgrp have no arguments.
        let (my_pid, my_pgrp) = unsafe { (libc::getpid(), libc::getpgrp()) };
        // Inside an npm script keepup shares npm's (foreground) group, but the
        // terminal stays npm's: Ctrl-C then reaches keepup, which forwards it.
        let in_npm = std::env::var_os("npm_lifecycle_event").is_some();
        // A `--user` child has a session of its own: never keepup's terminal.
        let tty = cfg.own_group && !in_npm && cfg.user.is_none() && crate::sys::in_foreground();
        let snapshot = Snapshot {
            name: cfg.name.clone(),
            keepup_pid: my_pid,
            keepup_start: crate::state::own_start_time(),
            log: cfg.logs.merged.clone(),
            out_log: cfg.logs.out.clone(),
            err_log: cfg.logs.err.clone(),
            command: cfg.command.clone(),
            cwd: std::env::current_dir().unwrap_or_default(),
            child_cwd: {
                let here = std::env::current_dir().unwrap_or_default();
                cfg.cwd.as_ref().map_or(here.clone(), |d| here.join(d))
            },
            user: cfg.user.clone().unwrap_or_default(),
            env_files: cfg.env_files.clone(),
            exe: std::env::current_exe().unwrap_or_default(),
            argv: cfg.recorded_argv.clone(),
            keepup_env: cfg
                .recorded_env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                // A cluster member started again by `keepup start` or a boot
                // unit gets its number from its environment: keep it.
                .chain(
                    std::env::var("KEEPUP_INSTANCE")
                        .ok()
                        .filter(|_| cfg.instance.is_none())
                        .map(|k| format!("KEEPUP_INSTANCE={k}")),
                )
                .collect(),
            path: std::env::var_os("PATH").unwrap_or_default(),
            // SAFETY: getuid has no arguments.
            uid: unsafe { libc::getuid() },
            kill_timeout_ms: cfg.kill_timeout.as_millis() as u64,
            ..Snapshot::default()
        };
        let rules = Rules {
            name: cfg.name.clone(),
            policy: cfg.policy,
            success_codes: cfg.success_codes.clone(),
            stop_signal: cfg.stop_signal,
            kill_timeout: cfg.kill_timeout,
            max_memory: cfg.max_memory,
            tty,
            ready_timeout: cfg.probes.ready_timeout,
            own_session: cfg.user.is_some(),
            watch: !cfg.watch.is_empty(),
            events: logs.has_event_reader(),
        };
        Box::new(Supervisor {
            machine: Machine::new(Instant::now()),
            rules,
            publisher: Publisher {
                instance,
                snapshot,
                shown: None,
                last_write: None,
                due: None,
            },
            detach_notify,
            report: None,
            http_target,
            context,
            image: None,
            actions: Vec::new(),
            watcher,
            changed: None,
            quiet_until: None,
            listeners,
            notify,
            cfg,
            logs,
            signals,
            inherited,
            my_pid,
            my_pgrp,
            run: None,
            next: None,
            retiring: None,
            last_probe: String::new(),
            status_text: String::new(),
            no_children: true,
            reaped_other: false,
            signalled: Vec::new(),
            sampler: Sampler::default(),
            next_sample: None,
            last_rss: None,
            events: VecDeque::new(),
            sig_buf: Vec::with_capacity(64),
            startup_warnings: watch_warnings,
        })
    }

    /// Supervises until the end; returns keepup's exit status.
    #[inline(never)]
    pub fn run(mut self: Box<Self>) -> i32 {
        for w in std::mem::take(&mut self.startup_warnings) {
            self.logs.event(&w);
        }
        // The machine starts with its first start due now.
        self.handle(Event::Deadline, Instant::now());
        loop {
            if let Some(status) = self.machine.done() {
                if let Some(mut run) = self.run.take() {
                    self.logs.close(&mut run.pipes);
                }
                self.logs.flush();
                if let Some(i) = self.publisher.instance.as_mut() {
                    if self.machine.never_started() {
                        i.remove();
                    } else {
                        i.close();
                    }
                }
                return status;
            }
            self.turn();
        }
    }

    /// Feeds `event`, and every event its actions yield, to the machine.
    #[inline(never)]
    fn handle(&mut self, event: Event, now: Instant) {
        self.events.push_back(event);
        while let Some(event) = self.events.pop_front() {
            let mut actions = std::mem::take(&mut self.actions);
            self.machine
                .step_into(event, now, &self.rules, &mut actions);
            for action in actions.drain(..) {
                self.act(action, now);
            }
            self.actions = actions;
        }
        self.publish(now);
        if let Some(report) = self.report.take() {
            // The invoker of `-d` returns on this report and may run
            // `keepup status` at once: the state goes out first, unmerged.
            if self.publisher.due.is_some() {
                self.write_state(now);
            }
            if let Some(fd) = self.detach_notify.take() {
                let _ = crate::sys::write_all(fd.as_raw_fd(), report.encode().as_bytes());
            }
        }
    }

    /// Carries out one action: the only place the machine's word becomes a
    /// syscall.
    #[inline(never)]
    fn act(&mut self, action: Action, now: Instant) {
        match action {
            Action::Start => self.start(now),
            Action::SignalRun(sig) => {
                if let Some(run) = &self.run {
                    run.signal(sig);
                }
            }
            Action::SignalLeftovers { signal, fresh } => {
                if fresh {
                    self.signalled.clear();
                }
                self.signal_leftovers(signal, fresh);
            }
            Action::EndRun => {
                if let Some(mut run) = self.run.take() {
                    run.checks.on_end();
                    self.logs.close(&mut run.pipes);
                }
                self.next_sample = None;
            }
            Action::TakeTerminal => crate::sys::give_terminal(self.my_pgrp),
            Action::GiveTerminal => {
                if let Some(pgid) = self.run.as_ref().and_then(|r| r.pgid) {
                    crate::sys::give_terminal(pgid);
                }
            }
            Action::StopSelf => {
                // The loop resumes right here at SIGCONT, which arrives as
                // the next signal event.
                let _ = crate::sys::kill(self.my_pid, libc::SIGSTOP);
            }
            Action::Log(text) => self.logs.event(&text),
            Action::Fatal(text) => self.logs.fatal(&text),
            Action::Report(report) => {
                // Only the invoker of `-d` waits for a report; kept without
                // one, it forced an unmerged state write on every restart.
                if self.report.is_none() && self.detach_notify.is_some() {
                    self.report = Some(report);
                }
            }
            Action::StartNext => match self.spawn_run(now) {
                Ok((run, gated, check)) => {
                    let pid = run.pid;
                    self.next = Some(run);
                    self.events.push_back(Event::NextStarted { pid, gated });
                    if let Some(ev) = check.and_then(next_event) {
                        self.events.push_back(ev);
                    }
                }
                Err((_, why)) => self.events.push_back(Event::NextStartFailed { why }),
            },
            Action::Promote => {
                self.retiring = self.run.take();
                self.run = self.next.take();
                if let Some(r) = self.retiring.as_mut() {
                    r.checks.on_end();
                }
                self.next_sample = self
                    .cfg
                    .max_memory
                    .map(|_| later(now, self.cfg.memory_interval));
                self.publisher.snapshot.started_at = crate::logs::clock::wall_now().0;
            }
            Action::AbortNext => {
                self.retiring = self.next.take();
                if let Some(r) = self.retiring.as_mut() {
                    r.checks.on_end();
                }
            }
            Action::SignalRetiring(sig) => {
                if let Some(r) = &self.retiring {
                    match r.pgid {
                        Some(pgid) => {
                            let _ = crate::sys::kill(-pgid, sig);
                        }
                        None => r.signal(sig),
                    }
                }
            }
            Action::EndRetiring => {
                if let Some(mut r) = self.retiring.take() {
                    self.logs.close(&mut r.pipes);
                }
            }
            Action::ReloadDone(outcome) => {
                let s = &mut self.publisher.snapshot;
                s.reload_seq += 1;
                s.reload = outcome.encode();
            }
        }
    }

    /// Starts a run; how it went is the machine's next event.
    #[inline(never)]
    fn start(&mut self, now: Instant) {
        match self.spawn_run(now) {
            Ok((run, gated, check)) => {
                let pid = run.pid;
                self.run = Some(run);
                self.next_sample = self
                    .cfg
                    .max_memory
                    .map(|_| later(now, self.cfg.memory_interval));
                self.publisher.snapshot.started_at = crate::logs::clock::wall_now().0;
                self.events.push_back(Event::Started { pid, gated });
                if let Some(ev) = check.and_then(|c| self.check_event(c)) {
                    self.events.push_back(ev);
                }
            }
            Err((status, why)) => self.events.push_back(Event::StartFailed { status, why }),
        }
    }

    /// Spawns one run of the command: the current one, or a reload's next.
    /// Returns it with whether it waits for readiness and what its checks
    /// found at once; or the status and the reason it could not start.
    #[allow(clippy::type_complexity)]
    #[inline(never)]
    fn spawn_run(
        &mut self,
        now: Instant,
    ) -> Result<(Run, bool, Option<checks::Event>), (i32, String)> {
        for problem in self.context.refresh() {
            self.logs.event(&problem);
        }
        let mut checks = Checks::new(
            self.cfg.probes.clone(),
            self.http_target.clone(),
            self.inherited,
            self.context.user.clone(),
            self.cfg.cwd.clone(),
        );
        let ready_pipe = checks.ready_pipe_for_child();
        let generation = self.context.generation();
        let mut image = match self.image.take() {
            Some((g, image)) if g == generation => Ok(image),
            _ => Image::new(&self.cfg.command, Some(self.context.env())),
        };
        let spawned = match (&ready_pipe, &mut image) {
            (_, Err(e)) => Err(SpawnError::Other(std::io::Error::from_raw_os_error(
                e.raw_os_error().unwrap_or(libc::EINVAL),
            ))),
            (Err(e), _) => Err(SpawnError::Other(std::io::Error::from_raw_os_error(
                e.raw_os_error().unwrap_or(libc::EMFILE),
            ))),
            (Ok(ready), Ok(image)) => {
                let mut extra = crate::sockets::child_fds(&self.listeners);
                extra.extend(ready.iter().map(|(w, n)| (w.as_raw_fd(), *n)));
                spawn(SpawnSpec {
                    image,
                    own_group: self.cfg.own_group,
                    stdout: self.logs.output_for(Stream::Out),
                    stderr: self.logs.output_for(Stream::Err),
                    // A reload's run never takes the terminal from the
                    // current one.
                    take_terminal: self.rules.tty && self.run.is_none(),
                    inherited: self.inherited,
                    extra_fds: &extra,
                    cwd: self.cfg.cwd.as_deref(),
                    user: self.context.user.as_ref(),
                })
            }
        };
        // Our copy of the ready pipe's write end goes now, so that the pipe
        // reports end of file when the child closes its own.
        drop(ready_pipe);
        self.image = image.ok().map(|image| (generation, image));
        match spawned {
            Ok(child) => {
                let gated = checks.gated();
                checks.set_pid(child.pid);
                let check = checks.on_start(now);
                self.no_children = false;
                Ok((
                    Run {
                        pid: child.pid,
                        pgid: self.cfg.own_group.then_some(child.pid),
                        started: now,
                        exited: false,
                        pipes: Pipes::new(child.stdout, child.stderr, child.pid),
                        checks,
                    },
                    gated,
                    check,
                ))
            }
            Err(e) => {
                let program = self.cfg.command[0].to_string_lossy();
                let reason = crate::diag::os_reason(e.error());
                let why = match &e {
                    SpawnError::Other(_) => format!("cannot start '{program}': {reason}"),
                    SpawnError::Setup(what, _) => {
                        let detail = match (what, &self.cfg.cwd, &self.context.user) {
                            (w, Some(d), _) if w.contains("directory") => {
                                format!(" '{}'", d.display())
                            }
                            (w, _, Some(u)) if w.contains("user") => format!(" '{}'", u.spec),
                            _ => String::new(),
                        };
                        format!("cannot start '{program}': {what}{detail}: {reason}")
                    }
                    _ => format!("cannot run '{program}': {reason}"),
                };
                // `keepup monit`: a PM2 verb taken for a command.
                let hint = crate::cli::PM2_VERBS
                    .iter()
                    .find(|(w, _)| *w == program && e.status() == crate::protocol::exit::NOT_FOUND)
                    .map(|(w, instead)| format!(" (PM2's '{w}' is {instead})"))
                    .unwrap_or_default();
                Err((e.status(), why + &hint))
            }
        }
    }

    /// A check's finding as a machine event; a changed probe result only
    /// changes what `status` shows.
    fn check_event(&mut self, found: checks::Event) -> Option<Event> {
        match found {
            checks::Event::Ready(after) => Some(Event::Ready { after }),
            checks::Event::NotReady(after) => Some(Event::NotReady { after }),
            checks::Event::Unhealthy { failures, last } => {
                self.note_probe();
                Some(Event::Unhealthy { failures, last })
            }
            checks::Event::Watchdog(after) => Some(Event::Watchdog { after }),
            checks::Event::ProbeChanged => {
                self.note_probe();
                None
            }
        }
    }

    fn note_probe(&mut self) {
        if let Some(run) = &self.run {
            self.last_probe.clone_from(&run.checks.last_probe);
        }
    }

    fn on_check(&mut self, found: Option<checks::Event>, now: Instant) {
        match found.and_then(|f| self.check_event(f)) {
            Some(ev) => self.handle(ev, now),
            None => self.publish(now),
        }
    }

    fn run_mut(&mut self, which: Which) -> Option<&mut Run> {
        match which {
            Which::Current => self.run.as_mut(),
            Which::Next => self.next.as_mut(),
            Which::Retiring => self.retiring.as_mut(),
        }
    }

    /// A check of the next run (a reload's), as a machine event: only its
    /// readiness matters before it is promoted.
    fn on_next_check(&mut self, found: Option<checks::Event>, now: Instant) {
        if let Some(ev) = found.and_then(next_event) {
            self.handle(ev, now);
        }
    }

    /// One round: sleep in poll until an fd is ready or the nearest
    /// deadline, then turn what happened into events.
    #[inline(never)]
    fn turn(&mut self) {
        let pollfd = |fd: i32, events: i16| libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // What each polled fd is: the signal pipe, the control FIFO, and per
        // run its two pipes, its ready pipe and its HTTP probe.
        let mut fds = Vec::with_capacity(16);
        let mut what = Vec::with_capacity(16);
        fds.push(pollfd(self.signals.fd(), libc::POLLIN));
        what.push(Slot::Signals);
        if let Some(fd) = self.publisher.instance.as_ref().and_then(|i| i.ctl_fd()) {
            fds.push(pollfd(fd, libc::POLLIN));
            what.push(Slot::Control);
        }
        if let Some(n) = &self.notify {
            fds.push(pollfd(n.fd(), libc::POLLIN));
            what.push(Slot::Notify);
        }
        if let Some(w) = &self.watcher {
            fds.push(pollfd(w.fd(), libc::POLLIN));
            what.push(Slot::Watch);
        }
        for which in [Which::Current, Which::Next, Which::Retiring] {
            let Some(run) = (match which {
                Which::Current => self.run.as_ref(),
                Which::Next => self.next.as_ref(),
                Which::Retiring => self.retiring.as_ref(),
            }) else {
                continue;
            };
            let [out, err] = run.pipes.fds();
            for (fd, stream) in [(out, Stream::Out), (err, Stream::Err)] {
                if let Some(fd) = fd {
                    fds.push(pollfd(fd, libc::POLLIN));
                    what.push(Slot::Pipe(which, stream));
                }
            }
            let [ready, http] = run.checks.poll_fds();
            if let Some((fd, ev)) = ready {
                fds.push(pollfd(fd, ev));
                what.push(Slot::ReadyPipe(which));
            }
            if let Some((fd, ev)) = http {
                fds.push(pollfd(fd, ev));
                what.push(Slot::Http(which));
            }
        }
        let timeout = match self.next_deadline() {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Round up so a deadline is never polled for early, then missed.
                (left.as_micros().div_ceil(1000)).min(i32::MAX as u128) as i32
            }
        };
        if let Err(e) = crate::sys::poll(&mut fds, timeout) {
            // Cannot happen with valid fds; do not spin if it does.
            self.logs.event(&format!("poll failed: {e}"));
            std::thread::sleep(Duration::from_millis(100));
        }
        let now = Instant::now();
        self.reaped_other = false;
        for (pfd, slot) in fds.iter().zip(what) {
            if pfd.revents == 0 {
                continue;
            }
            match slot {
                Slot::Signals => {
                    let mut sigs = std::mem::take(&mut self.sig_buf);
                    self.signals.drain(&mut sigs);
                    for &sig in &sigs {
                        if sig == libc::SIGCHLD {
                            self.reap(now);
                        } else {
                            self.handle(Event::Signal(sig), now);
                        }
                    }
                    sigs.clear();
                    self.sig_buf = sigs;
                }
                Slot::Control => {
                    let commands = self
                        .publisher
                        .instance
                        .as_mut()
                        .map(|i| i.commands())
                        .unwrap_or_default();
                    for c in commands.iter().filter_map(|c| Control::decode(c)) {
                        self.handle(Event::Control(c), now);
                    }
                }
                Slot::Notify => self.on_notify(now),
                Slot::Watch => self.on_watch(now),
                Slot::Pipe(which, stream) => {
                    let logs = &mut self.logs;
                    if let Some(run) = match which {
                        Which::Current => self.run.as_mut(),
                        Which::Next => self.next.as_mut(),
                        Which::Retiring => self.retiring.as_mut(),
                    } {
                        logs.pump(&mut run.pipes, stream, now);
                    }
                }
                Slot::ReadyPipe(which) => {
                    let found = self
                        .run_mut(which)
                        .and_then(|r| r.checks.on_ready_pipe(now));
                    self.on_check_of(which, found, now);
                }
                Slot::Http(which) => {
                    let found = self.run_mut(which).and_then(|r| r.checks.on_http(now));
                    self.on_check_of(which, found, now);
                }
            }
        }
        self.on_time(now);
        self.logs.flush();
    }

    /// Files changed: the quiet period starts again; its end is the change
    /// (SPEC 11: one restart per burst, named by the first changed path).
    #[inline(never)]
    fn on_watch(&mut self, now: Instant) {
        let Some(w) = self.watcher.as_mut() else {
            return;
        };
        let found = w.read();
        for warning in found.warnings {
            self.logs.event(&warning);
        }
        if let Some(path) = found.changed {
            if self.changed.is_none() {
                self.changed = Some(path);
            }
            self.quiet_until = Some(later(now, self.cfg.watch_delay));
        }
    }

    /// Datagrams on the notify socket: only those from a run's tree count.
    #[inline(never)]
    fn on_notify(&mut self, now: Instant) {
        let Some(socket) = &self.notify else { return };
        for (pid, datagram) in socket.receive() {
            let which = if self
                .run
                .as_ref()
                .is_some_and(|r| crate::notify::in_tree(pid, r.pid))
            {
                Which::Current
            } else if self
                .next
                .as_ref()
                .is_some_and(|r| crate::notify::in_tree(pid, r.pid))
            {
                Which::Next
            } else {
                continue;
            };
            for message in crate::notify::parse(&datagram) {
                match message {
                    Message::Ready => {
                        let found = self
                            .run_mut(which)
                            .and_then(|r| r.checks.notified_ready(now));
                        self.on_check_of(which, found, now);
                    }
                    Message::Watchdog => {
                        if let Some(r) = self.run_mut(which) {
                            r.checks.watchdog_ping(now);
                        }
                    }
                    Message::Status(text) if which == Which::Current => {
                        self.status_text = text;
                        self.publish(now);
                    }
                    Message::Status(_) => {}
                }
            }
        }
    }

    fn on_check_of(&mut self, which: Which, found: Option<checks::Event>, now: Instant) {
        match which {
            Which::Current => self.on_check(found, now),
            Which::Next => self.on_next_check(found, now),
            Which::Retiring => {}
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut deadlines = vec![
            self.machine.deadline(),
            self.publisher.due,
            self.quiet_until,
        ];
        deadlines.push(self.next_sample.filter(|_| self.sampling()));
        for run in [&self.run, &self.next, &self.retiring]
            .into_iter()
            .flatten()
        {
            deadlines.push(run.pipes.deadline());
        }
        if self.machine.child_alive()
            && let Some(run) = &self.run
        {
            deadlines.push(run.checks.deadline());
        }
        if let Some(next) = &self.next {
            deadlines.push(next.checks.deadline());
        }
        deadlines.into_iter().flatten().min()
    }

    /// Memory is sampled while one run is up, never while it is stopped,
    /// nor while two runs share the tree (a reload).
    fn sampling(&self) -> bool {
        self.machine.is_up() && !self.machine.two_runs()
    }

    /// Deadlines: partial lines, the merged state write, the checks, the
    /// memory sample, the machine's own, and the clean-ups' progress.
    #[inline(never)]
    fn on_time(&mut self, now: Instant) {
        for run in [&mut self.run, &mut self.next, &mut self.retiring]
            .into_iter()
            .flatten()
        {
            self.logs.flush_stale(&mut run.pipes, now);
        }
        if self.publisher.due.is_some_and(|t| now >= t) {
            self.write_state(now);
        }
        if self.machine.child_alive() {
            let found = self.run.as_mut().and_then(|r| r.checks.on_time(now));
            self.on_check(found, now);
        }
        let found = self.next.as_mut().and_then(|r| r.checks.on_time(now));
        self.on_next_check(found, now);
        if self.sampling() && self.next_sample.is_some_and(|t| now >= t) {
            self.next_sample = Some(later(now, self.cfg.memory_interval));
            let sample = self.sampler.sample(self.my_pid);
            self.last_rss = Some(sample.bytes);
            self.handle(
                Event::Memory {
                    bytes: sample.bytes,
                    processes: sample.processes,
                },
                now,
            );
        }
        if self.machine.deadline().is_some_and(|t| now >= t) {
            self.handle(Event::Deadline, now);
        }
        if self.quiet_until.is_some_and(|t| now >= t) {
            self.quiet_until = None;
            if let Some(path) = self.changed.take() {
                self.handle(Event::Change { path }, now);
            }
        }
        if self.machine.observing() {
            let seen = self.seen();
            self.handle(Event::Observed(seen), now);
        }
        if let Some(r) = &self.retiring
            && self.machine.retiring.is_some()
        {
            let ev = Event::RetiringObserved {
                group_alive: r.group_alive(),
                drained: r.pipes.drained(),
            };
            self.handle(ev, now);
        }
    }

    /// The pids of the runs beside the current one: never its leftovers.
    fn other_runs(&self) -> [Option<i32>; 2] {
        [
            self.next.as_ref().map(|r| r.pid),
            self.retiring.as_ref().map(|r| r.pid),
        ]
    }

    /// keepup's children that belong to no other run (orphans re-parented
    /// to keepup, left by the current run).
    fn strays(&mut self) -> Vec<i32> {
        if self.no_children {
            return Vec::new();
        }
        let others = self.other_runs();
        self.sampler
            .children_of(self.my_pid)
            .into_iter()
            .filter(|p| !others.contains(&Some(*p)))
            .collect()
    }

    /// What is left of the current run.
    fn seen(&mut self) -> Seen {
        let children = if self.next.is_none() && self.retiring.is_none() {
            !self.no_children
        } else {
            !self.strays().is_empty()
        };
        Seen {
            children,
            group_alive: self.run.as_ref().is_some_and(Run::group_alive),
            drained: self.run.as_ref().is_none_or(|r| r.pipes.drained()),
            reaped: self.reaped_other,
        }
    }

    #[inline(never)]
    fn reap(&mut self, now: Instant) {
        let live = |r: &Option<Run>| r.as_ref().filter(|r| !r.exited).map_or(0, |r| r.pid);
        let (main_pid, next_pid, old_pid) =
            (live(&self.run), live(&self.next), live(&self.retiring));
        let mut found = Vec::new();
        self.no_children = crate::reap::reap_all(main_pid, |pid, what| found.push((pid, what)));
        for (pid, what) in found {
            match what {
                Reaped::Exited(exit) if pid == main_pid => {
                    if let Some(run) = self.run.as_mut() {
                        run.exited = true;
                        run.checks.on_end();
                    }
                    let seen = self.seen();
                    self.handle(Event::ChildExited { exit, seen }, now);
                }
                Reaped::Exited(exit) if pid == next_pid => {
                    if let Some(run) = self.next.as_mut() {
                        run.exited = true;
                        run.checks.on_end();
                    }
                    self.handle(Event::NextExited { exit }, now);
                }
                Reaped::Exited(_) if pid == old_pid => {
                    if let Some(run) = self.retiring.as_mut() {
                        run.exited = true;
                    }
                    self.handle(Event::RetiringExited, now);
                }
                Reaped::Stopped(signal) => self.handle(Event::ChildStopped { signal }, now),
                Reaped::Exited(exit) => {
                    self.reaped_other = true;
                    let found = self
                        .run
                        .as_mut()
                        .and_then(|r| r.checks.on_reaped(pid, exit, now));
                    self.on_check(found, now);
                    let found = self
                        .next
                        .as_mut()
                        .and_then(|r| r.checks.on_reaped(pid, exit, now));
                    self.on_next_check(found, now);
                }
            }
        }
    }

    /// Sends `sig` to the run's group and to every process re-parented to
    /// keepup that has not had it yet (and belongs to no other run).
    fn signal_leftovers(&mut self, sig: i32, fresh: bool) {
        let pgid = self.run.as_ref().and_then(|r| r.pgid);
        // The group gets each step of the stop sequence once: a process
        // that joins it later (a leftover's own clean-up command) is left
        // alone until the next step.
        if let Some(pgid) = pgid.filter(|_| fresh) {
            let _ = crate::sys::kill(-pgid, sig);
        }
        for pid in self.strays() {
            if self.signalled.contains(&pid) {
                continue;
            }
            self.signalled.push(pid);
            // A stray still in the run's group had the group's signal; a
            // second one could run its handler twice.
            if pgid.is_some_and(|g| crate::sys::getpgid(pid) == Some(g)) {
                continue;
            }
            let _ = crate::sys::kill(pid, sig);
        }
    }

    /// Publishes the state for `keepup status` when what it shows changed.
    /// Best-effort.
    ///
    /// In a fast crash loop the state would be rewritten thousands of times a
    /// second; a write within `PUBLISH_GAP` of the last one is deferred to
    /// the end of that gap (a deadline like any other), so `status` lags by
    /// at most that. Final states are written at once.
    #[inline(never)]
    fn publish(&mut self, now: Instant) {
        if self.publisher.instance.is_none() {
            return;
        }
        let (state, child_pid) = (
            self.machine.published(),
            self.machine.child_pid().unwrap_or(0),
        );
        let last_exit = self.machine.last_end.as_deref().unwrap_or_default();
        // Compared in place: this runs at the end of every turn, and most
        // turns change nothing shown.
        if self.publisher.shown.as_ref().is_some_and(|v| {
            v.state == state
                && v.child_pid == child_pid
                && v.restarts == self.machine.counters.restarts
                && v.last_exit == last_exit
                && v.probe == self.last_probe
                && v.reload_seq == self.publisher.snapshot.reload_seq
                && v.status_text == self.status_text
        }) {
            return;
        }
        let view = View {
            state,
            child_pid,
            restarts: self.machine.counters.restarts,
            last_exit: last_exit.to_string(),
            probe: self.last_probe.clone(),
            reload_seq: self.publisher.snapshot.reload_seq,
            status_text: self.status_text.clone(),
        };
        let s = &mut self.publisher.snapshot;
        s.state = view.state;
        s.child_pid = view.child_pid;
        s.restarts = view.restarts;
        s.last_exit.clone_from(&view.last_exit);
        s.probe.clone_from(&view.probe);
        s.status_text.clone_from(&view.status_text);
        s.ready = view.state == RunState::Running;
        s.rss = self.last_rss;
        let final_state = view.state.is_final();
        self.publisher.shown = Some(view);
        match self.publisher.last_write {
            Some(last) if !final_state && now < last + PUBLISH_GAP => {
                self.publisher.due = Some(last + PUBLISH_GAP);
            }
            _ => self.write_state(now),
        }
    }

    #[inline(never)]
    fn write_state(&mut self, now: Instant) {
        let p = &mut self.publisher;
        p.due = None;
        p.last_write = Some(now);
        let Some(instance) = p.instance.as_mut() else {
            return;
        };
        if let Some(warning) = instance.publish(&p.snapshot) {
            self.logs.event(&warning);
        }
    }
}

/// What keepup tells every run through its environment: the
/// socket-activation variables when it listens (inherited ones replaced:
/// they described keepup's own sockets) and the notify socket.
fn protocol_vars(
    context: &mut Context,
    cfg: &Config,
    listeners: &[Listener],
    notify: Option<&NotifySocket>,
) {
    if !listeners.is_empty() {
        for (k, v) in crate::sockets::child_vars(listeners) {
            context.set_own(k, v);
        }
        context.set_child_pid("LISTEN_PID");
    }
    if let Some(n) = notify {
        context.set_own("NOTIFY_SOCKET", &n.address);
        // As systemd does, so that sd_watchdog_enabled() says yes.
        if let Some(d) = cfg.probes.watchdog {
            context.set_own("WATCHDOG_USEC", d.as_micros().to_string());
            context.set_child_pid("WATCHDOG_PID");
        }
    } else {
        // An inherited NOTIFY_SOCKET is keepup's own supervisor's: the child
        // must not report to it as if it were keepup.
        context.remove("NOTIFY_SOCKET");
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Current,
    Next,
    Retiring,
}

/// What one polled fd is.
#[derive(Clone, Copy, Debug)]
enum Slot {
    Signals,
    Control,
    Notify,
    Watch,
    Pipe(Which, Stream),
    ReadyPipe(Which),
    Http(Which),
}

/// A check's finding for a reload's next run: its readiness only.
fn next_event(found: checks::Event) -> Option<Event> {
    match found {
        checks::Event::Ready(after) => Some(Event::NextReady { after }),
        checks::Event::NotReady(after) => Some(Event::NextNotReady { after }),
        _ => None,
    }
}

/// `--watch`: the watcher, with keepup's own files and folder ignored; and
/// what to say about it once supervision starts. A watcher that cannot be
/// made (no inotify) is said and supervision goes on without it.
fn watcher_for(cfg: &Config) -> (Option<Watcher>, Vec<String>) {
    if cfg.watch.is_empty() {
        return (None, Vec::new());
    }
    let here = std::env::current_dir().unwrap_or_default();
    let mut own: Vec<std::path::PathBuf> = [&cfg.logs.merged, &cfg.logs.out, &cfg.logs.err]
        .into_iter()
        .flatten()
        .map(|p| here.join(p))
        .collect();
    own.push(here.join(crate::state::folder()));
    let filter = crate::watch::Filter {
        patterns: cfg.watch_ignore.clone(),
        exts: cfg.watch_ext.clone(),
        own,
    };
    match Watcher::new(&cfg.watch, filter) {
        Ok((w, warnings)) => (Some(w), warnings),
        Err(e) => (
            None,
            vec![format!(
                "cannot watch files: {}; supervising without --watch",
                crate::diag::os_reason(&e)
            )],
        ),
    }
}
