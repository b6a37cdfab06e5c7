//! keepup: keeps one command line running. This file is wiring only: parse,
//! validate, set up the process (signals, subreaper, parent death), hand over
//! to the supervisor, and turn the outcome into the one exit status.

mod backoff;
mod child;
mod cli;
mod config;
mod logs;
mod memory;
mod reap;
mod signals;
mod supervisor;
mod sys;
mod units;

use cli::Invocation;

fn main() {
    std::process::exit(real_main());
}

/// Prints a diagnostic the one way keepup prints them.
fn complain(what: &str) {
    let _ = sys::write_all(2, format!("keepup: {what}\n").as_bytes());
}

fn real_main() -> i32 {
    // SAFETY: getppid has no arguments. Read first, before anything could
    // let the parent die unnoticed.
    let parent = unsafe { libc::getppid() };
    // What keepup inherited, before it installs any handler of its own.
    let inherited = signals::Inherited::capture();

    let settings = match cli::parse_from(std::env::args_os().skip(1), |k| std::env::var_os(k)) {
        Ok(Invocation::Run(s)) => s,
        Ok(Invocation::Help) => {
            print!("{}", cli::HELP);
            return 0;
        }
        Ok(Invocation::Version) => {
            println!("keepup {}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        Ok(Invocation::Verb { verb, .. }) => {
            complain(&format!(
                "'keepup {verb}' is not supported by this version of keepup yet"
            ));
            return 2;
        }
        Err(e) => {
            complain(&e.0);
            return 2;
        }
    };
    let in_npm = std::env::var_os("npm_lifecycle_event").is_some();
    let cfg = match config::Config::from_settings(settings, in_npm) {
        Ok(c) => c,
        Err(e) => {
            complain(&e.0);
            return 2;
        }
    };
    let logs = match logs::Logs::open(&cfg.logs, &cfg.name) {
        Ok(l) => l,
        Err(e) => {
            complain(&e);
            return 2;
        }
    };

    let signals = match signals::SignalPipe::install() {
        Ok(s) => s,
        Err(e) => {
            complain(&format!("cannot install signal handlers: {e}"));
            return 1;
        }
    };
    if let Err(e) = reap::become_subreaper() {
        complain(&format!(
            "cannot become a child subreaper ({e}); orphans that leave the process group may survive"
        ));
    }
    if let Some(sig) = cfg.parent_death {
        // SAFETY: prctl and getppid with integer arguments.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, sig, 0, 0, 0);
            // The parent may have died before the prctl: then no signal comes.
            if libc::getppid() != parent {
                signals::raise(sig);
            }
        }
    }

    supervisor::Supervisor::new(cfg, logs, signals, inherited).run()
}
