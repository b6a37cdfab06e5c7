//! The supervisor: one thread, one wait point. Every wake-up comes from
//! `poll(2)` over the signal self-pipe and the child's output pipes, with the
//! nearest deadline (kill timeout, backoff, memory sample, partial line) as its
//! timeout; with none of those pending it sleeps until something happens.
//!
//! A run goes through phases: `Running` (child alive), `Stopping` (stop signal
//! sent, waiting for the child), `Cleanup` (child gone; stopping whatever it
//! left in its group or re-parented to keepup, and draining its pipes),
//! then a restart (`Backoff` or at once) or the end. The restart decision
//! itself is the pure `backoff::decide`.

use std::time::{Duration, Instant};

use crate::backoff::{Counters, Decision, ExitKind, RunEnd, decide};
use crate::checks::{Checks, Event};
use crate::child::{SpawnError, SpawnSpec, spawn};
use crate::config::Config;
use crate::logs::{Logs, Stream};
use crate::memory::Sampler;
use crate::signals::{FORWARDED, Inherited, STOPPING, SignalPipe};
use crate::state::{Instance, Snapshot};
use crate::units::{format_duration, format_size, signal_name};

/// After SIGKILL, how long keepup waits for leftovers (a process in
/// uninterruptible sleep) and for pipes held by processes it cannot see.
const ABANDON_AFTER: Duration = Duration::from_secs(2);
/// While processes are left in the child's group that keepup cannot reap
/// (not its children), it checks on them this often.
const GROUP_RECHECK: Duration = Duration::from_millis(50);
/// State writes closer together than this are merged (see `publish`).
const PUBLISH_GAP: Duration = Duration::from_millis(50);

struct Run {
    pid: i32,
    /// The child's process group, when it has its own.
    pgid: Option<i32>,
    started: Instant,
    ended: Option<Instant>,
    exit: Option<ExitKind>,
    end: RunEnd,
    /// The signal that stops this run and its leftovers.
    stop_signal: i32,
}

enum Phase {
    Running,
    Stopping {
        kill_at: Option<Instant>,
    },
    Cleanup {
        kill_at: Option<Instant>,
        abandon_at: Option<Instant>,
    },
    Backoff {
        until: Instant,
    },
    Done(i32),
}

pub struct Supervisor {
    cfg: Config,
    logs: Logs,
    signals: SignalPipe,
    inherited: Inherited,
    /// keepup held the terminal's foreground at start: hand it to each child.
    tty: bool,
    my_pid: i32,
    my_pgrp: i32,
    counters: Counters,
    run: Option<Run>,
    phase: Phase,
    last_exit: Option<ExitKind>,
    /// Set once keepup has been told to stop; a second request kills.
    shutdown: bool,
    /// keepup had no children at all at the last reap.
    no_children: bool,
    /// Leftover pids already sent the current phase's signal.
    signalled: Vec<i32>,
    sampler: Sampler,
    next_sample: Option<Instant>,
    last_rss: Option<u64>,
    /// When the state file was last written, and when a deferred write is due.
    last_publish: Option<Instant>,
    publish_due: Option<Instant>,
    sig_buf: Vec<i32>,
    /// The state folder entry, when there is one.
    instance: Option<Instance>,
    snapshot: Snapshot,
    /// `--detach`: where to tell the waiting parent how the first start went.
    detach_notify: Option<std::os::fd::OwnedFd>,
    /// Readiness and health checks of the current run.
    checks: Checks,
    /// Exits the reaper found besides the main child's (probes, orphans).
    reaped: Vec<(i32, ExitKind)>,
}

/// How the first start failed: keepup exits with this status.
pub struct StartFailure(pub i32);

