//! What the import could not carry over, and what is wrong in the inputs,
//! each pointing at `file:line`.

use std::fmt;
use std::rc::Rc;

/// A place in one of the legacy files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub file: Rc<str>,
    pub line: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0 stands for the file as a whole (e.g. one that is missing).
        match self.line {
            0 => write!(f, "{}", self.file),
            n => write!(f, "{}:{n}", self.file),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The input is wrong (or contradicts itself); the config carries a `# FIXME`
    /// and the import exits 1.
    Error,
    /// A construct headnode's config cannot express, or that the import leaves out.
    Skipped,
    /// Translated, but differently than written (covered by a default, redundant, ...).
    Note,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub at: Loc,
    pub kind: Kind,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub entries: Vec<Entry>,
    /// Files in the order they were read, to group the entries.
    files: Vec<Rc<str>>,
}

impl Report {
    /// Note that `file` is being read (its entries are listed in this order).
    pub fn saw(&mut self, file: &Rc<str>) {
        if !self.files.contains(file) {
            self.files.push(file.clone());
        }
    }
    pub fn error(&mut self, at: &Loc, message: impl Into<String>) {
        self.push(at, Kind::Error, message.into());
    }
    pub fn skip(&mut self, at: &Loc, message: impl Into<String>) {
        self.push(at, Kind::Skipped, message.into());
    }
    pub fn note(&mut self, at: &Loc, message: impl Into<String>) {
        self.push(at, Kind::Note, message.into());
    }
    fn push(&mut self, at: &Loc, kind: Kind, message: String) {
        // One line of input can expand to several pieces that all say the same.
        if self
            .entries
            .iter()
            .any(|e| e.at == *at && e.kind == kind && e.message == message)
        {
            return;
        }
        self.entries.push(Entry {
            at: at.clone(),
            kind,
            message,
        });
    }
    pub fn count(&self, kind: Kind) -> usize {
        self.entries.iter().filter(|e| e.kind == kind).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Grouped by file (in the order the files were read), then by line;
        // messages about files never read (the config itself) come last.
        let mut sorted: Vec<&Entry> = self.entries.iter().collect();
        sorted.sort_by_key(|e| {
            let rank = self.files.iter().position(|f| *f == e.at.file);
            (rank.unwrap_or(usize::MAX), e.at.line)
        });
        for e in sorted {
            let kind = match e.kind {
                Kind::Error => "error",
                Kind::Skipped => "not translated",
                Kind::Note => "note",
            };
            writeln!(f, "{}: {kind}: {}", e.at, e.message)?;
        }
        let (errors, skipped, notes) = (
            self.count(Kind::Error),
            self.count(Kind::Skipped),
            self.count(Kind::Note),
        );
        writeln!(
            f,
            "import: {errors} error{}, {skipped} not translated, {notes} note{}",
            if errors == 1 { "" } else { "s" },
            if notes == 1 { "" } else { "s" }
        )
    }
}
