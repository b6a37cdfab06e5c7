//! The resident memory of keepup's process tree, read from `/proc`. One pass
//! over `/proc/*/stat` gives every process's parent and RSS; the tree is every
//! descendant of keepup, which is the child's tree plus whatever was
//! re-parented to keepup as subreaper. Buffers are reused across samples.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// What one `/proc/PID/stat` line says that keepup needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    /// Resident pages.
    pub rss_pages: u64,
    /// Start time in clock ticks after boot: with the pid, it identifies a
    /// process (pids are reused).
    pub start_time: u64,
    /// CPU time used so far, user and system, in clock ticks.
    pub cpu_ticks: u64,
}

/// Parses `/proc/PID/stat`. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &[u8]) -> Option<ProcStat> {
    let open = text.iter().position(|&b| b == b'(')?;
    let close = text.iter().rposition(|&b| b == b')')?;
    let pid = std::str::from_utf8(&text[..open])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let rest = std::str::from_utf8(text.get(close + 1..)?).ok()?;
    // rest starts at field 3 (state).
    let mut fields = rest.split_ascii_whitespace();
    let mut nth = |n: usize| -> Option<&str> { fields.nth(n) };
    let _state = nth(0)?;
    let ppid = nth(0)?.parse().ok()?; // field 4
    let pgid = nth(0)?.parse().ok()?; // field 5
    let utime: u64 = nth(8)?.parse().ok()?; // field 14
    let stime: u64 = nth(0)?.parse().ok()?; // field 15
    let start_time = nth(6)?.parse().ok()?; // field 22
    let _vsize = nth(0)?; // field 23
    let rss: i64 = nth(0)?.parse().ok()?; // field 24
    Some(ProcStat {
        pid,
        ppid,
        pgid,
        rss_pages: rss.max(0) as u64,
        start_time,
        cpu_ticks: utime + stime,
    })
}

/// Reads every process's stat line into `out` (reused). A process that
/// vanishes mid-scan is skipped. Each process costs one `openat` relative to
/// an open `/proc`, one `read` into a stack buffer and one `close`: std's
/// `read_to_end` would add an fstat and a second read.
pub fn scan(out: &mut Vec<ProcStat>) {
    out.clear();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    let Ok(proc_dir) = std::fs::File::open("/proc") else {
        return;
    };
    let dirfd = std::os::fd::AsRawFd::as_raw_fd(&proc_dir);
    let mut path = [0u8; 32];
    let mut buf = [0u8; 1024];
    for entry in dir.flatten() {
        let name = entry.file_name();
        let name = name.as_encoded_bytes();
        if parse_pid(name).is_none() {
            continue;
        }
        path[..name.len()].copy_from_slice(name);
        path[name.len()..name.len() + 6].copy_from_slice(b"/stat\0");
        // SAFETY: path is NUL-terminated; buf is valid for its length.
        let n = unsafe {
            let fd = libc::openat(
                dirfd,
                path.as_ptr().cast(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            );
            if fd < 0 {
                continue;
            }
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            libc::close(fd);
            n
        };
        if n <= 0 {
            continue;
        }
        if let Some(st) = parse_stat(&buf[..n as usize]) {
            out.push(st);
        }
    }
}

/// Every descendant of `root` in `procs` (not `root` itself), appended to `out`.
pub fn descendants(procs: &[ProcStat], root: i32, out: &mut Vec<usize>) {
    out.clear();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (i, p) in procs.iter().enumerate() {
            if p.ppid == parent && p.pid != root {
                out.push(i);
                frontier.push(p.pid);
            }
        }
    }
}

