//! `keepup startup` and `keepup import` (SPEC 12): units that pass
//! `systemd-analyze verify` and start the instance as it was started;
//! `--install` against a fake systemctl; a PM2 ecosystem file imported and
//! run end to end with real node apps.
mod util;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use util::*;

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

#[test]
fn startup_units_verify_and_cron_lines() {
    if !have("systemd-analyze") {
        cannot_run("systemd-analyze is not installed");
        return;
    }
    let home = TempDir::new();
    let work = TempDir::new();
    keepup([
        "-d",
        "-n",
        "api",
        "--kill-timeout",
        "8s",
        "--log",
        "logs/api.log",
        "--",
        "sleep",
        "100",
    ])
    .env("KEEPUP_HOME", &home.0)
    .env("KEEPUP_DELAY", "250ms")
    .current_dir(&work.0)
    .run()
    .expect_code(0);
    let f = verb(&home.0, &["startup", "api"]);
    f.expect_code(0);
    let unit = f.stdout.clone();
    for want in [
        "Type=simple\n",
        "KillMode=mixed\n",
        "TimeoutStopSec=13\n",
        "Restart=on-failure\n",
        &format!("WorkingDirectory={}\n", work.0.display()),
        "Environment=\"KEEPUP_DELAY=250ms\"\n",
        &format!("Environment=\"KEEPUP_HOME={}\"\n", home.0.display()),
        "WantedBy=multi-user.target\n",
    ] {
        f.check(unit.contains(want), want);
    }
    let exec = unit.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
    let sleep = ["/usr/bin/sleep", "/bin/sleep"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap();
    assert_eq!(
        exec,
        format!("ExecStart={BIN} --name=api --kill-timeout=8s --log=logs/api.log -- {sleep} 100"),
        "the command made absolute, no --detach"
    );
    let file = home.path("keepup-api.service");
    std::fs::write(&file, &unit).unwrap();
    let v = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "systemd-analyze verify:\n{}\n{unit}",
        String::from_utf8_lossy(&v.stderr)
    );
    let c = verb(&home.0, &["startup", "api", "--cron"]);
    c.expect_code(0);
    assert!(
        c.stdout
            .starts_with(&format!("@reboot cd {} && PATH=", work.0.display())),
        "{}",
        c.stdout
    );
    assert!(
        c.stdout.contains(&format!("{BIN} --detach --name=api")),
        "{}",
        c.stdout
    );
    verb(&home.0, &["stop", "api"]).expect_code(0);
    // Stopped instances have units too; unknown ones are an error.
    verb(&home.0, &["startup", "api"]).expect_code(0);
    verb(&home.0, &["startup", "nope"]).expect_code(1);
}

