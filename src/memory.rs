//! The resident memory of keepup's process tree, read from `/proc`. One pass
//! over `/proc/*/stat` gives every process's parent and RSS; the tree is every
//! descendant of keepup, which is the child's tree plus whatever was
//! re-parented to keepup as subreaper. Buffers are reused across samples.

use std::io::Read;

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
    let start_time = nth(16)?.parse().ok()?; // field 22
    let _vsize = nth(0)?; // field 23
    let rss: i64 = nth(0)?.parse().ok()?; // field 24
    Some(ProcStat {
        pid,
        ppid,
        pgid,
        rss_pages: rss.max(0) as u64,
        start_time,
    })
}

/// Reads every process's stat line, reusing `buf` and `out`. A process that
/// vanishes mid-scan is skipped.
pub fn scan(buf: &mut Vec<u8>, out: &mut Vec<ProcStat>) {
    out.clear();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    let mut path = String::with_capacity(32);
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        path.clear();
        path.push_str("/proc/");
        path.push_str(name);
        path.push_str("/stat");
        buf.clear();
        let Ok(mut f) = std::fs::File::open(&path) else {
            continue;
        };
        if f.read_to_end(buf).is_err() {
            continue;
        }
        if let Some(st) = parse_stat(buf) {
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

/// Samples the RSS of every descendant of keepup.
pub struct Sampler {
    buf: Vec<u8>,
    procs: Vec<ProcStat>,
    tree: Vec<usize>,
    page: u64,
}

pub struct Sample {
    pub bytes: u64,
    pub processes: usize,
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler {
            buf: Vec::with_capacity(1024),
            procs: Vec::new(),
            tree: Vec::new(),
            page: page_size(),
        }
    }
}

impl Sampler {
    pub fn sample(&mut self, root: i32) -> Sample {
        scan(&mut self.buf, &mut self.procs);
        descendants(&self.procs, root, &mut self.tree);
        let pages: u64 = self.tree.iter().map(|&i| self.procs[i].rss_pages).sum();
        Sample {
            bytes: pages * self.page,
            processes: self.tree.len(),
        }
    }

    /// The pids of keepup's direct children right now (the main child and
    /// orphans re-parented to it), from the last scan made here.
    pub fn children_of(&mut self, parent: i32) -> Vec<i32> {
        scan(&mut self.buf, &mut self.procs);
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
                start_time: 123456
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
    fn tree() {
        let p = |pid, ppid| ProcStat {
            pid,
            ppid,
            pgid: 0,
            rss_pages: 1,
            start_time: 0,
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
