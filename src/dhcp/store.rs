//! The lease file: an append-only log of `Record` lines, last line per
//! address wins. Crash safety comes from three rules:
//! - appends are whole lines, and a pool ACK leaves only after the fdatasync
//!   that covers its line (the writer thread batches many lines per sync);
//! - compaction writes a new file, syncs it, renames it over the old one and
//!   syncs the directory, so a crash leaves either file complete;
//! - a bad line at start-up is reported with its number and skipped, the
//!   file is copied aside first, every good line is kept, and the file is
//!   rewritten without it.

use super::leases::Record;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

const HEADER: &str = "# headnode leases v1: state address mac expires seen hostname\n";
/// Compact once the log holds this many lines more than live records.
const COMPACT_SLACK: usize = 4096;

/// A line that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct Loaded {
    /// Good records in file order (later ones win).
    pub records: Vec<Record>,
    pub problems: Vec<Problem>,
}

/// Parse lease file text. A last line without its newline was cut short
/// by a crash or a full disk and is reported, not used.
pub fn parse(text: &str) -> Loaded {
    let mut out = Loaded::default();
    let mut lines = text.split('\n').enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let last = lines.peek().is_none();
        if last && line.is_empty() {
            break;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if last {
            out.problems.push(Problem {
                line: i + 1,
                message: "truncated (no newline at the end of the file)".into(),
            });
            break;
        }
        match Record::parse_line(line) {
            Ok(r) => out.records.push(r),
            Err(message) => out.problems.push(Problem {
                line: i + 1,
                message,
            }),
        }
    }
    out
}

/// Read the lease file for display; a missing file has no leases.
pub fn read(path: &Path) -> io::Result<Loaded> {
    match fs::read(path) {
        Ok(bytes) => Ok(parse(&String::from_utf8_lossy(&bytes))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Loaded::default()),
        Err(e) => Err(e),
    }
}

/// The open lease file, owned by the writer thread.
#[derive(Debug)]
pub struct LeaseFile {
    path: PathBuf,
    file: File,
    /// Held for the life of the server: one server per lease file.
    _lock: File,
    /// The live record per address, to compact without asking the server.
    live: HashMap<Ipv4Addr, Record>,
    lines: usize,
    /// The last append failed part-way: start the next one on a new line.
    torn: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use lease file {path}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "lease file {path} is in use by another headnode (lock {lock} is held); stop it first or set a different dhcp.lease_file"
    )]
    Locked { path: PathBuf, lock: PathBuf },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

