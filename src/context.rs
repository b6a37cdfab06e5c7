//! The child's context (SPEC 10): the environment each run starts with,
//! its working directory and its user. The environment is, lowest first:
//! keepup's own (less its `KEEPUP_<OPTION>` configuration), the user's
//! `HOME`, `USER` and `LOGNAME`, the env files in order (read again before
//! every start, the last good values kept when one turns bad), `--env`,
//! and last what keepup itself tells the child (`KEEPUP_INSTANCE_NAME`,
//! `KEEPUP_HOME`, the socket and notify variables), which nothing
//! overrides. Values never reach a log line: problems name the file and
//! the line only.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::child::Env;
use crate::config::Config;
use crate::users::User;

/// Reads and parses one env file; the error names it (and the line).
pub fn read_env_file(path: &std::path::Path) -> Result<Vec<(String, OsString)>, String> {
    let bytes = std::fs::read(path).map_err(|e| {
        format!(
            "cannot read env file '{}': {}",
            path.display(),
            crate::diag::os_reason(&e)
        )
    })?;
    crate::envfile::parse(&bytes).map_err(|e| format!("{}:{}: {}", path.display(), e.line, e.what))
}

pub struct Context {
    /// keepup's environment less its configuration, with the user's
    /// variables: what the files and `--env` are laid over.
    base: Env,
    files: Vec<PathBuf>,
    /// The values of each file as last read without error.
    last_good: Vec<Vec<(String, OsString)>>,
    overrides: Vec<(String, OsString)>,
    /// Set after everything else: keepup's own variables for the child.
    own: Vec<(String, OsString)>,
    pid_vars: Vec<&'static str>,
    removed: Vec<&'static str>,
    /// The environment of the next start.
    current: Env,
    /// Changes with every new `current`, so a laid-out copy can be reused
    /// until then.
    generation: u64,
    pub user: Option<User>,
}

