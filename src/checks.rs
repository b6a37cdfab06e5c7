//! Readiness and liveness for one run, as deadlines and fds for the
//! supervisor's poll loop: no thread, no timer of its own. At most one probe
//! runs at a time; a probe process is a child of keepup like any other
//! (reaped by the one reaper, which hands its status here) and is killed,
//! with its process group, at `--health-timeout`.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::child::{Image, Output, SpawnSpec, spawn};
use crate::config::{HealthCheck, Probes, ReadyCheck};
use crate::probe::{HttpProbe, HttpTarget, Outcome, command_outcome};
use crate::reap::ExitKind;
use crate::signals::Inherited;

/// Readiness is polled this often while a run is starting.
const READY_POLL: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Purpose {
    Ready,
    Health,
}

struct InFlight {
    purpose: Purpose,
    /// The probe process (0 for an HTTP probe).
    pid: i32,
    http: Option<HttpProbe>,
    deadline: Instant,
}

/// What the supervisor must act on.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    Ready(Duration),
    NotReady(Duration),
    Unhealthy {
        failures: u32,
        last: String,
    },
    /// The last probe's result changed (for `status`).
    ProbeChanged,
    /// `--watchdog`: no `WATCHDOG=1` for this long.
    Watchdog(Duration),
}

pub struct Checks {
    cfg: Probes,
    /// The `--health-http` target, resolved before the first start.
    http: Option<HttpTarget>,
    inherited: Inherited,
    started: Option<Instant>,
    ready: bool,
    ready_pipe: Option<OwnedFd>,
    next_ready: Option<Instant>,
    next_health: Option<Instant>,
    probe: Option<InFlight>,
    failures: u32,
    pub last_probe: String,
    /// `--watchdog`: when the next ping is due at the latest.
    watchdog_due: Option<Instant>,
    /// The run's main pid: `--ready-port` counts only a socket of its tree.
    pid: i32,
    /// Probe commands run as the child's user, in its directory.
    user: Option<crate::users::User>,
    cwd: Option<std::path::PathBuf>,
}

/// Resolves the `--health-http` host, once, before anything starts: a
/// name that does not resolve is bad usage, as a bad URL is.
pub fn resolve(probes: &Probes) -> Result<Option<HttpTarget>, String> {
    match &probes.health {
        Some(HealthCheck::Http(url)) => HttpTarget::resolve(url).map(Some),
        _ => Ok(None),
    }
}

impl Checks {
    pub fn new(
        cfg: Probes,
        http: Option<HttpTarget>,
        inherited: Inherited,
        user: Option<crate::users::User>,
        cwd: Option<std::path::PathBuf>,
    ) -> Checks {
        Checks {
            cfg,
            http,
            inherited,
            started: None,
            ready: false,
            ready_pipe: None,
            next_ready: None,
            next_health: None,
            probe: None,
            failures: 0,
            last_probe: String::new(),
            watchdog_due: None,
            pid: 0,
            user,
            cwd,
        }
    }

    /// Whether runs start in `starting` and wait for a readiness check.
    pub fn gated(&self) -> bool {
        self.cfg.ready.is_some()
    }

    /// For `--ready-fd`: a pipe whose write end becomes the child's fd N.
    /// Returns (write end, N); the read end stays here.
    pub fn ready_pipe_for_child(&mut self) -> std::io::Result<Option<(OwnedFd, i32)>> {
        let Some(ReadyCheck::Fd(n)) = self.cfg.ready else {
            return Ok(None);
        };
        let (r, w) = crate::sys::pipe(0)?;
        crate::sys::set_nonblocking(r.as_raw_fd())?;
        self.ready_pipe = Some(r);
        Ok(Some((w, n)))
    }

    /// The run's main pid, known once it is spawned.
    pub fn set_pid(&mut self, pid: i32) {
        self.pid = pid;
    }

    /// A run has started.
    pub fn on_start(&mut self, now: Instant) -> Option<Event> {
        self.started = Some(now);
        self.failures = 0;
        match self.cfg.ready {
            None => self.became_ready(now),
            Some(ReadyCheck::Fd(_) | ReadyCheck::Notify) => None,
            Some(_) => {
                self.next_ready = Some(now);
                None
            }
        }
    }

    /// The run is over: forget it and kill any probe in flight.
    pub fn on_end(&mut self) {
        self.kill_probe();
        self.watchdog_due = None;
        self.started = None;
        self.ready = false;
        self.ready_pipe = None;
        self.next_ready = None;
        self.next_health = None;
    }

