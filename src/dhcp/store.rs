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
//!   rewritten without it. A last line cut short (a crash or a full disk
//!   mid-append) was never acknowledged: it is logged and cut off in place,
//!   which needs no free space and leaves no copy behind;
//! - after compaction's rename the writer appends to the new file through
//!   the handle it wrote it with, so it never writes to an unlinked file;
//!   until the directory sync that makes the rename durable succeeds, no
//!   append counts as on disk.

use super::leases::{Record, State};
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
    /// The last compaction's rename may not be on disk yet; a power loss
    /// could bring the old file back, so nothing appended is durable until
    /// a directory sync succeeds.
    dir_unsynced: bool,
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
    fault(path, Step::SyncDir)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// The file system steps a test can make fail (`fail_at`), to check what
/// the server does when the disk does it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Read,
    CopyAside,
    WriteCompacted,
    SyncDir,
    Append,
}

#[cfg(not(test))]
fn fault(_: &Path, _: Step) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
static FAULTS: std::sync::Mutex<Vec<(PathBuf, Step)>> = std::sync::Mutex::new(Vec::new());

/// Make `step` fail on the lease file `path` until `heal(path)`; keyed by
/// path so tests running at once do not see each other's faults.
#[cfg(test)]
pub fn fail_at(path: &Path, step: Step) {
    FAULTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((path.to_owned(), step));
}

#[cfg(test)]
pub fn heal(path: &Path) {
    FAULTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(p, _)| p != path);
}

#[cfg(test)]
fn fault(path: &Path, step: Step) -> io::Result<()> {
    let faults = FAULTS.lock().unwrap_or_else(|e| e.into_inner());
    if faults.iter().any(|(p, s)| p == path && *s == step) {
        return Err(io::Error::other(format!("injected failure at {step:?}")));
    }
    Ok(())
}