impl Supervisor {
    pub fn new(
        cfg: Config,
        logs: Logs,
        signals: SignalPipe,
        inherited: Inherited,
        instance: Option<Instance>,
        detach_notify: Option<std::os::fd::OwnedFd>,
    ) -> Supervisor {
        // SAFETY: getpid/getpgrp have no arguments.
        let (my_pid, my_pgrp) = unsafe { (libc::getpid(), libc::getpgrp()) };
        // Inside an npm script keepup shares npm's (foreground) group, but the
        // terminal stays npm's: Ctrl-C then reaches keepup, which forwards it.
        let in_npm = std::env::var_os("npm_lifecycle_event").is_some();
        let tty = cfg.own_group && !in_npm && crate::sys::in_foreground();
        let snapshot = Snapshot {
            name: cfg.name.clone(),
            keepup_pid: my_pid,
            keepup_start: crate::state::own_start_time(),
            log: cfg.logs.merged.clone(),
            out_log: cfg.logs.out.clone(),
            err_log: cfg.logs.err.clone(),
            command: cfg.command.clone(),
            cwd: std::env::current_dir().unwrap_or_default(),
            kill_timeout_ms: cfg.kill_timeout.as_millis() as u64,
            ..Snapshot::default()
        };
        Supervisor {
            instance,
            snapshot,
            detach_notify,
            checks: Checks::new(cfg.probes.clone(), inherited),
            reaped: Vec::new(),
            cfg,
            logs,
            signals,
            inherited,
            tty,
            my_pid,
            my_pgrp,
            counters: Counters::default(),
            run: None,
            phase: Phase::Backoff {
                until: Instant::now(),
            },
            last_exit: None,
            shutdown: false,
            no_children: true,
            signalled: Vec::new(),
            sampler: Sampler::default(),
            next_sample: None,
            last_rss: None,
            last_publish: None,
            publish_due: None,
            sig_buf: Vec::with_capacity(64),
        }
    }

    /// Supervises until the end; returns keepup's exit status.
    pub fn run(mut self) -> i32 {
        let now = Instant::now();
        if let Err(StartFailure(code)) = self.start(now, true) {
            self.publish("stopped");
            if let Some(i) = self.instance.as_mut() {
                i.close();
            }
            return code;
        }
        loop {
            if let Phase::Done(code) = self.phase {
                self.logs.flush();
                if let Some(i) = self.instance.as_mut() {
                    i.close();
                }
                return code;
            }
            self.wait_and_handle();
        }
    }

    /// Publishes the state for `keepup status`. Best-effort.
    ///
    /// In a fast crash loop the state would be rewritten thousands of times a
    /// second; a write within `PUBLISH_GAP` of the last one is deferred to
    /// the end of that gap (a deadline like any other), so `status` lags by
    /// at most that. Final states are written at once.
    fn publish(&mut self, state: &str) {
        if self.instance.is_none() {
            return;
        }
        let s = &mut self.snapshot;
        s.state = state.to_string();
        s.restarts = self.counters.restarts;
        s.rss = self.last_rss;
        if let Some(e) = self.last_exit {
            s.last_exit = e.describe();
        }
        match &self.run {
            Some(r) if r.exit.is_none() && r.pid > 0 => s.child_pid = r.pid,
            _ => s.child_pid = 0,
        }
        s.ready = state == "running";
        s.probe = self.checks.last_probe.clone();
        let now = Instant::now();
        let final_state = matches!(state, "stopped" | "gave-up");
        match self.last_publish {
            Some(last) if !final_state && now < last + PUBLISH_GAP => {
                self.publish_due = Some(last + PUBLISH_GAP);
            }
            _ => self.write_state(now),
        }
    }

    fn write_state(&mut self, now: Instant) {
        self.publish_due = None;
        self.last_publish = Some(now);
        let Some(instance) = self.instance.as_mut() else {
            return;
        };
        if let Some(warning) = instance.publish(&self.snapshot) {
            self.logs.event(&warning);
        }
    }

    /// Tells a `--detach` parent how the first start went, then lets it go.
    fn notify_parent(&mut self, message: &str) {
        if let Some(fd) = self.detach_notify.take() {
            let _ = crate::sys::write_all(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                format!("{message}\n").as_bytes(),
            );
        }
    }

