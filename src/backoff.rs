//! The restart policy as pure arithmetic: given how a run ended, how long it
//! lasted and the count of consecutive unstable runs, decide whether to
//! restart, after how long, or to stop. No clocks and no I/O here, so every
//! rule of SPEC section 2 is a table-driven unit test.

use std::time::Duration;

use crate::reap::ExitKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// Why a run ended, which decides how it counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// The child exited on its own (or could not be executed).
    Exited,
    /// keepup stopped it to restart it for a fault (memory, health,
    /// readiness): restarted at once, unstable if it was short.
    FaultRestart,
    /// `keepup restart`: restarted at once, never counted.
    Requested,
    /// keepup was told to stop (signal, `keepup stop`), or the user pressed
    /// Ctrl-C on an interactive child.
    Shutdown,
    /// Not ready within `--ready-timeout`: stopped, and handled as a crash
    /// that is always unstable.
    NotReady,
    /// A watched file changed (SPEC 11): restarted at once, never counted
    /// as unstable, and it clears the unstable count.
    Watch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub restart: RestartPolicy,
    pub delay: Duration,
    pub max_delay: Duration,
    pub min_uptime: Duration,
    /// `None` is `unlimited`.
    pub max_restarts: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Restart {
        after: Duration,
    },
    /// Stop supervising and exit with the child's status.
    Exit,
    /// The unstable-restart cap was reached.
    GiveUp,
}

/// The part of the supervisor's memory that the policy needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Consecutive unstable runs that were restarted.
    pub unstable: u32,
    /// Every restart, for `status`.
    pub restarts: u64,
}

/// `min(delay * 2^(k-1), max_delay)` for the k-th consecutive unstable restart.
pub fn backoff_delay(policy: &Policy, k: u32) -> Duration {
    let exp = k.saturating_sub(1).min(40);
    let factor = 1u64 << exp;
    let nanos = (policy.delay.as_nanos() as u64).saturating_mul(factor);
    Duration::from_nanos(nanos).min(policy.max_delay.max(policy.delay))
}

