//! The supervisor's decisions as one explicit state machine, in the shape of
//! s6-supervise: `State` x `Event` -> new `State` + `Action`s, with one
//! deadline in the state. `Machine::step` performs no I/O, reads no clock
//! (`now` is an argument) and never calls itself: the loop in
//! `supervisor.rs` turns fds, signals and the deadline into events and
//! carries out the actions; whatever an action yields (a spawned pid, a
//! failed exec) comes back as a new event. So every rule is a table test.
//!
//! A run's life: `Spawning` (the loop is starting it) -> `Up` (alive,
//! `ready` once its readiness check passed) -> `Stopping` (stop signal sent)
//! -> `Killing` (SIGKILL sent) -> the clean-up of what the child left:
//! `Leftovers` (processes of its group, or re-parented to keepup, got the
//! stop signal) -> `LeftoversKilled` -> `Draining` (only its output pipes are
//! still open) -> the end of the run, where `backoff::decide` picks `Pending`
//! (the next start is due at a time) or `Done`. A child that exits on its
//! own skips the stopping states.

use std::time::{Duration, Instant};

use crate::backoff::{Counters, Decision, Policy, RestartPolicy, RunEnd, decide};
use crate::protocol::{Control, DetachReport, ReloadOutcome, RunState};
use crate::reap::ExitKind;
use crate::units::{format_duration, format_size, signal_name};

/// After SIGKILL, how long keepup waits for leftovers (a process in
/// uninterruptible sleep) and for pipes held by processes it cannot see.
pub const ABANDON_AFTER: Duration = Duration::from_secs(2);
/// While processes keepup cannot reap (not its children) are left in the
/// child's group, it looks at them this often.
pub const GROUP_RECHECK: Duration = Duration::from_millis(50);

/// `now + d`, never panicking: a deadline past what `Instant` can hold
/// (a duration of centuries) is as good as never.
pub fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(crate::units::MAX_DURATION))
        .unwrap_or(now)
}

/// What the machine needs from the configuration.
#[derive(Clone, Debug)]
pub struct Rules {
    pub name: String,
    pub policy: Policy,
    pub success_codes: Vec<i32>,
    pub stop_signal: i32,
    pub kill_timeout: Duration,
    pub max_memory: Option<u64>,
    /// keepup hands the terminal's foreground to each run (SPEC 4).
    pub tty: bool,
    /// `--ready-timeout`: also the longest a reload waits for its new run.
    pub ready_timeout: Duration,
    /// `--user`: the child leads a session of its own, where the kernel
    /// discards job-control stops (an orphaned group): SIGSTOP instead.
    pub own_session: bool,
    /// `--watch`: a run that ends for good waits for a change instead.
    pub watch: bool,
    /// Event lines have a reader (a log file, or stderr without `-q`).
    /// Without one, the lines of every restart are not even formatted: in
    /// a fast crash loop that formatting was most of keepup's own time.
    pub events: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// The next run starts at `at` (the first one at once): the backoff.
    Pending { at: Instant },
    /// The loop was told to start a run and reports how it went.
    Spawning,
    /// The run's main process is alive.
    Up { ready: bool },
    /// The stop signal went to the run; SIGKILL at `kill_at`.
    Stopping { kill_at: Instant },
    /// SIGKILL went to the run; the kernel will report its end.
    Killing,
    /// The child is gone; what it left got the stop signal; SIGKILL at
    /// `kill_at`. `recheck` polls processes keepup cannot reap.
    Leftovers {
        kill_at: Instant,
        recheck: Option<Instant>,
    },
    /// The leftovers got SIGKILL; keepup goes on without them at
    /// `abandon_at`.
    LeftoversKilled {
        abandon_at: Instant,
        recheck: Option<Instant>,
    },
    /// Nothing of the run is alive, but its output pipes are still open
    /// (held by a process outside keepup's tree): closed at `abandon_at`.
    Draining { abandon_at: Instant },
    /// Supervision is over: keepup exits with `status`.
    Done { status: i32, gave_up: bool },
    /// `--watch`: the run ended for good (gave up, or the policy said no
    /// restart); the next change starts it again.
    Waiting { gave_up: bool },
}

/// What is left of a run, as the loop sees it after a turn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// keepup has children (orphans re-parented to it, probes aside).
    pub children: bool,
    /// A process is left in the run's process group.
    pub group_alive: bool,
    /// Both output pipes reached end of file (or there were none).
    pub drained: bool,
    /// Something was reaped in this turn (an orphan may have arrived).
    pub reaped: bool,
}

impl Seen {
    fn leftovers(self) -> bool {
        self.children || self.group_alive
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The clock reached `Machine::deadline`.
    Deadline,
    /// The loop started the run (after `Action::Start`).
    Started {
        pid: i32,
        gated: bool,
    },
    /// `Action::Start` failed: `status` is 127, 126 or 1.
    StartFailed {
        status: i32,
        why: String,
    },
    /// The run's main process ended.
    ChildExited {
        exit: ExitKind,
        seen: Seen,
    },
    /// The run's main process was stopped (Ctrl-Z on the terminal).
    ChildStopped {
        signal: i32,
    },
    /// The state of a clean-up, sent by the loop after every turn while
    /// `Machine::observing` (and after a deadline in those states).
    Observed(Seen),
    /// A signal to keepup (SIGCHLD is the loop's own).
    Signal(i32),
    Control(Control),
    Ready {
        after: Duration,
    },
    NotReady {
        after: Duration,
    },
    Unhealthy {
        failures: u32,
        last: String,
    },
    /// `--watchdog`: no ping for this long.
    Watchdog {
        after: Duration,
    },
    /// `--watch`: files changed and the quiet period passed.
    Change {
        path: String,
    },
    /// A memory sample of keepup's whole tree.
    Memory {
        bytes: u64,
        processes: usize,
    },
    /// Reload: the loop started the next run (after `Action::StartNext`).
    NextStarted {
        pid: i32,
        gated: bool,
    },
    NextStartFailed {
        why: String,
    },
    NextReady {
        after: Duration,
    },
    NextNotReady {
        after: Duration,
    },
    NextExited {
        exit: ExitKind,
    },
    /// The retiring run's main process ended.
    RetiringExited,
    /// What is left of the retiring run, after every turn while there is one.
    RetiringObserved {
        group_alive: bool,
        drained: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Spawn the next run; the loop answers `Started` or `StartFailed`.
    Start,
    /// Send a signal to the run: its group, or its pid under `--no-group`.
    SignalRun(i32),
    /// Send a signal to the run's group and to every process re-parented
    /// to keepup that has not had it yet (`fresh` forgets who had one).
    SignalLeftovers { signal: i32, fresh: bool },
    /// Close the run's pipes and forget it: it is over.
    EndRun,
    /// Take the terminal's foreground back for keepup's own group.
    TakeTerminal,
    /// Hand the terminal's foreground to the run's group again.
    GiveTerminal,
    /// Stop keepup itself (SIGSTOP), as job control asked.
    StopSelf,
    /// An event line (`keepup` in `--log`, stderr unless `--quiet`).
    Log(String),
    /// A fatal line: always on stderr.
    Fatal(String),
    /// Tell a waiting `--detach` parent how the first start went.
    Report(DetachReport),
    /// Reload: start the next run beside the current one; the loop answers
    /// `NextStarted` or `NextStartFailed`.
    StartNext,
    /// The next run becomes the current one, and the current one retiring.
    Promote,
    /// The next run failed: it becomes the retiring one.
    AbortNext,
    /// A signal to the retiring run's group.
    SignalRetiring(i32),
    /// The retiring run is gone: close its pipes and forget it.
    EndRetiring,
    /// Publish how a `keepup reload` ended.
    ReloadDone(ReloadOutcome),
}

/// A reload in progress (SPEC 9): the next run, not yet promoted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reload {
    /// 0 while the loop is starting it.
    pub pid: i32,
    started: Instant,
    /// Not ready by then: the reload fails.
    ready_by: Instant,
}

/// A run being stopped beside the current one: the old run after a reload,
/// or a new run whose reload failed. It gets the stop sequence on its own
/// group; the reload's outcome is published once it is gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retiring {
    pub pid: i32,
    exited: bool,
    /// SIGKILL at this time; `None` once sent.
    kill_at: Option<Instant>,
    /// After SIGKILL (or once only its pipes are open): going on without it.
    abandon_at: Option<Instant>,
    outcome: ReloadOutcome,
}

/// The run the machine knows about: the current one, or the one ending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RunFacts {
    /// 0 for a run whose command could not be started.
    pid: i32,
    started: Instant,
    /// When and how the main process ended.
    exit: Option<(ExitKind, Instant)>,
    /// Why it is ending, which decides how it counts.
    end: RunEnd,
    /// The signal that stops it and its leftovers.
    stop_signal: i32,
}

pub type Actions = Vec<Action>;

