//! Watch mode (SPEC 11): inotify through libc, one more fd of the poll loop.
//! Directories are watched, not files, so an editor's atomic save (write a
//! temporary file, rename it over the target) is seen as a change of the
//! target; directories created or moved in are watched and scanned at once.
//! What counts is decided by `Filter::counts`, a pure function: always
//! ignored are `.git`, `node_modules`, names starting with `.`, keepup's
//! own log files and state folder; the user's patterns add to those.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Always ignored, whatever the user adds.
const DEFAULT_IGNORES: [&str; 2] = [".git", "node_modules"];

/// What counts as a change.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// `--watch-ignore` patterns.
    pub patterns: Vec<String>,
    /// `--watch-ext`, without dots; `None` is every extension.
    pub exts: Option<Vec<String>>,
    /// keepup's own files (logs, their rotations) and folder (state).
    pub own: Vec<PathBuf>,
}

impl Filter {
    /// Whether a change of `path` (relative to the watched `root`, and
    /// `full` as a whole) counts. `is_dir`: a directory itself is no change
    /// (the files in it are), but an ignored directory is not descended.
    pub fn ignores(&self, rel: &str, full: &Path) -> bool {
        if self
            .own
            .iter()
            .any(|o| full == o || full.starts_with(o) || own_rotation(full, o))
        {
            return true;
        }
        let components: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        for c in &components {
            if c.starts_with('.') || DEFAULT_IGNORES.contains(c) {
                return true;
            }
            if self.patterns.iter().any(|p| crate::names::glob(p, c)) {
                return true;
            }
        }
        self.patterns
            .iter()
            .any(|p| p.contains('/') && crate::names::glob(p.trim_start_matches("./"), rel))
    }

    /// Whether a file's name has an extension that counts.
    pub fn wanted_ext(&self, rel: &str) -> bool {
        let Some(exts) = &self.exts else {
            return true;
        };
        let name = rel.rsplit('/').next().unwrap_or(rel);
        match name.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => exts.iter().any(|e| e == ext),
            _ => false,
        }
    }
}

/// `app.log.1` .. of a log file `app.log`: rotated files are keepup's too.
fn own_rotation(full: &Path, own: &Path) -> bool {
    let (Some(f), Some(o)) = (full.to_str(), own.to_str()) else {
        return false;
    };
    f.strip_prefix(o)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// One watched directory: which root it is under, and its path.
struct Dir {
    root: usize,
    path: PathBuf,
}

pub struct Watcher {
    fd: OwnedFd,
    /// The watched PATHs (directories, or a file's directory plus its name).
    roots: Vec<(PathBuf, Option<String>)>,
    dirs: HashMap<i32, Dir>,
    filter: Filter,
    /// ENOSPC was reported once already.
    warned: bool,
    /// keepup's working directory: relative PATHs are compared with
    /// keepup's own (absolute) files through it.
    here: PathBuf,
}

const MASK: u32 = libc::IN_CLOSE_WRITE
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_MODIFY
    | libc::IN_ATTRIB
    | libc::IN_DELETE_SELF
    | libc::IN_ONLYDIR;

/// What the watcher found in one read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// The first path that changed, relative to its watched PATH (as the
    /// user wrote it, joined).
    pub changed: Option<String>,
    /// Warnings to log once (out of watches).
    pub warnings: Vec<String>,
}

impl Watcher {
    /// Watches every PATH (each exists: config checked).
    pub fn new(paths: &[PathBuf], filter: Filter) -> io::Result<(Watcher, Vec<String>)> {
        // SAFETY: plain syscall; a fresh descriptor.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just created and is ours.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut w = Watcher {
            fd,
            roots: Vec::new(),
            dirs: HashMap::new(),
            filter,
            warned: false,
            here: std::env::current_dir().unwrap_or_default(),
        };
        let mut warnings = Vec::new();
        for p in paths {
            let root = w.roots.len();
            if p.is_dir() {
                w.roots.push((p.clone(), None));
                w.add_tree(root, p, &mut warnings, &mut |_| {});
            } else {
                // A file: its directory, and only its name counts.
                let dir = p
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
                w.roots.push((dir.to_path_buf(), name));
                w.add_dir(root, dir, &mut warnings);
            }
        }
        Ok((w, warnings))
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn rel(&self, root: usize, path: &Path) -> String {
        let (base, _) = &self.roots[root];
        let rel = path.strip_prefix(base).unwrap_or(path);
        rel.to_string_lossy().into_owned()
    }

