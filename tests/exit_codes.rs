//! keepup's exit status for each way its child can end (SPEC section 6).
mod util;
use util::*;

#[test]
fn child_code_passes_through() {
    for code in [0, 1, 3, 42, 255] {
        keepup(with_sh(&["--restart", "never"], &format!("exit {code}")))
            .run()
            .expect_code(code);
    }
}

#[test]
fn killed_by_signal_is_128_plus_signal() {
    keepup(with_sh(&["--restart", "never"], "kill -KILL $$"))
        .run()
        .expect_code(137);
    keepup(with_sh(&["--restart", "never"], "kill -SEGV $$"))
        .run()
        .expect_code(139);
    keepup(with_sh(&["--restart", "never"], "kill -TERM $$"))
        .run()
        .expect_code(143);
}

#[test]
fn command_not_found_is_127_at_once() {
    let f = keepup(["--delay", "5s", "--", "/no/such/program"]).run();
    f.expect_code(127);
    f.check(
        f.stderr.trim() == "keepup: cannot run '/no/such/program': No such file or directory",
        "message",
    );
    f.check(f.elapsed < std::time::Duration::from_secs(3), "not retried");
    keepup(["no-such-program-anywhere"]).run().expect_code(127);
}

#[test]
fn not_executable_is_126() {
    let dir = TempDir::new();
    let script = dir.path("script.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let f = keepup(["--", script.to_str().unwrap()]).run();
    f.expect_code(126);
    f.check(f.stderr.contains("Permission denied"), "reason");
    keepup(["--", "/etc"]).run().expect_code(126);
}

#[test]
fn gave_up_exits_with_last_status() {
    let f = keepup(with_sh(
        &["--delay", "10ms", "--max-restarts", "2"],
        "exit 7",
    ))
    .run();
    f.expect_code(7);
    f.check(
        f.stderr
            .contains("gave up after 2 unstable restarts; last exit: code 7"),
        "give-up line",
    );
}