pub fn page_size() -> u64 {
    // SAFETY: sysconf has no memory arguments.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

/// What a sample remembers of a process between samples.
#[derive(Clone, Copy, Debug)]
struct Known {
    pid: i32,
    ppid: i32,
    in_tree: bool,
}

/// How often a sample rescans every process in full, which also catches the
/// rare cases the cheap path cannot see (a tree member re-parented away when
/// keepup is not a subreaper, a pid reused by a process keepup only knows by
/// number). A full scan reads every process's stat: at a sample a second,
/// once a minute keeps it a small part of the cost.
const FULL_SCAN_EVERY: u32 = 64;

/// Samples the RSS of every descendant of a root (keepup itself).
///
/// A process outside the tree can never join it (only a tree member's fork
/// can, and that is a new pid; orphans of the tree are re-parented to keepup,
/// the subreaper). So between full scans, a sample looks only at processes
/// created since the last one, and reads `statm` only for tree members: the
/// cost follows the tree, not the machine.
///
/// Which processes are new comes from the last pid the kernel handed out
/// (the last field of `/proc/loadavg`): unchanged, nothing was created and
/// `/proc` is not even listed; grown, `/proc` is listed from there on (a
/// seek, then one `getdents`); smaller, pids wrapped around, and the sample
/// is a full one. Listing all of `/proc` was most of a sample's cost: with a
/// hundred keepups sampling, a few percent of a core.
pub struct Sampler {
    /// Open `statm` descriptors of tree members, sorted by pid.
    statm: Vec<(i32, OwnedFd)>,
    statm_next: Vec<(i32, OwnedFd)>,
    procs: Vec<ProcStat>,
    tree: Vec<usize>,
    known: Vec<Known>,
    pids: Vec<i32>,
    samples: u32,
    root: i32,
    page: u64,
    /// The last pid handed out when the tree was last brought up to date.
    last_pid: Option<i32>,
    /// Kept open: `/proc/loadavg`, and `/proc` itself for listing.
    loadavg: Option<OwnedFd>,
    proc_dir: ProcDir,
}

pub struct Sample {
    pub bytes: u64,
    pub processes: usize,
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler {
            statm: Vec::new(),
            statm_next: Vec::new(),
            procs: Vec::new(),
            tree: Vec::new(),
            known: Vec::new(),
            pids: Vec::new(),
            samples: 0,
            root: 0,
            page: page_size(),
            last_pid: None,
            loadavg: None,
            proc_dir: ProcDir::default(),
        }
    }
}

/// `/proc`, listed with `getdents64` into a buffer kept from one listing to
/// the next (no allocation per entry), from a given pid on.
///
/// A listing can start at a pid because procfs places the entry of pid P at
/// directory offset P + a constant (`TGID_OFFSET` in the kernel), which
/// `lseek` accepts. The constant is not assumed: it is read off the offsets
/// of a full listing (each entry's `d_off` is where the next entry starts),
/// and until it is known every listing is a full one.
#[derive(Default)]
struct ProcDir {
    fd: Option<OwnedFd>,
    buf: Vec<u8>,
    offset: Option<i64>,
}

impl ProcDir {
    /// The pids from `from` on (all of them for `None`), ascending, into `out`.
    fn list(&mut self, from: Option<i32>, out: &mut Vec<i32>) {
        out.clear();
        if self.fd.is_none() {
            // SAFETY: a NUL-terminated path; a fresh descriptor we own.
            let fd = unsafe {
                libc::open(
                    c"/proc".as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            };
            if fd < 0 {
                return;
            }
            // SAFETY: a fresh descriptor we own.
            self.fd = Some(unsafe { OwnedFd::from_raw_fd(fd) });
            self.buf = vec![0; 4096];
        }
        let Some(fd) = self.fd.as_ref().map(|f| f.as_raw_fd()) else {
            return;
        };
        let start = match (from, self.offset) {
            (Some(pid), Some(off)) => i64::from(pid) + off,
            _ => 0,
        };
        // SAFETY: lseek on our own descriptor.
        if unsafe { libc::lseek(fd, start, libc::SEEK_SET) } < 0 {
            return;
        }
        let mut learned = None;
        let mut previous: Option<(i32, i64)> = None;
        loop {
            // SAFETY: the buffer is valid for its length.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    fd,
                    self.buf.as_mut_ptr(),
                    self.buf.len(),
                )
            };
            if n <= 0 {
                break;
            }
            let mut at = 0usize;
            while at + 19 < n as usize {
                let b = &self.buf[at..n as usize];
                let d_off = i64::from_ne_bytes(b[8..16].try_into().unwrap_or_default());
                let reclen = u16::from_ne_bytes([b[16], b[17]]) as usize;
                if reclen == 0 || reclen > b.len() {
                    break;
                }
                let name = &b[19..reclen];
                let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
                if let Some(pid) = parse_pid(name) {
                    if let Some((prev_pid, prev_off)) = previous
                        && prev_pid < pid
                    {
                        // The previous entry's d_off is where this one is.
                        let off = prev_off - i64::from(pid);
                        learned = match learned {
                            None => Some(Some(off)),
                            Some(Some(o)) if o == off => Some(Some(o)),
                            _ => Some(None),
                        };
                    }
                    previous = Some((pid, d_off));
                    if from.is_none_or(|f| pid >= f) {
                        out.push(pid);
                    }
                }
                at += reclen;
            }
        }
        if start == 0
            && let Some(off) = learned
        {
            self.offset = off.filter(|&o| o > 0);
        }
        out.sort_unstable();
    }
}

