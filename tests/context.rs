//! The child's context (SPEC 10): env files, `--env`, precedence, re-read
//! at every start, `--cwd` entered by path, `--user` with its groups and a
//! session of its own, and values that never reach a log or the state.
mod util;
use std::path::Path;
use std::time::Duration;
use util::*;

/// Prints the variables named as arguments, one `NAME=<value>|` a line
/// (`unset` when missing), values escaped as Python's repr does.
const SHOW: &str = "import os, sys\n\
for n in sys.argv[1:]: print('%s=%r|' % (n, os.environ.get(n, 'unset')))\n";

fn shown(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.strip_suffix('|'))
        .unwrap_or_else(|| panic!("no {name} in:\n{out}"))
        .to_string()
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn env_file_format_exact_values() {
    let dir = TempDir::new();
    let file = dir.path(".env");
    std::fs::write(
        &file,
        "\u{feff}# a comment\r\n\
         \r\n\
         PLAIN=value\r\n\
         SPACED = around equals  \r\n\
         export EXPORTED=yes\n\
         COMMENTED=kept # dropped\n\
         HASH=a#b\n\
         SINGLE='lit $HOME \\n # kept'\n\
         DOUBLE=\"tab\\tnl\\ncr\\rbs\\\\q\\\"\"\n\
         MULTI=\"line one\n\
         line two\"\n\
         EMPTY=\n\
         NOEXPAND=$PLAIN\n",
    )
    .unwrap();
    let names = [
        "PLAIN",
        "SPACED",
        "EXPORTED",
        "COMMENTED",
        "HASH",
        "SINGLE",
        "DOUBLE",
        "MULTI",
        "EMPTY",
        "NOEXPAND",
    ];
    let mut args = vec![
        "--restart",
        "never",
        "--env-file",
        file.to_str().unwrap(),
        "--",
        "python3",
        "-c",
        SHOW,
    ];
    args.extend(names);
    let f = keepup(&args).run();
    f.expect_code(0);
    let want = [
        ("PLAIN", "'value'"),
        ("SPACED", "'around equals'"),
        ("EXPORTED", "'yes'"),
        ("COMMENTED", "'kept'"),
        ("HASH", "'a#b'"),
        ("SINGLE", "'lit $HOME \\\\n # kept'"),
        ("DOUBLE", "'tab\\\\tnl\\ncr\\rbs\\\\q\"'"),
        ("MULTI", "'line one\\nline two'"),
        ("EMPTY", "''"),
        ("NOEXPAND", "'$PLAIN'"),
    ];
    for (n, v) in want {
        assert_eq!(shown(&f.stdout, n), v, "{n}\n{}", f.stdout);
    }
}

#[test]
fn precedence_and_keepups_own_variables() {
    let dir = TempDir::new();
    let (a, b) = (dir.path("a.env"), dir.path("b.env"));
    std::fs::write(&a, "V1=file-a\nV2=file-a\nV3=file-a\n").unwrap();
    std::fs::write(&b, "V2=file-b\nV3=file-b\n").unwrap();
    let home = TempDir::new();
    let f = keepup([
        "-n",
        "ctx",
        "--restart",
        "never",
        "--env-file",
        a.to_str().unwrap(),
        "--env-file",
        b.to_str().unwrap(),
        "-e",
        "V3=flag",
        "--",
        "python3",
        "-c",
        SHOW,
        "V0",
        "V1",
        "V2",
        "V3",
        "KEEPUP_DELAY",
        "KEEPUP_RESTART",
        "KEEPUP_HOME",
        "KEEPUP_INSTANCE_NAME",
        "KEEPUP_INSTANCE",
    ])
    .env("V0", "inherited")
    .env("V1", "inherited")
    .env("KEEPUP_DELAY", "50ms")
    .env("KEEPUP_INSTANCE", "7")
    .env("KEEPUP_HOME", &home.0)
    .run();
    f.expect_code(0);
    let s = |n| shown(&f.stdout, n);
    assert_eq!(s("V0"), "'inherited'");
    assert_eq!(s("V1"), "'file-a'", "a file wins over keepup's environment");
    assert_eq!(s("V2"), "'file-b'", "a later file wins");
    assert_eq!(s("V3"), "'flag'", "--env wins over files");
    assert_eq!(
        s("KEEPUP_DELAY"),
        "'unset'",
        "keepup's configuration is not passed on"
    );
    assert_eq!(s("KEEPUP_RESTART"), "'unset'");
    assert_eq!(s("KEEPUP_HOME"), format!("'{}'", home.0.display()));
    assert_eq!(s("KEEPUP_INSTANCE_NAME"), "'ctx'");
    assert_eq!(
        s("KEEPUP_INSTANCE"),
        "'7'",
        "passes through untouched without -i"
    );
}

