//! One log file: buffered appends, rotation by rename, and a failure policy
//! that never stops supervision. Lines are batched in memory and written with
//! one `write(2)` per flush; a failed write drops (and counts) lines instead of
//! blocking the child, and the file is reopened when writing works again.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Flush early once this much is buffered.
const FLUSH_AT: usize = 1 << 20;
/// How often a broken file is reopened, and how often a healthy one is
/// checked for having been removed.
const RECHECK: Duration = Duration::from_millis(250);

/// Opens a log file for appending, creating it `0640` and its folders.
pub fn open_log(path: &Path) -> io::Result<File> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        std::fs::create_dir_all(parent)?;
    }
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

/// Lines that could not be written, reported once writing works again.
pub struct Recovered {
    pub path: PathBuf,
    pub lines: u64,
    pub reason: String,
}

pub struct Sink {
    path: PathBuf,
    file: Option<File>,
    /// Only regular files are rotated or checked for removal (`/dev/full`,
    /// `/dev/stdout` and FIFOs are written as they are).
    regular: bool,
    size: u64,
    max_size: u64,
    keep: u32,
    buf: Vec<u8>,
    buf_lines: u64,
    dropped: u64,
    drop_reason: Option<io::Error>,
    /// A failed write left part of a line in the file: start the next write
    /// on a fresh line.
    mid_line: bool,
    last_check: Instant,
    last_retry: Option<Instant>,
}

impl Sink {
    pub fn open(path: &Path, max_size: u64, keep: u32) -> io::Result<Sink> {
        let file = open_log(path)?;
        let meta = file.metadata()?;
        Ok(Sink {
            path: path.to_path_buf(),
            regular: meta.file_type().is_file(),
            size: meta.len(),
            file: Some(file),
            max_size,
            keep,
            buf: Vec::with_capacity(64 * 1024),
            buf_lines: 0,
            dropped: 0,
            drop_reason: None,
            mid_line: false,
            last_check: Instant::now(),
            last_retry: None,
        })
    }

    /// Appends `<ts> <tag> <text>\n`, rotating first if it would pass the size
    /// limit. Returns a report if this flushed and recovered from drops.
    pub fn line(&mut self, ts: &[u8], tag: &[u8], text: &[&[u8]]) -> Option<Recovered> {
        let len = ts.len() + tag.len() + 3 + text.iter().map(|t| t.len()).sum::<usize>();
        let mut report = None;
        if self.max_size > 0 && self.regular {
            let pending = self.size + self.buf.len() as u64;
            if pending > 0 && pending + len as u64 > self.max_size {
                report = self.flush();
                self.rotate();
            }
        }
        self.buf.extend_from_slice(ts);
        self.buf.push(b' ');
        self.buf.extend_from_slice(tag);
        self.buf.push(b' ');
        for t in text {
            self.buf.extend_from_slice(t);
        }
        self.buf.push(b'\n');
        self.buf_lines += 1;
        if self.buf.len() >= FLUSH_AT {
            report = report.or(self.flush());
        }
        report
    }

    /// Writes what is buffered. Never blocks on anything but the write itself,
    /// never fails: what cannot be written is counted as dropped.
    pub fn flush(&mut self) -> Option<Recovered> {
        if self.buf.is_empty() {
            return None;
        }
        let now = Instant::now();
        if self.file.is_none() {
            if self.last_retry.is_none_or(|t| now >= t + RECHECK) {
                self.last_retry = Some(now);
                self.reopen();
            }
        } else if self.regular && now >= self.last_check + RECHECK {
            self.last_check = now;
            // A removed (or renamed-away) file is recreated at its path.
            if self.replaced() {
                self.reopen();
            }
        }
        let Some(file) = &self.file else {
            self.drop_buffer(0);
            return None;
        };
        let fd = file.as_raw_fd();
        if self.mid_line {
            if crate::sys::write_all(fd, b"\n").is_err() {
                self.drop_buffer(0);
                return None;
            }
            self.mid_line = false;
        }
        match crate::sys::write_all(fd, &self.buf) {
            Ok(()) => {
                self.size += self.buf.len() as u64;
                self.buf.clear();
                self.buf_lines = 0;
                if self.dropped > 0 {
                    let report = Recovered {
                        path: self.path.clone(),
                        lines: self.dropped,
                        reason: self
                            .drop_reason
                            .take()
                            .map(|e| os_reason(&e))
                            .unwrap_or_default(),
                    };
                    self.dropped = 0;
                    return Some(report);
                }
                None
            }
            Err((done, e)) => {
                self.size += done as u64;
                if e.raw_os_error() != Some(libc::ENOSPC) && e.raw_os_error() != Some(libc::EFBIG) {
                    self.file = None;
                }
                self.drop_reason = Some(e);
                self.drop_buffer(done);
                None
            }
        }
    }

    /// Counts the buffered lines not fully written as dropped.
    fn drop_buffer(&mut self, written: usize) {
        let done = &self.buf[..written];
        let full = done.iter().filter(|&&b| b == b'\n').count() as u64;
        self.mid_line |= written > 0 && done.last() != Some(&b'\n');
        self.dropped += self.buf_lines - full;
        self.buf.clear();
        self.buf_lines = 0;
        if self.drop_reason.is_none() {
            self.drop_reason = Some(io::Error::other("file unavailable"));
        }
    }

    /// Whether the path no longer names the file we hold open.
    fn replaced(&self) -> bool {
        let held = self.file.as_ref().and_then(|f| f.metadata().ok());
        match (held, std::fs::metadata(&self.path)) {
            (Some(h), Ok(p)) => h.ino() != p.ino() || h.dev() != p.dev(),
            _ => true,
        }
    }

    fn reopen(&mut self) {
        match open_log(&self.path) {
            Ok(f) => {
                self.size = f.metadata().map(|m| m.len()).unwrap_or(0);
                self.regular = f
                    .metadata()
                    .map(|m| m.file_type().is_file())
                    .unwrap_or(false);
                self.file = Some(f);
                self.mid_line = false;
            }
            Err(e) => {
                self.file = None;
                if self.drop_reason.is_none() {
                    self.drop_reason = Some(e);
                }
            }
        }
    }

    /// Rotates by rename: FILE.N-1 -> FILE.N ... FILE -> FILE.1, then a new
    /// FILE. Never copy-and-truncate, which loses what is written between.
    fn rotate(&mut self) {
        // Someone may have truncated the file (logrotate copytruncate):
        // trust its real size over our count.
        if let Some(real) = self
            .file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.len())
        {
            self.size = real;
            if real == 0 {
                return;
            }
        }
        let numbered = |n: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        if self.keep == 0 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            for n in (1..self.keep).rev() {
                let _ = std::fs::rename(numbered(n), numbered(n + 1));
            }
            let _ = std::fs::rename(&self.path, numbered(1));
        }
        self.file = None;
        self.reopen();
    }
}

/// The OS reason alone ("No space left on device"), without std's suffix.
pub fn os_reason(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
