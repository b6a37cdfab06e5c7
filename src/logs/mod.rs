//! Everything keepup writes: the child's output (through pipes when a log
//! file or timestamps need it), keepup's own event lines, and the console
//! echo. The supervisor hands it readable pipes and deadlines; it never
//! blocks the child on file I/O and never stops supervision on an error.

pub mod clock;
pub mod json;
pub mod pump;
pub mod sink;

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

use crate::child::Output;
use crate::config::LogConfig;
use clock::Clock;
use pump::LineAssembler;
use sink::{Recovered, Sink};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
}

impl Stream {
    fn tag(self) -> &'static [u8] {
        match self {
            Stream::Out => b"out",
            Stream::Err => b"err",
        }
    }

    fn console_fd(self) -> RawFd {
        match self {
            Stream::Out => 1,
            Stream::Err => 2,
        }
    }
}

/// One pipe from the child, with its half-assembled line.
#[derive(Default)]
struct Pipe {
    fd: Option<OwnedFd>,
    lines: LineAssembler,
}

/// The read ends of one run's stdout and stderr pipes with their partial
/// lines: each run owns its own, so two runs' lines never mix.
#[derive(Default)]
pub struct Pipes {
    pipes: [Pipe; 2],
    /// The run's main pid, for `--log-format json` records.
    pid: i32,
}

impl Pipes {
    /// The pipes of the run whose main process is `pid`.
    pub fn new(out: Option<OwnedFd>, err: Option<OwnedFd>, pid: i32) -> Pipes {
        Pipes {
            pid,
            pipes: [
                Pipe {
                    fd: out,
                    lines: LineAssembler::default(),
                },
                Pipe {
                    fd: err,
                    lines: LineAssembler::default(),
                },
            ],
        }
    }

    /// The open pipe fds, for poll.
    pub fn fds(&self) -> [Option<RawFd>; 2] {
        [
            self.pipes[0].fd.as_ref().map(|f| f.as_raw_fd()),
            self.pipes[1].fd.as_ref().map(|f| f.as_raw_fd()),
        ]
    }

    /// Whether both pipes have reached end of file (or there are none).
    pub fn drained(&self) -> bool {
        self.pipes.iter().all(|p| p.fd.is_none())
    }

    /// The earliest moment a partial line must be written.
    pub fn deadline(&self) -> Option<Instant> {
        self.pipes.iter().filter_map(|p| p.lines.deadline()).min()
    }
}

pub struct Logs {
    name: String,
    clock: Clock,
    timestamps: bool,
    quiet: bool,
    merged: Option<Sink>,
    out: Option<Sink>,
    err: Option<Sink>,
    /// Console lines under `-t`, written once per round.
    console: [Vec<u8>; 2],
    /// `<ts> <tag> ` per stream for the current read; the console's prefix
    /// is its first `console_prefix_len` bytes (`<ts> `).
    prefix: [Vec<u8>; 2],
    console_prefix_len: usize,
    read_buf: Vec<u8>,
    recovered: Vec<Recovered>,
    /// `--log-format json`: the name as a JSON string's inside, keepup's
    /// pid, the record prefix per stream and a buffer for escaped text.
    json: bool,
    json_name: Vec<u8>,
    my_pid: i32,
    json_prefix: [Vec<u8>; 2],
    escaped: Vec<u8>,
}

impl Logs {
    /// Opens every log file; an error here is fatal before anything starts.
    pub fn open(cfg: &LogConfig, name: &str) -> Result<Logs, String> {
        let open = |p: &Option<std::path::PathBuf>| -> Result<Option<Sink>, String> {
            match p {
                None => Ok(None),
                Some(path) => Sink::open(path, cfg.max_size, cfg.keep)
                    .map(Some)
                    .map_err(|e| {
                        format!(
                            "cannot open log file '{}': {}",
                            path.display(),
                            crate::diag::os_reason(&e)
                        )
                    }),
            }
        };
        Ok(Logs {
            name: name.to_string(),
            clock: Clock::new(cfg.time_format.clone(), cfg.utc),
            timestamps: cfg.timestamps,
            quiet: cfg.quiet,
            merged: open(&cfg.merged)?,
            out: open(&cfg.out)?,
            err: open(&cfg.err)?,
            console: [Vec::new(), Vec::new()],
            prefix: [Vec::new(), Vec::new()],
            console_prefix_len: 0,
            json: cfg.json,
            json_name: {
                let mut n = Vec::new();
                json::escape_into(&mut n, name.as_bytes());
                n
            },
            // SAFETY: getpid has no arguments.
            my_pid: unsafe { libc::getpid() },
            json_prefix: [Vec::new(), Vec::new()],
            escaped: Vec::new(),
            read_buf: Vec::new(),
            recovered: Vec::new(),
        })
    }

