//! `keepup startup` (SPEC 12): a systemd unit, or a crontab `@reboot`
//! line, that starts an instance at boot exactly as it was started, made
//! from what keepup recorded when the instance started. The texts are pure
//! functions of that record; `install` writes and enables a unit.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::state::Snapshot;

/// The command of a recorded argv made absolute through the `PATH` it ran
/// with, looked up from the directory it was started in (as `--cwd` and
/// then `execvp` would have found it).
pub fn absolute_command(s: &Snapshot) -> Vec<OsString> {
    let mut argv = s.argv.clone();
    let Some(dash) = argv.iter().position(|a| a == "--") else {
        return argv;
    };
    let Some(cmd) = argv.get(dash + 1).cloned() else {
        return argv;
    };
    if cmd.as_bytes().contains(&b'/') {
        return argv;
    }
    // The child's directory: --cwd against keepup's.
    let base = if s.child_cwd.as_os_str().is_empty() {
        s.cwd.clone()
    } else {
        s.child_cwd.clone()
    };
    for dir in std::env::split_paths(&s.path) {
        let dir = if dir.is_relative() {
            base.join(dir)
        } else {
            dir
        };
        let candidate = dir.join(&cmd);
        if is_executable(&candidate) {
            argv[dash + 1] = candidate.into_os_string();
            break;
        }
    }
    argv
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// One word of `ExecStart=` as systemd reads it: quoted when needed,
/// `\`, `"` escaped, `%` (specifiers) doubled, `$` (variables) doubled.
fn unit_word(w: &OsStr) -> String {
    let s = w.to_string_lossy();
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    if s.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || c == ';' || c == '\'' || c == '"')
    {
        format!("\"{out}\"")
    } else {
        out
    }
}

/// A value of `Environment="K=V"`.
fn env_word(kv: &str) -> String {
    format!(
        "\"{}\"",
        kv.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('%', "%%")
            .replace('$', "$$")
    )
}

/// The name of the user with `uid`, from /etc/passwd.
fn user_name(uid: u32) -> Option<String> {
    std::fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
        })
}

/// The unit file for instance `s` of the state folder `home`; `system`:
/// a system unit (`User=` when the instance ran unprivileged), else a user
/// unit.
pub fn unit(s: &Snapshot, home: &Path, system: bool) -> String {
    let exec: Vec<String> = std::iter::once(s.exe.as_os_str().to_os_string())
        .chain(absolute_command(s))
        .map(|w| unit_word(&w))
        .collect();
    let kill = s.kill_timeout_ms.max(1000);
    // Above keepup's own kill timeout, so keepup's stop sequence always
    // finishes before systemd's SIGKILL.
    let stop_secs = kill.div_ceil(1000) + 5;
    let mut u = String::new();
    u.push_str(&format!(
        "# Written by `keepup startup {name}`: starts the instance '{name}' at boot as it was\n\
         # started. keepup restarts the command; systemd restarts keepup if it gives up.\n\
         [Unit]\n\
         Description=keepup: {name}\n\
         After=network-online.target\n\
         Wants=network-online.target\n\n\
         [Service]\n\
         Type=simple\n",
        name = s.name
    ));
    u.push_str(&format!("ExecStart={}\n", exec.join(" ")));
    u.push_str(&format!(
        "WorkingDirectory={}\n",
        unit_word(s.cwd.as_os_str())
    ));
    u.push_str(&format!(
        "Environment={}\n",
        env_word(&format!("PATH={}", s.path.to_string_lossy()))
    ));
    u.push_str(&format!(
        "Environment={}\n",
        env_word(&format!("KEEPUP_HOME={}", home.display()))
    ));
    for kv in &s.keepup_env {
        u.push_str(&format!("Environment={}\n", env_word(kv)));
    }
    if system && s.uid != 0 {
        match user_name(s.uid) {
            Some(name) => u.push_str(&format!("User={name}\n")),
            None => u.push_str(&format!("User={}\n", s.uid)),
        }
    }
    u.push_str(&format!(
        "KillMode=mixed\n\
         TimeoutStopSec={stop_secs}\n\
         Restart=on-failure\n\
         RestartSec=5\n\n\
         [Install]\n\
         WantedBy={}\n",
        if system {
            "multi-user.target"
        } else {
            "default.target"
        }
    ));
    u
}

