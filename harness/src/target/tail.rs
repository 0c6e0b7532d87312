//! The last lines a server wrote to stdout and stderr, kept bounded.
//!
//! Every process of a server's tree writes to the same two pipes. Each is
//! drained on a thread of its own, so a chatty server never blocks on a full
//! pipe, and only the last [`TAIL_LINES`] lines of at most [`MAX_LINE_BYTES`]
//! each are kept, so a server printing without end cannot grow our memory.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

/// How many lines of stdout and of stderr are kept.
pub(super) const TAIL_LINES: usize = 200;
/// Longer lines are cut here, so a server printing without newlines cannot grow our memory.
pub(super) const MAX_LINE_BYTES: usize = 4096;

/// The last lines a pipe delivered.
#[derive(Debug, Default)]
pub(super) struct OutputTail {
    /// The last complete lines, at most [`TAIL_LINES`].
    lines: VecDeque<String>,
    /// Bytes after the last newline.
    partial: Vec<u8>,
    /// The pipe reached end of file (every writer closed it).
    pub(super) eof: bool,
}

impl OutputTail {
    /// Appends what the pipe delivered, cutting it into lines.
    fn push_bytes(&mut self, mut bytes: &[u8]) {
        while let Some(pos) = bytes.iter().position(|&b| b == b'\n') {
            self.append_partial(&bytes[..pos]);
            let mut line = std::mem::take(&mut self.partial);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.push_line(String::from_utf8_lossy(&line).into_owned());
            bytes = &bytes[pos + 1..];
        }
        self.append_partial(bytes);
    }

    /// Adds to the unfinished line, up to [`MAX_LINE_BYTES`].
    fn append_partial(&mut self, bytes: &[u8]) {
        let room = MAX_LINE_BYTES.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Keeps one complete line, forgetting the oldest beyond [`TAIL_LINES`].
    fn push_line(&mut self, line: String) {
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// The last `n` lines, an unfinished last line included.
    pub(super) fn tail(&self, n: usize) -> Vec<String> {
        let partial =
            (!self.partial.is_empty()).then(|| String::from_utf8_lossy(&self.partial).into_owned());
        let mut all: Vec<String> = self.lines.iter().cloned().chain(partial).collect();
        let skip = all.len().saturating_sub(n);
        all.drain(..skip);
        all
    }
}

/// A tail shared between its draining thread and the instance.
pub(super) type SharedTail = Arc<Mutex<OutputTail>>;

/// Locks `tail` for a read or an append.
pub(super) fn lock_tail(tail: &SharedTail) -> MutexGuard<'_, OutputTail> {
    // Critical sections only append to buffers, so a poisoned lock is still consistent.
    tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Drains `pipe` into `tail` until end of file, on a thread of its own: a
/// server blocked writing to a full pipe would be a harness bug, not its own.
pub(super) fn spawn_drain(name: &str, mut pipe: impl Read + Send + 'static, tail: SharedTail) {
    let body = move || {
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => lock_tail(&tail).push_bytes(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        lock_tail(&tail).eof = true;
    };
    // If the thread cannot be spawned, drain nothing rather than fail the run;
    // the pipe then closes on drop and the server gets EPIPE on output.
    let _ = thread::Builder::new().name(name.to_string()).spawn(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_tail_keeps_last_lines_and_cuts_long_ones() {
        let mut tail = OutputTail::default();
        tail.push_bytes(b"a\r\nb\nunfinished");
        assert_eq!(tail.tail(5), ["a", "b", "unfinished"]);
        assert_eq!(tail.tail(1), ["unfinished"]);
        tail.push_bytes(&vec![b'y'; 3 * MAX_LINE_BYTES]);
        tail.push_bytes(b"\n\xff\n");
        let last = tail.tail(2);
        assert_eq!(last[0].len(), MAX_LINE_BYTES);
        assert_eq!(last[1], "\u{fffd}");
    }

    #[test]
    fn at_most_tail_lines_are_kept() {
        let mut tail = OutputTail::default();
        for i in 0..TAIL_LINES + 50 {
            tail.push_bytes(format!("line {i}\n").as_bytes());
        }
        let kept = tail.tail(usize::MAX);
        assert_eq!(kept.len(), TAIL_LINES);
        assert_eq!(kept[0], "line 50");
    }
}