/// Env files are read again before every start; one that turns bad keeps
/// its last good values, with an event naming the file and the line; no
/// value reaches a log file or the state folder.
#[test]
fn env_files_reread_last_good_and_never_logged() {
    let home = TempDir::new();
    let env = home.path("app.env");
    let log = home.path("a.log");
    std::fs::write(&env, "SECRET=first-8c1e0f\nOTHER=x\n").unwrap();
    let go = home.path("go");
    // Each run prints its SECRET, then waits for `go` to exist, then exits.
    let script = format!(
        "echo \"secret is $SECRET\"; while [ ! -e {} ]; do sleep 0.02; done; rm -f {}; exit 1",
        go.display(),
        go.display()
    );
    let k = keepup(with_sh(
        &[
            "-n",
            "r",
            "--env-file",
            env.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
            "--delay",
            "10ms",
            "-q",
        ],
        &script,
    ))
    .env("KEEPUP_HOME", &home.0)
    .spawn();
    wait_for("first run", Duration::from_secs(10), || {
        read(&log).contains("out secret is first-8c1e0f")
    });
    std::fs::write(&env, "SECRET=second-77aa21\n").unwrap();
    std::fs::write(&go, "").unwrap();
    wait_for("the edited value", Duration::from_secs(10), || {
        read(&log).contains("out secret is second-77aa21")
    });
    std::fs::write(&env, "SECRET=third-never\nthis line is wrong\n").unwrap();
    std::fs::write(&go, "").unwrap();
    wait_for("a third run", Duration::from_secs(10), || {
        read(&log).matches("out secret is").count() == 3
    });
    let text = read(&log);
    assert!(
        text.contains("out secret is second-77aa21\n") && !text.contains("third-never"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "keepup r: {}:2: invalid line 'this line is wrong' (expected NAME=value); starting with its last good values",
            env.display()
        )),
        "{text}"
    );
    k.signal(libc::SIGTERM);
    k.finish();
    // The values show only where the child itself printed them.
    for entry in std::fs::read_dir(&home.0).unwrap().flatten() {
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "env") {
            continue;
        }
        let content = read(&p);
        let lines_with_secret: Vec<&str> = content
            .lines()
            .filter(|l| l.contains("8c1e0f") || l.contains("77aa21"))
            .collect();
        assert!(
            lines_with_secret
                .iter()
                .all(|l| l.contains(" out secret is ")),
            "a value leaked into {}: {lines_with_secret:?}",
            p.display()
        );
    }
    let json = verb(&home.0, &["status", "--json"]).stdout;
    assert!(
        !json.contains("8c1e0f") && !json.contains("77aa21"),
        "{json}"
    );
    assert!(
        json.contains(&format!("\"env_files\":[\"{}\"]", env.display())),
        "{json}"
    );
}

