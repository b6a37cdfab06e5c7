//! keepup in a real container (SPEC 4, 10): rootful podman with runc, an
//! image built `FROM scratch` offline (the static keepup and Debian's
//! busybox-static, a passwd with `app`), run with no network. `podman
//! stop` timing against `--kill-timeout`, zombies, a restart seen through
//! `podman exec keepup status`, a leftover's grace, `--user` and
//! `--env-file` inside. `.ci/run` installs podman, runc and busybox-static;
//! where nested containers cannot run, the tests say so (and fail under
//! CI=true).
mod util;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use util::*;

const PODMAN: &[&str] = &[
    "--runtime",
    "runc",
    "--cgroup-manager=cgroupfs",
    "--events-backend=file",
    "--storage-driver=vfs",
];

fn podman(args: &[&str]) -> std::process::Output {
    Command::new("podman")
        .args(PODMAN)
        .args(args)
        .output()
        .expect("podman")
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Builds the image once per test binary; `None` (and why) where podman
/// cannot run containers here.
fn image() -> Option<&'static str> {
    static IMAGE: OnceLock<Result<String, String>> = OnceLock::new();
    let built = IMAGE.get_or_init(|| {
        if unsafe { libc::geteuid() } != 0 {
            return Err("rootful podman needs root".into());
        }
        for tool in ["podman", "runc"] {
            if Command::new(tool).arg("--version").output().is_err() {
                return Err(format!("{tool} is not installed"));
            }
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .ok_or("busybox-static is not installed")?;
        let keepup = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/keepup-static");
        if !keepup.exists() {
            return Err("target/keepup-static is missing: run 'make static' (make test does)".into());
        }
        let dir = std::env::temp_dir().join(format!("keepup-image-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::copy(busybox, dir.join("busybox")).unwrap();
        std::fs::copy(&keepup, dir.join("keepup")).unwrap();
        std::fs::write(
            dir.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1234:1234:app:/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.join("etc/group"), "root:x:0:\napp:x:1234:\nextra:x:2345:app\n").unwrap();
        std::fs::write(dir.join("app.env"), "GREETING=\"hello from the env file\"\n").unwrap();
        std::fs::write(
            dir.join("Containerfile"),
            "FROM scratch\n\
             COPY busybox /bin/busybox\n\
             COPY keepup /bin/keepup\n\
             COPY etc /etc\n\
             COPY app.env /app.env\n\
             ENV PATH=/bin\n\
             ENTRYPOINT [\"/bin/keepup\", \"--name\", \"app\", \"--kill-timeout\", \"2s\", \"--\"]\n",
        )
        .unwrap();
        // One tag, replaced by every run: no image piles up.
        let tag = "localhost/keepup-test".to_string();
        let out = podman(&["build", "-q", "-t", &tag, dir.to_str().unwrap()]);
        if !out.status.success() {
            return Err(format!("podman cannot build here: {}", text(&out).trim()));
        }
        let mut probe = vec!["run", "--rm", "--network=none"];
        probe.extend_from_slice(&LIMITS);
        // Past keepup (the entrypoint), which would restart `true` with
        // backoff until it gave up.
        probe.extend_from_slice(&["--entrypoint", "/bin/busybox", &tag, "true"]);
        let probe = podman(&probe);
        if !probe.status.success() {
            return Err(format!("podman cannot run containers here: {}", text(&probe).trim()));
        }
        Ok(tag)
    });
    match built {
        Ok(tag) => Some(tag.as_str()),
        Err(why) => {
            cannot_run(why);
            None
        }
    }
}

/// podman's default limits for a rootful container (nofile 1048576) are
/// above this machine's hard limit, which runc may not raise: every
/// container, the probe included, gets limits it can set.
const LIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=4096:4096",
];

/// A running container, removed on drop.
struct Container(String);

impl Container {
    fn run(image: &str, args: &[&str]) -> Container {
        Container::run_with(image, &[], args)
    }

    /// With podman options (before the image) too.
    fn run_with(image: &str, options: &[&str], args: &[&str]) -> Container {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "keepup-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let mut all = vec!["run", "-d", "--name", &name, "--network=none"];
        all.extend_from_slice(&LIMITS);
        all.extend_from_slice(options);
        all.push(image);
        all.extend_from_slice(args);
        let out = podman(&all);
        assert!(out.status.success(), "podman run: {}", text(&out));
        Container(name)
    }

    fn logs(&self) -> String {
        text(&podman(&["logs", &self.0]))
    }

    fn exec(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["exec", &self.0];
        all.extend_from_slice(args);
        podman(&all)
    }

    fn exit_code(&self) -> String {
        text(&podman(&[
            "inspect",
            &self.0,
            "--format",
            "{{.State.ExitCode}}",
        ]))
        .trim()
        .to_string()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.0]);
    }
}

const SH: &str = "/bin/busybox";