    /// Acts on what the readiness and health checks found.
    fn on_check(&mut self, event: Option<Event>, now: Instant) {
        let Some(event) = event else { return };
        match event {
            Event::Ready(after) => {
                self.logs
                    .event(&format!("ready after {}", format_duration(after)));
                self.publish("running");
                let pid = self.run.as_ref().map_or(0, |r| r.pid);
                self.notify_parent(&format!("started {pid}"));
            }
            Event::NotReady(after) => {
                let why = format!("not ready after {}", format_duration(after));
                self.logs.event(&why);
                self.notify_parent(&format!("failed 1 '{}' {why}", self.cfg.name));
                self.begin_stop(RunEnd::NotReady, now);
            }
            Event::Unhealthy { failures, last } => {
                self.logs.event(&format!(
                    "unhealthy after {failures} failed check{} (last: {last})",
                    if failures == 1 { "" } else { "s" }
                ));
                self.begin_stop(RunEnd::FaultRestart, now);
            }
            Event::ProbeChanged => {
                let state = if self.checks.is_ready() {
                    "running"
                } else {
                    "starting"
                };
                self.publish(state);
            }
        }
    }

    /// Commands from `keepup stop / restart / signal`.
    fn on_control(&mut self, now: Instant) {
        let Some(instance) = self.instance.as_mut() else {
            return;
        };
        for cmd in instance.commands() {
            let mut words = cmd.split_whitespace();
            match (words.next(), words.next()) {
                (Some("stop"), None) => {
                    let sig = self.cfg.stop_signal;
                    self.shutdown_with(sig, "stop requested; stopping".to_string(), now);
                }
                (Some("restart"), None) => match self.phase {
                    Phase::Running => {
                        self.logs.event("restart requested");
                        self.begin_stop(RunEnd::Requested, now);
                    }
                    Phase::Backoff { .. } => {
                        self.logs.event("restart requested; starting now");
                        let _ = self.start(now, false);
                    }
                    _ => {}
                },
                (Some("signal"), Some(n)) => {
                    if let (Ok(sig), Some(run)) = (n.parse::<i32>(), &self.run)
                        && (1..=64).contains(&sig)
                    {
                        signal_run(run, sig);
                    }
                }
                _ => {}
            }
        }
    }

    /// One round: sleep in poll until an fd is ready or the nearest deadline,
    /// then handle signals, output and deadlines.
    fn wait_and_handle(&mut self) {
        let [out_fd, err_fd] = self.logs.pipe_fds();
        let ctl_fd = self.instance.as_ref().and_then(|i| i.ctl_fd());
        let pollfd = |fd: Option<i32>| libc::pollfd {
            fd: fd.unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        };
        let [ready_pipe, http] = self.checks.poll_fds();
        let mut fds = [
            pollfd(Some(self.signals.fd())),
            pollfd(out_fd),
            pollfd(err_fd),
            pollfd(ctl_fd),
            pollfd(ready_pipe.map(|(fd, _)| fd)),
            libc::pollfd {
                fd: http.map_or(-1, |(fd, _)| fd),
                events: http.map_or(0, |(_, ev)| ev),
                revents: 0,
            },
        ];
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
        if fds[0].revents != 0 {
            let mut sigs = std::mem::take(&mut self.sig_buf);
            self.signals.drain(&mut sigs);
            for &sig in &sigs {
                self.on_signal(sig, now);
            }
            sigs.clear();
            self.sig_buf = sigs;
        }
        if fds[1].revents != 0 {
            self.logs.pump(Stream::Out, now);
        }
        if fds[2].revents != 0 {
            self.logs.pump(Stream::Err, now);
        }
        if fds[3].revents != 0 {
            self.on_control(now);
        }
        if fds[4].revents != 0 {
            let ev = self.checks.on_ready_pipe(now);
            self.on_check(ev, now);
        }
        if fds[5].revents != 0 {
            let ev = self.checks.on_http(now);
            self.on_check(ev, now);
        }
        self.on_time(now);
        self.logs.flush();
    }