#[derive(Clone, Debug)]
pub struct Machine {
    pub state: State,
    pub counters: Counters,
    /// keepup was told to stop for good (a signal, `keepup stop`).
    shutdown: bool,
    run: Option<RunFacts>,
    pub last_exit: Option<ExitKind>,
    /// No run has started yet: a failed start is fatal.
    first: bool,
    pub reload: Option<Reload>,
    pub retiring: Option<Retiring>,
    /// A change that came while the run was stopping or starting: it
    /// restarts the run once it is up (never lost, never a storm).
    change_pending: Option<String>,
    /// Why keepup stopped the current run, when it did (for `status`).
    stop_why: Option<&'static str>,
    /// Why the last run ended, as `status` shows it: `code 1`, `killed by
    /// SIGKILL`, `memory limit`, `unhealthy`, `not ready`, `watchdog`,
    /// `reload`, `restart`, `change`.
    pub last_end: Option<String>,
}

impl Machine {
    /// A machine whose first start is due at `now`.
    pub fn new(now: Instant) -> Machine {
        Machine {
            state: State::Pending { at: now },
            counters: Counters::default(),
            shutdown: false,
            run: None,
            last_exit: None,
            first: true,
            reload: None,
            retiring: None,
            change_pending: None,
            stop_why: None,
            last_end: None,
        }
    }

    /// The one deadline: when `Event::Deadline` is due (the earliest of
    /// the state's own, a reload's and a retiring run's).
    pub fn deadline(&self) -> Option<Instant> {
        let side = [
            self.reload.map(|r| r.ready_by),
            self.retiring.as_ref().and_then(|r| r.kill_at),
            self.retiring.as_ref().and_then(|r| r.abandon_at),
        ];
        [self.state_deadline()]
            .into_iter()
            .chain(side)
            .flatten()
            .min()
    }