/// Cut a last line that has no newline (never acknowledged: its sync did
/// not finish) off the file in place; returns what was cut.
fn cut_torn_tail(path: &Path, bytes: &mut Vec<u8>) -> io::Result<Option<String>> {
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(None);
    }
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let f = OpenOptions::new().write(true).open(path)?;
    f.set_len(keep as u64)?;
    f.sync_all()?;
    let cut = String::from_utf8_lossy(&bytes[keep..]).into_owned();
    bytes.truncate(keep);
    Ok(Some(cut))
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
        let mut bytes = match fault(path, Step::Read).and_then(|()| fs::read(path)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(path)(e)),
        };
        if let Some(cut) = cut_torn_tail(path, &mut bytes).map_err(io_err(path))? {
            tracing::warn!(
                "lease file {}: the last line was cut short (a crash or a full disk while writing it; \
                 it was never acknowledged) and is removed: {:?}",
                path.display(),
                cut
            );
        }
        let loaded = parse(&String::from_utf8_lossy(&bytes));
        if !loaded.problems.is_empty() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let aside = PathBuf::from(format!("{}.bad-{now}", path.display()));
            fault(path, Step::CopyAside)
                .and_then(|()| fs::copy(path, &aside))
                .map_err(io_err(&aside))?;
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
            dir_unsynced: false,
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
            let written =
                fault(&self.path, Step::Append).and_then(|()| self.file.write_all(text.as_bytes()));
            if let Err(e) = written {
                self.torn = true;
                return Err(e);
            }
            self.torn = false;
        }
        if sync {
            self.file.sync_data()?;
            if self.dir_unsynced {
                sync_dir(&self.path)?;
                self.dir_unsynced = false;
            }
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
        // An offer is a 30 s hold in memory, never promised: it is not a
        // line the loader accepts, and a restart may forget it.
        let mut records: Vec<&Record> = live.filter(|r| r.state != State::Offered).collect();
        records.sort_by_key(|r| r.ip);
        fault(&self.path, Step::WriteCompacted)?;
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
    /// old one, sync the directory, and append to it from now on. Until the
    /// rename the old file stays the one appended to; from the rename on it
    /// is the new one, through the handle that wrote it (reopening by name
    /// could fail and leave the writer on the unlinked old file).
    pub fn install(&mut self, c: Compacted) -> io::Result<()> {
        let Compacted { tmp, file, lines } = c;
        if let Err(e) = file.sync_all().and_then(|()| fs::rename(&tmp, &self.path)) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.file = file;
        self.lines = lines;
        self.compacted = lines;
        self.torn = false;
        self.dir_unsynced = true;
        sync_dir(&self.path)?;
        self.dir_unsynced = false;
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

    /// A fresh directory for one test, removed when dropped.
    struct Dir(PathBuf);

    impl Dir {
        fn new(test: &str) -> Dir {
            let d = std::env::temp_dir().join(format!("hn-dhcp-{test}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&d);
            fs::create_dir_all(&d).expect("dir");
            Dir(d)
        }
        fn names(&self) -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(&self.0)
                .expect("list")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            heal(&self.0.join("leases"));
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn rec(line: &str) -> Record {
        Record::parse_line(line).expect("valid line")
    }

    #[test]
    fn compaction_writes_only_what_the_loader_accepts() {
        let dir = Dir::new("compact-states");
        let path = dir.0.join("leases");
        let (mut lf, _) = LeaseFile::open(&path).expect("open");
        let bound = rec("bound 10.0.0.10 02:00:00:00:00:01 200 100 host1");
        let released = rec("released 10.0.0.11 02:00:00:00:00:02 150 150 -");
        let declined = rec("declined 10.0.0.12 02:00:00:00:00:03 3700 100 -");
        let mut offered = rec("bound 10.0.0.13 02:00:00:00:00:04 130 100 -");
        offered.state = State::Offered;
        let all = [&bound, &released, &declined, &offered];
        let c = lf.write_compacted(all.into_iter()).expect("write");
        lf.install(c).expect("install");
        drop(lf);
        let (_lf, loaded) = LeaseFile::open(&path).expect("restart");
        assert_eq!(loaded.problems, vec![], "nothing the loader rejects");
        assert_eq!(loaded.records, vec![bound, released, declined]);
        assert_eq!(dir.names(), ["leases", "leases.lock"], "no copy set aside");
    }

    #[test]
    fn after_the_rename_appends_go_to_the_named_file_even_if_the_directory_sync_fails() {
        let dir = Dir::new("rename");
        let path = dir.0.join("leases");
        let (mut lf, _) = LeaseFile::open(&path).expect("open");
        let a = rec("bound 10.0.0.10 02:00:00:00:00:01 200 100 -");
        let b = rec("bound 10.0.0.11 02:00:00:00:00:02 200 100 -");
        let mut text = String::new();
        lf.append(std::slice::from_ref(&a), true, &mut text)
            .expect("append");
        fail_at(&path, Step::SyncDir);
        let c = lf.write_compacted([&a].into_iter()).expect("write");
        assert!(lf.install(c).is_err(), "the directory sync failed");
        // The rename is not known to be on disk: nothing is durable yet.
        assert!(
            lf.append(std::slice::from_ref(&b), true, &mut text)
                .is_err()
        );
        heal(&path);
        lf.append(&[], true, &mut text)
            .expect("the directory syncs now");
        let on_disk = read(&path).expect("read");
        assert_eq!(
            on_disk.records,
            vec![a, b],
            "written to the file that has the name"
        );
    }

    #[test]
    fn a_last_line_cut_by_a_full_disk_is_cut_off_in_place_without_a_copy() {
        let dir = Dir::new("torn");
        let path = dir.0.join("leases");
        fs::write(&path, format!("{HEADER}{GOOD}bound 10.0.0.11 02:00:00:00")).expect("write");
        let (_lf, loaded) = LeaseFile::open(&path).expect("opens");
        assert_eq!(loaded.problems, vec![]);
        assert_eq!(loaded.records.len(), 1);
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            format!("{HEADER}{GOOD}")
        );
        assert_eq!(dir.names(), ["leases", "leases.lock"], "no copy set aside");
    }

    #[test]
    fn read_and_copy_aside_failures_are_errors_that_name_the_file() {
        let dir = Dir::new("faults");
        let path = dir.0.join("leases");
        fs::write(&path, format!("{GOOD}bad\n")).expect("write");
        fail_at(&path, Step::Read);
        let e = LeaseFile::open(&path).expect_err("cannot read");
        assert!(e.to_string().contains("leases"), "{e}");
        heal(&path);
        fail_at(&path, Step::CopyAside);
        let e = LeaseFile::open(&path).expect_err("cannot copy aside");
        assert!(e.to_string().contains("leases.bad-"), "{e}");
        heal(&path);
        fail_at(&path, Step::WriteCompacted);
        LeaseFile::open(&path).expect_err("cannot compact");
        heal(&path);
        let (_lf, loaded) = LeaseFile::open(&path).expect("works once healed");
        assert_eq!(loaded.records.len(), 1);
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