    fn next_deadline(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Running => [self.next_sample, self.checks.deadline()]
                .into_iter()
                .flatten()
                .min(),
            Phase::Stopping { kill_at } => kill_at,
            Phase::Cleanup {
                kill_at,
                abandon_at,
            } => {
                let recheck = (self.no_children && self.group_alive())
                    .then(|| Instant::now() + GROUP_RECHECK);
                [kill_at, abandon_at, recheck].into_iter().flatten().min()
            }
            Phase::Backoff { until } => Some(until),
            Phase::Done(_) => None,
        };
        [phase, self.logs.deadline(), self.publish_due]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_signal(&mut self, sig: i32, now: Instant) {
        if sig == libc::SIGCHLD {
            self.reap(now);
        } else if STOPPING.contains(&sig) {
            self.request_shutdown(sig, now);
        } else if FORWARDED.contains(&sig)
            && let (Phase::Running | Phase::Stopping { .. }, Some(run)) = (&self.phase, &self.run)
        {
            signal_run(run, sig);
        }
    }

    fn reap(&mut self, now: Instant) {
        let mut main_exit = None;
        let main_pid = self
            .run
            .as_ref()
            .filter(|r| r.exit.is_none())
            .map(|r| r.pid);
        let mut others = std::mem::take(&mut self.reaped);
        self.no_children = crate::reap::reap_all(|pid, kind| {
            if Some(pid) == main_pid {
                main_exit = Some(kind);
            } else {
                others.push((pid, kind));
            }
        });
        for &(pid, kind) in &others {
            let ev = self.checks.on_reaped(pid, kind, now);
            self.on_check(ev, now);
        }
        others.clear();
        self.reaped = others;
        if let Some(kind) = main_exit {
            self.on_child_exit(kind, now);
        } else if let Phase::Cleanup { kill_at, .. } = self.phase {
            // Orphans re-parented since the cleanup began get the same signal
            // as the others (SIGKILL once the kill timeout has passed).
            if !self.no_children {
                let sig = match (kill_at, &self.run) {
                    (Some(_), Some(r)) => r.stop_signal,
                    (Some(_), None) => self.cfg.stop_signal,
                    (None, _) => libc::SIGKILL,
                };
                self.signal_leftovers(sig);
            }
        }
    }

    fn on_child_exit(&mut self, kind: ExitKind, now: Instant) {
        if !self.checks.is_ready() {
            self.notify_parent(&format!(
                "failed 1 '{}' {} before it was ready",
                self.cfg.name,
                match kind {
                    ExitKind::Code(c) => format!("exited with code {c}"),
                    ExitKind::Signal(s) => format!("was killed by {}", signal_name(s)),
                }
            ));
        }
        self.checks.on_end();
        let tty = self.tty;
        let Some(run) = self.run.as_mut() else { return };
        run.exit = Some(kind);
        run.ended = Some(now);
        if tty {
            crate::sys::give_terminal(self.my_pgrp);
            // Ctrl-C (or Ctrl-\) on an interactive child is the user's word.
            if matches!(kind, ExitKind::Signal(libc::SIGINT | libc::SIGQUIT))
                && run.end == RunEnd::Exited
            {
                run.end = RunEnd::Shutdown;
            }
        }
        self.begin_cleanup(now);
    }

    /// The child is gone: stop whatever it left behind, drain its pipes.
    fn begin_cleanup(&mut self, now: Instant) {
        self.signalled.clear();
        let leftovers = self.leftovers_exist();
        let kill_at = leftovers.then(|| now + self.cfg.kill_timeout);
        self.phase = Phase::Cleanup {
            kill_at,
            abandon_at: None,
        };
        if leftovers {
            let sig = self
                .run
                .as_ref()
                .map_or(self.cfg.stop_signal, |r| r.stop_signal);
            self.signal_leftovers(sig);
        }
        self.progress_cleanup(now);
    }

    fn group_alive(&self) -> bool {
        self.run
            .as_ref()
            .and_then(|r| r.pgid)
            .is_some_and(crate::sys::group_alive)
    }

    fn leftovers_exist(&self) -> bool {
        !self.no_children || self.group_alive()
    }

    /// Sends `sig` to the child's group and to every process re-parented to
    /// keepup that has not had it yet.
    fn signal_leftovers(&mut self, sig: i32) {
        if let Some(pgid) = self.run.as_ref().and_then(|r| r.pgid) {
            let _ = crate::sys::kill(-pgid, sig);
        }
        if !self.no_children {
            for pid in self.sampler.children_of(self.my_pid) {
                if !self.signalled.contains(&pid) {
                    let _ = crate::sys::kill(pid, sig);
                    self.signalled.push(pid);
                }
            }
        }
    }

