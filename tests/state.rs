//! Instances: names, the state folder, and the status / stop / restart /
//! logs / signal verbs, `--detach` (SPEC section 7).
mod util;
use std::path::Path;
use std::time::Duration;
use util::*;

/// Starts `--detach`ed instance NAME running `script`, returning its status line.
fn detached(home: &Path, name: &str, extra: &[&str], script: &str) -> Finished {
    let mut a = vec!["-d", "-n", name];
    a.extend_from_slice(extra);
    keepup(with_sh(&a, script)).env("KEEPUP_HOME", home).run()
}

fn json_field(json: &str, name: &str, field: &str) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys; d = {e['name']: e for e in json.load(sys.stdin)}; print(json.dumps(d[sys.argv[1]][sys.argv[2]]))",
            name,
            field,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(json.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "not valid JSON or no such field: {json}"
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn stop_all(home: &Path, names: &[&str]) {
    let mut a = vec!["stop"];
    a.extend_from_slice(names);
    verb(home, &a);
}

#[test]
fn detach_status_and_stop() {
    let home = TempDir::new();
    let log = home.s("logs/web.log");
    let f = detached(
        &home.0,
        "web",
        &["--log", &log],
        "while :; do echo tick; sleep 0.1; done",
    );
    f.expect_code(0);
    f.check(
        f.stdout.starts_with("keepup: web started (pid "),
        "start line",
    );
    f.check(f.elapsed < Duration::from_secs(5), "returns at once");

    let s = verb(&home.0, &["status"]);
    s.expect_code(0);
    let row = s
        .stdout
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap_or_else(|| panic!("{s}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], "running", "{s}");
    let pid: i32 = cols[2].parse().unwrap();
    assert!(alive(pid));
    assert!(s.stdout.starts_with("NAME "), "{s}");
    assert!(row.ends_with(&log), "{s}");

    let j = verb(&home.0, &["status", "--json", "web"]);
    j.expect_code(0);
    assert_eq!(json_field(&j.stdout, "web", "state"), "\"running\"");
    assert_eq!(json_field(&j.stdout, "web", "pid"), pid.to_string());
    assert_eq!(json_field(&j.stdout, "web", "restarts"), "0");
    let mem: u64 = json_field(&j.stdout, "web", "memory_bytes")
        .parse()
        .unwrap();
    assert!(mem > 100_000, "memory of the tree read live: {mem}");
    let keepup_pid: i32 = json_field(&j.stdout, "web", "keepup_pid").parse().unwrap();

    let stop = verb(&home.0, &["stop", "web"]);
    stop.expect_code(0);
    // `stop` returns only once keepup has exited.
    assert!(!alive(keepup_pid), "keepup still alive after stop returned");
    assert!(!alive(pid));
    let s = verb(&home.0, &["status", "--json"]);
    assert_eq!(json_field(&s.stdout, "web", "state"), "\"stopped\"");
    // A stopped name can be reused, and --prune removes it.
    let p = verb(&home.0, &["status", "--prune"]);
    p.check(p.stdout.contains("pruned 'web'"), "prune");
    assert_eq!(verb(&home.0, &["status", "--json"]).stdout.trim(), "[]");
}

#[test]
fn detach_reports_start_failures() {
    let home = TempDir::new();
    let f = keepup(["-d", "-n", "x", "--", "/no/such/program"])
        .env("KEEPUP_HOME", &home.0)
        .run();
    f.expect_code(127);
    f.check(f.stderr.contains("cannot run '/no/such/program'"), "reason");
    let f = keepup(["-d", "--delay", "7", "true"])
        .env("KEEPUP_HOME", &home.0)
        .run();
    f.expect_code(2);
}

#[test]
fn duplicate_name_refused_and_reusable_after_kill_9() {
    let home = TempDir::new();
    detached(&home.0, "api", &[], "exec sleep 100").expect_code(0);
    let j = verb(&home.0, &["status", "--json"]);
    let kp: i32 = json_field(&j.stdout, "api", "keepup_pid").parse().unwrap();
    let f = keepup(with_sh(&["-n", "api"], "exit 0"))
        .env("KEEPUP_HOME", &home.0)
        .run();
    f.expect_code(1);
    assert_eq!(
        f.stderr.trim(),
        format!("keepup: 'api' is already running (pid {kp})")
    );
    let f = detached(&home.0, "api", &[], "exit 0");
    f.expect_code(1);
    // A SIGKILLed keepup leaves its lock to the kernel: the name is free at once.
    unsafe { libc::kill(kp, libc::SIGKILL) };
    wait_for("keepup gone", Duration::from_secs(10), || !alive(kp));
    let s = verb(&home.0, &["status", "--json"]);
    assert_eq!(json_field(&s.stdout, "api", "state"), "\"dead\"");
    detached(&home.0, "api", &[], "exec sleep 100").expect_code(0);
    stop_all(&home.0, &["api"]);
}

#[test]
fn restart_replaces_the_child_without_counting_a_crash() {
    let home = TempDir::new();
    let log = home.s("a.log");
    detached(&home.0, "w", &["--log", &log], "exec sleep 100").expect_code(0);
    let j = verb(&home.0, &["status", "--json"]);
    let old: i32 = json_field(&j.stdout, "w", "pid").parse().unwrap();
    let r = verb(&home.0, &["restart", "w"]);
    r.expect_code(0);
    let j = verb(&home.0, &["status", "--json"]);
    let new: i32 = json_field(&j.stdout, "w", "pid").parse().unwrap();
    assert_ne!(old, new);
    assert!(!alive(old));
    assert_eq!(json_field(&j.stdout, "w", "state"), "\"running\"");
    let text = read(&home.path("a.log"));
    assert!(text.contains("restart requested"), "{text}");
    assert!(
        !text.contains("unstable"),
        "a requested restart is not a crash:\n{text}"
    );
    stop_all(&home.0, &["w"]);
}

#[test]
fn unknown_or_dead_names_exit_1() {
    let home = TempDir::new();
    for v in ["stop", "restart"] {
        let f = verb(&home.0, &[v, "ghost"]);
        f.expect_code(1);
        assert_eq!(f.stderr.trim(), "keepup: 'ghost' is not running");
    }
    verb(&home.0, &["signal", "ghost", "HUP"]).expect_code(1);
    verb(&home.0, &["status", "ghost"]).expect_code(1);
    verb(&home.0, &["signal", "ghost", "NOPE"]).expect_code(2);
    verb(&home.0, &["stop"]).expect_code(2);
}

/// A state file left by a keepup that died, whose pid now belongs to another
/// process: shown `dead`, and that process is never signalled.
#[test]
fn stale_entry_with_reused_pid_is_never_signalled() {
    let home = TempDir::new();
    std::fs::create_dir_all(&home.0).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&home.0, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut bystander = std::process::Command::new("sleep")
        .arg("100")
        .spawn()
        .unwrap();
    let pid = bystander.id() as i32;
    let state = format!(
        "name=old\nkeepup_pid={pid}\nkeepup_start=1\nchild_pid={pid}\nstate=running\nrestarts=0\nlast_exit=\nrss=\nstarted_at=0\nlog=\nout_log=\nerr_log=\ncwd=/\nready=1\nprobe=\nkill_timeout_ms=100\narg0=x\n"
    );
    std::fs::write(home.path("old.state"), state).unwrap();
    let j = verb(&home.0, &["status", "--json"]);
    assert_eq!(json_field(&j.stdout, "old", "state"), "\"dead\"");
    verb(&home.0, &["stop", "old"]).expect_code(1);
    verb(&home.0, &["restart", "old"]).expect_code(1);
    verb(&home.0, &["signal", "old", "KILL"]).expect_code(1);
    std::thread::sleep(Duration::from_millis(200));
    assert!(alive(pid), "a stale entry's pid was signalled");
    let p = verb(&home.0, &["status", "--prune"]);
    p.check(p.stdout.contains("pruned 'old' (dead)"), "prune");
    assert!(alive(pid));
    let _ = bystander.kill();
    let _ = bystander.wait();
}

#[test]
fn signal_verb_reaches_the_group() {
    let home = TempDir::new();
    let got = home.s("got");
    detached(
        &home.0,
        "s",
        &[],
        &format!("trap 'echo usr1 >> {got}' USR1; while :; do sleep 0.05; done"),
    )
    .expect_code(0);
    verb(&home.0, &["signal", "s", "USR1"]).expect_code(0);
    wait_for("USR1 delivered", Duration::from_secs(10), || {
        read(&home.path("got")).contains("usr1")
    });
    stop_all(&home.0, &["s"]);
}

#[test]
fn logs_tail_and_follow_across_rotation() {
    let home = TempDir::new();
    let log = home.s("a.log");
    let go = home.path("go");
    let script = format!(
        "i=0; while [ $i -lt 50 ]; do echo early $i; i=$((i+1)); done; \
         while [ ! -e {} ]; do sleep 0.02; done; \
         i=0; while [ $i -lt 400 ]; do echo \"late $i padding padding padding padding\"; i=$((i+1)); done; exec sleep 100",
        go.display()
    );
    detached(
        &home.0,
        "l",
        &["--log", &log, "--log-max-size", "4K", "--log-keep", "20"],
        &script,
    )
    .expect_code(0);
    wait_for("early lines", Duration::from_secs(10), || {
        read(&home.path("a.log")).contains("early 49")
    });
    let t = verb(&home.0, &["logs", "l", "-n", "3"]);
    t.expect_code(0);
    let lines: Vec<&str> = t.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{t}");
    assert!(lines[2].ends_with(" out early 49"), "{t}");

    let followed = home.path("followed");
    let mut follower = keepup(["logs", "l", "-f", "-n", "0"]).env("KEEPUP_HOME", &home.0);
    follower
        .command()
        .stdout(std::fs::File::create(&followed).unwrap());
    let mut follower = follower.command().spawn().unwrap();
    let fpid = follower.id() as i32;
    wait_for(
        "the follower has the log open",
        Duration::from_secs(10),
        || {
            std::fs::read_dir(format!("/proc/{fpid}/fd"))
                .map(|d| {
                    d.flatten()
                        .filter_map(|e| std::fs::read_link(e.path()).ok())
                        .any(|t| t == home.path("a.log"))
                })
                .unwrap_or(false)
        },
    );
    std::fs::write(&go, "").unwrap();
    wait_for("all late lines written", Duration::from_secs(10), || {
        std::fs::read_dir(&home.0)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("a.log"))
            .any(|e| read(&e.path()).contains("late 399 "))
    });
    wait_for(
        "the follower printed the last line",
        Duration::from_secs(10),
        || read(&followed).contains("late 399 "),
    );
    unsafe { libc::kill(fpid, libc::SIGTERM) };
    let _ = follower.wait();
    let printed = read(&followed);
    let late: Vec<u32> = printed
        .lines()
        .filter_map(|l| l.split(" out late ").nth(1))
        .map(|t| t.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(home.path("a.log.1").exists(), "the log rotated");
    assert_eq!(
        late,
        (0..400).collect::<Vec<u32>>(),
        "follow missed lines across rotation\n{printed}"
    );
    stop_all(&home.0, &["l"]);
}

#[test]
fn state_folder_is_private_and_never_follows_symlinks() {
    let home = TempDir::new();
    let dir = home.path("state");
    let target = home.path("target");
    std::fs::write(&target, "untouched").unwrap();
    std::fs::create_dir(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&target, dir.join("p.state")).unwrap();
    keepup(with_sh(&["-n", "p", "--restart", "never"], "exit 0"))
        .env("KEEPUP_HOME", &dir)
        .run()
        .expect_code(0);
    assert_eq!(read(&target), "untouched", "followed a planted symlink");
    assert!(read(&dir.join("p.state")).contains("state=stopped"));

    // Created 0700 when missing.
    let fresh = home.path("fresh");
    keepup(with_sh(&["--restart", "never"], "exit 0"))
        .env("KEEPUP_HOME", &fresh)
        .run()
        .expect_code(0);
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);

    // A folder writable by others is refused.
    let open = home.path("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let f = keepup(with_sh(&[], "exit 0"))
        .env("KEEPUP_HOME", &open)
        .run();
    f.expect_code(1);
    f.check(f.stderr.contains("is writable by others"), "reason");
}

/// On a read-only file system keepup warns once and supervises on.
#[test]
fn read_only_state_folder_warns_and_supervises() {
    let home = TempDir::new();
    let ro = home.path("ro");
    std::fs::create_dir(&ro).unwrap();
    let script = format!(
        "mount -t tmpfs -o ro,mode=0700 none {ro} && KEEPUP_HOME={ro} {BIN} --delay 10ms --max-restarts 2 -- sh -c 'exit 3'",
        ro = ro.display()
    );
    let Some((status, _, stderr)) = in_mount_namespace(&script) else {
        return;
    };
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert_eq!(
        stderr.matches("Read-only file system").count(),
        1,
        "{stderr}"
    );
    assert_eq!(stderr.matches("started pid").count(), 3, "{stderr}");
}

#[test]
fn three_instances_from_one_script() {
    let home = TempDir::new();
    let script = format!(
        "set -e
         k={BIN}
         $k -d -n web -- sh -c 'while :; do sleep 0.1; done'
         $k -d -n worker -- sh -c 'while :; do sleep 0.1; done'
         $k -d -n flaky --min-uptime 5s --max-restarts unlimited -- sh -c 'sleep 0.05; exit 1'
         $k status
         for n in web worker flaky; do $k stop $n; done
         $k status --json"
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env("KEEPUP_HOME", &home.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["web", "worker", "flaky"] {
        assert!(
            stdout.contains(&format!("keepup: {name} started")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("keepup: {name} stopped")),
            "{stdout}"
        );
    }
    let json = stdout.lines().last().unwrap();
    for name in ["web", "worker", "flaky"] {
        assert_eq!(json_field(json, name, "state"), "\"stopped\"", "{stdout}");
    }
}

/// While keepup stops what a dead child left in its group, `status` shows
/// the instance stopping, never the dead child's pid as running.
#[test]
fn status_during_the_clean_up_shows_no_dead_pid() {
    let home = TempDir::new();
    let log = home.path("c.log");
    // The child leaves a member of its group that shrugs off TERM until
    // the kill timeout, then exits 1.
    let f = detached(
        &home.0,
        "c",
        &[
            "--kill-timeout",
            "3s",
            "--restart",
            "never",
            "--log",
            log.to_str().unwrap(),
        ],
        "sh -c 'trap \"\" TERM; while :; do sleep 0.05; done' & sleep 0.3; exit 1",
    );
    f.expect_code(0);
    wait_for("the child's exit", Duration::from_secs(10), || {
        read(&log).contains("started pid")
    });
    let dead = read(&log)
        .split("started pid ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse::<i32>().ok())
        .expect("pid in the log");
    wait_for("the child gone", Duration::from_secs(10), || !alive(dead));
    let json = verb(&home.0, &["status", "--json"]).stdout;
    assert_eq!(json_field(&json, "c", "state"), "\"stopping\"", "{json}");
    assert_eq!(json_field(&json, "c", "pid"), "null", "{json}");
    wait_for(
        "stopped after the kill timeout",
        Duration::from_secs(15),
        || json_field(&verb(&home.0, &["status", "--json"]).stdout, "c", "state") == "\"stopped\"",
    );
}

/// SPEC 7: `start` and `restart` bring a stopped or gave-up instance back
/// as it was started; `delete` stops and removes; `list` is `status`; a
/// first start that fails leaves no entry; an `-i` member starts alone.
#[test]
fn start_restart_delete_list_by_name() {
    let home = TempDir::new();
    let log = home.path("api.log");
    let f = keepup(with_sh(
        &[
            "-d",
            "-n",
            "api",
            "--max-restarts",
            "1",
            "--log",
            log.to_str().unwrap(),
        ],
        "echo run; exit 1",
    ))
    .env("KEEPUP_HOME", &home.0)
    .env("KEEPUP_DELAY", "20ms")
    .run();
    f.expect_code(0);
    wait_for("gave up", Duration::from_secs(10), || {
        read(&home.path("api.state")).contains("state=gave-up")
    });
    let l = verb(&home.0, &["list"]);
    l.check(
        l.stdout.contains("api") && l.stdout.contains("gave-up"),
        "list = status",
    );
    assert!(read(&home.path("api.state")).contains("kenv0=KEEPUP_DELAY=20ms"));
    let s = verb(&home.0, &["start", "api"]);
    s.expect_code(0);
    s.check(
        s.stdout.starts_with("keepup: api started (pid "),
        "start output",
    );
    wait_for("second run", Duration::from_secs(10), || {
        read(&log).matches("out run").count() >= 3
    });
    wait_for("gave up again", Duration::from_secs(10), || {
        read(&home.path("api.state")).contains("state=gave-up")
    });
    let r = verb(&home.0, &["restart", "api"]);
    r.expect_code(0);
    r.check(
        r.stdout.contains("keepup: api restarted (pid "),
        "restart of a stopped instance starts it",
    );
    let d = verb(&home.0, &["delete", "api"]);
    d.expect_code(0);
    d.check(d.stdout.contains("keepup: api deleted"), "delete output");
    assert!(!home.path("api.state").exists());

    // A member of -i is started again alone, with its own number.
    keepup(["-d", "-i", "2", "-n", "web", "--", "sleep", "100"])
        .env("KEEPUP_HOME", &home.0)
        .run()
        .expect_code(0);
    verb(&home.0, &["stop", "web-2"]).expect_code(0);
    let s = verb(&home.0, &["start", "web-2"]);
    s.expect_code(0);
    s.check(
        s.stdout.starts_with("keepup: web-2 started"),
        "member alone",
    );
    let running = verb(&home.0, &["status", "--json"]).stdout;
    assert_eq!(
        running.matches("\"state\":\"running\"").count(),
        2,
        "{running}"
    );
    let pid: i32 = read(&home.path("web-2.state"))
        .lines()
        .find_map(|l| l.strip_prefix("child_pid="))
        .and_then(|p| p.parse().ok())
        .unwrap();
    let env = environ_of(pid);
    assert!(env.contains("KEEPUP_INSTANCE=2\n"), "{env:?}");
    verb(&home.0, &["start", "web-1"]).expect_code(1);
    verb(&home.0, &["delete", "web-*"]).expect_code(0);

    // A first start that fails leaves nothing behind.
    keepup(["-d", "-n", "nope", "--", "/nonexistent/cmd"])
        .env("KEEPUP_HOME", &home.0)
        .run()
        .expect_code(127);
    assert!(!home.path("nope.state").exists());
}

/// SPEC 7: with no KEEPUP_HOME, the nearest `.keepup` folder of the
/// working directory or its parents is the state folder, seen alike from
/// anywhere inside the project; an unsafe one is refused, no fallback.
#[test]
fn project_keepup_folder_is_found_and_checked() {
    let project = TempDir::new();
    std::fs::create_dir_all(project.path(".keepup")).unwrap();
    std::fs::create_dir_all(project.path("src/deep")).unwrap();
    let run = |args: &[&str], dir: &std::path::Path| {
        let mut k = keepup(args).current_dir(dir);
        k.command()
            .env_remove("KEEPUP_HOME")
            .env_remove("XDG_RUNTIME_DIR");
        k.run()
    };
    run(&["-d", "-n", "api", "--", "sleep", "100"], &project.0).expect_code(0);
    assert!(
        project.path(".keepup/api.state").exists(),
        "state in the project's folder"
    );
    assert!(
        project.path(".keepup/api.log").exists(),
        "-d logs there too"
    );
    let s = run(&["status", "--json"], &project.path("src/deep"));
    s.check(
        s.stdout.contains("\"name\":\"api\"") && s.stdout.contains("\"state\":\"running\""),
        "seen from a subfolder",
    );
    run(&["stop", "api"], &project.path("src")).expect_code(0);

    // Writable by others: refused with status 1, nothing started.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        project.path(".keepup"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let r = run(&["-n", "x", "--", "true"], &project.0);
    r.expect_code(1);
    r.check(r.stderr.contains(".keepup"), "names the folder");
    // A symlink: refused too.
    let elsewhere = TempDir::new();
    let linked = TempDir::new();
    std::os::unix::fs::symlink(&elsewhere.0, linked.path(".keepup")).unwrap();
    let r = run(&["-n", "x", "--", "true"], &linked.0);
    r.expect_code(1);
    r.check(
        r.stderr.contains("is a symlink; refusing it"),
        "symlink refused",
    );
}

/// `status` shows CPU (SPEC 7): percent of one core since the run started.
#[test]
fn status_shows_cpu() {
    let home = TempDir::new();
    for (name, script) in [("busy", "while :; do :; done"), ("idle", "exec sleep 100")] {
        detached(&home.0, name, &[], script).expect_code(0);
    }
    let since = std::time::Instant::now();
    wait_for("a second of work", Duration::from_secs(5), || {
        since.elapsed() >= Duration::from_secs(1)
    });
    let json = verb(&home.0, &["status", "--json"]).stdout;
    let cpu = |n: &str| json_field(&json, n, "cpu_percent").parse::<f64>().unwrap();
    assert!(cpu("busy") > 40.0, "{json}");
    assert!(cpu("idle") < 5.0, "{json}");
    let table = verb(&home.0, &["status"]).stdout;
    assert!(table.lines().next().unwrap().contains(" CPU "), "{table}");
    stop_all(&home.0, &["busy", "idle"]);
}