/// Decides what follows the end of a run and updates the counters.
pub fn decide(
    policy: &Policy,
    success_codes: &[i32],
    counters: &mut Counters,
    exit: ExitKind,
    end: RunEnd,
    uptime: Duration,
) -> Decision {
    let stable = uptime >= policy.min_uptime && end != RunEnd::NotReady;
    match end {
        RunEnd::Shutdown => return Decision::Exit,
        RunEnd::Requested => {
            counters.restarts += 1;
            return Decision::Restart {
                after: Duration::ZERO,
            };
        }
        RunEnd::Watch => {
            counters.unstable = 0;
            counters.restarts += 1;
            return Decision::Restart {
                after: Duration::ZERO,
            };
        }
        RunEnd::FaultRestart | RunEnd::Exited => {}
        RunEnd::NotReady => {
            if policy.restart == RestartPolicy::Never {
                return Decision::Exit;
            }
        }
    }
    if end == RunEnd::Exited {
        let wanted = match policy.restart {
            RestartPolicy::Always => true,
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure => match exit {
                ExitKind::Code(c) => !success_codes.contains(&c),
                ExitKind::Signal(_) => true,
            },
        };
        if !wanted {
            return Decision::Exit;
        }
    }
    if policy.max_restarts == Some(0) {
        return Decision::GiveUp;
    }
    if stable {
        counters.unstable = 0;
    } else {
        counters.unstable += 1;
        if let Some(cap) = policy.max_restarts
            && counters.unstable > cap
        {
            counters.unstable = cap;
            return Decision::GiveUp;
        }
    }
    counters.restarts += 1;
    let after = match (end, stable) {
        (RunEnd::FaultRestart, _) => Duration::ZERO,
        (_, true) => policy.delay,
        (_, false) => backoff_delay(policy, counters.unstable),
    };
    Decision::Restart { after }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            restart: RestartPolicy::Always,
            delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            min_uptime: Duration::from_secs(10),
            max_restarts: Some(10),
        }
    }

    const SHORT: Duration = Duration::from_secs(1);
    const LONG: Duration = Duration::from_secs(20);

    #[test]
    fn backoff_doubles_and_caps() {
        let p = policy();
        let ms = |k| backoff_delay(&p, k).as_millis();
        assert_eq!(
            [ms(1), ms(2), ms(3), ms(4), ms(9), ms(10), ms(50)],
            [100, 200, 400, 800, 25_600, 30_000, 30_000]
        );
        let fixed = Policy {
            max_delay: p.delay,
            ..p
        };
        assert_eq!(backoff_delay(&fixed, 7), p.delay);
    }

    #[test]
    fn unstable_runs_back_off_then_give_up() {
        let p = policy();
        let mut c = Counters::default();
        let mut delays = vec![];
        loop {
            match decide(&p, &[0], &mut c, ExitKind::Code(1), RunEnd::Exited, SHORT) {
                Decision::Restart { after } => delays.push(after.as_millis()),
                Decision::GiveUp => break,
                Decision::Exit => panic!("exit"),
            }
        }
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000]
        );
        assert_eq!(c.unstable, 10);
        assert_eq!(c.restarts, 10);
    }

    #[test]
    fn stable_run_resets_counter_and_delay() {
        let p = policy();
        let mut c = Counters::default();
        for _ in 0..5 {
            decide(&p, &[0], &mut c, ExitKind::Code(1), RunEnd::Exited, SHORT);
        }
        assert_eq!(c.unstable, 5);
        let d = decide(&p, &[0], &mut c, ExitKind::Code(1), RunEnd::Exited, LONG);
        assert_eq!(d, Decision::Restart { after: p.delay });
        assert_eq!(c.unstable, 0);
        let d = decide(&p, &[0], &mut c, ExitKind::Code(1), RunEnd::Exited, SHORT);
        assert_eq!(d, Decision::Restart { after: p.delay });
    }

    #[test]
    fn policies() {
        let table = [
            (RestartPolicy::Always, ExitKind::Code(0), true),
            (RestartPolicy::Always, ExitKind::Code(3), true),
            (RestartPolicy::OnFailure, ExitKind::Code(0), false),
            (RestartPolicy::OnFailure, ExitKind::Code(3), true),
            (RestartPolicy::OnFailure, ExitKind::Code(7), false),
            (RestartPolicy::OnFailure, ExitKind::Signal(9), true),
            (RestartPolicy::Never, ExitKind::Code(3), false),
            (RestartPolicy::Never, ExitKind::Signal(9), false),
        ];
        for (restart, exit, restarts) in table {
            let p = Policy {
                restart,
                ..policy()
            };
            let mut c = Counters::default();
            let d = decide(&p, &[0, 7], &mut c, exit, RunEnd::Exited, LONG);
            assert_eq!(
                matches!(d, Decision::Restart { .. }),
                restarts,
                "{restart:?} {exit:?}"
            );
        }
    }

    #[test]
    fn zero_and_unlimited_caps() {
        let mut c = Counters::default();
        let zero = Policy {
            max_restarts: Some(0),
            ..policy()
        };
        let d = decide(&zero, &[0], &mut c, ExitKind::Code(1), RunEnd::Exited, LONG);
        assert_eq!(d, Decision::GiveUp);
        let unlimited = Policy {
            max_restarts: None,
            ..policy()
        };
        for _ in 0..1000 {
            let d = decide(
                &unlimited,
                &[0],
                &mut c,
                ExitKind::Code(1),
                RunEnd::Exited,
                SHORT,
            );
            assert!(matches!(d, Decision::Restart { .. }));
        }
    }

    #[test]
    fn fault_and_requested_restarts() {
        let p = Policy {
            restart: RestartPolicy::Never,
            max_restarts: Some(1),
            ..policy()
        };
        let mut c = Counters::default();
        let kill = ExitKind::Signal(15);
        // A requested restart is immediate under every policy and never counts.
        for _ in 0..3 {
            let d = decide(&p, &[0], &mut c, kill, RunEnd::Requested, SHORT);
            assert_eq!(
                d,
                Decision::Restart {
                    after: Duration::ZERO
                }
            );
        }
        assert_eq!(c.unstable, 0);
        // A long fault run restarts at once and resets the counter.
        let d = decide(&p, &[0], &mut c, kill, RunEnd::FaultRestart, LONG);
        assert_eq!(
            d,
            Decision::Restart {
                after: Duration::ZERO
            }
        );
        // Short fault runs count, and the cap applies.
        let d = decide(&p, &[0], &mut c, kill, RunEnd::FaultRestart, SHORT);
        assert_eq!(
            d,
            Decision::Restart {
                after: Duration::ZERO
            }
        );
        let d = decide(&p, &[0], &mut c, kill, RunEnd::FaultRestart, SHORT);
        assert_eq!(d, Decision::GiveUp);
        let d = decide(&p, &[0], &mut c, kill, RunEnd::Shutdown, SHORT);
        assert_eq!(d, Decision::Exit);
    }

    #[test]
    fn not_ready_is_an_unstable_crash() {
        let p = Policy {
            max_restarts: Some(1),
            ..policy()
        };
        let mut c = Counters::default();
        let kill = ExitKind::Signal(15);
        // Even a long wait for readiness counts as unstable, with backoff.
        let d = decide(&p, &[0], &mut c, kill, RunEnd::NotReady, LONG);
        assert_eq!(d, Decision::Restart { after: p.delay });
        assert_eq!(
            decide(&p, &[0], &mut c, kill, RunEnd::NotReady, LONG),
            Decision::GiveUp
        );
        let never = Policy {
            restart: RestartPolicy::Never,
            ..policy()
        };
        assert_eq!(
            decide(
                &never,
                &[0],
                &mut Counters::default(),
                kill,
                RunEnd::NotReady,
                LONG
            ),
            Decision::Exit
        );
    }
}