/// `--install` writes the unit and runs `systemctl daemon-reload` and
/// `enable`: a fake systemctl on PATH records what it was asked, and the
/// real /etc/systemd/system is a private tmpfs (a mount namespace).
#[test]
fn startup_install_with_a_fake_systemctl() {
    if unsafe { libc::geteuid() } != 0 {
        cannot_run("--install as a system unit needs root (and a mount namespace for the test)");
        return;
    }
    let home = TempDir::new();
    let fake = TempDir::new();
    let calls = fake.path("calls");
    std::fs::write(
        fake.path("systemctl"),
        format!("#!/bin/sh\necho \"$@\" >> {}\n", calls.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        fake.path("systemctl"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    keepup(["-d", "-n", "web", "--", "sleep", "100"])
        .env("KEEPUP_HOME", &home.0)
        .run()
        .expect_code(0);
    let script = format!(
        "mkdir -p /etc/systemd/system && mount -t tmpfs none /etc/systemd/system && \
         KEEPUP_HOME={home} PATH={fake}:$PATH {BIN} startup web --install && \
         cat /etc/systemd/system/keepup-web.service",
        home = home.0.display(),
        fake = fake.0.display()
    );
    let Some((status, stdout, stderr)) = in_mount_namespace(&script) else {
        return;
    };
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "keepup: wrote /etc/systemd/system/keepup-web.service and enabled keepup-web"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("keepup stop web && systemctl start keepup-web"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[Service]\nType=simple\n"),
        "the unit was written: {stdout}"
    );
    assert_eq!(read(&calls), "daemon-reload\nenable keepup-web\n");
    assert!(
        !Path::new("/etc/systemd/system/keepup-web.service").exists(),
        "the real /etc was touched"
    );
    verb(&home.0, &["stop", "web"]).expect_code(0);
}

const FIXTURE: &str = "module.exports = {
  apps: [{
    name: 'api', script: 'src/index.js', instances: 1, exec_mode: 'fork',
    autorestart: true, watch: false, max_memory_restart: '500M',
    error_file: './logs/err.log', out_file: './logs/out.log',
    log_date_format: 'YYYY-MM-DD HH:mm:ss Z', merge_logs: true,
    min_uptime: '10s', max_restarts: 10, restart_delay: 1000,
    env: { NODE_ENV: 'development', PORT: 3000 },
    env_production: { NODE_ENV: 'production' },
  }, {
    name: 'worker', script: 'src/worker.js', args: '--queue jobs', instances: 2, exec_mode: 'cluster',
    cron_restart: '0 3 * * *', kill_timeout: 3000, cwd: './services/worker',
  }],
};
";

/// The issue's own ecosystem file: imported, run as printed, and the
/// instances behave as the PM2 apps did.
#[test]
fn import_the_fixture_and_run_it() {
    if !have("node") {
        cannot_run("keepup import needs node");
        return;
    }
    let home = TempDir::new();
    let p = TempDir::new();
    std::fs::create_dir_all(p.path("src")).unwrap();
    std::fs::create_dir_all(p.path("services/worker/src")).unwrap();
    std::fs::write(p.path("ecosystem.config.js"), FIXTURE).unwrap();
    std::fs::write(
        p.path("src/index.js"),
        "console.log('api up', process.env.NODE_ENV, process.env.PORT); console.error('api err line'); setInterval(() => {}, 1000);\n",
    )
    .unwrap();
    std::fs::write(
        p.path("services/worker/src/worker.js"),
        "console.log('worker', process.env.KEEPUP_INSTANCE, process.argv.slice(2).join(' '), process.cwd()); setInterval(() => {}, 1000);\n",
    )
    .unwrap();
    let f = keepup(["import", "ecosystem.config.js"])
        .current_dir(&p.0)
        .run();
    f.expect_code(0);
    let printed = f.stdout.clone();
    assert!(printed.contains("# not mapped: cron_restart"), "{printed}");
    assert!(
        printed.contains("# env_production (pm2 --env production): add -e NODE_ENV=production"),
        "{printed}"
    );
    assert!(
        printed.contains("--time-format '%Y-%m-%d %H:%M:%S %:z'"),
        "{printed}"
    );
    assert!(
        printed.contains("# cluster of 2: add --listen PORT"),
        "{printed}"
    );
    // Run what it printed, as sh would, with this keepup as `keepup`.
    let bin_dir = TempDir::new();
    std::os::unix::fs::symlink(BIN, bin_dir.path("keepup")).unwrap();
    let run = Command::new("sh")
        .arg("-c")
        .arg(&printed)
        .current_dir(&p.0)
        .env(
            "PATH",
            format!("{}:{}", bin_dir.0.display(), std::env::var("PATH").unwrap()),
        )
        .env("KEEPUP_HOME", &home.0)
        .env("TZ", "UTC")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for name in ["api", "worker-1", "worker-2"] {
        assert!(
            out.contains(&format!("keepup: {name} started (pid ")),
            "{out}"
        );
    }
    wait_for("api's line", Duration::from_secs(20), || {
        read(&p.path("logs/out.log")).contains("api up")
    });
    let outlog = read(&p.path("logs/out.log"));
    let line = outlog.lines().find(|l| l.contains("api up")).unwrap();
    // `2026-12-02 02:40:01 Z out api up development 3000`
    let stamp: Vec<&str> = line.split(' ').collect();
    assert_eq!(stamp[0].len(), 10, "{line}");
    assert_eq!(stamp[1].len(), 8, "{line}");
    assert_eq!(stamp[2], "Z", "{line}");
    assert!(line.ends_with(" out api up development 3000"), "{line}");
    wait_for("api's err line", Duration::from_secs(10), || {
        read(&p.path("logs/err.log")).contains(" err api err line")
    });
    let state = read(&home.path("api.state"));
    for opt in [
        "--max-memory=500M",
        "--min-uptime=10s",
        "--max-restarts=10",
        "--delay=1000ms",
    ] {
        assert!(state.contains(opt), "{opt} not recorded: {state}");
    }
    wait_for("workers' lines", Duration::from_secs(20), || {
        let logs = [1, 2].map(|k| read(&home.path(&format!("worker-{k}.log"))));
        logs.iter().all(|l| l.contains("out worker "))
    });
    let w2 = read(&home.path("worker-2.log"));
    assert!(
        w2.contains(&format!(
            "out worker 2 --queue jobs {}",
            p.path("services/worker").canonicalize().unwrap().display()
        )),
        "{w2}"
    );
    let r = verb(&home.0, &["stop", "api", "worker-*"]);
    r.expect_code(0);

    // --npm: a valid scripts block with the PM2 verbs.
    let n = keepup(["import", "ecosystem.config.js", "--npm"])
        .current_dir(&p.0)
        .run();
    n.expect_code(0);
    let parsed = Command::new("node")
        .args(["-e", "const s = JSON.parse(require('fs').readFileSync(0, 'utf8')).scripts; console.log(Object.keys(s).join(' ')); console.log(s.stop)"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(n.stdout.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let keys = String::from_utf8_lossy(&parsed.stdout);
    assert!(parsed.status.success(), "not JSON: {}", n.stdout);
    assert!(
        keys.starts_with("start status logs stop restart delete monit\n"),
        "{keys}"
    );
    assert!(keys.contains("keepup stop api 'worker-*'"), "{keys}");
}

#[test]
fn import_errors() {
    if !have("node") {
        cannot_run("keepup import needs node");
        return;
    }
    let p = TempDir::new();
    std::fs::write(p.path("broken.config.js"), "module.exports = { apps: [ {").unwrap();
    let f = keepup(["import", "broken.config.js"])
        .current_dir(&p.0)
        .run();
    f.expect_code(1);
    f.check(
        f.stderr
            .starts_with("keepup: cannot read 'broken.config.js': "),
        "node's error",
    );
    let f = keepup(["import", "missing.js"]).current_dir(&p.0).run();
    f.expect_code(1);
    std::fs::write(
        p.path("eco.json"),
        "{\"apps\": [{\"name\": \"j\", \"script\": \"app.py\", \"interpreter\": \"python3\"}]}",
    )
    .unwrap();
    let f = keepup(["import", "eco.json"]).current_dir(&p.0).run();
    f.expect_code(0);
    f.check(
        f.stdout.contains("keepup -d -n j -- python3 app.py"),
        "JSON and an interpreter",
    );
}