impl LeaseFile {
    /// Lock, load, set aside a damaged file, and rewrite it compacted.
    pub fn open(path: &Path) -> Result<(LeaseFile, Loaded), StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let lock_path = PathBuf::from(format!("{}.lock", path.display()));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(StoreError::Locked {
                path: path.to_owned(),
                lock: lock_path,
            });
        }
        let loaded = read(path).map_err(io_err(path))?;
        if !loaded.problems.is_empty() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let aside = PathBuf::from(format!("{}.bad-{now}", path.display()));
            fs::copy(path, &aside).map_err(io_err(&aside))?;
            for p in &loaded.problems {
                tracing::warn!(
                    "lease file {}:{}: {}; line skipped",
                    path.display(),
                    p.line,
                    p.message
                );
            }
            tracing::warn!(
                "lease file {}: {} bad line(s) skipped, {} good record(s) kept; the original is saved as {}",
                path.display(),
                loaded.problems.len(),
                loaded.records.len(),
                aside.display()
            );
        }
        let live: HashMap<Ipv4Addr, Record> =
            loaded.records.iter().map(|r| (r.ip, r.clone())).collect();
        let lines = loaded.records.len();
        // A clean, compact file is appended to as it is: start-up then
        // costs no rewrite and no sync.
        let clean = loaded.problems.is_empty() && lines <= live.len() + COMPACT_SLACK;
        let existing = if clean {
            match OpenOptions::new().append(true).open(path) {
                Ok(f) => Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_err(path)(e)),
            }
        } else {
            None
        };
        let needs_compact = existing.is_none();
        let mut lf = LeaseFile {
            path: path.to_owned(),
            // Without an existing file, replaced by `compact` right below.
            file: match existing {
                Some(f) => f,
                None => lock.try_clone().map_err(io_err(&lock_path))?,
            },
            _lock: lock,
            live,
            lines,
            torn: false,
        };
        if needs_compact {
            lf.compact().map_err(io_err(path))?;
        }
        Ok((lf, loaded))
    }

    /// Append records; with `sync`, return only once they are on disk.
    pub fn append(&mut self, records: &[Record], sync: bool, text: &mut String) -> io::Result<()> {
        text.clear();
        if self.torn {
            text.push('\n');
        }
        for r in records {
            r.write_line(text);
        }
        if !text.is_empty() {
            if let Err(e) = self.file.write_all(text.as_bytes()) {
                self.torn = true;
                return Err(e);
            }
            self.torn = false;
        }
        if sync {
            self.file.sync_data()?;
        }
        for r in records {
            self.live.insert(r.ip, r.clone());
        }
        self.lines += records.len();
        if self.lines > self.live.len() + COMPACT_SLACK {
            self.compact()?;
        }
        Ok(())
    }

    /// Rewrite the file with one line per address.
    fn compact(&mut self) -> io::Result<()> {
        let tmp = PathBuf::from(format!("{}.tmp", self.path.display()));
        let mut records: Vec<&Record> = self.live.values().collect();
        records.sort_by_key(|r| r.ip);
        let mut text = String::with_capacity(HEADER.len() + records.len() * 64);
        text.push_str(HEADER);
        for r in records {
            r.write_line(&mut text);
        }
        {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        sync_dir(&self.path)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.lines = self.live.len();
        self.torn = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "bound 10.0.0.10 02:00:00:00:00:01 200 100 -\n";

    #[test]
    fn reports_bad_and_truncated_lines_and_keeps_the_good_ones() {
        let text = format!(
            "{HEADER}{GOOD}garbage here\nbound 10.0.0.11 02:00:00:00:00:02 200 100 -\nbound 10.0.0.12 02:00"
        );
        let l = parse(&text);
        assert_eq!(l.records.len(), 2);
        assert_eq!(l.problems.len(), 2);
        assert_eq!(l.problems[0].line, 3);
        assert!(l.problems[0].message.contains("6 fields"));
        assert_eq!(l.problems[1].line, 5);
        assert!(l.problems[1].message.contains("truncated"));
    }

    #[test]
    fn open_compacts_sets_aside_damage_and_locks() {
        let dir = std::env::temp_dir().join(format!("hn-dhcp-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("leases");
        fs::create_dir_all(&dir).expect("dir");
        fs::write(&path, format!("{GOOD}{GOOD}bad\n")).expect("write");
        let (mut lf, loaded) = LeaseFile::open(&path).expect("opens despite a bad line");
        assert_eq!(loaded.records.len(), 2);
        assert_eq!(loaded.problems.len(), 1);
        let names: Vec<String> = fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().any(|n| n.starts_with("leases.bad-")),
            "{names:?}"
        );
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            format!("{HEADER}{GOOD}"),
            "compacted to one line per address"
        );
        assert!(matches!(
            LeaseFile::open(&path),
            Err(StoreError::Locked { .. })
        ));
        let r = Record::parse_line("released 10.0.0.10 02:00:00:00:00:01 300 300 -").expect("ok");
        lf.append(std::slice::from_ref(&r), true, &mut String::new())
            .expect("append");
        let again = read(&path).expect("read");
        assert_eq!(again.records.last(), Some(&r));
        assert!(again.problems.is_empty());
        // Many renewals of one lease: the log is compacted as it grows.
        let mut text = String::new();
        for i in 0..(COMPACT_SLACK as u64 + 100) {
            let mut r = r.clone();
            r.expires = 1000 + i;
            lf.append(&[r], false, &mut text).expect("append");
        }
        let lines = fs::read_to_string(&path).expect("read").lines().count();
        assert!(lines < 200, "{lines} lines after compaction");
        assert_eq!(
            read(&path).expect("read").records.last().map(|r| r.expires),
            Some(1000 + COMPACT_SLACK as u64 + 99),
            "the latest record survives compaction"
        );
        drop(lf);
        let _ = fs::remove_dir_all(&dir);
    }
}
