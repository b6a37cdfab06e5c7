//! What keepup processes say to each other, as types: the state an instance
//! publishes, the commands its control FIFO takes, the report a `--detach`
//! parent waits for, and keepup's own exit statuses. Each has one encoder
//! and one decoder, so the supervisor and the verbs cannot drift apart.

/// keepup's exit statuses besides the child's own (SPEC section 6).
pub mod exit {
    pub const OK: i32 = 0;
    /// A verb failed, a name is taken, a port cannot be bound.
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const NOT_EXECUTABLE: i32 = 126;
    pub const NOT_FOUND: i32 = 127;
}

/// The state of an instance as `status` shows it (SPEC section 7). `dead`
/// is not published: `status` derives it from a state file whose keepup is
/// gone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RunState {
    Starting,
    Running,
    Backoff,
    Stopping,
    #[default]
    Stopped,
    GaveUp,
}

impl RunState {
    pub const ALL: [RunState; 6] = [
        RunState::Starting,
        RunState::Running,
        RunState::Backoff,
        RunState::Stopping,
        RunState::Stopped,
        RunState::GaveUp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Starting => "starting",
            RunState::Running => "running",
            RunState::Backoff => "backoff",
            RunState::Stopping => "stopping",
            RunState::Stopped => "stopped",
            RunState::GaveUp => "gave-up",
        }
    }

    pub fn parse(text: &str) -> Option<RunState> {
        RunState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The instance's keepup has ended supervision for good.
    pub fn is_final(self) -> bool {
        matches!(self, RunState::Stopped | RunState::GaveUp)
    }

    /// A child (or the start of one) is there to act on.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            RunState::Starting | RunState::Running | RunState::Stopping
        )
    }
}

/// A command sent through an instance's control FIFO, one line each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Stop,
    Restart,
    Signal(i32),
    /// Start a new run beside the current one, then stop the current one
    /// once the new one is ready; give up after the timeout (ms), if any.
    Reload {
        timeout_ms: Option<u64>,
    },
}

impl Control {
    pub fn encode(self) -> String {
        match self {
            Control::Stop => "stop".into(),
            Control::Restart => "restart".into(),
            Control::Signal(sig) => format!("signal {sig}"),
            Control::Reload { timeout_ms: None } => "reload".into(),
            Control::Reload {
                timeout_ms: Some(ms),
            } => format!("reload {ms}"),
        }
    }

    /// `None` for anything else: a FIFO in a user's folder may receive junk.
    pub fn decode(line: &str) -> Option<Control> {
        let mut words = line.split_whitespace();
        let control = match (words.next()?, words.next()) {
            ("stop", None) => Control::Stop,
            ("restart", None) => Control::Restart,
            ("reload", None) => Control::Reload { timeout_ms: None },
            ("reload", Some(ms)) => Control::Reload {
                timeout_ms: Some(ms.parse().ok()?),
            },
            ("signal", Some(n)) => match n.parse::<i32>() {
                Ok(sig) if (1..=64).contains(&sig) => Control::Signal(sig),
                _ => return None,
            },
            _ => return None,
        };
        words.next().is_none().then_some(control)
    }
}

/// How the last `keepup reload` ended, published in the state file with a
/// sequence number so that the verb knows its own request was answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The new run is ready and the old one is gone.
    Reloaded { old: i32, new: i32 },
    /// The new run failed; the old one serves on.
    Failed { why: String },
    /// There was no ready run to reload beside: restarted instead.
    Restarted,
}

impl ReloadOutcome {
    pub fn encode(&self) -> String {
        match self {
            ReloadOutcome::Reloaded { old, new } => format!("reloaded {old} {new}"),
            ReloadOutcome::Failed { why } => format!("failed {why}"),
            ReloadOutcome::Restarted => "restarted".into(),
        }
    }

    pub fn decode(text: &str) -> Option<ReloadOutcome> {
        if text == "restarted" {
            return Some(ReloadOutcome::Restarted);
        }
        if let Some(why) = text.strip_prefix("failed ") {
            return Some(ReloadOutcome::Failed { why: why.into() });
        }
        let mut pids = text.strip_prefix("reloaded ")?.split(' ');
        Some(ReloadOutcome::Reloaded {
            old: pids.next()?.parse().ok()?,
            new: pids.next()?.parse().ok()?,
        })
    }
}

/// How the first start of a `--detach` keepup went, sent to the invoking
/// process over a pipe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DetachReport {
    /// The child runs (and is ready, when a readiness option is set).
    Started { pid: i32 },
    /// keepup will exit (or has stopped the run): the parent exits with
    /// `status` after printing `why`.
    Failed { status: i32, why: String },
}

impl DetachReport {
    pub fn encode(&self) -> String {
        match self {
            DetachReport::Started { pid } => format!("started {pid}\n"),
            DetachReport::Failed { status, why } => {
                format!("failed {status} {}\n", crate::diag::one_line(why))
            }
        }
    }

    pub fn decode(text: &str) -> Option<DetachReport> {
        let line = text.lines().next()?;
        if let Some(pid) = line.strip_prefix("started ") {
            return pid.parse().ok().map(|pid| DetachReport::Started { pid });
        }
        let rest = line.strip_prefix("failed ")?;
        let (status, why) = rest.split_once(' ').unwrap_or((rest, ""));
        Some(DetachReport::Failed {
            status: status.parse().unwrap_or(exit::FAILURE),
            why: why.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for s in RunState::ALL {
            assert_eq!(RunState::parse(s.as_str()), Some(s));
        }
        assert_eq!(RunState::parse("dead"), None);
    }

    #[test]
    fn controls_round_trip_and_junk_is_refused() {
        for c in [
            Control::Stop,
            Control::Restart,
            Control::Signal(15),
            Control::Reload { timeout_ms: None },
            Control::Reload {
                timeout_ms: Some(2500),
            },
        ] {
            assert_eq!(Control::decode(&c.encode()), Some(c));
        }
        for junk in [
            "",
            "stop now",
            "signal",
            "signal 0",
            "signal 65",
            "signal x",
            "reboot",
        ] {
            assert_eq!(Control::decode(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn reload_outcomes_round_trip() {
        for o in [
            ReloadOutcome::Reloaded { old: 4, new: 5 },
            ReloadOutcome::Failed {
                why: "not ready after 1s; keeping pid 4".into(),
            },
            ReloadOutcome::Restarted,
        ] {
            assert_eq!(ReloadOutcome::decode(&o.encode()), Some(o));
        }
    }

    #[test]
    fn detach_reports_round_trip() {
        let started = DetachReport::Started { pid: 42 };
        assert_eq!(DetachReport::decode(&started.encode()), Some(started));
        let failed = DetachReport::Failed {
            status: 127,
            why: "cannot run 'x': No such file or directory".into(),
        };
        assert_eq!(DetachReport::decode(&failed.encode()), Some(failed));
        let multi = DetachReport::Failed {
            status: 1,
            why: "a\nb".into(),
        };
        assert_eq!(
            DetachReport::decode(&multi.encode()),
            Some(DetachReport::Failed {
                status: 1,
                why: "a\\nb".into()
            })
        );
        assert_eq!(DetachReport::decode(""), None);
    }
}