/// A pid from a `/proc` entry name; `None` for anything else.
fn parse_pid(name: &[u8]) -> Option<i32> {
    if name.is_empty() || name.len() > 10 || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok()
}

/// The last pid the kernel handed out, from `/proc/loadavg`'s last field.
fn parse_last_pid(text: &[u8]) -> Option<i32> {
    let text = std::str::from_utf8(text).ok()?;
    text.split_ascii_whitespace().nth(4)?.parse().ok()
}

/// Opens a `/proc` file by its whole path.
fn open_proc_path(path: &std::ffi::CStr) -> Option<OwnedFd> {
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    // SAFETY: a fresh descriptor we own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `/proc/PID/<file>`; `None` if the process is gone.
fn open_proc(pid: i32, file: &str) -> Option<OwnedFd> {
    let mut path = [0u8; 48];
    let text = format_args!("/proc/{pid}/{file}\0");
    let mut w = std::io::Cursor::new(&mut path[..]);
    std::io::Write::write_fmt(&mut w, text).ok()?;
    open_proc_path(std::ffi::CStr::from_bytes_until_nul(&path).ok()?)
}

/// Reads a `/proc` file from its start through an open descriptor. An fd
/// of /proc/PID stays bound to that process: once it has exited the read
/// fails, even if the pid has been reused.
fn pread_proc(fd: &OwnedFd, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: buf is valid for its length.
    let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    (n > 0).then_some(n as usize)
}

/// Reads a small `/proc/PID/<file>` into `buf`; `None` if the process is gone.
pub fn read_proc(pid: i32, file: &str, buf: &mut [u8]) -> Option<usize> {
    pread_proc(&open_proc(pid, file)?, buf)
}

/// How many `statm` descriptors a sampler keeps open between samples: the
/// path lookup is most of a read's cost, and the cap bounds what a large tree
/// takes from keepup's descriptor limit.
const KEPT_STATM: usize = 64;

/// Resident pages from `/proc/PID/statm` (its second field).
fn parse_statm(text: &[u8]) -> Option<u64> {
    std::str::from_utf8(text)
        .ok()?
        .split_ascii_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Every process of the machine from one scan of `/proc`, with each one's
/// children: what `keepup status` uses for all its instances at once, so
/// its cost does not grow with the square of the number of instances.
pub struct ProcTable {
    procs: Vec<ProcStat>,
    children: std::collections::HashMap<i32, Vec<usize>>,
}

impl ProcTable {
    pub fn scan() -> ProcTable {
        let mut procs = Vec::new();
        scan(&mut procs);
        let mut children: std::collections::HashMap<i32, Vec<usize>> =
            std::collections::HashMap::with_capacity(procs.len());
        for (i, p) in procs.iter().enumerate() {
            children.entry(p.ppid).or_default().push(i);
        }
        ProcTable { procs, children }
    }

    /// The resident memory of `root`'s descendants (keepup's tree: the
    /// child and everything under it), and how many they are.
    pub fn tree_rss(&self, root: i32) -> (u64, usize) {
        let page = page_size();
        let mut frontier = vec![root];
        let (mut bytes, mut count) = (0, 0);
        let mut buf = [0u8; 128];
        while let Some(parent) = frontier.pop() {
            for &i in self.children.get(&parent).map_or(&[][..], |v| v.as_slice()) {
                let pid = self.procs[i].pid;
                frontier.push(pid);
                count += 1;
                if let Some(n) = read_proc(pid, "statm", &mut buf)
                    && let Some(pages) = parse_statm(&buf[..n])
                {
                    bytes += pages * page;
                }
            }
        }
        (bytes, count)
    }

    /// The start time of `pid` (clock ticks after boot), if it runs.
    pub fn start_time(&self, pid: i32) -> Option<u64> {
        self.procs
            .iter()
            .find(|p| p.pid == pid)
            .map(|p| p.start_time)
    }

    /// CPU ticks used by `root`'s descendants that are alive now.
    pub fn tree_cpu(&self, root: i32) -> u64 {
        let mut frontier = vec![root];
        let mut ticks = 0;
        while let Some(parent) = frontier.pop() {
            for &i in self.children.get(&parent).map_or(&[][..], |v| v.as_slice()) {
                frontier.push(self.procs[i].pid);
                ticks += self.procs[i].cpu_ticks;
            }
        }
        ticks
    }
}

impl Sampler {
    pub fn sample(&mut self, root: i32) -> Sample {
        let mut buf = [0u8; 1024];
        if self.loadavg.is_none() {
            self.loadavg = open_proc_path(c"/proc/loadavg");
        }
        let last_pid = self
            .loadavg
            .as_ref()
            .and_then(|fd| pread_proc(fd, &mut buf))
            .and_then(|n| parse_last_pid(&buf[..n]));
        let full = root != self.root
            || self.samples.is_multiple_of(FULL_SCAN_EVERY)
            || last_pid.is_none()
            || last_pid < self.last_pid;
        self.samples = self.samples.wrapping_add(1);
        self.root = root;
        if full {
            // Read first: what is created during the scan is listed next time.
            self.last_pid = last_pid;
            return self.full_sample(root);
        }
        if last_pid != self.last_pid {
            let from = self.last_pid.map(|p| p.saturating_add(1));
            self.last_pid = last_pid;
            self.proc_dir.list(from, &mut self.pids);
            self.add_new(root, &mut buf);
        }
        self.sum_tree(&mut buf)
    }

    /// Adds the listed pids not known yet, with whether each is in the tree.
    fn add_new(&mut self, root: i32, buf: &mut [u8]) {
        let mut unresolved = false;
        for i in 0..self.pids.len() {
            let pid = self.pids[i];
            let Err(at) = self.known.binary_search_by_key(&pid, |k| k.pid) else {
                continue;
            };
            let Some(st) = read_proc(pid, "stat", buf).and_then(|n| parse_stat(&buf[..n])) else {
                continue;
            };
            unresolved = true;
            self.known.insert(
                at,
                Known {
                    pid,
                    ppid: st.ppid,
                    in_tree: st.ppid == root,
                },
            );
        }
        // New processes join the tree through a parent that is in it; a
        // parent may itself be new, so repeat until nothing changes.
        while unresolved {
            unresolved = false;
            for i in 0..self.known.len() {
                if self.known[i].in_tree {
                    continue;
                }
                let ppid = self.known[i].ppid;
                if let Ok(j) = self.known.binary_search_by_key(&ppid, |k| k.pid)
                    && self.known[j].in_tree
                {
                    self.known[i].in_tree = true;
                    unresolved = true;
                }
            }
        }
    }

    /// The resident memory of the tree members, through kept `statm`
    /// descriptors where there are some.
    fn sum_tree(&mut self, buf: &mut [u8]) -> Sample {
        let (mut pages, mut processes) = (0, 0);
        self.pids.clear();
        let mut kept = std::mem::take(&mut self.statm);
        let mut next_kept = std::mem::take(&mut self.statm_next);
        let mut old = kept.drain(..).peekable();
        for k in self.known.iter().filter(|k| k.in_tree) {
            // Both lists are sorted by pid: walk the old one alongside.
            while old.peek().is_some_and(|(p, _)| *p < k.pid) {
                old.next();
            }
            let kept_fd = match old.peek() {
                Some((p, _)) if *p == k.pid => old.next().map(|(_, fd)| fd),
                _ => None,
            };
            // A kept descriptor whose process exited (its pid since reused)
            // fails to read: open the pid's file afresh.
            let read = |fd: OwnedFd, buf: &mut [u8]| {
                let rss = pread_proc(&fd, buf).and_then(|n| parse_statm(&buf[..n]))?;
                Some((fd, rss))
            };
            let found = kept_fd
                .and_then(|fd| read(fd, buf))
                .or_else(|| open_proc(k.pid, "statm").and_then(|fd| read(fd, buf)));
            let Some((fd, rss)) = found else {
                // Gone: not looked for again (its pid comes back only after
                // the pids wrap, which makes the next sample a full one).
                self.pids.push(k.pid);
                continue;
            };
            pages += rss;
            processes += 1;
            if next_kept.len() < KEPT_STATM {
                next_kept.push((k.pid, fd));
            }
        }
        drop(old);
        self.statm = next_kept;
        self.statm_next = kept;
        if !self.pids.is_empty() {
            self.known.retain(|k| !self.pids.contains(&k.pid));
        }
        Sample {
            bytes: pages * self.page,
            processes,
        }
    }

    fn full_sample(&mut self, root: i32) -> Sample {
        scan(&mut self.procs);
        descendants(&self.procs, root, &mut self.tree);
        self.known.clear();
        self.known.extend(self.procs.iter().map(|p| Known {
            pid: p.pid,
            ppid: p.ppid,
            in_tree: false,
        }));
        for &i in &self.tree {
            self.known[i].in_tree = true;
        }
        self.known.sort_unstable_by_key(|k| k.pid);
        let pages: u64 = self.tree.iter().map(|&i| self.procs[i].rss_pages).sum();
        Sample {
            bytes: pages * self.page,
            processes: self.tree.len(),
        }
    }

    /// The pids of `parent`'s direct children right now.
    pub fn children_of(&mut self, parent: i32) -> Vec<i32> {
        scan(&mut self.procs);
        self.procs
            .iter()
            .filter(|p| p.ppid == parent)
            .map(|p| p.pid)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_name() {
        let line = b"4242 (my (weird) app) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 123456 10000000 2500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        let st = parse_stat(line).unwrap();
        assert_eq!(
            st,
            ProcStat {
                pid: 4242,
                ppid: 1,
                pgid: 4242,
                rss_pages: 2500,
                start_time: 123456,
                cpu_ticks: 8
            }
        );
        assert_eq!(parse_stat(b"12 (x"), None);
        assert_eq!(parse_stat(b""), None);
        assert_eq!(parse_stat(b"12 (x) S 1"), None);
    }

    #[test]
    fn our_own_stat_parses() {
        let text = std::fs::read("/proc/self/stat").unwrap();
        let st = parse_stat(&text).unwrap();
        assert_eq!(st.pid, std::process::id() as i32);
        assert!(st.rss_pages > 0);
    }

    #[test]
    fn statm() {
        assert_eq!(parse_statm(b"1000 250 100 1 0 300 0\n"), Some(250));
        assert_eq!(parse_statm(b"1000"), None);
    }

    /// The cheap path and a full scan agree on a tree that changes between
    /// samples: children are started and stopped here.
    #[test]
    fn incremental_sample_matches_full_scan() {
        let me = std::process::id() as i32;
        let mut s = Sampler::default();
        let mut kids = vec![];
        for round in 0..5 {
            for _ in 0..3 {
                kids.push(
                    std::process::Command::new("sleep")
                        .arg("30")
                        .spawn()
                        .unwrap(),
                );
            }
            if round % 2 == 1 {
                let mut k = kids.remove(0);
                k.kill().unwrap();
                k.wait().unwrap();
            }
            // Other tests of this binary may start a process between the two
            // samples: compare a few times before failing.
            let agree = (0..5).any(|_| {
                let cheap = s.sample(me).processes;
                cheap == Sampler::default().sample(me).processes && cheap >= kids.len()
            });
            assert!(agree, "round {round}");
        }
        for mut k in kids {
            let _ = k.kill();
            let _ = k.wait();
        }
    }

    #[test]
    fn last_pid() {
        assert_eq!(parse_last_pid(b"0.11 0.20 0.25 1/312 48211\n"), Some(48211));
        assert_eq!(parse_last_pid(b"0.11 0.20"), None);
    }

    /// A listing from a pid on, through the learned directory offset, has
    /// exactly the pids of a full listing from there on.
    #[test]
    fn listing_from_a_pid() {
        let mut dir = ProcDir::default();
        let mut all = vec![];
        dir.list(None, &mut all);
        let mut by_std: Vec<i32> = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| parse_pid(e.unwrap().file_name().as_encoded_bytes()))
            .collect();
        by_std.sort();
        let me = std::process::id() as i32;
        assert!(all.contains(&me));
        assert!(
            dir.offset.is_some(),
            "offset learned from {} entries",
            all.len()
        );
        let mut from_me = vec![];
        dir.list(Some(me), &mut from_me);
        assert_eq!(from_me.first(), Some(&me));
        assert!(from_me.iter().all(|&p| p >= me));
        // Processes come and go while tests run: compare what both saw.
        let common = by_std.iter().filter(|&&p| p >= me && all.contains(&p));
        for p in common {
            assert!(from_me.contains(p) || !std::path::Path::new(&format!("/proc/{p}")).exists());
        }
        let mut beyond = vec![];
        dir.list(Some(i32::MAX - 1), &mut beyond);
        assert!(beyond.is_empty());
    }

    #[test]
    fn tree() {
        let p = |pid, ppid| ProcStat {
            pid,
            ppid,
            pgid: 0,
            rss_pages: 1,
            start_time: 0,
            cpu_ticks: 0,
        };
        let procs = [
            p(1, 0),
            p(10, 1),
            p(11, 10),
            p(12, 11),
            p(13, 10),
            p(20, 1),
            p(21, 20),
        ];
        let mut out = vec![];
        descendants(&procs, 10, &mut out);
        let mut pids: Vec<i32> = out.iter().map(|&i| procs[i].pid).collect();
        pids.sort();
        assert_eq!(pids, [11, 12, 13]);
    }
}
