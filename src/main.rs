//! keepup: keeps one command line running. This file is wiring only: parse,
//! validate, set up the process (signals, subreaper, parent death), hand over
//! to the supervisor, and turn the outcome into the one exit status.

use keepup::cli::Invocation;
use keepup::detach::{self, Detached};
use keepup::diag::complain;
use keepup::protocol::exit;
use keepup::{cli, config, logs, reap, signals, state, supervisor, verbs};

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
            return exit::OK;
        }
        Ok(Invocation::Verb(verb)) => return verbs::run(verb),
        Err(e) => {
            complain(&e.0);
            return exit::USAGE;
        }
    };
    let in_npm = std::env::var_os("npm_lifecycle_event").is_some();
    let mut cfg = match config::Config::from_settings(settings, in_npm) {
        Ok(c) => c,
        Err(e) => {
            complain(&e.0);
            return exit::USAGE;
        }
    };
    // SPEC 7: a detached instance with no log option logs to NAME.log in
    // the state folder, so `keepup logs NAME` always has something to show
    // (and a crash loop leaves a trace). Members of -i get NAME-k.log.
    if cfg.detach && cfg.logs.merged.is_none() && cfg.logs.out.is_none() && cfg.logs.err.is_none() {
        // The folder is made (0700, checked) by the state code first: the
        // log would otherwise create it with the default mode.
        if let Err(state::FolderError::Unsafe(why)) = state::Folder::open(true) {
            complain(&why);
            return exit::FAILURE;
        }
        cfg.logs.merged = Some(keepup::state::folder().join(format!("{}.log", cfg.name)));
    }
    match cfg.instances {
        None => match start(cfg, inherited, parent) {
            Started::Invoker(code) | Started::Supervised(code) => code,
        },
        Some(n) => start_instances(cfg, n, inherited, parent),
    }
}

/// How `start` came back: in the process that was invoked (after a detach
/// or a failure), or in the keepup that supervised, at its end.
enum Started {
    Invoker(i32),
    Supervised(i32),
}

/// `-d -i N`: NAME-1 .. NAME-N, one detached keepup each, started one after
/// the other; each binds its own sockets (SO_REUSEPORT) after the previous
/// one has detached, so no keepup holds another's socket.
fn start_instances(cfg: config::Config, n: u32, inherited: signals::Inherited, parent: i32) -> i32 {
    for k in 1..=n {
        match start(cfg.instance_of(k), inherited, parent) {
            Started::Invoker(exit::OK) => {}
            Started::Invoker(code) => return code,
            // The detached keepup of instance k: its supervision is over.
            Started::Supervised(code) => return code,
        }
    }
    exit::OK
}

/// Everything from a valid configuration to the end of supervision.
fn start(cfg: config::Config, inherited: signals::Inherited, parent: i32) -> Started {
    match prepare(cfg, inherited, parent) {
        Ok(supervisor) => Started::Supervised(supervisor.run()),
        Err(ended) => ended,
    }
}

/// From a valid configuration to a supervisor ready to run, or to how the
/// invoking process ends. Never inlined, and the supervisor is boxed: the
/// set-up's stack frame is gone before supervision starts, so the deepest
/// stack keepup ever touches (and keeps resident for its whole life) is the
/// larger of the two, not their sum (bench/RESULTS.md section 10).
#[inline(never)]
fn prepare(
    cfg: config::Config,
    inherited: signals::Inherited,
    parent: i32,
) -> Result<Box<supervisor::Supervisor>, Started> {
    let failed = |code| Err(Started::Invoker(code));
    let http_target = match keepup::checks::resolve(&cfg.probes) {
        Ok(t) => t,
        Err(e) => {
            complain(&format!("{e} for --health-http"));
            return failed(exit::USAGE);
        }
    };
    // The child's context, checked before anything starts (SPEC 10): the
    // user and group exist (and keepup may become them), the directory
    // exists, every env file reads and parses.
    let user = match cfg.user.as_deref().map(keepup::users::resolve).transpose() {
        Ok(u) => u,
        Err(why) => {
            complain(&format!(
                "invalid user '{}' for --user: {why}",
                cfg.user.as_deref().unwrap_or("")
            ));
            return failed(exit::USAGE);
        }
    };
    if let Some(dir) = &cfg.cwd
        && !dir.is_dir()
    {
        complain(&format!(
            "invalid directory '{}' for --cwd: {}",
            dir.display(),
            match std::fs::metadata(dir) {
                Ok(_) => "not a directory".to_string(),
                Err(e) => keepup::diag::os_reason(&e),
            }
        ));
        return failed(exit::USAGE);
    }
    let home = keepup::state::folder();
    let context = match keepup::context::Context::new(&cfg, user, Some(home)) {
        Ok(c) => c,
        Err(why) => {
            complain(&why);
            return failed(exit::USAGE);
        }
    };
    // Bound before anything else happens, so a port that is taken fails
    // the start with nothing begun.
    let listeners = match keepup::sockets::bind_all(&cfg.listen, cfg.reuseport, cfg.backlog) {
        Ok(l) => l,
        Err(e) => {
            complain(&e);
            return failed(exit::FAILURE);
        }
    };
    // A unix socket belongs to the user the child runs as.
    if let Some(u) = &context.user {
        keepup::sockets::give_to(&listeners, u.uid, u.gid);
    }
    let notify = match cfg.probes.ready {
        Some(keepup::config::ReadyCheck::Notify) => match keepup::notify::NotifySocket::bind() {
            Ok(n) => Some(n),
            Err(e) => {
                complain(&format!(
                    "cannot create the notify socket: {}",
                    keepup::diag::os_reason(&e)
                ));
                return failed(exit::FAILURE);
            }
        },
        _ => None,
    };
    let logs = match logs::Logs::open(&cfg.logs, &cfg.name) {
        Ok(l) => l,
        Err(e) => {
            complain(&e);
            return failed(exit::USAGE);
        }
    };

    let mut logs = logs;
    let instance = match state::Instance::claim(&cfg.name) {
        Ok(i) => Some(i),
        Err(state::ClaimError::Taken(pid)) => {
            let pid = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
            complain(&format!("'{}' is already running{pid}", cfg.name));
            return failed(exit::FAILURE);
        }
        Err(state::ClaimError::Folder(state::FolderError::Unsafe(why))) => {
            complain(&why);
            return failed(exit::FAILURE);
        }
        Err(state::ClaimError::Folder(state::FolderError::Unavailable(why))) => {
            logs.event(&format!(
                "{why}; supervising without state (status and control verbs will not see it)"
            ));
            None
        }
    };

    let detach_notify = if cfg.detach {
        match detach::detach(&cfg.name) {
            Detached::Parent(code) => return Err(Started::Invoker(code)),
            Detached::Daemon(fd) => Some(fd),
        }
    } else {
        None
    };

    let signals = match signals::SignalPipe::install() {
        Ok(s) => s,
        Err(e) => {
            complain(&format!("cannot install signal handlers: {e}"));
            return Err(Started::Supervised(exit::FAILURE));
        }
    };
    if let Err(e) = reap::become_subreaper() {
        logs.event(&format!(
            "cannot become a child subreaper ({e}); orphans that leave the process group may survive"
        ));
    }
    if let Some(sig) = cfg.parent_death.filter(|_| !cfg.detach) {
        detach::on_parent_death(sig, parent);
    }

    Ok(supervisor::Supervisor::new(supervisor::Parts {
        cfg,
        logs,
        signals,
        inherited,
        instance,
        detach_notify,
        http_target,
        listeners,
        notify,
        context,
    }))
}