    /// The name to show for a change: the watched PATH as given, joined.
    fn shown(&self, root: usize, path: &Path) -> String {
        let (base, _) = &self.roots[root];
        if base == Path::new(".") {
            self.rel(root, path)
        } else {
            base.join(self.rel(root, path))
                .to_string_lossy()
                .into_owned()
        }
    }

    fn add_dir(&mut self, root: usize, dir: &Path, warnings: &mut Vec<String>) -> bool {
        let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: c is a valid C string.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), MASK) };
        if wd < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOSPC) && !self.warned {
                self.warned = true;
                warnings.push(format!(
                    "out of inotify watches at '{}' ({} watched): raise fs.inotify.max_user_watches (sysctl); watching on with what there is",
                    dir.display(),
                    self.dirs.len()
                ));
            }
            return false;
        }
        self.dirs.insert(
            wd,
            Dir {
                root,
                path: dir.to_path_buf(),
            },
        );
        true
    }

    /// Watches `dir` and every directory under it that is not ignored;
    /// `file` is called for each file found (a directory created or moved
    /// in is scanned at once: its files are changes).
    fn add_tree(
        &mut self,
        root: usize,
        dir: &Path,
        warnings: &mut Vec<String>,
        file: &mut dyn FnMut(PathBuf),
    ) {
        if !self.add_dir(root, dir, warnings) {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let rel = self.rel(root, &path);
            if self.filter.ignores(&rel, &self.here.join(&path)) {
                continue;
            }
            match e.file_type() {
                Ok(t) if t.is_dir() => self.add_tree(root, &path, warnings, file),
                Ok(_) => file(path),
                Err(_) => {}
            }
        }
    }

    /// Reads every event waiting.
    pub fn read(&mut self) -> Found {
        let mut found = Found::default();
        let mut buf = [0u8; 16384];
        loop {
            let n = match crate::sys::read(self.fd.as_raw_fd(), &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut off = 0;
            let head = std::mem::size_of::<libc::inotify_event>();
            while off + head <= n {
                // SAFETY: the kernel wrote whole events; read_unaligned copes
                // with the byte buffer's alignment.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf[off..].as_ptr().cast()) };
                let name_bytes = &buf[off + head..(off + head + ev.len as usize).min(n)];
                let name_end = name_bytes
                    .iter()
                    .position(|&b| b == 0)
                    .unwrap_or(name_bytes.len());
                let name = std::ffi::OsStr::from_bytes(&name_bytes[..name_end]).to_os_string();
                off += head + ev.len as usize;
                self.on_event(&ev, &name, &mut found);
            }
        }
        found
    }

    fn on_event(&mut self, ev: &libc::inotify_event, name: &std::ffi::OsStr, found: &mut Found) {
        if ev.mask & libc::IN_Q_OVERFLOW != 0 {
            // Events were lost: something changed, keepup cannot say what.
            found
                .changed
                .get_or_insert_with(|| "(many files: the event queue overflowed)".into());
            return;
        }
        if ev.mask & libc::IN_IGNORED != 0 {
            self.dirs.remove(&ev.wd);
            return;
        }
        let Some(dir) = self.dirs.get(&ev.wd) else {
            return;
        };
        let (root, dir_path) = (dir.root, dir.path.clone());
        if name.is_empty() {
            return;
        }
        let path = dir_path.join(name);
        let rel = self.rel(root, &path);
        if let (_, Some(only)) = &self.roots[root]
            && rel != *only
        {
            return;
        }
        if self.filter.ignores(&rel, &self.here.join(&path)) {
            return;
        }
        if ev.mask & libc::IN_ISDIR != 0 {
            if ev.mask & (libc::IN_CREATE | libc::IN_MOVED_TO) != 0 {
                // A new directory: watched from now on, and what it already
                // holds (written before the watch existed) counts.
                let mut files = Vec::new();
                self.add_tree(root, &path, &mut found.warnings, &mut |f| files.push(f));
                for f in files {
                    let r = self.rel(root, &f);
                    if self.filter.wanted_ext(&r) && found.changed.is_none() {
                        found.changed = Some(self.shown(root, &f));
                    }
                }
            }
            return;
        }
        if self.filter.wanted_ext(&rel) && found.changed.is_none() {
            found.changed = Some(self.shown(root, &path));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(patterns: &[&str], exts: Option<&[&str]>) -> Filter {
        Filter {
            patterns: patterns.iter().map(|s| s.to_string()).collect(),
            exts: exts.map(|e| e.iter().map(|s| s.to_string()).collect()),
            own: vec![
                PathBuf::from("/p/logs/app.log"),
                PathBuf::from("/p/.keepup"),
            ],
        }
    }

    #[test]
    fn what_counts() {
        let f = filter(&["dist", "*.test.js", "logs/*"], Some(&["js", "json"]));
        let t = [
            ("src/index.js", false, true),
            ("src/index.ts", false, false),
            ("package.json", false, true),
            (".env", true, false),
            ("src/.index.js.swp", true, false),
            ("node_modules/x/index.js", true, true),
            (".git/HEAD", true, false),
            ("dist/bundle.js", true, true),
            ("src/a.test.js", true, true),
            ("logs/other.js", true, true),
            ("src/logs/other.js", false, true),
            ("Makefile", false, false),
        ];
        for (rel, ignored, ext) in t {
            let full = Path::new("/p").join(rel);
            assert_eq!(f.ignores(rel, &full), ignored, "{rel} ignored");
            assert_eq!(f.wanted_ext(rel), ext, "{rel} ext");
        }
        // keepup's own files and folder, and the log's rotations.
        for own in [
            "/p/logs/app.log",
            "/p/logs/app.log.3",
            "/p/.keepup/api.state",
        ] {
            assert!(f.ignores("x", Path::new(own)), "{own}");
        }
        assert!(!f.ignores("x", Path::new("/p/logs/app.log.bak")));
        // Without --watch-ext every extension counts, and no extension too.
        let all = filter(&[], None);
        assert!(all.wanted_ext("Makefile") && all.wanted_ext("a.rs"));
    }

    #[test]
    fn sees_writes_atomic_saves_and_new_directories() {
        let dir = std::env::temp_dir().join(format!("keepup-watch-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("src")).unwrap();
        let (mut w, warnings) =
            Watcher::new(std::slice::from_ref(&dir), filter(&[], Some(&["js"]))).unwrap();
        assert!(warnings.is_empty());
        let wait = |w: &mut Watcher| {
            for _ in 0..200 {
                let f = w.read();
                if f.changed.is_some() {
                    return f.changed;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            None
        };
        std::fs::write(dir.join("src/a.js"), "1").unwrap();
        assert_eq!(
            wait(&mut w),
            Some(dir.join("src/a.js").display().to_string())
        );
        // An atomic save: a temporary file renamed over the target.
        std::fs::write(dir.join("src/.a.js.tmp"), "2").unwrap();
        std::fs::rename(dir.join("src/.a.js.tmp"), dir.join("src/a.js")).unwrap();
        assert_eq!(
            wait(&mut w),
            Some(dir.join("src/a.js").display().to_string())
        );
        // Ignored: other extensions, dot-files.
        std::fs::write(dir.join("src/b.txt"), "x").unwrap();
        std::fs::write(dir.join("src/.c.js"), "x").unwrap();
        assert_eq!(wait(&mut w), None);
        // A directory moved in with a file already in it.
        let outside = std::env::temp_dir().join(format!("keepup-watch-out-{}", std::process::id()));
        std::fs::create_dir_all(outside.join("lib")).unwrap();
        std::fs::write(outside.join("lib/new.js"), "x").unwrap();
        std::fs::rename(outside.join("lib"), dir.join("lib")).unwrap();
        assert_eq!(
            wait(&mut w),
            Some(dir.join("lib/new.js").display().to_string())
        );
        // And watched from then on.
        std::fs::write(dir.join("lib/later.js"), "x").unwrap();
        assert_eq!(
            wait(&mut w),
            Some(dir.join("lib/later.js").display().to_string())
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&outside);
    }
}