/// `--cwd` is entered by path at every start: a `current` symlink switched
/// by a deploy is followed at the next restart; the command is looked up
/// there; keepup's own relative paths stay relative to where it started.
#[test]
fn cwd_follows_a_switched_symlink() {
    let dir = TempDir::new();
    for n in ["1", "2"] {
        let r = dir.path(&format!("releases/{n}"));
        std::fs::create_dir_all(&r).unwrap();
        std::fs::write(
            r.join("run"),
            format!("#!/bin/sh\necho release {n} in $(pwd -P)\nexit 1\n"),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(r.join("run"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::os::unix::fs::symlink("releases/1", dir.path("current")).unwrap();
    let k = keepup([
        "--cwd",
        "current",
        "--log",
        "app.log",
        "--delay",
        "300ms",
        "--max-delay",
        "300ms",
        "-q",
        "--",
        "./run",
    ])
    .current_dir(&dir.0)
    .spawn();
    let log = dir.path("app.log");
    wait_for("release 1", Duration::from_secs(10), || {
        read(&log).contains("out release 1 in ")
    });
    std::fs::remove_file(dir.path("current")).unwrap();
    std::os::unix::fs::symlink("releases/2", dir.path("current")).unwrap();
    wait_for(
        "release 2 after the switch",
        Duration::from_secs(10),
        || read(&log).contains("out release 2 in "),
    );
    assert!(read(&log).contains(&format!(
        "in {}",
        dir.path("releases/2").canonicalize().unwrap().display()
    )));
    k.signal(libc::SIGTERM);
    k.finish();
}

#[test]
fn user_drops_groups_gid_uid_and_gets_its_own_session() {
    if !is_root() {
        cannot_run("--user needs root");
        return;
    }
    let dir = TempDir::new();
    let out = dir.path("out");
    let script = format!(
        "grep -E '^(Uid|Gid|Groups):' /proc/self/status > {o}; set -- $(cat /proc/$$/stat); echo \"sid=$6 pgid=$5 me=$$ home=$HOME user=$USER logname=$LOGNAME\" >> {o}",
        o = out.display()
    );
    std::fs::set_permissions(&dir.0, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let f = keepup(with_sh(
        &["--restart", "never", "--user", "nobody"],
        &script,
    ))
    .run();
    f.expect_code(0);
    let text = read(&out);
    assert!(text.contains("Uid:\t65534\t65534\t65534\t65534"), "{text}");
    assert!(text.contains("Gid:\t65534\t65534\t65534\t65534"), "{text}");
    let groups = text.lines().find(|l| l.starts_with("Groups:")).unwrap();
    assert_eq!(
        groups.split_whitespace().skip(1).collect::<Vec<_>>(),
        ["65534"],
        "{text}"
    );
    let fields: Vec<String> = text
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect();
    let me = fields[2].trim_start_matches("me=");
    assert_eq!(
        fields[0],
        format!("sid={me}"),
        "a session of its own: {text}"
    );
    assert_eq!(fields[1], format!("pgid={me}"));
    assert!(
        text.contains("home=/nonexistent user=nobody logname=nobody"),
        "{text}"
    );
}

/// keepup binds a port below 1024 as root, and the `--user` child serves on it.
#[test]
fn privileged_port_with_user() {
    if !is_root() {
        cannot_run("binding port 80 and --user need root");
        return;
    }
    // Port 80 may be in use on a developer's machine; any port below 1024
    // that is free will do.
    let Some(port) = (600..1000).find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
    else {
        cannot_run("no free port below 1024");
        return;
    };
    let log = TempDir::new();
    let logf = log.path("a.log");
    let k = keepup([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--user",
        "nobody",
        "--log",
        logf.to_str().unwrap(),
        "--",
        "python3",
        "-c",
        util::net::SERVER,
    ])
    .spawn();
    wait_for("started", Duration::from_secs(10), || {
        read(&logf).contains("started pid")
    });
    let pid = util::net::request(format!("127.0.0.1:{port}").parse().unwrap()).expect("an answer");
    let status = read(Path::new(&format!("/proc/{pid}/status")));
    assert!(status.contains("Uid:\t65534"), "{status}");
    k.signal(libc::SIGTERM);
    k.finish();
}

#[test]
fn context_bad_input_exits_2() {
    let dir = TempDir::new();
    let marker = dir.s("started");
    std::fs::write(dir.path("bad.env"), "A=1\nfoo bar\n").unwrap();
    let bad = dir.s("bad.env");
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["--env-file".into(), dir.s("missing.env")],
            format!(
                "cannot read env file '{}': No such file or directory",
                dir.s("missing.env")
            ),
        ),
        (
            vec!["--env-file".into(), bad.clone()],
            format!("{bad}:2: invalid line 'foo bar' (expected NAME=value)"),
        ),
        (
            vec!["-e".into(), "NOEQUALS".into()],
            "invalid value 'NOEQUALS' for -e: expected NAME=VALUE".into(),
        ),
        (
            vec!["--env".into(), "1BAD=x".into()],
            "invalid variable name '1BAD' for --env".into(),
        ),
        (
            vec!["--cwd".into(), dir.s("nowhere")],
            format!(
                "invalid directory '{}' for --cwd: No such file or directory",
                dir.s("nowhere")
            ),
        ),
        (
            vec!["--user".into(), "no-such-user-x".into()],
            "invalid user 'no-such-user-x' for --user: no user 'no-such-user-x' in /etc/passwd"
                .into(),
        ),
        (
            vec!["--user".into(), "nobody:no-such-group-x".into()],
            "no group 'no-such-group-x' in /etc/group".into(),
        ),
        (
            vec!["--user".into(), "4242424".into()],
            "uid 4242424 has no entry in /etc/passwd: give its group too".into(),
        ),
    ];
    for (args, want) in cases {
        let mut v = args.clone();
        v.extend(sh(&format!("touch {marker}")));
        let f = keepup(&v).run();
        f.expect_code(2);
        f.check(
            f.stderr.lines().count() == 1 && f.stderr.contains(&want),
            &want,
        );
        assert!(
            !dir.path("started").exists(),
            "{args:?} started the command"
        );
    }
}
