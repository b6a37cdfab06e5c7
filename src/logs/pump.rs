//! Turns the bytes of one pipe into lines. A read ends anywhere, mid-line
//! included, so a line is assembled across reads; it is emitted when its
//! newline comes, when it reaches `MAX_LINE`, when the stream has been quiet
//! for `PARTIAL_AFTER`, or at end of file. Bytes pass through untouched:
//! invalid UTF-8 and NUL included.

use std::time::{Duration, Instant};

/// A partial line is written once it is this long.
pub const MAX_LINE: usize = 64 * 1024;
/// A partial line is written after this long without more bytes.
pub const PARTIAL_AFTER: Duration = Duration::from_millis(200);

#[derive(Default)]
pub struct LineAssembler {
    partial: Vec<u8>,
    /// When the partial line last grew; `None` when there is none.
    since: Option<Instant>,
}

/// The first newline in `bytes`. The hot spot of the log pump: SSE2 (part
/// of every x86-64) compares 16 bytes at a time, because the static musl
/// build's `memchr` goes a byte or a word at a time.
#[cfg(target_arch = "x86_64")]
fn find_newline(bytes: &[u8]) -> Option<usize> {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    let mut i = 0;
    // SAFETY: SSE2 is always available on x86-64; every load reads 16 bytes
    // inside the slice (i + 16 <= len).
    unsafe {
        let newline = _mm_set1_epi8(b'\n' as i8);
        while i + 16 <= bytes.len() {
            let v = _mm_loadu_si128(bytes.as_ptr().add(i) as *const __m128i);
            let hits = _mm_movemask_epi8(_mm_cmpeq_epi8(v, newline));
            if hits != 0 {
                return Some(i + hits.trailing_zeros() as usize);
            }
            i += 16;
        }
    }
    bytes[i..].iter().position(|&b| b == b'\n').map(|p| i + p)
}

#[cfg(not(target_arch = "x86_64"))]
fn find_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

impl LineAssembler {
    /// Feeds one chunk; `emit` gets each finished line without its newline.
    pub fn feed(&mut self, mut chunk: &[u8], now: Instant, mut emit: impl FnMut(&[u8])) {
        while let Some(nl) = find_newline(chunk) {
            let line = &chunk[..nl];
            if self.partial.is_empty() {
                emit_bounded(line, &mut emit);
            } else {
                self.push_partial(line, &mut emit);
                emit(&self.partial);
                self.partial.clear();
            }
            chunk = &chunk[nl + 1..];
        }
        if !chunk.is_empty() {
            self.push_partial(chunk, &mut emit);
        }
        self.since = (!self.partial.is_empty()).then_some(now);
    }

    /// Appends to the partial line, emitting each full `MAX_LINE` piece.
    fn push_partial(&mut self, mut bytes: &[u8], emit: &mut impl FnMut(&[u8])) {
        while self.partial.len() + bytes.len() > MAX_LINE {
            let take = MAX_LINE - self.partial.len();
            if self.partial.is_empty() {
                emit(&bytes[..take]);
            } else {
                self.partial.extend_from_slice(&bytes[..take]);
                emit(&self.partial);
                self.partial.clear();
            }
            bytes = &bytes[take..];
        }
        self.partial.extend_from_slice(bytes);
    }

    /// Whether a partial line waits for its end.
    pub fn has_partial(&self) -> bool {
        self.since.is_some() || !self.partial.is_empty()
    }

    /// When the partial line must be written if nothing more comes.
    pub fn deadline(&self) -> Option<Instant> {
        self.since.map(|t| t + PARTIAL_AFTER)
    }

    /// Writes out the partial line (quiet stream, or end of file).
    pub fn flush(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.partial.is_empty() {
            emit(&self.partial);
            self.partial.clear();
        }
        self.since = None;
        if self.partial.capacity() > MAX_LINE {
            self.partial = Vec::new();
        }
    }
}

/// A complete line longer than `MAX_LINE` is written in `MAX_LINE` pieces, as
/// if each piece had been a partial line flushed at the limit.
fn emit_bounded(mut line: &[u8], emit: &mut impl FnMut(&[u8])) {
    while line.len() > MAX_LINE {
        emit(&line[..MAX_LINE]);
        line = &line[MAX_LINE..];
    }
    emit(line);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut a = LineAssembler::default();
        let mut out = Vec::new();
        let now = Instant::now();
        for c in chunks {
            a.feed(c, now, |l| out.push(l.to_vec()));
        }
        a.flush(|l| out.push(l.to_vec()));
        out
    }

    #[test]
    fn every_split_position_gives_the_same_lines() {
        let input: &[u8] = b"alpha\nbe\xfftagamma\n\0nul\n\nlast without newline";
        let whole = split_all(&[input]);
        assert_eq!(whole.len(), 5);
        assert_eq!(whole[1], b"be\xfftagamma");
        assert_eq!(whole[3], b"");
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let parts = split_all(&[&input[..i], &input[i..j], &input[j..]]);
                assert_eq!(parts, whole, "split at {i} and {j}");
            }
        }
    }

    #[test]
    fn newline_search_at_every_position() {
        for len in 0..70 {
            for at in 0..len {
                let mut v = vec![b'x'; len];
                v[at] = b'\n';
                assert_eq!(find_newline(&v), Some(at), "len {len} at {at}");
                if at + 1 < len {
                    v[len - 1] = b'\n';
                    assert_eq!(find_newline(&v), Some(at));
                }
            }
            assert_eq!(find_newline(&vec![b'y'; len]), None);
        }
    }

    #[test]
    fn long_lines_are_cut_at_the_limit() {
        let mut input = vec![b'x'; MAX_LINE * 2 + 10];
        input.push(b'\n');
        input.extend_from_slice(b"next\n");
        let lines = split_all(&[&input]);
        let lens: Vec<usize> = lines.iter().map(Vec::len).collect();
        assert_eq!(lens, [MAX_LINE, MAX_LINE, 10, 4]);
        // The same bytes fed in small reads give the same lines.
        let chunks: Vec<&[u8]> = input.chunks(1000).collect();
        assert_eq!(split_all(&chunks), lines);
    }

    #[test]
    fn concatenation_gives_back_the_input() {
        let input: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let chunks: Vec<&[u8]> = input.chunks(4093).collect();
        let lines = split_all(&chunks);
        let mut joined = Vec::new();
        for l in &lines {
            joined.extend_from_slice(l);
            joined.push(b'\n');
        }
        // Every original newline is a line end; cuts at MAX_LINE add none
        // here because the input has a newline at least every 251 bytes.
        assert_eq!(&joined[..input.len()], &input[..]);
    }

    #[test]
    fn partial_deadline() {
        let mut a = LineAssembler::default();
        let now = Instant::now();
        a.feed(b"done\n", now, |_| {});
        assert_eq!(a.deadline(), None);
        a.feed(b"prompt> ", now, |_| {});
        assert_eq!(a.deadline(), Some(now + PARTIAL_AFTER));
        let mut got = Vec::new();
        a.flush(|l| got.push(l.to_vec()));
        assert_eq!(got, vec![b"prompt> ".to_vec()]);
        assert_eq!(a.deadline(), None);
    }
}