    fn state_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Pending { at } => Some(at),
            State::Stopping { kill_at } => Some(kill_at),
            State::Leftovers { kill_at, recheck } => {
                Some(recheck.map_or(kill_at, |r| r.min(kill_at)))
            }
            State::LeftoversKilled {
                abandon_at,
                recheck,
            } => Some(recheck.map_or(abandon_at, |r| r.min(abandon_at))),
            State::Draining { abandon_at } => Some(abandon_at),
            State::Spawning
            | State::Up { .. }
            | State::Killing
            | State::Done { .. }
            | State::Waiting { .. } => None,
        }
    }

    /// The clean-up states, which progress on what the loop sees.
    pub fn observing(&self) -> bool {
        matches!(
            self.state,
            State::Leftovers { .. } | State::LeftoversKilled { .. } | State::Draining { .. }
        )
    }

    /// The run's main process is alive (signals, samples and probes apply).
    pub fn child_alive(&self) -> bool {
        matches!(
            self.state,
            State::Up { .. } | State::Stopping { .. } | State::Killing
        )
    }

    /// The pid `status` shows: only while the main process lives.
    pub fn child_pid(&self) -> Option<i32> {
        self.run
            .filter(|_| self.child_alive())
            .map(|r| r.pid)
            .filter(|&p| p > 0)
    }

    /// The state `status` shows, derived from the machine's own.
    pub fn published(&self) -> RunState {
        match self.state {
            State::Pending { .. } if self.first => RunState::Starting,
            State::Pending { .. } => RunState::Backoff,
            State::Spawning | State::Up { ready: false } => RunState::Starting,
            State::Up { ready: true } => RunState::Running,
            State::Stopping { .. }
            | State::Killing
            | State::Leftovers { .. }
            | State::LeftoversKilled { .. }
            | State::Draining { .. } => RunState::Stopping,
            State::Done { gave_up: false, .. } | State::Waiting { gave_up: false } => {
                RunState::Stopped
            }
            State::Done { gave_up: true, .. } | State::Waiting { gave_up: true } => {
                RunState::GaveUp
            }
        }
    }

    /// A run is up and not being stopped: memory samples apply.
    pub fn is_up(&self) -> bool {
        matches!(self.state, State::Up { .. })
    }

    /// keepup's exit status, once supervision is over (and no run is left
    /// retiring beside it).
    pub fn done(&self) -> Option<i32> {
        match self.state {
            State::Done { status, .. } if self.retiring.is_none() => Some(status),
            _ => None,
        }
    }

    /// No run ever started: the first start failed (and left no entry).
    pub fn never_started(&self) -> bool {
        self.first
    }

    /// A reload or a retiring run: the tree holds two runs, so the memory
    /// limit is suspended.
    pub fn two_runs(&self) -> bool {
        self.reload.is_some() || self.retiring.is_some()
    }

    pub fn step(&mut self, event: Event, now: Instant, rules: &Rules) -> Actions {
        let mut out = Vec::new();
        self.step_into(event, now, rules, &mut out);
        out
    }

    /// `step`, appending to `out` (which keepup reuses from one event to
    /// the next, so a step allocates no list).
    pub fn step_into(&mut self, event: Event, now: Instant, rules: &Rules, out: &mut Actions) {
        match event {
            Event::Deadline => self.on_deadline(now, rules, out),
            Event::Started { pid, gated } => self.on_started(pid, gated, now, rules, out),
            Event::StartFailed { status, why } => {
                self.on_start_failed(status, why, now, rules, out)
            }
            Event::ChildExited { exit, seen } => self.on_exit(exit, seen, now, rules, out),
            Event::ChildStopped { .. } => {
                // Ctrl-Z stopped the interactive child: keepup follows it, so
                // the shell sees its job stopped (SPEC 4, job control).
                if rules.tty && self.child_alive() {
                    out.push(Action::TakeTerminal);
                    out.push(Action::StopSelf);
                }
            }
            Event::Observed(seen) => self.on_observed(seen, now, rules, out),
            Event::Signal(sig) => self.on_signal(sig, now, rules, out),
            Event::Control(c) => self.on_control(c, now, rules, out),
            Event::Ready { after } => {
                if self.state == (State::Up { ready: false }) {
                    self.state = State::Up { ready: true };
                    out.push(Action::Log(format!(
                        "ready after {}",
                        format_duration(after)
                    )));
                    self.report_started(out);
                }
            }
            Event::NotReady { after } => {
                if self.state == (State::Up { ready: false }) {
                    let why = format!("not ready after {}", format_duration(after));
                    self.stop_why = Some("not ready");
                    out.push(Action::Log(why.clone()));
                    out.push(Action::Report(DetachReport::Failed {
                        status: crate::protocol::exit::FAILURE,
                        why: format!("'{}' {why}", rules.name),
                    }));
                    self.begin_stop(RunEnd::NotReady, None, now, rules, out);
                }
            }
            Event::Watchdog { after } => {
                if self.state == (State::Up { ready: true }) {
                    self.stop_why = Some("watchdog");
                    out.push(Action::Log(format!(
                        "watchdog: no ping for {}",
                        format_duration(after)
                    )));
                    self.begin_stop(RunEnd::FaultRestart, None, now, rules, out);
                }
            }
            Event::Unhealthy { failures, last } => {
                if self.state == (State::Up { ready: true }) {
                    self.stop_why = Some("unhealthy");
                    out.push(Action::Log(format!(
                        "unhealthy after {failures} failed check{} (last: {last})",
                        if failures == 1 { "" } else { "s" }
                    )));
                    self.begin_stop(RunEnd::FaultRestart, None, now, rules, out);
                }
            }
            Event::Memory { bytes, processes } => {
                if let (State::Up { .. }, Some(limit), Some(run), false) =
                    (self.state, rules.max_memory, self.run, self.two_runs())
                    && bytes > limit
                {
                    let others = processes.saturating_sub(1);
                    self.stop_why = Some("memory limit");
                    out.push(Action::Log(format!(
                        "memory {} over limit {} (pid {} and {others} descendant{})",
                        format_size(bytes),
                        format_size(limit),
                        run.pid,
                        if others == 1 { "" } else { "s" }
                    )));
                    self.begin_stop(RunEnd::FaultRestart, None, now, rules, out);
                }
            }
            Event::Change { path } => self.on_change(path, now, rules, out),
            Event::NextStarted { pid, gated } => {
                if let Some(r) = self.reload.as_mut()
                    && r.pid == 0
                {
                    r.pid = pid;
                    r.started = now;
                    let old = self.run.map_or(0, |r| r.pid);
                    out.push(Action::Log(format!(
                        "reload: started pid {pid} beside pid {old}"
                    )));
                    if !gated {
                        self.promote(now, rules, out);
                    }
                }
            }
            Event::NextStartFailed { why } => self.fail_reload(why, false, now, rules, out),
            Event::NextReady { after } => {
                if let Some(r) = self.reload.filter(|r| r.pid > 0) {
                    out.push(Action::Log(format!(
                        "reload: pid {} ready after {}",
                        r.pid,
                        format_duration(after)
                    )));
                    self.promote(now, rules, out);
                }
            }
            Event::NextNotReady { after } => {
                let why = format!("not ready after {}", format_duration(after));
                self.fail_reload(why, false, now, rules, out);
            }
            Event::NextExited { exit } => {
                if let Some(r) = self.reload {
                    let why = format!("pid {} {} before it was ready", r.pid, exit.as_verb());
                    self.fail_reload(why, true, now, rules, out);
                }
            }
            Event::RetiringExited => {
                if let Some(r) = self.retiring.as_mut() {
                    r.exited = true;
                }
            }
            Event::RetiringObserved {
                group_alive,
                drained,
            } => self.observe_retiring(group_alive, drained, now, out),
        }
    }

    /// `--watch`: a change restarts the run at once (SPEC 11).
    fn on_change(&mut self, path: String, now: Instant, rules: &Rules, out: &mut Actions) {
        match self.state {
            State::Up { .. } if self.reload.is_none() => {
                out.push(Action::Log(format!("change: {path}; restarting")));
                self.begin_stop(RunEnd::Watch, None, now, rules, out);
            }
            State::Pending { .. } | State::Waiting { .. } => {
                out.push(Action::Log(format!("change: {path}; restarting")));
                // A fresh start: the unstable count and backoff begin anew.
                self.counters.unstable = 0;
                self.state = State::Spawning;
                out.push(Action::Start);
            }
            State::Done { .. } => {}
            // Stopping or starting: once more when the new run is up.
            _ => {
                if !self.shutdown && self.change_pending.is_none() {
                    self.change_pending = Some(path);
                }
            }
        }
    }

    /// Control::Reload: a new run beside the current one (SPEC 9).
    fn begin_reload(
        &mut self,
        timeout_ms: Option<u64>,
        now: Instant,
        rules: &Rules,
        out: &mut Actions,
    ) {
        match self.state {
            State::Up { ready: true }
                if !self.shutdown && self.reload.is_none() && self.retiring.is_none() =>
            {
                let wait = timeout_ms
                    .map(Duration::from_millis)
                    .map_or(rules.ready_timeout, |t| t.min(rules.ready_timeout));
                self.reload = Some(Reload {
                    pid: 0,
                    started: now,
                    ready_by: later(now, wait),
                });
                out.push(Action::StartNext);
            }
            // In backoff or starting there is no ready run to keep: a
            // reload is a restart (SPEC 9).
            State::Pending { .. } | State::Up { ready: false } if !self.shutdown => {
                out.push(Action::ReloadDone(ReloadOutcome::Restarted));
                self.on_control(Control::Restart, now, rules, out);
            }
            _ => {
                let why = if self.two_runs() {
                    "a reload is already in progress"
                } else {
                    "the instance is stopping"
                };
                out.push(Action::ReloadDone(ReloadOutcome::Failed {
                    why: why.into(),
                }));
            }
        }
    }

    /// The next run is ready: it becomes the current one, and the old one
    /// gets the stop sequence beside it.
    fn promote(&mut self, now: Instant, rules: &Rules, out: &mut Actions) {
        let (Some(next), Some(old)) = (self.reload.take(), self.run) else {
            return;
        };
        out.push(Action::Promote);
        out.push(Action::SignalRetiring(old.stop_signal));
        self.retiring = Some(Retiring {
            pid: old.pid,
            exited: false,
            kill_at: Some(later(now, rules.kill_timeout)),
            abandon_at: None,
            outcome: ReloadOutcome::Reloaded {
                old: old.pid,
                new: next.pid,
            },
        });
        self.run = Some(RunFacts {
            pid: next.pid,
            started: next.started,
            exit: None,
            end: RunEnd::Exited,
            stop_signal: rules.stop_signal,
        });
        self.counters.restarts += 1;
        self.last_end = Some("reload".into());
        self.state = State::Up { ready: true };
    }

    /// The next run failed: stop it (if it started), keep the current one.
    fn fail_reload(
        &mut self,
        why: String,
        exited: bool,
        now: Instant,
        rules: &Rules,
        out: &mut Actions,
    ) {
        let Some(next) = self.reload.take() else {
            return;
        };
        let keeping = self.run.map_or(0, |r| r.pid);
        let why = format!("{why}; keeping pid {keeping}");
        out.push(Action::Log(format!("reload failed: {why}")));
        let outcome = ReloadOutcome::Failed { why };
        if next.pid == 0 {
            out.push(Action::ReloadDone(outcome));
            return;
        }
        out.push(Action::AbortNext);
        out.push(Action::SignalRetiring(rules.stop_signal));
        self.retiring = Some(Retiring {
            pid: next.pid,
            exited,
            kill_at: Some(later(now, rules.kill_timeout)),
            abandon_at: None,
            outcome,
        });
    }

    /// The retiring run's stop sequence: its group, then its pipes.
    fn observe_retiring(
        &mut self,
        group_alive: bool,
        drained: bool,
        now: Instant,
        out: &mut Actions,
    ) {
        let Some(r) = self.retiring.as_mut() else {
            return;
        };
        if !r.exited || group_alive {
            if r.kill_at.is_some_and(|t| now >= t) {
                out.push(Action::SignalRetiring(libc::SIGKILL));
                r.kill_at = None;
                r.abandon_at = Some(later(now, ABANDON_AFTER));
                return;
            }
            if r.abandon_at.is_none_or(|t| now < t) {
                return;
            }
            out.push(Action::Log(format!(
                "processes of pid {} did not exit after SIGKILL; going on without them",
                r.pid
            )));
        } else if !drained {
            match r.abandon_at {
                Some(t) if now >= t => out.push(Action::Log(
                    "output pipes still held open by a process outside keepup's tree; closing them"
                        .into(),
                )),
                Some(_) => return,
                None => {
                    r.kill_at = None;
                    r.abandon_at = Some(later(now, ABANDON_AFTER));
                    return;
                }
            }
        }
        let outcome = r.outcome.clone();
        self.retiring = None;
        out.push(Action::EndRetiring);
        if let ReloadOutcome::Reloaded { old, new } = outcome {
            out.push(Action::Log(format!("reloaded (pid {old} -> {new})")));
        }
        out.push(Action::ReloadDone(outcome));
    }

    fn report_started(&self, out: &mut Actions) {
        if let Some(run) = self.run {
            out.push(Action::Report(DetachReport::Started { pid: run.pid }));
        }
    }

    fn on_deadline(&mut self, now: Instant, rules: &Rules, out: &mut Actions) {
        if let Some(r) = self.reload
            && now >= r.ready_by
        {
            let waited = now.saturating_duration_since(r.started);
            let why = format!("not ready after {}", format_duration(waited));
            self.fail_reload(why, false, now, rules, out);
        }
        match self.state {
            State::Pending { at } if now >= at => {
                self.state = State::Spawning;
                out.push(Action::Start);
            }
            State::Stopping { kill_at } if now >= kill_at => {
                out.push(Action::Log(format!(
                    "did not stop within {}; sending SIGKILL",
                    format_duration(rules.kill_timeout)
                )));
                self.kill_now(now, out);
            }
            // The clean-up states move on what the loop sees, which it
            // reports after this deadline's turn (`Observed`).
            _ => {}
        }
    }

    fn on_started(
        &mut self,
        pid: i32,
        gated: bool,
        now: Instant,
        rules: &Rules,
        out: &mut Actions,
    ) {
        if self.state != State::Spawning {
            return;
        }
        self.first = false;
        self.run = Some(RunFacts {
            pid,
            started: now,
            exit: None,
            end: RunEnd::Exited,
            stop_signal: rules.stop_signal,
        });
        self.state = State::Up { ready: !gated };
        if rules.events {
            out.push(Action::Log(format!("started pid {pid}")));
        }
        if !gated {
            self.report_started(out);
        }
        if self.shutdown {
            // A stop came while the run was being started.
            self.begin_stop(RunEnd::Shutdown, None, now, rules, out);
        } else if let Some(path) = self.change_pending.take() {
            out.push(Action::Log(format!("change: {path}; restarting")));
            self.begin_stop(RunEnd::Watch, None, now, rules, out);
        }
    }

    fn on_start_failed(
        &mut self,
        status: i32,
        why: String,
        now: Instant,
        rules: &Rules,
        out: &mut Actions,
    ) {
        if self.state != State::Spawning {
            return;
        }
        if self.first {
            // SPEC 2: a command that cannot be executed at the first start
            // ends keepup at once; nothing is retried.
            out.push(Action::Fatal(why.clone()));
            out.push(Action::Report(DetachReport::Failed { status, why }));
            self.state = State::Done {
                status,
                gave_up: false,
            };
            return;
        }
        // A later start that fails (a binary removed by a deploy) is an
        // unstable run like any other, decided on like one.
        out.push(Action::Log(why));
        self.run = Some(RunFacts {
            pid: 0,
            started: now,
            exit: Some((ExitKind::Code(status), now)),
            end: RunEnd::Exited,
            stop_signal: rules.stop_signal,
        });
        self.finish(now, rules, out);
    }

    fn on_exit(
        &mut self,
        exit: ExitKind,
        seen: Seen,
        now: Instant,
        rules: &Rules,
        out: &mut Actions,
    ) {
        if !self.child_alive() {
            return;
        }
        if self.reload.is_some() {
            let pid = self.run.map_or(0, |r| r.pid);
            let why = format!("pid {pid} {} during the reload", exit.as_verb());
            self.fail_reload(why, false, now, rules, out);
        }
        let Some(run) = self.run.as_mut() else { return };
        if self.state == (State::Up { ready: false }) {
            out.push(Action::Report(DetachReport::Failed {
                status: crate::protocol::exit::FAILURE,
                why: format!("'{}' {} before it was ready", rules.name, exit.as_verb()),
            }));
        }
        run.exit = Some((exit, now));
        if rules.tty {
            out.push(Action::TakeTerminal);
            // Ctrl-C (or Ctrl-\) on an interactive child is the user's word.
            if matches!(exit, ExitKind::Signal(libc::SIGINT | libc::SIGQUIT))
                && run.end == RunEnd::Exited
            {
                run.end = RunEnd::Shutdown;
            }
        }
        if seen.leftovers() {
            out.push(Action::SignalLeftovers {
                signal: run.stop_signal,
                fresh: true,
            });
            self.state = State::Leftovers {
                kill_at: later(now, rules.kill_timeout),
                recheck: (!seen.children).then(|| later(now, GROUP_RECHECK)),
            };
            return;
        }
        self.state = State::Draining {
            abandon_at: later(now, ABANDON_AFTER),
        };
        self.on_observed(seen, now, rules, out);
    }

    /// The clean-up: stop what the run left, then wait for its output.
    fn on_observed(&mut self, seen: Seen, now: Instant, rules: &Rules, out: &mut Actions) {
        let stop_signal = self.run.map_or(rules.stop_signal, |r| r.stop_signal);
        let recheck = (!seen.children && seen.group_alive).then(|| later(now, GROUP_RECHECK));
        match self.state {
            State::Leftovers { kill_at, .. } if seen.leftovers() => {
                if now >= kill_at {
                    out.push(Action::Log(format!(
                        "leftover processes did not stop within {}; sending SIGKILL",
                        format_duration(rules.kill_timeout)
                    )));
                    out.push(Action::SignalLeftovers {
                        signal: libc::SIGKILL,
                        fresh: true,
                    });
                    self.state = State::LeftoversKilled {
                        abandon_at: later(now, ABANDON_AFTER),
                        recheck,
                    };
                    return;
                }
                if seen.reaped {
                    // Orphans re-parented since get the same signal.
                    out.push(Action::SignalLeftovers {
                        signal: stop_signal,
                        fresh: false,
                    });
                }
                self.state = State::Leftovers { kill_at, recheck };
            }
            State::LeftoversKilled { abandon_at, .. } if seen.leftovers() => {
                if now >= abandon_at {
                    out.push(Action::Log(
                        "leftover processes did not exit after SIGKILL; going on without them"
                            .into(),
                    ));
                    out.push(Action::EndRun);
                    self.finish(now, rules, out);
                    return;
                }
                if seen.reaped {
                    out.push(Action::SignalLeftovers {
                        signal: libc::SIGKILL,
                        fresh: false,
                    });
                }
                self.state = State::LeftoversKilled {
                    abandon_at,
                    recheck,
                };
            }
            State::Leftovers { .. } | State::LeftoversKilled { .. } => {
                // Everything the run left is gone; its output may not be.
                let abandon_at = match self.state {
                    State::LeftoversKilled { abandon_at, .. } => abandon_at,
                    _ => later(now, ABANDON_AFTER),
                };
                self.state = State::Draining { abandon_at };
                self.on_observed(seen, now, rules, out);
            }
            State::Draining { .. } if seen.leftovers() => {
                // A process turned up after the run was judged clean: it
                // gets the whole stop sequence too.
                out.push(Action::SignalLeftovers {
                    signal: stop_signal,
                    fresh: true,
                });
                self.state = State::Leftovers {
                    kill_at: later(now, rules.kill_timeout),
                    recheck,
                };
            }
            State::Draining { .. } if seen.drained => {
                out.push(Action::EndRun);
                self.finish(now, rules, out);
            }
            State::Draining { abandon_at } if now >= abandon_at => {
                out.push(Action::Log(
                    "output pipes still held open by a process outside keepup's tree; closing them"
                        .into(),
                ));
                out.push(Action::EndRun);
                self.finish(now, rules, out);
            }
            _ => {}
        }
    }

    fn on_signal(&mut self, sig: i32, now: Instant, rules: &Rules, out: &mut Actions) {
        match sig {
            libc::SIGTERM | libc::SIGINT | libc::SIGQUIT => {
                if self.shutdown {
                    // A second request during the stop: no more grace.
                    if matches!(
                        self.state,
                        State::Stopping { .. }
                            | State::Killing
                            | State::Leftovers { .. }
                            | State::LeftoversKilled { .. }
                            | State::Draining { .. }
                    ) {
                        out.push(Action::Log(format!(
                            "received {} again; sending SIGKILL",
                            signal_name(sig)
                        )));
                        self.kill_now(now, out);
                    }
                    return;
                }
                self.shut_down(
                    sig,
                    format!("received {}; stopping", signal_name(sig)),
                    now,
                    rules,
                    out,
                );
            }
            libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => {
                // Job control (SPEC 4): the child's group stops with the same
                // signal, then keepup itself, so the shell sees the job stop.
                if self.child_alive() {
                    let stop = if rules.own_session {
                        libc::SIGSTOP
                    } else {
                        sig
                    };
                    out.push(Action::SignalRun(stop));
                }
                if rules.tty {
                    out.push(Action::TakeTerminal);
                }
                out.push(Action::StopSelf);
            }
            libc::SIGCONT => {
                if self.child_alive() {
                    out.push(Action::SignalRun(sig));
                    if rules.tty {
                        out.push(Action::GiveTerminal);
                    }
                }
            }
            _ => {
                if self.child_alive() {
                    out.push(Action::SignalRun(sig));
                }
            }
        }
    }

    fn on_control(&mut self, control: Control, now: Instant, rules: &Rules, out: &mut Actions) {
        match control {
            Control::Stop => self.shut_down(
                rules.stop_signal,
                "stop requested; stopping".into(),
                now,
                rules,
                out,
            ),
            Control::Restart => match self.state {
                State::Up { .. } => {
                    out.push(Action::Log("restart requested".into()));
                    self.begin_stop(RunEnd::Requested, None, now, rules, out);
                }
                State::Pending { .. } => {
                    out.push(Action::Log("restart requested; starting now".into()));
                    self.state = State::Spawning;
                    out.push(Action::Start);
                }
                _ => {}
            },
            Control::Signal(sig) => {
                if self.child_alive() {
                    out.push(Action::SignalRun(sig));
                }
            }
            Control::Reload { timeout_ms } => self.begin_reload(timeout_ms, now, rules, out),
        }
    }

    /// Stops for good: `sig` to the run, then the stop sequence, then exit.
    fn shut_down(&mut self, sig: i32, why: String, now: Instant, rules: &Rules, out: &mut Actions) {
        if self.shutdown {
            return;
        }
        self.shutdown = true;
        out.push(Action::Log(why));
        if self.reload.is_some() {
            self.fail_reload("keepup is stopping".into(), false, now, rules, out);
        }
        match self.state {
            State::Up { .. } => self.begin_stop(RunEnd::Shutdown, Some(sig), now, rules, out),
            State::Pending { .. } | State::Waiting { .. } => {
                self.state = State::Done {
                    status: self.last_exit.map_or(0, ExitKind::status),
                    gave_up: matches!(self.state, State::Waiting { gave_up: true }),
                };
            }
            // Spawning: handled when the run has started. A run already
            // stopping ends for good instead of restarting.
            _ => {
                if let Some(run) = self.run.as_mut() {
                    run.end = RunEnd::Shutdown;
                }
            }
        }
    }

    /// Asks the running child to stop, for a restart or for good.
    fn begin_stop(
        &mut self,
        end: RunEnd,
        signal: Option<i32>,
        now: Instant,
        rules: &Rules,
        out: &mut Actions,
    ) {
        let State::Up { .. } = self.state else { return };
        let Some(run) = self.run.as_mut() else { return };
        run.end = end;
        if let Some(sig) = signal {
            run.stop_signal = sig;
        }
        out.push(Action::SignalRun(run.stop_signal));
        self.state = State::Stopping {
            kill_at: later(now, rules.kill_timeout),
        };
    }

    /// SIGKILL to the run and everything it left, at once.
    fn kill_now(&mut self, now: Instant, out: &mut Actions) {
        if let Some(r) = self.retiring.as_mut()
            && r.kill_at.is_some()
        {
            out.push(Action::SignalRetiring(libc::SIGKILL));
            r.kill_at = None;
            r.abandon_at = Some(later(now, ABANDON_AFTER));
        }
        match self.state {
            State::Stopping { .. } | State::Killing => {
                out.push(Action::SignalRun(libc::SIGKILL));
                out.push(Action::SignalLeftovers {
                    signal: libc::SIGKILL,
                    fresh: true,
                });
                self.state = State::Killing;
            }
            State::Leftovers { recheck, .. } | State::LeftoversKilled { recheck, .. } => {
                out.push(Action::SignalLeftovers {
                    signal: libc::SIGKILL,
                    fresh: true,
                });
                self.state = State::LeftoversKilled {
                    abandon_at: later(now, ABANDON_AFTER),
                    recheck,
                };
            }
            _ => {}
        }
    }

    /// The run and its leftovers are gone and its output is written: report
    /// it and decide what comes next.
    fn finish(&mut self, now: Instant, rules: &Rules, out: &mut Actions) {
        let Some(run) = self.run.take() else { return };
        let (exit, ended) = run.exit.unwrap_or((ExitKind::Signal(libc::SIGKILL), now));
        self.last_exit = Some(exit);
        let why = self.stop_why.take();
        self.last_end = Some(match run.end {
            RunEnd::FaultRestart | RunEnd::NotReady => {
                why.map_or_else(|| exit.describe(), String::from)
            }
            RunEnd::Requested => "restart".into(),
            RunEnd::Watch => "change".into(),
            RunEnd::Exited | RunEnd::Shutdown => exit.describe(),
        });
        let uptime = ended.saturating_duration_since(run.started);
        let end = if self.shutdown {
            RunEnd::Shutdown
        } else {
            run.end
        };
        let before = self.counters;
        let decision = decide(
            &rules.policy,
            &rules.success_codes,
            &mut self.counters,
            exit,
            end,
            uptime,
        );
        let head = || {
            if run.pid == 0 {
                "could not start".to_string()
            } else {
                format!("{} after {}", exit.as_event(), format_duration(uptime))
            }
        };
        match decision {
            Decision::Restart { after } => {
                // Only formatted for a reader (see `Rules::events`): this is
                // the line of every restart of a crash loop.
                if rules.events {
                    let mut line = head();
                    if self.counters.unstable > before.unstable {
                        let cap = rules
                            .policy
                            .max_restarts
                            .map_or("unlimited".to_string(), |n| n.to_string());
                        line.push_str(&format!(" (unstable {}/{cap})", self.counters.unstable));
                    }
                    line.push_str(&format!("; restarting in {}", format_duration(after)));
                    out.push(Action::Log(line));
                }
                // Even an immediate restart is a deadline, met on the loop's
                // next turn: a start that fails at once cannot recurse, and
                // signals are looked at between two attempts.
                self.state = State::Pending {
                    at: later(now, after),
                };
            }
            Decision::Exit => {
                let mut line = head();
                if end == RunEnd::Exited {
                    line.push_str(match rules.policy.restart {
                        RestartPolicy::Always => "; not restarting (--restart always)",
                        RestartPolicy::OnFailure => "; not restarting (--restart on-failure)",
                        RestartPolicy::Never => "; not restarting (--restart never)",
                    });
                }
                out.push(Action::Log(line));
                self.state = if rules.watch && end != RunEnd::Shutdown {
                    out.push(Action::Log("waiting for a change".into()));
                    State::Waiting { gave_up: false }
                } else {
                    State::Done {
                        status: exit.status(),
                        gave_up: false,
                    }
                };
            }
            Decision::GiveUp => {
                out.push(Action::Log(head()));
                out.push(Action::Log(if rules.policy.max_restarts == Some(0) {
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
                }));
                self.state = if rules.watch {
                    out.push(Action::Log("gave up; waiting for a change".into()));
                    State::Waiting { gave_up: true }
                } else {
                    State::Done {
                        status: exit.status(),
                        gave_up: true,
                    }
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::RestartPolicy;
    use Action::*;

    const MS: Duration = Duration::from_millis(1);

    fn rules() -> Rules {
        Rules {
            name: "api".into(),
            policy: Policy {
                restart: RestartPolicy::Always,
                delay: 100 * MS,
                max_delay: Duration::from_secs(30),
                min_uptime: Duration::from_secs(10),
                max_restarts: Some(10),
            },
            success_codes: vec![0],
            stop_signal: libc::SIGTERM,
            kill_timeout: Duration::from_secs(5),
            max_memory: Some(1000),
            tty: false,
            ready_timeout: Duration::from_secs(60),
            own_session: false,
            watch: false,
            events: true,
        }
    }

    const CLEAN: Seen = Seen {
        children: false,
        group_alive: false,
        drained: true,
        reaped: false,
    };

    /// A machine with a run of pid 42 up (ready) since `t0`.
    fn up(r: &Rules, t0: Instant) -> Machine {
        let mut m = Machine::new(t0);
        assert_eq!(m.step(Event::Deadline, t0, r), vec![Start]);
        m.step(
            Event::Started {
                pid: 42,
                gated: false,
            },
            t0,
            r,
        );
        assert_eq!(m.state, State::Up { ready: true });
        m
    }

    fn logs(actions: &[Action]) -> Vec<&str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Log(s) | Fatal(s) => Some(s.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn first_start() {
        let (r, t0) = (rules(), Instant::now());
        let mut m = Machine::new(t0);
        assert_eq!(m.published(), RunState::Starting);
        assert_eq!(m.deadline(), Some(t0));
        assert_eq!(m.step(Event::Deadline, t0, &r), vec![Start]);
        assert_eq!(m.state, State::Spawning);
        let a = m.step(
            Event::Started {
                pid: 42,
                gated: false,
            },
            t0,
            &r,
        );
        assert_eq!(
            a,
            vec![
                Log("started pid 42".into()),
                Report(DetachReport::Started { pid: 42 })
            ]
        );
        assert_eq!(m.published(), RunState::Running);
        assert_eq!(m.child_pid(), Some(42));
        assert_eq!(m.deadline(), None, "an up run has no deadline of its own");
    }

    /// Without a reader of event lines (`-q`, no log) a crash loop formats
    /// none of its lines, and otherwise steps exactly as with one.
    #[test]
    fn no_event_reader_changes_only_the_lines() {
        let loud = rules();
        let quiet = Rules {
            events: false,
            ..rules()
        };
        let t0 = Instant::now();
        let (mut a, mut b) = (Machine::new(t0), Machine::new(t0));
        let mut t = t0;
        let mut lines = 0;
        for round in 0..3 {
            for event in [
                Event::Deadline,
                Event::Started {
                    pid: 42 + round,
                    gated: false,
                },
                Event::ChildExited {
                    exit: ExitKind::Code(1),
                    seen: CLEAN,
                },
            ] {
                let with = a.step(event.clone(), t, &loud);
                let without = b.step(event, t, &quiet);
                lines += logs(&with).len();
                let others: Vec<_> = with.into_iter().filter(|x| !matches!(x, Log(_))).collect();
                assert_eq!(others, without, "round {round}");
                assert_eq!(a.state, b.state);
                assert_eq!(a.deadline(), b.deadline());
            }
            t = a.deadline().unwrap_or(t);
        }
        assert!(lines >= 6, "the loud machine logged {lines} lines");
    }

    #[test]
    fn gated_start_waits_for_ready() {
        let (r, t0) = (rules(), Instant::now());
        let mut m = Machine::new(t0);
        m.step(Event::Deadline, t0, &r);
        let a = m.step(
            Event::Started {
                pid: 7,
                gated: true,
            },
            t0,
            &r,
        );
        assert_eq!(a, vec![Log("started pid 7".into())]);
        assert_eq!(m.published(), RunState::Starting);
        let a = m.step(Event::Ready { after: 1200 * MS }, t0, &r);
        assert_eq!(
            a,
            vec![
                Log("ready after 1.2s".into()),
                Report(DetachReport::Started { pid: 7 })
            ]
        );
        assert_eq!(m.published(), RunState::Running);
        // A second Ready (a late probe) changes nothing.
        assert_eq!(m.step(Event::Ready { after: MS }, t0, &r), vec![]);
    }

    #[test]
    fn first_start_failure_is_fatal() {
        let (r, t0) = (rules(), Instant::now());
        let mut m = Machine::new(t0);
        m.step(Event::Deadline, t0, &r);
        let why = "cannot run 'nope': No such file or directory".to_string();
        let a = m.step(
            Event::StartFailed {
                status: 127,
                why: why.clone(),
            },
            t0,
            &r,
        );
        assert_eq!(
            a,
            vec![
                Fatal(why.clone()),
                Report(DetachReport::Failed { status: 127, why })
            ]
        );
        assert_eq!(m.done(), Some(127));
    }

    /// The reproduction of the stack overflow: a binary removed while keepup
    /// restarts it with no delay. Each failed start ends in `Pending`, and
    /// only the loop's next turn (a `Deadline`) starts again.
    #[test]
    fn failed_restarts_never_chain() {
        let mut r = rules();
        r.policy.delay = Duration::ZERO;
        r.policy.max_restarts = None;
        let t0 = Instant::now();
        let mut m = up(&r, t0);
        m.step(
            Event::ChildExited {
                exit: ExitKind::Code(0),
                seen: CLEAN,
            },
            t0,
            &r,
        );
        for i in 0..10_000 {
            assert_eq!(m.state, State::Pending { at: t0 }, "round {i}");
            assert_eq!(m.step(Event::Deadline, t0, &r), vec![Start]);
            let a = m.step(
                Event::StartFailed {
                    status: 127,
                    why: "cannot run 's': No such file or directory".into(),
                },
                t0,
                &r,
            );
            assert!(
                !a.contains(&Start),
                "a failed start must not start again at once"
            );
            assert_eq!(
                logs(&a)[1],
                format!(
                    "could not start (unstable {}/unlimited); restarting in 0ms",
                    i + 2
                )
            );
        }
    }

    #[test]
    fn crash_then_backoff_then_give_up() {
        let (mut r, t0) = (rules(), Instant::now());
        r.policy.max_restarts = Some(2);
        let mut m = up(&r, t0);
        let mut t = t0;
        for (k, wait) in [(1, 100), (2, 200)] {
            t += 300 * MS;
            let a = m.step(
                Event::ChildExited {
                    exit: ExitKind::Code(1),
                    seen: CLEAN,
                },
                t,
                &r,
            );
            assert_eq!(
                a,
                vec![
                    EndRun,
                    Log(format!(
                        "exited with code 1 after 300ms (unstable {k}/2); restarting in {wait}ms"
                    ))
                ]
            );
            assert_eq!(m.published(), RunState::Backoff);
            assert_eq!(m.deadline(), Some(t + wait * MS));
            assert_eq!(m.step(Event::Deadline, t, &r), vec![], "not due yet");
            t += wait * MS;
            assert_eq!(m.step(Event::Deadline, t, &r), vec![Start]);
            m.step(
                Event::Started {
                    pid: 43,
                    gated: false,
                },
                t,
                &r,
            );
        }
        t += 300 * MS;
        let a = m.step(
            Event::ChildExited {
                exit: ExitKind::Code(1),
                seen: CLEAN,
            },
            t,
            &r,
        );
        assert_eq!(
            logs(&a),
            vec![
                "exited with code 1 after 300ms",
                "gave up after 2 unstable restarts; last exit: code 1"
            ]
        );
        assert_eq!(m.published(), RunState::GaveUp);
        assert_eq!(m.done(), Some(1));
    }

    /// `status` must not show a dead child's pid as running while keepup
    /// drains its pipes or stops what it left.
    #[test]
    fn status_during_clean_up() {
        let (r, t0) = (rules(), Instant::now());
        for seen in [
            Seen {
                drained: false,
                ..CLEAN
            },
            Seen {
                group_alive: true,
                ..CLEAN
            },
        ] {
            let mut m = up(&r, t0);
            m.step(
                Event::ChildExited {
                    exit: ExitKind::Code(1),
                    seen,
                },
                t0,
                &r,
            );
            assert!(m.observing());
            assert_eq!(m.published(), RunState::Stopping);
            assert_eq!(m.child_pid(), None);
        }
    }

    #[test]
    fn output_is_drained_before_the_run_ends() {
        let (r, t0) = (rules(), Instant::now());
        let mut m = up(&r, t0);
        let open = Seen {
            drained: false,
            ..CLEAN
        };
        let a = m.step(
            Event::ChildExited {
                exit: ExitKind::Code(0),
                seen: open,
            },
            t0,
            &r,
        );
        assert_eq!(a, vec![]);
        assert_eq!(
            m.state,
            State::Draining {
                abandon_at: t0 + ABANDON_AFTER
            }
        );
        assert_eq!(m.step(Event::Observed(open), t0 + MS, &r), vec![]);
        let a = m.step(Event::Observed(CLEAN), t0 + 2 * MS, &r);
        assert_eq!(a[0], EndRun);
        assert!(matches!(m.state, State::Pending { .. }));
        // Pipes held by a stranger are closed after ABANDON_AFTER.
        let mut m = up(&r, t0);
        m.step(
            Event::ChildExited {
                exit: ExitKind::Code(0),
                seen: open,
            },
            t0,
            &r,
        );
        let a = m.step(Event::Observed(open), t0 + ABANDON_AFTER, &r);
        assert_eq!(
            &a[..2],
            &[
                Log(
                    "output pipes still held open by a process outside keepup's tree; closing them"
                        .into()
                ),
                EndRun
            ]
        );
    }

    #[test]
    fn leftovers_get_the_stop_sequence() {
        let (r, t0) = (rules(), Instant::now());
        let mut m = up(&r, t0);
        let left = Seen {
            children: true,
            ..CLEAN
        };
        let a = m.step(
            Event::ChildExited {
                exit: ExitKind::Code(0),
                seen: left,
            },
            t0,
            &r,
        );
        assert_eq!(
            a,
            vec![SignalLeftovers {
                signal: libc::SIGTERM,
                fresh: true
            }]
        );
        let kill_at = t0 + r.kill_timeout;
        assert_eq!(m.deadline(), Some(kill_at));
        // An orphan re-parented later gets the same signal.
        let a = m.step(
            Event::Observed(Seen {
                reaped: true,
                ..left
            }),
            t0 + MS,
            &r,
        );
        assert_eq!(
            a,
            vec![SignalLeftovers {
                signal: libc::SIGTERM,
                fresh: false
            }]
        );
        let a = m.step(Event::Observed(left), kill_at, &r);
        assert_eq!(
            a,
            vec![
                Log("leftover processes did not stop within 5s; sending SIGKILL".into()),
                SignalLeftovers {
                    signal: libc::SIGKILL,
                    fresh: true
                }
            ]
        );
        let a = m.step(Event::Observed(left), kill_at + ABANDON_AFTER, &r);
        assert_eq!(
            logs(&a)[0],
            "leftover processes did not exit after SIGKILL; going on without them"
        );
        assert!(matches!(m.state, State::Pending { .. }));
    }

    /// Group members that are not keepup's children send no SIGCHLD: the
    /// machine asks to be woken to look again.
    #[test]
    fn group_members_are_rechecked() {
        let (r, t0) = (rules(), Instant::now());
        let mut m = up(&r, t0);
        let group = Seen {
            group_alive: true,
            ..CLEAN
        };
        m.step(
            Event::ChildExited {
                exit: ExitKind::Code(0),
                seen: group,
            },
            t0,
            &r,
        );
        assert_eq!(m.deadline(), Some(t0 + GROUP_RECHECK));
        m.step(Event::Observed(group), t0 + GROUP_RECHECK, &r);
        assert_eq!(m.deadline(), Some(t0 + 2 * GROUP_RECHECK));
    }

    #[test]
    fn stop_signal_then_second_signal_kills() {
        let (r, t0) = (rules(), Instant::now());
        let mut m = up(&r, t0);
        let a = m.step(Event::Signal(libc::SIGINT), t0, &r);
        assert_eq!(
            a,
            vec![
                Log("received SIGINT; stopping".into()),
                SignalRun(libc::SIGINT)
            ]
        );
        assert_eq!(m.published(), RunState::Stopping);
        assert_eq!(m.child_pid(), Some(42), "the child still runs");
        let a = m.step(Event::Signal(libc::SIGTERM), t0 + MS, &r);
        assert_eq!(
            a,
            vec![
                Log("received SIGTERM again; sending SIGKILL".into()),
                SignalRun(libc::SIGKILL),
                SignalLeftovers {
                    signal: libc::SIGKILL,
                    fresh: true
                }
            ]
        );
        assert_eq!(m.state, State::Killing);
        let a = m.step(
            Event::ChildExited {
                exit: ExitKind::Signal(libc::SIGKILL),
                seen: CLEAN,
            },
            t0 + 2 * MS,
            &r,
        );
        assert_eq!(logs(&a), vec!["killed by SIGKILL after 2ms"]);
        assert_eq!(m.done(), Some(137));
    }

    #[test]
    fn kill_timeout() {
        let (r, t0) = (rules(), Instant::now());
        let mut m = up(&r, t0);
        m.step(Event::Control(Control::Stop), t0, &r);
        assert_eq!(m.deadline(), Some(t0 + r.kill_timeout));
        let a = m.step(Event::Deadline, t0 + r.kill_timeout, &r);
        assert_eq!(logs(&a), vec!["did not stop within 5s; sending SIGKILL"]);
        assert_eq!(m.state, State::Killing);
    }

    /// `--kill-timeout` near the limit of `Instant`: no overflow, no panic.
    #[test]
    fn deadlines_never_overflow() {
        let (mut r, t0) = (rules(), Instant::now());
        r.kill_timeout = Duration::MAX;
        r.policy.delay = Duration::MAX;
        r.policy.max_delay = Duration::MAX;
        let mut m = up(&r, t0);
        m.step(Event::Signal(libc::SIGTERM), t0, &r);
        assert!(m.deadline().is_some());
        let mut m = up(&r, t0);
        m.step(
            Event::ChildExited {
                exit: ExitKind::Code(1),
                seen: Seen {
                    children: true,
                    ..CLEAN
                },
            },
            t0,
            &r,
        );
        m.step(Event::Observed(CLEAN), t0, &r);
        assert!(matches!(m.state, State::Pending { .. }));
        assert!(later(t0, Duration::MAX) >= t0);
    }

    #[test]
    fn stop_in_backoff_ends_at_once_with_the_last_status() {
        let (r, t0) = (rules(), Instant::now());
        let mut m = up(&r, t0);
        m.step(
            Event::ChildExited {
                exit: ExitKind::Code(3),
                seen: CLEAN,
            },
            t0,
            &r,
        );
        let a = m.step(Event::Control(Control::Stop), t0, &r);
        assert_eq!(logs(&a), vec!["stop requested; stopping"]);
        assert_eq!(m.done(), Some(3));
        assert_eq!(m.published(), RunState::Stopped);
    }

    #[test]
    fn stop_while_spawning_stops_the_new_run() {
        let (r, t0) = (rules(), Instant::now());
        let mut m = Machine::new(t0);
        m.step(Event::Deadline, t0, &r);
        m.step(Event::Signal(libc::SIGTERM), t0, &r);
        let a = m.step(
            Event::Started {
                pid: 9,
                gated: false,
            },
            t0,
            &r,
        );
        assert!(a.contains(&SignalRun(libc::SIGTERM)), "{a:?}");
        assert_eq!(m.published(), RunState::Stopping);
    }

    #[test]
    fn restart_requested() {
        let (r, t0) = (rules(), Instant::now());
        let mut m = up(&r, t0);
        let a = m.step(Event::Control(Control::Restart), t0, &r);
        assert_eq!(
            a,
            vec![Log("restart requested".into()), SignalRun(libc::SIGTERM)]
        );
        let a = m.step(
            Event::ChildExited {
                exit: ExitKind::Signal(libc::SIGTERM),
                seen: CLEAN,
            },
            t0 + MS,
            &r,
        );
        assert_eq!(
            logs(&a),
            vec!["killed by SIGTERM after 1ms; restarting in 0ms"]
        );
        assert_eq!(m.counters.unstable, 0, "a requested restart never counts");
        assert_eq!(m.counters.restarts, 1);
        // In backoff, a restart starts at once.
        let mut m = up(&r, t0);
        m.step(
            Event::ChildExited {
                exit: ExitKind::Code(1),
                seen: CLEAN,
            },
            t0,
            &r,
        );
        let a = m.step(Event::Control(Control::Restart), t0, &r);
        assert_eq!(
            a,
            vec![Log("restart requested; starting now".into()), Start]
        );
    }

    #[test]
    fn memory_limit_restarts_at_once() {
        let (r, t0) = (rules(), Instant::now());
        let mut m = up(&r, t0);
        assert_eq!(
            m.step(
                Event::Memory {
                    bytes: 1000,
                    processes: 1
                },
                t0,
                &r
            ),
            vec![]
        );
        let a = m.step(
            Event::Memory {
                bytes: 2048,
                processes: 3,
            },
            t0,
            &r,
        );
        assert_eq!(
            a,
            vec![
                Log("memory 2.0KiB over limit 1000B (pid 42 and 2 descendants)".into()),
                SignalRun(libc::SIGTERM)
            ]
        );
        let t = t0 + Duration::from_secs(20);
        let a = m.step(
            Event::ChildExited {
                exit: ExitKind::Signal(libc::SIGTERM),
                seen: CLEAN,
            },
            t,
            &r,
        );
        assert_eq!(
            logs(&a),
            vec!["killed by SIGTERM after 20s; restarting in 0ms"]
        );
    }

    #[test]
    fn not_ready_and_unhealthy() {
        let (r, t0) = (rules(), Instant::now());
        let mut m = Machine::new(t0);
        m.step(Event::Deadline, t0, &r);
        m.step(
            Event::Started {
                pid: 5,
                gated: true,
            },
            t0,
            &r,
        );
        let a = m.step(
            Event::NotReady {
                after: Duration::from_secs(60),
            },
            t0,
            &r,
        );
        assert_eq!(
            a,
            vec![
                Log("not ready after 1m".into()),
                Report(DetachReport::Failed {
                    status: 1,
                    why: "'api' not ready after 1m".into()
                }),
                SignalRun(libc::SIGTERM)
            ]
        );
        let mut m = up(&r, t0);
        let a = m.step(
            Event::Unhealthy {
                failures: 3,
                last: "exit 1".into(),
            },
            t0,
            &r,
        );
        assert_eq!(
            logs(&a),
            vec!["unhealthy after 3 failed checks (last: exit 1)"]
        );
        assert_eq!(m.published(), RunState::Stopping);
    }

    #[test]
    fn exit_before_ready_is_reported_to_a_detach_parent() {
        let (r, t0) = (rules(), Instant::now());
        let mut m = Machine::new(t0);
        m.step(Event::Deadline, t0, &r);
        m.step(
            Event::Started {
                pid: 5,
                gated: true,
            },
            t0,
            &r,
        );
        let a = m.step(
            Event::ChildExited {
                exit: ExitKind::Signal(libc::SIGKILL),
                seen: CLEAN,
            },
            t0,
            &r,
        );
        assert_eq!(
            a[0],
            Report(DetachReport::Failed {
                status: 1,
                why: "'api' was killed by SIGKILL before it was ready".into()
            })
        );
    }

    /// SPEC 4: every catchable signal keepup does not act on goes to the
    /// child's group; none is acted on when no child is alive.
    #[test]
    fn other_signals_are_forwarded() {
        let (r, t0) = (rules(), Instant::now());
        let mut m = up(&r, t0);
        for sig in crate::signals::caught().filter(|&s| {
            ![
                libc::SIGTERM,
                libc::SIGINT,
                libc::SIGQUIT,
                libc::SIGCHLD,
                libc::SIGTSTP,
                libc::SIGTTIN,
                libc::SIGTTOU,
            ]
            .contains(&s)
        }) {
            assert_eq!(m.step(Event::Signal(sig), t0, &r), vec![SignalRun(sig)]);
        }
        m.step(
            Event::ChildExited {
                exit: ExitKind::Code(1),
                seen: CLEAN,
            },
            t0,
            &r,
        );
        assert_eq!(m.step(Event::Signal(libc::SIGHUP), t0, &r), vec![]);
    }

    #[test]
    fn job_control() {
        let (mut r, t0) = (rules(), Instant::now());
        let mut m = up(&r, t0);
        assert_eq!(
            m.step(Event::Signal(libc::SIGTSTP), t0, &r),
            vec![SignalRun(libc::SIGTSTP), StopSelf]
        );
        assert_eq!(
            m.step(Event::Signal(libc::SIGCONT), t0, &r),
            vec![SignalRun(libc::SIGCONT)]
        );
        // With the terminal: Ctrl-Z stopped the child; keepup follows it,
        // and `fg` gives the terminal back to the child.
        r.tty = true;
        assert_eq!(
            m.step(
                Event::ChildStopped {
                    signal: libc::SIGTSTP
                },
                t0,
                &r
            ),
            vec![TakeTerminal, StopSelf]
        );
        assert_eq!(
            m.step(Event::Signal(libc::SIGCONT), t0, &r),
            vec![SignalRun(libc::SIGCONT), GiveTerminal]
        );
        assert_eq!(m.published(), RunState::Running, "a stop is never an exit");
        // Without the terminal a stopped child is the user's business.
        r.tty = false;
        assert_eq!(
            m.step(
                Event::ChildStopped {
                    signal: libc::SIGSTOP
                },
                t0,
                &r
            ),
            vec![]
        );
    }

    #[test]
    fn ctrl_c_on_an_interactive_child_ends_keepup() {
        let (mut r, t0) = (rules(), Instant::now());
        r.tty = true;
        let mut m = up(&r, t0);
        let a = m.step(
            Event::ChildExited {
                exit: ExitKind::Signal(libc::SIGINT),
                seen: CLEAN,
            },
            t0,
            &r,
        );
        assert_eq!(a[0], TakeTerminal);
        assert_eq!(m.done(), Some(130));
    }

    #[test]
    fn policy_never_exits_with_the_childs_status() {
        let (mut r, t0) = (rules(), Instant::now());
        r.policy.restart = RestartPolicy::Never;
        let mut m = up(&r, t0);
        let a = m.step(
            Event::ChildExited {
                exit: ExitKind::Code(4),
                seen: CLEAN,
            },
            t0 + Duration::from_secs(1),
            &r,
        );
        assert_eq!(
            logs(&a),
            vec!["exited with code 4 after 1s; not restarting (--restart never)"]
        );
        assert_eq!(m.done(), Some(4));
    }

    fn reload(m: &mut Machine, r: &Rules, t: Instant) -> Actions {
        m.step(Event::Control(Control::Reload { timeout_ms: None }), t, r)
    }

    #[test]
    fn reload_without_readiness_promotes_at_once() {
        let (r, t0) = (rules(), Instant::now());
        let mut m = up(&r, t0);
        assert_eq!(reload(&mut m, &r, t0), vec![StartNext]);
        assert_eq!(m.published(), RunState::Running);
        let a = m.step(
            Event::NextStarted {
                pid: 50,
                gated: false,
            },
            t0,
            &r,
        );
        assert_eq!(
            a,
            vec![
                Log("reload: started pid 50 beside pid 42".into()),
                Promote,
                SignalRetiring(libc::SIGTERM)
            ]
        );
        assert_eq!(m.child_pid(), Some(50));
        assert_eq!(m.counters.restarts, 1);
        assert!(m.two_runs(), "the memory limit waits for the old run to go");
        // The old run goes; the verb hears once its group and pipes are gone.
        assert_eq!(m.step(Event::RetiringExited, t0, &r), vec![]);
        let a = m.step(
            Event::RetiringObserved {
                group_alive: false,
                drained: true,
            },
            t0,
            &r,
        );
        assert_eq!(
            a,
            vec![
                EndRetiring,
                Log("reloaded (pid 42 -> 50)".into()),
                ReloadDone(ReloadOutcome::Reloaded { old: 42, new: 50 })
            ]
        );
        assert!(!m.two_runs());
    }

    #[test]
    fn reload_waits_for_the_new_run_to_be_ready() {
        let (r, t0) = (rules(), Instant::now());
        let mut m = up(&r, t0);
        reload(&mut m, &r, t0);
        let a = m.step(
            Event::NextStarted {
                pid: 50,
                gated: true,
            },
            t0,
            &r,
        );
        assert!(!a.contains(&Promote));
        assert_eq!(m.child_pid(), Some(42), "the old run serves until then");
        assert_eq!(m.deadline(), Some(t0 + r.ready_timeout));
        let a = m.step(Event::NextReady { after: 300 * MS }, t0, &r);
        assert_eq!(a[0], Log("reload: pid 50 ready after 300ms".into()));
        assert!(a.contains(&Promote));
    }

    #[test]
    fn failed_reloads_keep_the_old_run() {
        let (r, t0) = (rules(), Instant::now());
        // The new run exits before it is ready.
        let mut m = up(&r, t0);
        reload(&mut m, &r, t0);
        m.step(
            Event::NextStarted {
                pid: 50,
                gated: true,
            },
            t0,
            &r,
        );
        let a = m.step(
            Event::NextExited {
                exit: ExitKind::Code(3),
            },
            t0,
            &r,
        );
        let why = "pid 50 exited with code 3 before it was ready; keeping pid 42";
        assert_eq!(
            a,
            vec![
                Log(format!("reload failed: {why}")),
                AbortNext,
                SignalRetiring(libc::SIGTERM)
            ]
        );
        assert_eq!(m.child_pid(), Some(42));
        let a = m.step(
            Event::RetiringObserved {
                group_alive: false,
                drained: true,
            },
            t0,
            &r,
        );
        assert_eq!(
            a,
            vec![
                EndRetiring,
                ReloadDone(ReloadOutcome::Failed { why: why.into() })
            ]
        );
        assert_eq!(
            m.counters,
            Counters::default(),
            "a failed reload counts nothing"
        );

        // Not ready by the verb's timeout: stopped, then SIGKILL at the kill
        // timeout if it will not go.
        let mut m = up(&r, t0);
        m.step(
            Event::Control(Control::Reload {
                timeout_ms: Some(1000),
            }),
            t0,
            &r,
        );
        m.step(
            Event::NextStarted {
                pid: 50,
                gated: true,
            },
            t0,
            &r,
        );
        assert_eq!(m.deadline(), Some(t0 + Duration::from_secs(1)));
        let t1 = t0 + Duration::from_secs(1);
        let a = m.step(Event::Deadline, t1, &r);
        assert_eq!(
            a[0],
            Log("reload failed: not ready after 1s; keeping pid 42".into())
        );
        let a = m.step(
            Event::RetiringObserved {
                group_alive: true,
                drained: false,
            },
            t1 + r.kill_timeout,
            &r,
        );
        assert_eq!(a, vec![SignalRetiring(libc::SIGKILL)]);

        // The new run cannot even be started.
        let mut m = up(&r, t0);
        reload(&mut m, &r, t0);
        let a = m.step(
            Event::NextStartFailed {
                why: "cannot run 'x': No such file or directory".into(),
            },
            t0,
            &r,
        );
        assert_eq!(a.len(), 2);
        assert!(matches!(&a[1], ReloadDone(ReloadOutcome::Failed { .. })));
        assert!(!m.two_runs());
    }

    #[test]
    fn the_old_run_dying_during_a_reload_fails_it() {
        let (r, t0) = (rules(), Instant::now());
        let mut m = up(&r, t0);
        reload(&mut m, &r, t0);
        m.step(
            Event::NextStarted {
                pid: 50,
                gated: true,
            },
            t0,
            &r,
        );
        let a = m.step(
            Event::ChildExited {
                exit: ExitKind::Code(1),
                seen: CLEAN,
            },
            t0,
            &r,
        );
        assert_eq!(
            a[0],
            Log(
                "reload failed: pid 42 exited with code 1 during the reload; keeping pid 42".into()
            )
        );
        assert!(a.contains(&AbortNext));
        assert!(
            matches!(m.state, State::Pending { .. }),
            "a crash as any other"
        );
    }

    #[test]
    fn stopping_during_a_reload_stops_both_runs() {
        let (r, t0) = (rules(), Instant::now());
        let mut m = up(&r, t0);
        reload(&mut m, &r, t0);
        m.step(
            Event::NextStarted {
                pid: 50,
                gated: true,
            },
            t0,
            &r,
        );
        let a = m.step(Event::Signal(libc::SIGTERM), t0, &r);
        assert!(a.contains(&AbortNext) && a.contains(&SignalRetiring(libc::SIGTERM)));
        assert!(a.contains(&SignalRun(libc::SIGTERM)));
        m.step(
            Event::ChildExited {
                exit: ExitKind::Signal(libc::SIGTERM),
                seen: CLEAN,
            },
            t0,
            &r,
        );
        assert_eq!(m.done(), None, "keepup waits for the other run too");
        m.step(Event::RetiringExited, t0, &r);
        m.step(
            Event::RetiringObserved {
                group_alive: false,
                drained: true,
            },
            t0,
            &r,
        );
        assert_eq!(m.done(), Some(143));
    }

    #[test]
    fn reload_when_not_running() {
        let (r, t0) = (rules(), Instant::now());
        // In backoff: a restart.
        let mut m = up(&r, t0);
        m.step(
            Event::ChildExited {
                exit: ExitKind::Code(1),
                seen: CLEAN,
            },
            t0,
            &r,
        );
        let a = reload(&mut m, &r, t0);
        assert_eq!(a[0], ReloadDone(ReloadOutcome::Restarted));
        assert!(a.contains(&Start));
        // During another reload: refused.
        let mut m = up(&r, t0);
        reload(&mut m, &r, t0);
        let a = reload(&mut m, &r, t0);
        assert_eq!(
            a,
            vec![ReloadDone(ReloadOutcome::Failed {
                why: "a reload is already in progress".into()
            })]
        );
    }

    fn change(m: &mut Machine, r: &Rules, t: Instant, path: &str) -> Actions {
        m.step(Event::Change { path: path.into() }, t, r)
    }

    #[test]
    fn a_change_restarts_at_once_and_is_never_unstable() {
        let (mut r, t0) = (rules(), Instant::now());
        r.watch = true;
        let mut m = up(&r, t0);
        m.counters.unstable = 3;
        let a = change(&mut m, &r, t0, "src/index.js");
        assert_eq!(
            a,
            vec![
                Log("change: src/index.js; restarting".into()),
                SignalRun(libc::SIGTERM)
            ]
        );
        let a = m.step(
            Event::ChildExited {
                exit: ExitKind::Signal(libc::SIGTERM),
                seen: CLEAN,
            },
            t0 + MS,
            &r,
        );
        assert_eq!(
            logs(&a),
            vec!["killed by SIGTERM after 1ms; restarting in 0ms"]
        );
        assert_eq!(m.counters.unstable, 0, "a watch restart clears the count");
    }

    #[test]
    fn changes_while_stopping_or_starting_give_one_more_restart() {
        let (mut r, t0) = (rules(), Instant::now());
        r.watch = true;
        let mut m = up(&r, t0);
        change(&mut m, &r, t0, "a.js");
        // Two more bursts during the stop: one restart more, not two.
        assert_eq!(change(&mut m, &r, t0, "b.js"), vec![]);
        assert_eq!(change(&mut m, &r, t0, "c.js"), vec![]);
        m.step(
            Event::ChildExited {
                exit: ExitKind::Signal(libc::SIGTERM),
                seen: CLEAN,
            },
            t0,
            &r,
        );
        m.step(Event::Deadline, t0, &r);
        let a = m.step(
            Event::Started {
                pid: 50,
                gated: false,
            },
            t0,
            &r,
        );
        assert!(a.contains(&Log("change: b.js; restarting".into())), "{a:?}");
        assert!(a.contains(&SignalRun(libc::SIGTERM)));
        m.step(
            Event::ChildExited {
                exit: ExitKind::Signal(libc::SIGTERM),
                seen: CLEAN,
            },
            t0,
            &r,
        );
        m.step(Event::Deadline, t0, &r);
        let a = m.step(
            Event::Started {
                pid: 51,
                gated: false,
            },
            t0,
            &r,
        );
        assert_eq!(logs(&a), vec!["started pid 51"], "no storm");
    }

    #[test]
    fn with_watch_giving_up_waits_for_a_change() {
        let (mut r, t0) = (rules(), Instant::now());
        r.watch = true;
        r.policy.max_restarts = Some(0);
        let mut m = up(&r, t0);
        let a = m.step(
            Event::ChildExited {
                exit: ExitKind::Code(1),
                seen: CLEAN,
            },
            t0,
            &r,
        );
        assert_eq!(logs(&a).last(), Some(&"gave up; waiting for a change"));
        assert_eq!(m.done(), None, "keepup lives on");
        assert_eq!(m.published(), RunState::GaveUp);
        assert_eq!(m.deadline(), None, "and sleeps");
        let a = change(&mut m, &r, t0, "src/fixed.js");
        assert_eq!(
            a,
            vec![Log("change: src/fixed.js; restarting".into()), Start]
        );
        // A stop while waiting ends keepup with the last status.
        let mut m = up(&r, t0);
        m.step(
            Event::ChildExited {
                exit: ExitKind::Code(4),
                seen: CLEAN,
            },
            t0,
            &r,
        );
        m.step(Event::Signal(libc::SIGTERM), t0, &r);
        assert_eq!(m.done(), Some(4));
    }
}