impl Context {
    /// Everything but the files comes from `cfg` and what main set up; the
    /// first read of the files is here, and an error in one is bad usage.
    pub fn new(cfg: &Config, user: Option<User>, home: Option<PathBuf>) -> Result<Context, String> {
        let mut base = Env::inherit();
        // keepup's configuration is not the child's (a keepup started by
        // the app must not take its parent's options).
        for o in crate::cli::OPTIONS {
            base.remove(&crate::cli::env_name(o.long));
        }
        if let Some(u) = &user {
            base.set("HOME", &u.home);
            base.set("USER", &u.name);
            base.set("LOGNAME", &u.name);
        }
        let last_good = cfg
            .env_files
            .iter()
            .map(|p| read_env_file(p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut own: Vec<(String, OsString)> =
            vec![("KEEPUP_INSTANCE_NAME".into(), cfg.name.clone().into())];
        if let Some(k) = cfg.instance {
            own.push(("KEEPUP_INSTANCE".into(), k.to_string().into()));
        }
        if let Some(h) = home {
            own.push(("KEEPUP_HOME".into(), h.into_os_string()));
        }
        let mut c = Context {
            base,
            files: cfg.env_files.clone(),
            last_good,
            overrides: cfg.env.clone(),
            own,
            pid_vars: Vec::new(),
            removed: Vec::new(),
            current: Env::default(),
            generation: 0,
            user,
        };
        c.build();
        Ok(c)
    }

    /// A variable keepup sets for the child, over anything else.
    pub fn set_own(&mut self, name: &str, value: impl Into<OsString>) {
        self.own.retain(|(k, _)| k != name);
        self.own.push((name.into(), value.into()));
        self.build();
    }

    /// A variable that is the child's own pid (`LISTEN_PID`).
    pub fn set_child_pid(&mut self, name: &'static str) {
        self.pid_vars.push(name);
        self.build();
    }

    /// A variable keepup's own parent set that the child must not see
    /// (`NOTIFY_SOCKET` of keepup's own supervisor).
    pub fn remove(&mut self, name: &'static str) {
        self.removed.push(name);
        self.build();
    }

    fn build(&mut self) {
        let mut env = self.base.clone();
        for name in &self.removed {
            env.remove(name);
        }
        for vars in &self.last_good {
            for (k, v) in vars {
                env.set(k, v.clone());
            }
        }
        for (k, v) in self.overrides.iter().chain(&self.own) {
            env.set(k, v.clone());
        }
        for name in &self.pid_vars {
            env.set_child_pid(name);
        }
        self.current = env;
        self.generation += 1;
    }

    /// Reads the env files again, for a start: an edited `.env` takes
    /// effect at the next restart. A file that turned bad or vanished keeps
    /// its last good values; the returned lines say so (no value in them).
    pub fn refresh(&mut self) -> Vec<String> {
        if self.files.is_empty() {
            return Vec::new();
        }
        let mut problems = Vec::new();
        let mut changed = false;
        for (i, path) in self.files.iter().enumerate() {
            match read_env_file(path) {
                Ok(vars) => {
                    changed |= self.last_good[i] != vars;
                    self.last_good[i] = vars;
                }
                Err(why) => problems.push(format!("{why}; starting with its last good values")),
            }
        }
        if changed {
            self.build();
        }
        problems
    }

    /// Which environment `env()` is: it changes when the environment does.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn env(&self) -> &Env {
        &self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Invocation, parse_from};

    fn config(args: &[&str]) -> Config {
        let args = args.iter().map(OsString::from);
        match parse_from(args, |_| None).unwrap() {
            Invocation::Run(s) => Config::from_settings(s, false).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    fn get(c: &Context, k: &str) -> Option<String> {
        c.env().get(k).map(|v| v.to_string_lossy().into_owned())
    }

    #[test]
    fn precedence_and_reread() {
        let dir = std::env::temp_dir().join(format!("keepup-ctx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.env"), dir.join("b.env"));
        std::fs::write(&a, "X=from-a\nY=from-a\nKEEPUP_INSTANCE_NAME=nope\n").unwrap();
        std::fs::write(&b, "Y=from-b\nZ=from-b\n").unwrap();
        let cfg = config(&[
            "-n",
            "api",
            "--env-file",
            a.to_str().unwrap(),
            "--env-file",
            b.to_str().unwrap(),
            "-e",
            "Z=from-flag",
            "true",
        ]);
        let mut c = Context::new(&cfg, None, None).unwrap();
        assert_eq!(get(&c, "X").as_deref(), Some("from-a"));
        assert_eq!(get(&c, "Y").as_deref(), Some("from-b"), "a later file wins");
        assert_eq!(get(&c, "Z").as_deref(), Some("from-flag"), "--env wins");
        assert_eq!(
            get(&c, "KEEPUP_INSTANCE_NAME").as_deref(),
            Some("api"),
            "keepup's own win"
        );
        // Edited: taken at the next start. Broken: the last good values.
        std::fs::write(&a, "X=edited\n").unwrap();
        assert!(c.refresh().is_empty());
        assert_eq!(get(&c, "X").as_deref(), Some("edited"));
        std::fs::write(&a, "X=1\nthis is bad\n").unwrap();
        let p = c.refresh();
        assert_eq!(p.len(), 1);
        assert!(p[0].ends_with("a.env:2: invalid line 'this is bad' (expected NAME=value); starting with its last good values"), "{p:?}");
        assert_eq!(get(&c, "X").as_deref(), Some("edited"));
        std::fs::remove_file(&a).unwrap();
        assert!(c.refresh()[0].contains("cannot read env file"));
        assert_eq!(get(&c, "X").as_deref(), Some("edited"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bad_file_at_the_first_start_is_an_error() {
        let cfg = config(&["--env-file", "/nonexistent/.env", "true"]);
        let e = Context::new(&cfg, None, None).err().unwrap();
        assert_eq!(
            e,
            "cannot read env file '/nonexistent/.env': No such file or directory"
        );
    }
}
