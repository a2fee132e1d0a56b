//! Logging through tracing: plain lines on stderr, without timestamps and
//! colours under systemd (journald adds its own), `RUST_LOG` overrides `-v`.
//! Colours only on a terminal, and never when `NO_COLOR` is set to anything
//! but the empty string (<https://no-color.org>).
//!
//! When stderr is the journal (`$JOURNAL_STREAM` names it), every line
//! starts with its syslog priority, `<3>` for errors to `<7>` for debug:
//! journald strips the prefix and files the line at that priority, so
//! `journalctl -p warning -u headnode` shows the errors and warnings.
//! Every line of a multi-line message carries it (journald reads each line
//! as its own entry). Fields (`mac=… ip=… host=… service=…`) stay in the
//! text, where `journalctl -g` finds them.

use std::io::Write;
use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

pub fn init(verbose: u8) {
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let journald = stderr_is_journal();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if journald {
        builder
            .with_writer(Journal)
            .with_ansi(false)
            .without_time()
            .init();
    } else {
        builder
            .with_writer(std::io::stderr)
            .with_ansi(colour(tty, journald, std::env::var_os("NO_COLOR")))
            .init();
    }
}

/// Whether log lines get ANSI colours.
fn colour(tty: bool, journald: bool, no_color: Option<std::ffi::OsString>) -> bool {
    let no_color = no_color.is_some_and(|v| !v.is_empty());
    tty && !journald && !no_color
}

/// Whether stderr is the stream systemd connected to the journal: it sets
/// `$JOURNAL_STREAM` to that stream's `device:inode`, and a child whose
/// stderr was redirected elsewhere inherits the variable, so the two are
/// compared (as sd_journal_stream_fd(3) advises).
fn stderr_is_journal() -> bool {
    let Some(named) = std::env::var("JOURNAL_STREAM")
        .ok()
        .and_then(|v| parse_stream(&v))
    else {
        return false;
    };
    // SAFETY: fstat only writes into the struct it is given.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(2, &mut st) } != 0 {
        return false;
    }
    named == (st.st_dev, st.st_ino)
}

/// `device:inode` as systemd writes `$JOURNAL_STREAM`.
fn parse_stream(v: &str) -> Option<(u64, u64)> {
    let (dev, ino) = v.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// The syslog priority of a tracing level.
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// `text` with `<priority>` before each of its lines.
pub fn prefix_lines(priority: u8, text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 8);
    for line in text.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(format!("<{priority}>").as_bytes());
        out.extend_from_slice(line);
    }
    if !out.ends_with(b"\n") && !out.is_empty() {
        out.push(b'\n');
    }
    out
}

/// Writes each event to stderr with its priority, in one write when the
/// event is done (so lines of two threads do not interleave).
struct Journal;

struct JournalEvent {
    priority: u8,
    buf: Vec<u8>,
}

impl<'a> MakeWriter<'a> for Journal {
    type Writer = JournalEvent;

    fn make_writer(&'a self) -> JournalEvent {
        JournalEvent {
            priority: 6,
            buf: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> JournalEvent {
        JournalEvent {
            priority: priority(meta.level()),
            buf: Vec::new(),
        }
    }
}

impl Write for JournalEvent {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for JournalEvent {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let out = prefix_lines(self.priority, &self.buf);
        let _ = std::io::stderr().lock().write_all(&out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(colour(true, false, None));
        assert!(colour(true, false, Some("".into())));
        assert!(!colour(true, false, Some("1".into())));
        assert!(!colour(false, false, None));
        assert!(!colour(true, true, None));
    }

    #[test]
    fn each_line_carries_the_priority() {
        assert_eq!(prefix_lines(3, b"one\n"), b"<3>one\n");
        assert_eq!(prefix_lines(4, b"one\ntwo\n"), b"<4>one\n<4>two\n");
        assert_eq!(prefix_lines(6, b"no newline"), b"<6>no newline\n");
        assert_eq!(prefix_lines(6, b""), b"");
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::DEBUG), 7);
        assert_eq!(priority(&Level::TRACE), 7);
    }

    #[test]
    fn journal_stream_is_device_colon_inode() {
        assert_eq!(parse_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_stream("8"), None);
        assert_eq!(parse_stream("x:1"), None);
    }
}