/// A word for `sh`: single-quoted unless plain.
pub fn sh_word(w: &OsStr) -> String {
    let s = w.to_string_lossy();
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@+%".contains(&b))
    {
        return s.into_owned();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A crontab `@reboot` line for machines without systemd: detached, in the
/// directory it was started in, with its settings.
pub fn cron_line(s: &Snapshot, home: &Path) -> String {
    let mut line = format!("@reboot cd {} && ", sh_word(s.cwd.as_os_str()));
    line.push_str(&format!("PATH={} ", sh_word(&s.path)));
    line.push_str(&format!("KEEPUP_HOME={} ", sh_word(home.as_os_str())));
    for kv in &s.keepup_env {
        if let Some((k, v)) = kv.split_once('=') {
            line.push_str(&format!("{k}={} ", sh_word(OsStr::new(v))));
        }
    }
    line.push_str(&sh_word(s.exe.as_os_str()));
    line.push_str(" --detach");
    for a in absolute_command(s) {
        line.push(' ');
        line.push_str(&sh_word(&a));
    }
    // cron's mail for output that should go to the log files instead.
    line.push_str(" >/dev/null 2>&1");
    line
}

/// Where `--install` writes the unit: the system's units as root, else the
/// user's.
pub fn unit_path(name: &str, system: bool) -> PathBuf {
    let file = format!("keepup-{name}.service");
    if system {
        PathBuf::from("/etc/systemd/system").join(file)
    } else {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/".into()))
                    .join(".config")
            });
        config.join("systemd/user").join(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        Snapshot {
            name: "api".into(),
            exe: "/usr/local/bin/keepup".into(),
            argv: vec![
                "--name=api".into(),
                "--log=logs/api.log".into(),
                "--time-format=%Y-%m-%d %H:%M".into(),
                "--".into(),
                "sh".into(),
                "-c".into(),
                "echo \"$HOME\" 100%".into(),
            ],
            keepup_env: vec!["KEEPUP_DELAY=1s".into()],
            path: "/usr/local/bin:/usr/bin:/bin".into(),
            cwd: "/srv/my app".into(),
            uid: 0,
            kill_timeout_ms: 8000,
            ..Snapshot::default()
        }
    }

    #[test]
    fn the_unit() {
        let u = unit(&snap(), Path::new("/run/keepup"), true);
        assert!(u.contains("Type=simple\n"));
        assert!(u.contains("KillMode=mixed\n"));
        assert!(u.contains("TimeoutStopSec=13\n"), "{u}");
        assert!(u.contains("Restart=on-failure\n"));
        assert!(u.contains("WorkingDirectory=\"/srv/my app\"\n"), "{u}");
        assert!(u.contains("Environment=\"PATH=/usr/local/bin:/usr/bin:/bin\"\n"));
        assert!(u.contains("Environment=\"KEEPUP_HOME=/run/keepup\"\n"));
        assert!(u.contains("Environment=\"KEEPUP_DELAY=1s\"\n"));
        assert!(!u.contains("User="), "root runs as root");
        let exec = u.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
        let sh = ["/usr/bin/sh", "/bin/sh"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap();
        assert_eq!(
            exec,
            format!(
                "ExecStart=/usr/local/bin/keepup --name=api --log=logs/api.log \"--time-format=%%Y-%%m-%%d %%H:%%M\" -- {sh} -c \"echo \\\"$$HOME\\\" 100%%\""
            )
        );
        let mut unprivileged = snap();
        unprivileged.uid = 65534;
        assert!(unit(&unprivileged, Path::new("/x"), true).contains("User=nobody\n"));
        assert!(!unit(&unprivileged, Path::new("/x"), false).contains("User="));
        assert!(unit(&unprivileged, Path::new("/x"), false).contains("WantedBy=default.target"));
    }

    #[test]
    fn the_cron_line() {
        let l = cron_line(&snap(), Path::new("/run/keepup"));
        assert!(l.starts_with("@reboot cd '/srv/my app' && PATH=/usr/local/bin:/usr/bin:/bin KEEPUP_HOME=/run/keepup KEEPUP_DELAY=1s /usr/local/bin/keepup --detach --name=api"), "{l}");
        assert!(l.contains("'--time-format=%Y-%m-%d %H:%M'"), "{l}");
        assert!(l.contains("'echo \"$HOME\" 100%'"), "{l}");
    }

    #[test]
    fn words() {
        assert_eq!(sh_word(OsStr::new("it's")), "'it'\\''s'");
        assert_eq!(sh_word(OsStr::new("")), "''");
        assert_eq!(unit_word(OsStr::new("a b")), "\"a b\"");
    }
}