    /// Where the child's stream should go: a pipe only when something needs
    /// to see its lines, so a plain `keepup cmd` costs nothing per byte.
    pub fn output_for(&self, stream: Stream) -> Output {
        let file = self.merged.is_some()
            || match stream {
                Stream::Out => self.out.is_some(),
                Stream::Err => self.err.is_some(),
            };
        if file || (self.timestamps && !self.quiet) {
            Output::Pipe
        } else if self.quiet {
            Output::Null
        } else {
            Output::Inherit
        }
    }

    /// Reads what a pipe has (a bounded number of reads, for fairness between
    /// the two streams and the two runs of a reload) and routes its lines.
    pub fn pump(&mut self, pipes: &mut Pipes, stream: Stream, now: Instant) {
        let idx = stream as usize;
        for _ in 0..8 {
            let Some(fd) = pipes.pipes[idx].fd.as_ref().map(|f| f.as_raw_fd()) else {
                return;
            };
            if self.read_buf.is_empty() {
                self.read_buf = vec![0; 256 * 1024];
            }
            let mut buf = std::mem::take(&mut self.read_buf);
            let result = crate::sys::read(fd, &mut buf);
            match result {
                Ok(0) => {
                    self.read_buf = buf;
                    self.close_pipe(pipes, stream);
                    return;
                }
                Ok(n) => {
                    self.route(pipes, stream, &buf[..n], now);
                    self.read_buf = buf;
                    if n < self.read_buf.len() {
                        return;
                    }
                }
                Err(e) => {
                    self.read_buf = buf;
                    if e.kind() != io::ErrorKind::WouldBlock {
                        self.close_pipe(pipes, stream);
                    }
                    return;
                }
            }
        }
    }

    fn close_pipe(&mut self, pipes: &mut Pipes, stream: Stream) {
        self.flush_partial(pipes, stream);
        pipes.pipes[stream as usize].fd = None;
    }

    /// Writes what is left of a run's partial lines and closes its pipes.
    pub fn close(&mut self, pipes: &mut Pipes) {
        for stream in [Stream::Out, Stream::Err] {
            self.close_pipe(pipes, stream);
        }
    }

    /// Writes partial lines whose stream has been quiet long enough.
    pub fn flush_stale(&mut self, pipes: &mut Pipes, now: Instant) {
        for stream in [Stream::Out, Stream::Err] {
            if pipes.pipes[stream as usize]
                .lines
                .deadline()
                .is_some_and(|d| d <= now)
            {
                self.flush_partial(pipes, stream);
            }
        }
    }

    fn flush_partial(&mut self, pipes: &mut Pipes, stream: Stream) {
        if !pipes.pipes[stream as usize].lines.has_partial() {
            return;
        }
        self.stamp(stream, pipes.pid);
        let lines = &mut pipes.pipes[stream as usize].lines;
        lines.flush(|line| self.emit(stream, line));
    }

    fn route(&mut self, pipes: &mut Pipes, stream: Stream, chunk: &[u8], now: Instant) {
        if !self.quiet && !self.timestamps {
            // Unchanged pass-through; a broken console must not stop logging.
            let _ = crate::sys::write_all(stream.console_fd(), chunk);
        }
        self.stamp(stream, pipes.pid);
        let lines = &mut pipes.pipes[stream as usize].lines;
        lines.feed(chunk, now, |line| self.emit(stream, line));
    }

    /// Renders the line prefix (`<ts> <tag> `) once for all the lines of a
    /// read, into a buffer that is reused.
    fn stamp(&mut self, stream: Stream, pid: i32) {
        let (s, n) = clock::wall_now();
        let ts = self.clock.render(s, n);
        if self.json {
            let tag = std::str::from_utf8(stream.tag()).unwrap_or("out");
            json::prefix(
                &mut self.json_prefix[stream as usize],
                ts,
                tag,
                &self.json_name,
                pid,
            );
        }
        let p = &mut self.prefix[stream as usize];
        p.clear();
        p.extend_from_slice(ts);
        p.push(b' ');
        self.console_prefix_len = p.len();
        p.extend_from_slice(stream.tag());
        p.push(b' ');
    }