    fn progress_cleanup(&mut self, now: Instant) {
        let Phase::Cleanup {
            kill_at,
            abandon_at,
        } = self.phase
        else {
            return;
        };
        let leftovers = self.leftovers_exist();
        if leftovers {
            if kill_at.is_some_and(|t| now >= t) {
                self.logs.event(&format!(
                    "leftover processes did not stop within {}; sending SIGKILL",
                    format_duration(self.cfg.kill_timeout)
                ));
                self.signalled.clear();
                self.signal_leftovers(libc::SIGKILL);
                self.phase = Phase::Cleanup {
                    kill_at: None,
                    abandon_at: Some(now + ABANDON_AFTER),
                };
                return;
            }
            if kill_at.is_none() && abandon_at.is_none() {
                // Leftovers appeared after the run was judged clean.
                self.phase = Phase::Cleanup {
                    kill_at: Some(now + self.cfg.kill_timeout),
                    abandon_at: None,
                };
                return;
            }
            if abandon_at.is_some_and(|t| now >= t) {
                self.logs
                    .event("leftover processes did not exit after SIGKILL; going on without them");
                self.finish_run(now);
            }
            return;
        }
        if self.logs.drained() {
            self.finish_run(now);
            return;
        }
        match abandon_at {
            Some(t) if now >= t => {
                self.logs.event(
                    "output pipes still held open by a process outside keepup's tree; closing them",
                );
                self.logs.attach(None, None);
                self.finish_run(now);
            }
            Some(_) => {}
            None => {
                self.phase = Phase::Cleanup {
                    kill_at: None,
                    abandon_at: Some(now + ABANDON_AFTER),
                }
            }
        }
    }

    fn on_time(&mut self, now: Instant) {
        self.logs.flush_stale(now);
        if self.publish_due.is_some_and(|t| now >= t) {
            self.write_state(now);
        }
        match self.phase {
            Phase::Running => {
                let ev = self.checks.on_time(now);
                self.on_check(ev, now);
                if matches!(self.phase, Phase::Running)
                    && self.next_sample.is_some_and(|t| now >= t)
                {
                    self.sample_memory(now);
                }
            }
            Phase::Stopping { kill_at: Some(t) } if now >= t => {
                self.logs.event(&format!(
                    "did not stop within {}; sending SIGKILL",
                    format_duration(self.cfg.kill_timeout)
                ));
                self.kill_now();
            }
            Phase::Cleanup { .. } => self.progress_cleanup(now),
            Phase::Backoff { until } if now >= until => {
                let _ = self.start(now, false);
            }
            _ => {}
        }
    }

    fn sample_memory(&mut self, now: Instant) {
        let Some(limit) = self.cfg.max_memory else {
            return;
        };
        self.next_sample = Some(now + self.cfg.memory_interval);
        let sample = self.sampler.sample(self.my_pid);
        self.last_rss = Some(sample.bytes);
        if sample.bytes > limit {
            let pid = self.run.as_ref().map_or(0, |r| r.pid);
            let others = sample.processes.saturating_sub(1);
            self.logs.event(&format!(
                "memory {} over limit {} (pid {pid} and {others} descendant{})",
                format_size(sample.bytes),
                format_size(limit),
                if others == 1 { "" } else { "s" }
            ));
            self.begin_stop(RunEnd::FaultRestart, now);
        }
    }

    /// Asks the running child to stop, for a restart or for good.
    fn begin_stop(&mut self, end: RunEnd, now: Instant) {
        let Some(run) = self.run.as_mut() else { return };
        if !matches!(self.phase, Phase::Running) {
            return;
        }
        run.end = end;
        let sig = run.stop_signal;
        signal_run(run, sig);
        self.phase = Phase::Stopping {
            kill_at: Some(now + self.cfg.kill_timeout),
        };
        self.publish("stopping");
    }

