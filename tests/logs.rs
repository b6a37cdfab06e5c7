//! Log files, timestamps, rotation and the failure policy (SPEC section 5).
mod util;
use std::time::Duration;
use util::*;

const TS_LEN: usize = "2026-02-23T12:00:00.123+09:00".len();

/// Splits a log line into (timestamp, stream, text).
fn parts(line: &str) -> (&str, &str, &str) {
    let mut it = line.splitn(3, ' ');
    (
        it.next().unwrap(),
        it.next().unwrap_or(""),
        it.next().unwrap_or(""),
    )
}

fn child_lines(log: &str) -> Vec<(String, String)> {
    log.lines()
        .map(parts)
        .filter(|(_, s, _)| *s != "keepup")
        .map(|(_, s, t)| (s.to_string(), t.to_string()))
        .collect()
}

#[test]
fn line_format_streams_and_events() {
    let dir = TempDir::new();
    let log = dir.s("logs/nested/app.log");
    let f = keepup(with_sh(
        &["-n", "api", "--log", &log, "--restart", "never"],
        "echo hello; echo boom >&2; exit 3",
    ))
    .run();
    f.expect_code(3);
    let text = read(&dir.path("logs/nested/app.log"));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    for l in &lines {
        let (ts, _, _) = parts(l);
        assert!(ts.len() == TS_LEN || ts.ends_with('Z'), "timestamp {ts:?}");
        assert_eq!(&ts[4..5], "-");
        assert_eq!(&ts[10..11], "T");
    }
    assert!(lines[0].contains(" keepup api: started pid "), "{text}");
    assert_eq!(
        child_lines(&text),
        [
            ("out".into(), "hello".into()),
            ("err".into(), "boom".into())
        ]
    );
    assert!(
        lines[3].contains(" keepup api: exited with code 3 after "),
        "{text}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path("logs/nested/app.log"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    // Console: the child's output unchanged, keepup's events on stderr.
    assert_eq!(f.stdout, "hello\n");
    assert!(f.stderr.lines().any(|l| l == "boom"), "{f}");
}

#[test]
fn merged_order_follows_arrival() {
    let dir = TempDir::new();
    let log = dir.s("a.log");
    let script =
        "for i in 1 2 3 4 5 6; do echo out$i; sleep 0.02; echo err$i >&2; sleep 0.02; done";
    keepup(with_sh(
        &["--log", &log, "--restart", "never", "-q"],
        script,
    ))
    .run()
    .expect_code(0);
    let got: Vec<String> = child_lines(&read(&dir.path("a.log")))
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let want: Vec<String> = (1..=6)
        .flat_map(|i| [format!("out{i}"), format!("err{i}")])
        .collect();
    assert_eq!(got, want);
}

#[test]
fn separate_files_per_stream() {
    let dir = TempDir::new();
    let (out, err) = (dir.s("out.log"), dir.s("err.log"));
    keepup(with_sh(
        &[
            "--out-log",
            &out,
            "--err-log",
            &err,
            "--restart",
            "never",
            "-q",
        ],
        "echo o1; echo e1 >&2; echo o2",
    ))
    .run()
    .expect_code(0);
    assert_eq!(
        child_lines(&read(&dir.path("out.log"))),
        [("out".into(), "o1".into()), ("out".into(), "o2".into())]
    );
    assert_eq!(
        child_lines(&read(&dir.path("err.log"))),
        [("err".into(), "e1".into())]
    );
    // keepup's events go only to --log.
    assert!(!read(&dir.path("out.log")).contains("keepup"));
}

#[test]
fn local_time_and_utc() {
    let dir = TempDir::new();
    let log = dir.s("a.log");
    keepup(with_sh(
        &["--log", &log, "--restart", "never", "-q"],
        "echo tokyo",
    ))
    .env("TZ", "Asia/Tokyo")
    .run()
    .expect_code(0);
    let text = read(&dir.path("a.log"));
    for l in text.lines() {
        assert!(parts(l).0.ends_with("+09:00"), "{l}");
    }
    std::fs::remove_file(dir.path("a.log")).unwrap();
    keepup(with_sh(
        &["--log", &log, "--utc", "--restart", "never", "-q"],
        "echo utc",
    ))
    .env("TZ", "Asia/Tokyo")
    .run()
    .expect_code(0);
    let text = read(&dir.path("a.log"));
    for l in text.lines() {
        assert!(parts(l).0.ends_with('Z'), "{l}");
    }
}

#[test]
fn custom_time_format() {
    let dir = TempDir::new();
    let log = dir.s("a.log");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    keepup(with_sh(
        &[
            "--log",
            &log,
            "--time-format",
            "[%s]",
            "--restart",
            "never",
            "-q",
        ],
        "echo x",
    ))
    .run()
    .expect_code(0);
    let text = read(&dir.path("a.log"));
    let line = text.lines().find(|l| l.ends_with(" out x")).unwrap();
    let secs: u64 = line[1..line.find(']').unwrap()].parse().unwrap();
    assert!(secs >= before && secs <= before + 5, "{line}");
    keepup(with_sh(
        &[
            "--log",
            &log,
            "--time-format",
            "%H:%M:%S%.6f",
            "--restart",
            "never",
            "-q",
        ],
        "echo y",
    ))
    .run()
    .expect_code(0);
    let text = read(&dir.path("a.log"));
    let line = text.lines().find(|l| l.ends_with(" out y")).unwrap();
    assert_eq!(line.find(' '), Some("12:00:00.123456".len()), "{line}");
}

#[test]
fn partial_line_at_crash_is_kept() {
    let dir = TempDir::new();
    let log = dir.s("a.log");
    keepup(with_sh(
        &["--log", &log, "--restart", "never", "-q"],
        "printf 'first\\nno newline at the end'; kill -9 $$",
    ))
    .run()
    .expect_code(137);
    let lines = child_lines(&read(&dir.path("a.log")));
    assert_eq!(
        lines,
        [
            ("out".into(), "first".into()),
            ("out".into(), "no newline at the end".into())
        ]
    );
}

#[test]
fn partial_line_written_after_quiet_period() {
    let dir = TempDir::new();
    let log = dir.path("a.log");
    let k = keepup(with_sh(
        &["--log", log.to_str().unwrap(), "-q"],
        "printf 'prompt> '; exec sleep 100",
    ))
    .spawn();
    wait_for(
        "partial line flushed after 200ms",
        Duration::from_secs(5),
        || read(&log).contains(" out prompt> \n"),
    );
    k.signal(libc::SIGTERM);
    k.finish();
}

/// 100,000 lines over four crash/restart cycles: all present, in order, intact.
#[test]
fn no_line_lost_across_restarts() {
    let dir = TempDir::new();
    let (log, runs) = (dir.s("a.log"), dir.s("runs"));
    let script = format!(
        "echo r >> {runs}; n=$(wc -l < {runs}); \
         awk -v r=$n 'BEGIN {{ for (i = 0; i < 25000; i++) printf \"run %d line %06d padding-to-make-it-longer\\n\", r, i }}'; exit 1"
    );
    let f = keepup(with_sh(
        &[
            "--log",
            &log,
            "--delay",
            "10ms",
            "--max-restarts",
            "3",
            "-q",
            "--log-max-size",
            "0",
        ],
        &script,
    ))
    .timeout(Duration::from_secs(60))
    .run();
    f.expect_code(1);
    let lines = child_lines(&read(&dir.path("a.log")));
    assert_eq!(lines.len(), 100_000);
    let mut k = 0;
    for r in 1..=4 {
        for i in 0..25000 {
            let want = format!("run {r} line {i:06} padding-to-make-it-longer");
            assert_eq!(lines[k].1, want, "line {k}");
            k += 1;
        }
    }
}

#[test]
fn huge_line_and_binary_bytes_pass_through() {
    let dir = TempDir::new();
    let log = dir.s("a.log");
    let script = "head -c 10485760 /dev/zero | tr '\\0' x; printf '\\n\\377\\000bin\\n'";
    keepup(with_sh(
        &[
            "--log",
            &log,
            "--restart",
            "never",
            "-q",
            "--log-max-size",
            "0",
        ],
        script,
    ))
    .timeout(Duration::from_secs(60))
    .run()
    .expect_code(0);
    let bytes = std::fs::read(dir.path("a.log")).unwrap();
    let mut xs = 0;
    let mut pieces = 0;
    let mut binary = false;
    for line in bytes.split(|&b| b == b'\n') {
        let Some(pos) = line.windows(5).position(|w| w == b" out ") else {
            continue;
        };
        let text = &line[pos + 5..];
        if text.iter().all(|&b| b == b'x') {
            xs += text.len();
            pieces += 1;
            assert!(text.len() <= 64 * 1024);
        } else if text == b"\xff\x00bin" {
            binary = true;
        }
    }
    assert_eq!(xs, 10 * 1024 * 1024);
    assert_eq!(pieces, 160, "cut every 64 KiB");
    assert!(binary, "invalid UTF-8 and NUL preserved");
}

#[test]
fn rotation_by_rename() {
    let dir = TempDir::new();
    let log = dir.s("a.log");
    let script = "i=0; while [ $i -lt 2000 ]; do echo \"line $i 0123456789012345678901234567890123456789\"; i=$((i+1)); done";
    keepup(with_sh(
        &[
            "--log",
            &log,
            "--log-max-size",
            "10K",
            "--log-keep",
            "3",
            "--restart",
            "never",
            "-q",
        ],
        script,
    ))
    .run()
    .expect_code(0);
    let mut all = vec![];
    for name in ["a.log.3", "a.log.2", "a.log.1", "a.log"] {
        let p = dir.path(name);
        let size = std::fs::metadata(&p)
            .unwrap_or_else(|_| panic!("{name} missing"))
            .len();
        assert!(size <= 10 * 1024, "{name} is {size} bytes");
        assert!(
            size > 5 * 1024 || name == "a.log",
            "{name} is only {size} bytes"
        );
        all.extend(child_lines(&read(&p)));
    }
    assert!(!dir.path("a.log.4").exists(), "kept more than --log-keep");
    // What is kept is the contiguous tail, ending with the last line.
    let nums: Vec<u32> = all
        .iter()
        .map(|(_, t)| t.split(' ').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(*nums.last().unwrap(), 1999);
    for w in nums.windows(2) {
        assert_eq!(w[1], w[0] + 1);
    }
}

#[test]
fn rotation_off_with_zero() {
    let dir = TempDir::new();
    let log = dir.s("a.log");
    let script = "i=0; while [ $i -lt 3000 ]; do echo \"line $i 0123456789012345678901234567890123456789\"; i=$((i+1)); done";
    keepup(with_sh(
        &[
            "--log",
            &log,
            "--log-max-size",
            "0",
            "--restart",
            "never",
            "-q",
        ],
        script,
    ))
    .run()
    .expect_code(0);
    assert!(!dir.path("a.log.1").exists());
    assert_eq!(child_lines(&read(&dir.path("a.log"))).len(), 3000);
}

#[test]
fn full_disk_never_blocks_the_child() {
    let f = keepup(with_sh(
        &["--log", "/dev/full", "--restart", "never", "-q"],
        "i=0; while [ $i -lt 5000 ]; do echo line $i; i=$((i+1)); done; exit 4",
    ))
    .run();
    f.expect_code(4);
}

#[test]
fn removed_log_file_is_recreated() {
    let dir = TempDir::new();
    let log = dir.path("logs/a.log");
    let go = dir.path("go");
    let script = format!(
        "echo before; while [ ! -e {} ]; do sleep 0.02; done; while :; do echo after; sleep 0.05; done",
        go.display()
    );
    let k = keepup(with_sh(&["--log", log.to_str().unwrap(), "-q"], &script)).spawn();
    wait_for("first line", Duration::from_secs(10), || {
        read(&log).contains("before")
    });
    std::fs::remove_dir_all(dir.path("logs")).unwrap();
    std::fs::write(&go, "").unwrap();
    wait_for(
        "log recreated with later lines",
        Duration::from_secs(10),
        || read(&log).contains(" out after"),
    );
    k.signal(libc::SIGTERM);
    k.finish();
}

#[test]
fn console_timestamps_and_quiet() {
    let dir = TempDir::new();
    let log = dir.s("a.log");
    let f = keepup(with_sh(
        &["-t", "--restart", "never"],
        "echo hi; echo oops >&2",
    ))
    .env("TZ", "UTC")
    .run();
    f.expect_code(0);
    let line = f.stdout.lines().next().unwrap();
    assert!(line.ends_with("Z hi") || line.ends_with(" hi"), "{f}");
    assert_eq!(
        line.find(' '),
        Some("2026-02-23T12:00:00.123Z".len()),
        "{f}"
    );
    assert!(
        f.stderr
            .lines()
            .any(|l| l.ends_with(" oops") && !l.starts_with("keepup")),
        "{f}"
    );

    let f = keepup(with_sh(
        &["-q", "--log", &log, "--restart", "never"],
        "echo hi; echo oops >&2",
    ))
    .run();
    f.expect_code(0);
    assert_eq!(f.stdout, "", "{f}");
    assert_eq!(f.stderr, "", "{f}");
    assert!(read(&dir.path("a.log")).contains(" keepup "));
    // Quiet and no file: the output goes nowhere, keepup still works.
    let f = keepup(with_sh(&["-q", "--restart", "never"], "echo hi; exit 2")).run();
    f.expect_code(2);
    assert_eq!(f.stdout, "");
}

#[test]
fn unopenable_log_is_an_error_before_start() {
    let dir = TempDir::new();
    std::fs::write(dir.path("file"), "").unwrap();
    let bad = dir.s("file/sub/a.log");
    let marker = dir.s("started");
    let f = keepup(with_sh(&["--log", &bad], &format!("touch {marker}"))).run();
    f.expect_code(2);
    assert!(
        f.stderr
            .starts_with(&format!("keepup: cannot open log file '{bad}': ")),
        "{f}"
    );
    assert!(!dir.path("started").exists());
}

/// logrotate's `copytruncate` empties the file under keepup: the next
/// rotation decision uses the file's real size, not keepup's count.
#[test]
fn external_copytruncate_is_noticed() {
    let dir = TempDir::new();
    let log = dir.path("a.log");
    let go = dir.path("go");
    let script = format!(
        "i=0; while [ $i -lt 40 ]; do echo \"first $i 0123456789012345678901234567890123456789\"; i=$((i+1)); done; \
         while [ ! -e {} ]; do sleep 0.02; done; \
         i=0; while [ $i -lt 30 ]; do echo \"second $i 0123456789012345678901234567890123456789\"; i=$((i+1)); done; exec sleep 100",
        go.display()
    );
    let k = keepup(with_sh(
        &["--log", log.to_str().unwrap(), "--log-max-size", "4K", "-q"],
        &script,
    ))
    .spawn();
    wait_for("first lines", Duration::from_secs(10), || {
        read(&log).contains("first 39 ")
    });
    // About 3.5 KiB written: copy and truncate, as logrotate does.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    std::fs::write(&go, "").unwrap();
    wait_for("second lines", Duration::from_secs(10), || {
        read(&log).contains("second 29 ")
    });
    k.signal(libc::SIGTERM);
    k.finish();
    assert!(
        !dir.path("a.log.1").exists(),
        "rotated a file that had been emptied"
    );
    let text = read(&log);
    assert!(
        !text.contains('\0'),
        "a sparse hole: the file was not opened O_APPEND"
    );
    assert!(text.starts_with(|c: char| c.is_ascii_digit()), "{text}");
}

/// `--log-format json` (SPEC 5): every line of a crash loop's log, binary
/// and invalid UTF-8 input included, is one JSON object a parser reads,
/// with the time, the stream, the name, the right pid and the text.
#[test]
fn json_log_format_every_line_parses() {
    let dir = TempDir::new();
    let log = dir.path("j.log");
    let f = keepup(with_sh(
        &["-q", "-n", "j", "--log-format", "json", "--log", log.to_str().unwrap(), "--max-restarts", "2", "--delay", "10ms"],
        "printf 'plain\\n\"quoted\" \\\\ and\\ttab\\n'; printf 'bin \\000 nul \\377\\376 bad\\n' >&2; printf 'no newline at the end'; exit 3",
    ))
    .run();
    f.expect_code(3);
    let check = "import json, sys\n\
recs = [json.loads(l) for l in open(sys.argv[1], 'rb')]\n\
assert all(set(r) == {'time', 'stream', 'name', 'pid', 'msg'} for r in recs), recs\n\
assert all(r['name'] == 'j' for r in recs)\n\
outs = [r for r in recs if r['stream'] == 'out']\n\
errs = [r for r in recs if r['stream'] == 'err']\n\
keep = [r for r in recs if r['stream'] == 'keepup']\n\
assert [r['msg'] for r in outs[:3]] == ['plain', '\"quoted\" \\\\ and\\ttab', 'no newline at the end'], outs[:3]\n\
assert errs[0]['msg'] == 'bin \\x00 nul \\ufffd\\ufffd bad', errs[0]\n\
started = [int(r['msg'].split()[-1]) for r in keep if r['msg'].startswith('started pid')]\n\
assert len(started) == 3, keep\n\
assert {r['pid'] for r in outs} == set(started), (outs, started)\n\
assert any(r['msg'].startswith('gave up') for r in keep)\n\
print('ok', len(recs))\n";
    let out = std::process::Command::new("python3")
        .args(["-c", check])
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        read(&log)
    );
}