    pub fn is_ready(&self) -> bool {
        self.ready
    }

    fn became_ready(&mut self, now: Instant) -> Option<Event> {
        self.ready = true;
        self.next_ready = None;
        self.ready_pipe = None;
        if self.cfg.health.is_some() {
            self.next_health = Some(now + self.cfg.health_interval);
        }
        // The watchdog's timer starts when the run is ready (SPEC 9).
        self.watchdog_due = self.cfg.watchdog.map(|d| now + d);
        let waited = now.saturating_duration_since(self.started.unwrap_or(now));
        self.cfg.ready.as_ref().map(|_| Event::Ready(waited))
    }

    /// `READY=1` from the run's tree.
    pub fn notified_ready(&mut self, now: Instant) -> Option<Event> {
        match (self.started, self.ready, &self.cfg.ready) {
            (Some(_), false, Some(ReadyCheck::Notify)) => self.became_ready(now),
            _ => None,
        }
    }

    /// `WATCHDOG=1` from the run's tree: the next is due within the period.
    pub fn watchdog_ping(&mut self, now: Instant) {
        if self.ready
            && let Some(d) = self.cfg.watchdog
        {
            self.watchdog_due = Some(now + d);
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.started?;
        if let Some(w) = self.watchdog_due {
            return Some(self.probe_or_next_deadline().map_or(w, |d| d.min(w)));
        }
        self.probe_or_next_deadline()
    }

    fn probe_or_next_deadline(&self) -> Option<Instant> {
        let ready_by = (!self.ready && self.gated())
            .then(|| self.started.map(|s| s + self.cfg.ready_timeout))
            .flatten();
        let next = if self.probe.is_some() {
            None
        } else if self.ready {
            self.next_health
        } else {
            self.next_ready
        };
        [ready_by, next, self.probe.as_ref().map(|p| p.deadline)]
            .into_iter()
            .flatten()
            .min()
    }

    /// The fds to poll: (fd, events) for the ready pipe and an HTTP probe.
    pub fn poll_fds(&self) -> [Option<(RawFd, i16)>; 2] {
        [
            self.ready_pipe
                .as_ref()
                .map(|p| (p.as_raw_fd(), libc::POLLIN)),
            self.probe
                .as_ref()
                .and_then(|p| p.http.as_ref())
                .map(|h| (h.fd(), h.events())),
        ]
    }

    /// The ready pipe is readable: a newline means ready.
    pub fn on_ready_pipe(&mut self, now: Instant) -> Option<Event> {
        let fd = self.ready_pipe.as_ref()?.as_raw_fd();
        let mut buf = [0u8; 256];
        loop {
            match crate::sys::read(fd, &mut buf) {
                Ok(n) if buf[..n].contains(&b'\n') => return self.became_ready(now),
                Ok(n) if n > 0 => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
                // Closed without a newline: not ready by this means; the
                // ready timeout decides.
                _ => {
                    self.ready_pipe = None;
                    return None;
                }
            }
        }
    }

    /// The HTTP probe's socket is ready.
    pub fn on_http(&mut self, now: Instant) -> Option<Event> {
        let outcome = self.probe.as_mut()?.http.as_mut()?.advance()?;
        let purpose = self.probe.take().map(|p| p.purpose)?;
        self.finished(purpose, outcome, now)
    }

    /// The reaper found `pid`: if it is our probe process, judge it.
    pub fn on_reaped(&mut self, pid: i32, exit: ExitKind, now: Instant) -> Option<Event> {
        if self
            .probe
            .as_ref()
            .is_none_or(|p| p.pid != pid || p.pid == 0)
        {
            return None;
        }
        let purpose = self.probe.take().map(|p| p.purpose)?;
        self.finished(purpose, command_outcome(exit), now)
    }

    /// Deadlines: ready timeout, probe timeout, the next probe.
    pub fn on_time(&mut self, now: Instant) -> Option<Event> {
        let started = self.started?;
        if let (Some(due), Some(d)) = (self.watchdog_due, self.cfg.watchdog)
            && now >= due
        {
            self.watchdog_due = None;
            return Some(Event::Watchdog(d));
        }
        if !self.ready && self.gated() && now >= started + self.cfg.ready_timeout {
            self.kill_probe();
            self.next_ready = None;
            self.started = None;
            return Some(Event::NotReady(self.cfg.ready_timeout));
        }
        if let Some(p) = &self.probe {
            if now >= p.deadline {
                let purpose = p.purpose;
                self.kill_probe();
                return self.finished(purpose, Err("timeout".into()), now);
            }
            return None;
        }
        if !self.ready && self.next_ready.is_some_and(|t| now >= t) {
            return match self.cfg.ready.clone() {
                Some(ReadyCheck::Port(port)) => {
                    // A non-blocking connect, watched by the loop's poll:
                    // keepup never waits anywhere else.
                    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                    match HttpProbe::connect_only(&addr) {
                        Ok(p) => {
                            self.probe = Some(InFlight {
                                purpose: Purpose::Ready,
                                pid: 0,
                                http: Some(p),
                                deadline: now + READY_POLL,
                            });
                            None
                        }
                        Err(why) => self.finished(Purpose::Ready, Err(why), now),
                    }
                }
                Some(ReadyCheck::Command(cmd)) => self.launch_command(Purpose::Ready, &cmd, now),
                _ => None,
            };
        }
        if self.ready && self.next_health.is_some_and(|t| now >= t) {
            self.next_health = None;
            return match self.cfg.health.clone() {
                Some(HealthCheck::Command(cmd)) => self.launch_command(Purpose::Health, &cmd, now),
                Some(HealthCheck::Http(_)) => match self.http.as_ref().map(HttpProbe::start) {
                    Some(Ok(h)) => {
                        self.probe = Some(InFlight {
                            purpose: Purpose::Health,
                            pid: 0,
                            http: Some(h),
                            deadline: now + self.cfg.health_timeout,
                        });
                        None
                    }
                    Some(Err(why)) => self.finished(Purpose::Health, Err(why), now),
                    None => None,
                },
                None => None,
            };
        }
        None
    }

    fn launch_command(&mut self, purpose: Purpose, cmd: &str, now: Instant) -> Option<Event> {
        let command = ["sh".into(), "-c".into(), cmd.into()];
        let mut image = match Image::new(&command, None) {
            Ok(image) => image,
            Err(e) => {
                let why = format!("cannot start probe: {}", crate::diag::os_reason(&e));
                return self.finished(purpose, Err(why), now);
            }
        };
        let spec = SpawnSpec {
            image: &mut image,
            own_group: true,
            stdout: Output::Null,
            stderr: Output::Null,
            take_terminal: false,
            inherited: self.inherited,
            extra_fds: &[],
            cwd: self.cwd.as_deref(),
            user: self.user.as_ref(),
        };
        match spawn(spec) {
            Ok(child) => {
                self.probe = Some(InFlight {
                    purpose,
                    pid: child.pid,
                    http: None,
                    deadline: now + self.cfg.health_timeout,
                });
                None
            }
            Err(e) => self.finished(
                purpose,
                Err(format!(
                    "cannot start probe: {}",
                    crate::diag::os_reason(e.error())
                )),
                now,
            ),
        }
    }

    fn kill_probe(&mut self) {
        if let Some(p) = self.probe.take()
            && p.pid > 0
        {
            // The probe has its own group: take its children with it. Its
            // status comes back through the reaper and is ignored then.
            let _ = crate::sys::kill(-p.pid, libc::SIGKILL);
        }
    }

    fn finished(&mut self, purpose: Purpose, outcome: Outcome, now: Instant) -> Option<Event> {
        match purpose {
            Purpose::Ready => match outcome {
                // A port that answers is the run's only when a process of
                // its tree listens there (SPEC 8): a stranger holding the
                // port while the child crash-loops is no readiness.
                Ok(())
                    if matches!(self.cfg.ready, Some(ReadyCheck::Port(p))
                    if !crate::probe::tree_holds(self.pid, &crate::probe::listening_inodes(p))) =>
                {
                    self.next_ready = Some(now + READY_POLL);
                    None
                }
                Ok(()) => self.became_ready(now),
                Err(_) => {
                    self.next_ready = Some(now + READY_POLL);
                    None
                }
            },
            Purpose::Health => {
                // The interval counts from the end of the last probe.
                self.next_health = Some(now + self.cfg.health_interval);
                let shown = match &outcome {
                    Ok(()) => "ok".to_string(),
                    Err(why) => why.clone(),
                };
                let changed = shown != self.last_probe;
                self.last_probe = shown;
                match outcome {
                    Ok(()) => self.failures = 0,
                    Err(last) => {
                        self.failures += 1;
                        if self.failures >= self.cfg.health_retries {
                            let failures = self.failures;
                            self.failures = 0;
                            self.next_health = None;
                            return Some(Event::Unhealthy { failures, last });
                        }
                    }
                }
                changed.then_some(Event::ProbeChanged)
            }
        }
    }
}