    fn emit(&mut self, stream: Stream, line: &[u8]) {
        let (prefix, parts): (&[u8], [&[u8]; 2]) = if self.json {
            self.escaped.clear();
            json::escape_into(&mut self.escaped, line);
            (
                &self.json_prefix[stream as usize],
                [&self.escaped, json::SUFFIX],
            )
        } else {
            (&self.prefix[stream as usize], [line, b""])
        };
        if let Some(m) = &mut self.merged
            && let Some(r) = m.line(prefix, &parts)
        {
            self.recovered.push(r);
        }
        let own = match stream {
            Stream::Out => &mut self.out,
            Stream::Err => &mut self.err,
        };
        if let Some(o) = own
            && let Some(r) = o.line(prefix, &parts)
        {
            self.recovered.push(r);
        }
        let prefix = &self.prefix[stream as usize];
        if self.timestamps && !self.quiet {
            let c = &mut self.console[stream as usize];
            sink::append(c, &prefix[..self.console_prefix_len]);
            sink::append(c, line);
            c.push(b'\n');
        }
    }

    /// `<ts> keepup ` for keepup's own lines (the JSON record's start
    /// under `--log-format json`).
    fn event_prefix(&mut self) -> Vec<u8> {
        let (s, n) = clock::wall_now();
        if self.json {
            let mut p = Vec::new();
            json::prefix(
                &mut p,
                self.clock.render(s, n),
                "keepup",
                &self.json_name,
                self.my_pid,
            );
            return p;
        }
        let mut p = self.clock.render(s, n).to_vec();
        p.extend_from_slice(b" keepup ");
        p
    }

    /// Whether `event` writes anywhere.
    pub fn has_event_reader(&self) -> bool {
        !self.quiet || self.merged.is_some()
    }

    /// One of keepup's own events: a `keepup` line in `--log`, and a line on
    /// stderr unless `--quiet`.
    pub fn event(&mut self, text: &str) {
        if !self.has_event_reader() {
            // Nowhere to write it: no copy, no formatting.
            self.flush();
            return;
        }
        // Event text may quote user input (a command name): keep it one line.
        let text = &crate::diag::one_line(text);
        if !self.quiet {
            self.flush_console();
            let line = format!("keepup: {}: {text}\n", self.name);
            let _ = crate::sys::write_all(2, line.as_bytes());
        }
        if self.merged.is_some() {
            let prefix = self.event_prefix();
            let name = format!("{}: ", self.name);
            let mut escaped = Vec::new();
            let parts: [&[u8]; 2] = if self.json {
                json::escape_into(&mut escaped, text.as_bytes());
                [&escaped, json::SUFFIX]
            } else {
                [name.as_bytes(), text.as_bytes()]
            };
            if let Some(m) = &mut self.merged
                && let Some(r) = m.line(&prefix, &parts)
            {
                self.recovered.push(r);
            }
        }
        self.flush();
    }

    /// A fatal error: always on stderr, and in `--log` when there is one.
    pub fn fatal(&mut self, text: &str) {
        let text = &crate::diag::one_line(text);
        let _ = crate::sys::write_all(2, format!("keepup: {text}\n").as_bytes());
        if self.merged.is_some() {
            let prefix = self.event_prefix();
            let mut escaped = Vec::new();
            let parts: [&[u8]; 2] = if self.json {
                json::escape_into(&mut escaped, text.as_bytes());
                [&escaped, json::SUFFIX]
            } else {
                [text.as_bytes(), b""]
            };
            if let Some(m) = &mut self.merged {
                let _ = m.line(&prefix, &parts);
                let _ = m.flush();
            }
        }
    }

    fn flush_console(&mut self) {
        for stream in [Stream::Out, Stream::Err] {
            let c = &mut self.console[stream as usize];
            if !c.is_empty() {
                let _ = crate::sys::write_all(stream.console_fd(), c);
                c.clear();
            }
        }
    }

    /// Writes everything buffered: called once per loop round, so many lines
    /// share one write(2).
    pub fn flush(&mut self) {
        self.flush_console();
        for sink in [&mut self.merged, &mut self.out, &mut self.err]
            .into_iter()
            .flatten()
        {
            if let Some(r) = sink.flush() {
                self.recovered.push(r);
            }
        }
        // Reports go out after the lines they concern, as events of their own.
        while let Some(r) = self.recovered.pop() {
            self.event(&format!(
                "dropped {} lines ({}) for '{}'",
                r.lines,
                r.reason,
                r.path.display()
            ));
        }
    }
}
