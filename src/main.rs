//! keepup: keeps one command line running. This file is wiring only: parse,
//! validate, set up the process (signals, subreaper, parent death), hand over
//! to the supervisor, and turn the outcome into the one exit status.

use keepup::cli::Invocation;
use keepup::diag::complain;
use keepup::protocol::{DetachReport, exit};
use keepup::{cli, config, logs, reap, signals, state, supervisor, sys, verbs};

fn main() {
    std::process::exit(real_main());
}

fn real_main() -> i32 {
    // SAFETY: getppid has no arguments. Read first, before anything could
    // let the parent die unnoticed.
    let parent = unsafe { libc::getppid() };
    // What keepup inherited, before it installs any handler of its own.
    let inherited = signals::Inherited::capture();

    let settings = match cli::parse_from(std::env::args_os().skip(1), |k| std::env::var_os(k)) {
        Ok(Invocation::Run(s)) => s,
        Ok(Invocation::Help(text)) => {
            print!("{text}");
            return exit::OK;
        }
        Ok(Invocation::Version) => {
            println!("keepup {}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        Ok(Invocation::Verb(verb)) => return verbs::run(verb),
        Err(e) => {
            complain(&e.0);
            return exit::USAGE;
        }
    };
    let in_npm = std::env::var_os("npm_lifecycle_event").is_some();
    let cfg = match config::Config::from_settings(settings, in_npm) {
        Ok(c) => c,
        Err(e) => {
            complain(&e.0);
            return exit::USAGE;
        }
    };
    let http_target = match keepup::checks::resolve(&cfg.probes) {
        Ok(t) => t,
        Err(e) => {
            complain(&format!("{e} for --health-http"));
            return exit::USAGE;
        }
    };
    let logs = match logs::Logs::open(&cfg.logs, &cfg.name) {
        Ok(l) => l,
        Err(e) => {
            complain(&e);
            return exit::USAGE;
        }
    };

    let mut logs = logs;
    let instance = match state::Instance::claim(&cfg.name) {
        Ok(i) => Some(i),
        Err(state::ClaimError::Taken(pid)) => {
            let pid = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
            complain(&format!("'{}' is already running{pid}", cfg.name));
            return exit::FAILURE;
        }
        Err(state::ClaimError::Folder(state::FolderError::Unsafe(why))) => {
            complain(&why);
            return exit::FAILURE;
        }
        Err(state::ClaimError::Folder(state::FolderError::Unavailable(why))) => {
            logs.event(&format!(
                "{why}; supervising without state (status and control verbs will not see it)"
            ));
            None
        }
    };

    let notify = if cfg.detach {
        match detach(&cfg.name) {
            Detached::Parent(code) => return code,
            Detached::Daemon(fd) => Some(fd),
        }
    } else {
        None
    };

    let signals = match signals::SignalPipe::install() {
        Ok(s) => s,
        Err(e) => {
            complain(&format!("cannot install signal handlers: {e}"));
            return exit::FAILURE;
        }
    };
    if let Err(e) = reap::become_subreaper() {
        logs.event(&format!(
            "cannot become a child subreaper ({e}); orphans that leave the process group may survive"
        ));
    }
    if let Some(sig) = cfg.parent_death.filter(|_| !cfg.detach) {
        // SAFETY: prctl and getppid with integer arguments.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, sig, 0, 0, 0);
            // The parent may have died before the prctl: then no signal comes.
            if libc::getppid() != parent {
                signals::raise(sig);
            }
        }
    }

    supervisor::Supervisor::new(cfg, logs, signals, inherited, instance, notify, http_target).run()
}

enum Detached {
    /// The invoking process: exit with this status.
    Parent(i32),
    /// The background keepup: report the first start on this pipe.
    Daemon(std::os::fd::OwnedFd),
}

/// `--detach`: forks; the child leaves the session and the terminal and
/// supervises; the parent waits on a pipe until the first start has
/// succeeded or failed, and exits with what keepup would have exited with.
fn detach(name: &str) -> Detached {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        complain(&format!(
            "cannot detach: {}",
            std::io::Error::last_os_error()
        ));
        return Detached::Parent(exit::FAILURE);
    }
    // SAFETY: pipe2 succeeded; we own both ends.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: keepup is single-threaded here, so fork is safe.
    match unsafe { libc::fork() } {
        -1 => {
            complain(&format!(
                "cannot detach: {}",
                std::io::Error::last_os_error()
            ));
            Detached::Parent(exit::FAILURE)
        }
        0 => {
            drop(read_end);
            // SAFETY: plain syscalls on our own process and fds.
            unsafe {
                libc::setsid();
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if null >= 0 {
                    for fd in 0..3 {
                        libc::dup2(null, fd);
                    }
                    if null > 2 {
                        libc::close(null);
                    }
                }
            }
            Detached::Daemon(write_end)
        }
        _ => {
            drop(write_end);
            let mut text = Vec::new();
            let mut buf = [0u8; 512];
            while let Ok(n) = sys::read(read_end.as_raw_fd(), &mut buf) {
                if n == 0 {
                    break;
                }
                text.extend_from_slice(&buf[..n]);
            }
            match DetachReport::decode(&String::from_utf8_lossy(&text)) {
                Some(DetachReport::Started { pid }) => {
                    println!("keepup: {name} started (pid {pid})");
                    return Detached::Parent(exit::OK);
                }
                Some(DetachReport::Failed { status, why }) => {
                    complain(&why);
                    return Detached::Parent(status);
                }
                None => {}
            }
            complain(&format!("{name} exited before its command started"));
            Detached::Parent(exit::FAILURE)
        }
    }
}