    /// SIGKILL to the child's group and every leftover, at once.
    fn kill_now(&mut self) {
        if let Some(run) = &self.run
            && run.exit.is_none()
        {
            signal_run(run, libc::SIGKILL);
        }
        self.signalled.clear();
        self.signal_leftovers(libc::SIGKILL);
        match self.phase {
            Phase::Stopping { .. } => self.phase = Phase::Stopping { kill_at: None },
            Phase::Cleanup { .. } => {
                self.phase = Phase::Cleanup {
                    kill_at: None,
                    abandon_at: Some(Instant::now() + ABANDON_AFTER),
                }
            }
            _ => {}
        }
    }

    /// SIGTERM, SIGINT or SIGQUIT to keepup: forward it, stop, do not restart.
    fn request_shutdown(&mut self, sig: i32, now: Instant) {
        if self.shutdown {
            if matches!(self.phase, Phase::Stopping { .. } | Phase::Cleanup { .. }) {
                self.logs.event(&format!(
                    "received {} again; sending SIGKILL",
                    signal_name(sig)
                ));
                self.kill_now();
            }
            return;
        }
        self.shutdown_with(sig, format!("received {}; stopping", signal_name(sig)), now);
    }

    /// Stops for good: `sig` to the child's group, then the stop sequence.
    fn shutdown_with(&mut self, sig: i32, why: String, now: Instant) {
        if self.shutdown {
            return;
        }
        self.shutdown = true;
        self.logs.event(&why);
        match self.phase {
            Phase::Running => {
                if let Some(run) = self.run.as_mut() {
                    run.end = RunEnd::Shutdown;
                    run.stop_signal = sig;
                    signal_run(run, sig);
                }
                self.phase = Phase::Stopping {
                    kill_at: Some(now + self.cfg.kill_timeout),
                };
                self.publish("stopping");
            }
            Phase::Stopping { .. } | Phase::Cleanup { .. } => {
                if let Some(run) = self.run.as_mut() {
                    run.end = RunEnd::Shutdown;
                }
            }
            Phase::Backoff { .. } => {
                self.phase = Phase::Done(self.last_exit.map_or(0, ExitKind::status));
                self.publish("stopped");
            }
            Phase::Done(_) => {}
        }
    }

    /// Starts a run. Only the first start may fail fatally; later failures
    /// count as unstable runs.
    fn start(&mut self, now: Instant, first: bool) -> Result<(), StartFailure> {
        let ready_pipe = self.checks.ready_pipe_for_child();
        let spawned = match &ready_pipe {
            Err(e) => Err(SpawnError::Other(std::io::Error::from_raw_os_error(
                e.raw_os_error().unwrap_or(libc::EMFILE),
            ))),
            Ok(ready) => spawn(&SpawnSpec {
                command: &self.cfg.command,
                own_group: self.cfg.own_group,
                stdout: self.logs.output_for(Stream::Out),
                stderr: self.logs.output_for(Stream::Err),
                take_terminal: self.tty,
                inherited: self.inherited,
                ready_fd: ready
                    .as_ref()
                    .map(|(w, n)| (std::os::fd::AsRawFd::as_raw_fd(w), *n)),
            }),
        };
        // Our copy of the ready pipe's write end goes now, so that the pipe
        // reports end of file when the child closes its own.
        drop(ready_pipe);
        match spawned {
            Ok(child) => {
                self.logs.attach(child.stdout, child.stderr);
                self.run = Some(Run {
                    pid: child.pid,
                    pgid: self.cfg.own_group.then_some(child.pid),
                    started: now,
                    ended: None,
                    exit: None,
                    end: RunEnd::Exited,
                    stop_signal: self.cfg.stop_signal,
                });
                self.phase = Phase::Running;
                self.no_children = false;
                self.next_sample = self.cfg.max_memory.map(|_| now + self.cfg.memory_interval);
                self.snapshot.started_at = crate::logs::clock::wall_now().0;
                self.logs.event(&format!("started pid {}", child.pid));
                let ev = self.checks.on_start(now);
                if self.checks.gated() {
                    self.publish("starting");
                } else {
                    self.publish("running");
                    self.notify_parent(&format!("started {}", child.pid));
                }
                self.on_check(ev, now);
                Ok(())
            }
            Err(e) => {
                let program = self.cfg.command[0].to_string_lossy();
                let reason = crate::logs::sink::os_reason(e.error());
                let what = match e {
                    SpawnError::Other(_) => format!("cannot start '{program}': {reason}"),
                    _ => format!("cannot run '{program}': {reason}"),
                };
                if first {
                    self.logs.fatal(&what);
                    self.notify_parent(&format!("failed {} {what}", e.status()));
                    return Err(StartFailure(e.status()));
                }
                self.logs.event(&what);
                self.run = Some(Run {
                    pid: 0,
                    pgid: None,
                    started: now,
                    ended: Some(now),
                    exit: Some(ExitKind::Code(e.status())),
                    end: RunEnd::Exited,
                    stop_signal: self.cfg.stop_signal,
                });
                self.finish_run(now);
                Ok(())
            }
        }
    }