#[test]
fn podman_stop_respects_the_kill_timeout() {
    let Some(image) = image() else { return };
    // The app ignores TERM: keepup SIGKILLs it after --kill-timeout (2 s),
    // well before podman's own 10 s.
    let c = Container::run(
        image,
        &[
            SH,
            "sh",
            "-c",
            "trap '' TERM; echo up; while :; do /bin/busybox sleep 0.1; done",
        ],
    );
    wait_for("the app up", Duration::from_secs(20), || {
        c.logs().contains("up")
    });
    let t = Instant::now();
    let out = podman(&["stop", "-t", "10", &c.0]);
    let took = t.elapsed();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(8),
        "stop took {took:?}"
    );
    assert_eq!(c.exit_code(), "137");
    let logs = c.logs();
    assert!(
        logs.contains("did not stop within 2s; sending SIGKILL"),
        "{logs}"
    );

    // An app that stops on TERM: podman stop is immediate, status 0.
    let c = Container::run(
        image,
        &[
            SH,
            "sh",
            "-c",
            "trap 'echo bye; exit 0' TERM; echo up; while :; do /bin/busybox sleep 0.1; done",
        ],
    );
    wait_for("the app up", Duration::from_secs(20), || {
        c.logs().contains("up")
    });
    let t = Instant::now();
    podman(&["stop", "-t", "10", &c.0]);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(c.exit_code(), "0");
    assert!(c.logs().contains("bye"));
}

#[test]
fn zombies_are_reaped_and_leftovers_get_their_grace() {
    let Some(image) = image() else { return };
    // The app makes orphans: each `sh` starts a `sleep 1` and exits, so
    // the sleep is re-parented to keepup (PID 1) and ends there, a zombie
    // unless PID 1 reaps it. (The app's own exited children are its
    // business: busybox sh does not reap them while it waits in the
    // foreground.) Then one that traps TERM.
    let c = Container::run(
        image,
        &[
            SH,
            "sh",
            "-c",
            "for i in 1 2 3 4 5; do /bin/busybox sh -c '/bin/busybox sleep 1 & exit 0'; done; \
             /bin/busybox sh -c 'trap \"echo leftover got TERM; exit 0\" TERM; while :; do /bin/busybox sleep 0.1; done' & \
             echo started; /bin/busybox sleep 100",
        ],
    );
    wait_for("started", Duration::from_secs(20), || {
        c.logs().contains("started")
    });
    // keepup's children: (pid, stat) of every process whose parent is PID 1.
    let of_pid1 = || -> Vec<(String, String)> {
        text(&c.exec(&[SH, "ps", "-o", "pid,ppid,stat"]))
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 3 && f[1] == "1").then(|| (f[0].to_string(), f[2].to_string()))
            })
            .collect()
    };
    let orphans = of_pid1().len();
    assert!(orphans >= 2, "no orphan of PID 1 to reap: {:?}", of_pid1());
    // Only the app is left: the orphans ended and were reaped.
    wait_for("orphans reaped by PID 1", Duration::from_secs(10), || {
        let now = of_pid1();
        now.len() == 1 && now.iter().all(|(_, stat)| !stat.starts_with('Z'))
    });
    podman(&["stop", "-t", "10", &c.0]);
    let logs = c.logs();
    assert!(
        logs.contains("leftover got TERM"),
        "the leftover had no grace:\n{logs}"
    );
}

#[test]
fn restart_seen_through_exec_status() {
    let Some(image) = image() else { return };
    let c = Container::run(
        image,
        &[SH, "sh", "-c", "echo run $$; exec /bin/busybox sleep 100"],
    );
    wait_for("first run", Duration::from_secs(20), || {
        c.logs().contains("run ")
    });
    let r = c.exec(&["/bin/keepup", "restart", "app"]);
    assert!(r.status.success(), "{}", text(&r));
    assert!(
        text(&r).contains("keepup: app restarted (pid "),
        "{}",
        text(&r)
    );
    let s = text(&c.exec(&["/bin/keepup", "status", "--json"]));
    assert!(
        s.contains("\"state\":\"running\"") && s.contains("\"restarts\":1"),
        "{s}"
    );
    assert_eq!(c.logs().matches("run ").count(), 2, "{}", c.logs());
}

#[test]
fn user_and_env_file_inside_the_image() {
    let Some(image) = image() else { return };
    let c = Container::run_with(
        image,
        &["--entrypoint", "/bin/keepup"],
        &[
            "--name",
            "app",
            "--user",
            "app",
            "--env-file",
            "/app.env",
            "--",
            SH,
            "sh",
            "-c",
            "echo \"$(/bin/busybox id -u):$(/bin/busybox id -g):$(/bin/busybox id -G) $GREETING home=$HOME\"; \
             /bin/busybox grep -E '^(Uid|Gid|Groups)' /proc/self/status; /bin/busybox sleep 100",
        ],
    );
    wait_for("the app's line", Duration::from_secs(20), || {
        c.logs().contains("hello from the env file")
    });
    let logs = c.logs();
    assert!(
        logs.contains("1234:1234:1234 2345 hello from the env file home=/home/app"),
        "{logs}"
    );
    assert!(logs.contains("Uid:\t1234\t1234\t1234\t1234"), "{logs}");
    let s = text(&c.exec(&["/bin/keepup", "status", "--json"]));
    assert!(
        s.contains("\"user\":\"app\"") && s.contains("\"env_files\":[\"/app.env\"]"),
        "{s}"
    );
    assert!(
        !s.contains("hello from the env file"),
        "a value in status: {s}"
    );
}
