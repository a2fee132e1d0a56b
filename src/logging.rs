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
//!
//! Better still, when journald's socket takes datagrams, each event goes
//! there in its native protocol: `MESSAGE` (the same line, fields
//! included), `PRIORITY`, `SYSLOG_IDENTIFIER`, and every field once more as
//! `HEADNODE_<NAME>`, so `journalctl HEADNODE_MAC=52:54:00:12:34:56` lists
//! one node's history. Written here rather than with tracing-journald,
//! whose `MESSAGE` is the bare message: `journalctl -u headnode` would show
//! "DHCPACK: new lease" without the address and the MAC.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

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
    if let Some(native) = journald.then(NativeJournal::open).flatten() {
        tracing_subscriber::registry()
            .with(filter_again(level))
            .with(native)
            .init();
    } else if journald {
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

/// The filter of `init` (an `EnvFilter` is not `Clone`).
fn filter_again(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level))
}

/// Where journald takes native datagrams; `$HEADNODE_JOURNAL_SOCKET` for
/// tests.
fn journal_socket() -> PathBuf {
    std::env::var_os("HEADNODE_JOURNAL_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/systemd/journal/socket"))
}

/// Events to journald's socket, one datagram each.
struct NativeJournal {
    sock: UnixDatagram,
}

impl NativeJournal {
    /// `None` when the socket does not take us (no journald there): then
    /// the lines go to stderr with their priority, as before.
    fn open() -> Option<NativeJournal> {
        let sock = UnixDatagram::unbound().ok()?;
        sock.connect(journal_socket()).ok()?;
        Some(NativeJournal { sock })
    }
}

impl<S: Subscriber> Layer<S> for NativeJournal {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let priority = priority(event.metadata().level());
        let datagram = native_entry(priority, &fields.message, &fields.named);
        if self.sock.send(&datagram).is_err() {
            // Too large for one datagram, or journald gone: the line still
            // reaches the journal through stderr.
            let mut line = line(&fields.message, &fields.named);
            line.push('\n');
            let _ = std::io::stderr()
                .lock()
                .write_all(&prefix_lines(priority, line.as_bytes()));
        }
    }
}

/// An event's message and its other fields, as text.
#[derive(Default)]
struct Fields {
    message: String,
    named: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            name => self.named.push((name, value.to_string())),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            name => self.named.push((name, format!("{value:?}"))),
        }
    }
}

/// The line as the text logger writes it: the message, then ` name=value`.
fn line(message: &str, named: &[(&str, String)]) -> String {
    let mut out = message.to_string();
    for (name, value) in named {
        out.push_str(&format!(" {name}={value}"));
    }
    out
}

/// PURE: one journal entry in journald's native protocol: `KEY=value`
/// lines, or for a value with a newline `KEY`, a newline, its length as a
/// little-endian u64, the value and a newline.
fn native_entry(priority: u8, message: &str, named: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut put = |key: &str, value: &str| {
        out.extend_from_slice(key.as_bytes());
        if value.contains('\n') {
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
            out.extend_from_slice(value.as_bytes());
        } else {
            out.push(b'=');
            out.extend_from_slice(value.as_bytes());
        }
        out.push(b'\n');
    };
    put("MESSAGE", &line(message, named));
    put("PRIORITY", &priority.to_string());
    put("SYSLOG_IDENTIFIER", "headnode");
    for (name, value) in named {
        put(&field_key(name), value);
    }
    out
}

/// `HEADNODE_` and the field's name as journald wants keys: upper case
/// letters, digits and `_`.
fn field_key(name: &str) -> String {
    let mut key = String::from("HEADNODE_");
    key.extend(name.chars().map(|c| match c {
        'a'..='z' => c.to_ascii_uppercase(),
        'A'..='Z' | '0'..='9' => c,
        _ => '_',
    }));
    key
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
    fn native_entries_carry_the_line_the_priority_and_each_field() {
        let named = [
            ("mac", "52:54:00:12:34:56".to_string()),
            ("ip", "192.168.1.101".to_string()),
        ];
        let got = native_entry(6, "DHCPACK: new lease", &named);
        assert_eq!(
            String::from_utf8(got).unwrap(),
            "MESSAGE=DHCPACK: new lease mac=52:54:00:12:34:56 ip=192.168.1.101\n\
             PRIORITY=6\n\
             SYSLOG_IDENTIFIER=headnode\n\
             HEADNODE_MAC=52:54:00:12:34:56\n\
             HEADNODE_IP=192.168.1.101\n"
        );
        // A value with a newline goes with its length.
        let got = native_entry(3, "reload rejected:\nline 2", &[]);
        let mut want = b"MESSAGE\n".to_vec();
        want.extend_from_slice(&23u64.to_le_bytes());
        want.extend_from_slice(b"reload rejected:\nline 2\n");
        assert!(got.starts_with(&want), "{got:?}");
        assert_eq!(field_key("real.addr-x"), "HEADNODE_REAL_ADDR_X");
    }

    #[test]
    fn journal_stream_is_device_colon_inode() {
        assert_eq!(parse_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_stream("8"), None);
        assert_eq!(parse_stream("x:1"), None);
    }
}
