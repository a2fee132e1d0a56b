//! The lease file: an append-only log of `Record` lines, last line per
//! address wins. Crash safety comes from three rules:
//! - appends are whole lines, and a pool ACK leaves only after the fdatasync
//!   that covers its line (the writer thread batches many lines per sync);
//! - compaction writes a new file, syncs it, renames it over the old one and
//!   syncs the directory, so a crash leaves either file complete; it writes
//!   the server's bindings, so the file keeps no copy of them in memory, and
//!   runs when the log has doubled, so rewrites cost O(1) per appended line;
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
/// Compact once the log holds this many lines more than twice the records
/// it was last compacted to.
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
    /// Lines in the file now, and right after the last compaction.
    lines: usize,
    compacted: usize,
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
        // The last record per address: what a compacted file holds.
        let mut latest: HashMap<Ipv4Addr, &Record> = HashMap::new();
        for r in &loaded.records {
            latest.insert(r.ip, r);
        }
        let lines = loaded.records.len();
        // A clean, compact file is appended to as it is: start-up then
        // costs no rewrite and no sync.
        let clean = loaded.problems.is_empty() && lines <= latest.len() + COMPACT_SLACK;
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
            lines,
            compacted: latest.len(),
            torn: false,
        };
        if needs_compact {
            let c = lf.write_compacted(latest.into_values());
            c.and_then(|c| lf.install(c)).map_err(io_err(path))?;
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
        self.lines += records.len();
        Ok(())
    }

    /// Has the log grown enough that rewriting it pays?
    pub fn wants_compaction(&self) -> bool {
        self.lines > 2 * self.compacted + COMPACT_SLACK
    }

    /// Put compaction off until the log has doubled again (after it failed).
    pub fn postpone_compaction(&mut self) {
        self.compacted = self.lines;
    }

    /// Write `live`, one record per address, to a new file beside the
    /// lease file. The caller holds the server's lock for this part only:
    /// it formats and writes to the page cache, `install` does the syncs.
    pub fn write_compacted<'r>(
        &self,
        live: impl Iterator<Item = &'r Record>,
    ) -> io::Result<Compacted> {
        let tmp = PathBuf::from(format!("{}.tmp", self.path.display()));
        let mut records: Vec<&Record> = live.collect();
        records.sort_by_key(|r| r.ip);
        let mut out = io::BufWriter::with_capacity(1 << 16, File::create(&tmp)?);
        out.write_all(HEADER.as_bytes())?;
        let mut line = String::new();
        for r in &records {
            line.clear();
            r.write_line(&mut line);
            out.write_all(line.as_bytes())?;
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        Ok(Compacted {
            tmp,
            file,
            lines: records.len(),
        })
    }

    /// Make a written compaction the lease file: sync it, rename it over the
    /// old one, sync the directory, and append to it from now on.
    pub fn install(&mut self, c: Compacted) -> io::Result<()> {
        c.file.sync_all()?;
        fs::rename(&c.tmp, &self.path)?;
        sync_dir(&self.path)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.lines = c.lines;
        self.compacted = c.lines;
        self.torn = false;
        Ok(())
    }
}

/// A compacted lease file written beside the real one, not yet in place.
#[derive(Debug)]
pub struct Compacted {
    tmp: PathBuf,
    file: File,
    lines: usize,
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
        // Many renewals of one lease: the log asks to be compacted once it
        // has doubled, and compaction keeps only what it is given.
        let mut text = String::new();
        let mut latest = r.clone();
        for i in 0..(COMPACT_SLACK as u64 + 100) {
            // Two lines after open's compaction (of one address), so more
            // than 2 * 1 + COMPACT_SLACK from here on.
            assert_eq!(lf.wants_compaction(), i + 2 > COMPACT_SLACK as u64 + 2);
            latest.expires = 1000 + i;
            lf.append(std::slice::from_ref(&latest), false, &mut text)
                .expect("append");
        }
        assert!(lf.wants_compaction());
        let c = lf.write_compacted([&latest].into_iter()).expect("write");
        lf.install(c).expect("install");
        assert!(!lf.wants_compaction());
        let after = read(&path).expect("read");
        assert_eq!(after.records, vec![latest.clone()], "one line per address");
        lf.append(std::slice::from_ref(&r), true, &mut text)
            .expect("append after compaction");
        assert_eq!(read(&path).expect("read").records, vec![latest, r]);
        drop(lf);
        let _ = fs::remove_dir_all(&dir);
    }
}