    /// The run and its leftovers are gone and its output is written: report
    /// it and decide what comes next.
    fn finish_run(&mut self, now: Instant) {
        let Some(run) = self.run.take() else { return };
        self.logs.attach(None, None);
        self.next_sample = None;
        let exit = run.exit.unwrap_or(ExitKind::Signal(libc::SIGKILL));
        self.last_exit = Some(exit);
        let uptime = run
            .ended
            .unwrap_or(now)
            .saturating_duration_since(run.started);
        let end = if self.shutdown {
            RunEnd::Shutdown
        } else {
            run.end
        };
        let before = self.counters;
        let decision = decide(
            &self.cfg.policy,
            &self.cfg.success_codes,
            &mut self.counters,
            exit,
            end,
            uptime,
        );
        let mut line = if run.pid == 0 {
            "could not start".to_string()
        } else {
            let how = match exit {
                ExitKind::Code(c) => format!("exited with code {c}"),
                ExitKind::Signal(s) => format!("killed by {}", signal_name(s)),
            };
            format!("{how} after {}", format_duration(uptime))
        };
        match decision {
            Decision::Restart { after } => {
                if self.counters.unstable > 0 && self.counters.unstable > before.unstable {
                    let cap = self
                        .cfg
                        .policy
                        .max_restarts
                        .map_or("unlimited".to_string(), |n| n.to_string());
                    line.push_str(&format!(" (unstable {}/{cap})", self.counters.unstable));
                }
                line.push_str(&format!("; restarting in {}", format_duration(after)));
                self.logs.event(&line);
                if after.is_zero() {
                    let _ = self.start(now, false);
                } else {
                    self.phase = Phase::Backoff { until: now + after };
                    self.publish("backoff");
                }
            }
            Decision::Exit => {
                if end == RunEnd::Exited {
                    line.push_str("; not restarting (--restart ");
                    line.push_str(match self.cfg.policy.restart {
                        crate::backoff::RestartPolicy::Always => "always)",
                        crate::backoff::RestartPolicy::OnFailure => "on-failure)",
                        crate::backoff::RestartPolicy::Never => "never)",
                    });
                }
                self.logs.event(&line);
                self.phase = Phase::Done(exit.status());
                self.publish("stopped");
            }
            Decision::GiveUp => {
                self.logs.event(&line);
                let gave_up = if self.cfg.policy.max_restarts == Some(0) {
                    format!(
                        "gave up: --max-restarts 0 allows no restart; last exit: {}",
                        exit.describe()
                    )
                } else {
                    format!(
                        "gave up after {} unstable restarts; last exit: {}",
                        self.counters.unstable,
                        exit.describe()
                    )
                };
                self.logs.event(&gave_up);
                self.phase = Phase::Done(exit.status());
                self.publish("gave-up");
            }
        }
    }
}

/// Sends `sig` to the run's process group, or to its pid under `--no-group`.
fn signal_run(run: &Run, sig: i32) {
    if run.exit.is_some() || run.pid <= 0 {
        return;
    }
    let target = match run.pgid {
        Some(pgid) => -pgid,
        None => run.pid,
    };
    let _ = crate::sys::kill(target, sig);
}
