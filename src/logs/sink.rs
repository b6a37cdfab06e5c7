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
    /// `prefix` is `<ts> <tag> `, rendered once per read by the caller.
    pub fn line(&mut self, prefix: &[u8], text: &[&[u8]]) -> Option<Recovered> {
        let len = prefix.len() + 1 + text.iter().map(|t| t.len()).sum::<usize>();
        let mut report = None;
        if self.max_size > 0 && self.regular {
            let pending = self.size + self.buf.len() as u64;
            if pending > 0 && pending + len as u64 > self.max_size {
                report = self.flush();
                // Someone may have truncated the file (logrotate's
                // copytruncate): trust its real size over our count.
                if let Some(real) = self.file.as_ref().and_then(|f| f.metadata().ok()) {
                    self.size = real.len();
                }
                if self.size > 0 && self.size + len as u64 > self.max_size {
                    self.rotate();
                }
            }
        }
        append(&mut self.buf, prefix);
        for t in text {
            append(&mut self.buf, t);
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
                            .map(|e| crate::diag::os_reason(&e))
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

/// Appends `src` to `buf`. Log lines are short, and the static (musl)
/// build's `memcpy` starts slowly (`rep movs` and byte loops), which made it
/// the hot spot of the log pump: copies up to 256 bytes are done here with
/// unaligned 16-, 8- and 4-byte loads and stores that overlap at the tail.
pub fn append(buf: &mut Vec<u8>, src: &[u8]) {
    let n = src.len();
    if n > 256 {
        buf.extend_from_slice(src);
        return;
    }
    buf.reserve(n);
    let len = buf.len();
    // SAFETY: `reserve` made room for n more bytes after `len`; every read is
    // within src[0..n] and every write within the reserved room; the bytes
    // are initialised before `set_len`.
    unsafe {
        let d = buf.as_mut_ptr().add(len);
        let s = src.as_ptr();
        if n >= 16 {
            copy16(d, s, n);
        } else if n >= 8 {
            let head = std::ptr::read_unaligned(s as *const u64);
            let tail = std::ptr::read_unaligned(s.add(n - 8) as *const u64);
            std::ptr::write_unaligned(d as *mut u64, head);
            std::ptr::write_unaligned(d.add(n - 8) as *mut u64, tail);
        } else if n >= 4 {
            let head = std::ptr::read_unaligned(s as *const u32);
            let tail = std::ptr::read_unaligned(s.add(n - 4) as *const u32);
            std::ptr::write_unaligned(d as *mut u32, head);
            std::ptr::write_unaligned(d.add(n - 4) as *mut u32, tail);
        } else {
            for i in 0..n {
                *d.add(i) = *s.add(i);
            }
        }
        buf.set_len(len + n);
    }
}

/// Copies n >= 16 bytes in 16-byte blocks, the last one overlapping.
///
/// # Safety
/// `d` must be valid for n writes and `s` for n reads, not overlapping.
#[cfg(target_arch = "x86_64")]
unsafe fn copy16(d: *mut u8, s: *const u8, n: usize) {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_storeu_si128};
    // SAFETY: SSE2 is part of x86-64; the caller guarantees the bounds.
    unsafe {
        let mut i = 0;
        while i + 16 <= n {
            _mm_storeu_si128(
                d.add(i) as *mut __m128i,
                _mm_loadu_si128(s.add(i) as *const __m128i),
            );
            i += 16;
        }
        if i < n {
            let last = n - 16;
            _mm_storeu_si128(
                d.add(last) as *mut __m128i,
                _mm_loadu_si128(s.add(last) as *const __m128i),
            );
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn copy16(d: *mut u8, s: *const u8, n: usize) {
    // SAFETY: the caller guarantees the bounds.
    unsafe { std::ptr::copy_nonoverlapping(s, d, n) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_every_length() {
        let src: Vec<u8> = (0..600u32).map(|i| (i * 31 % 251) as u8).collect();
        for start in 0..3 {
            for n in 0..=src.len() - start {
                let mut buf = b"head".to_vec();
                append(&mut buf, &src[start..start + n]);
                assert_eq!(&buf[..4], b"head");
                assert_eq!(&buf[4..], &src[start..start + n], "length {n}");
            }
        }
    }
}
