//! Configuration: one TOML file describes the whole head node.
//!
//! `load` reads the file, `parse` turns text into the validated [`model::Config`].
//! Validation is pure: it never looks at interfaces or the kernel, and it
//! reports every problem it finds in one pass, each with file, line and column.

pub mod fuzzing;
mod host_blocks;
pub mod model;
mod plain_host;
pub mod raw;
mod validate;

pub use model::Config;
pub use validate::parse_duration;
/// The strict parsers validation uses, shared with `import` so both judge values alike.
pub use validate::{parse_ipv4, parse_mac};

use std::fmt;
use std::path::{Path, PathBuf};

/// Default location of the config file.
pub const DEFAULT_PATH: &str = "/etc/headnode/headnode.toml";

/// One problem in the config, pointing at where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub col: usize,
    /// Dotted path of the field, e.g. `host[2].mac`.
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

/// All problems found in one file.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors {
    pub path: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.diagnostics {
            writeln!(
                f,
                "error: {}:{}:{}: {}: {}",
                self.path.display(),
                d.line,
                d.col,
                d.field,
                d.message
            )?;
            if let Some(h) = &d.hint {
                writeln!(f, "  hint: {h}")?;
            }
        }
        write!(
            f,
            "{} error{} in {}",
            self.diagnostics.len(),
            if self.diagnostics.len() == 1 { "" } else { "s" },
            self.path.display()
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read config {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Invalid(#[from] ConfigErrors),
}

/// Read and validate the config at `path`.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    load_text(path).map(|(cfg, _)| cfg)
}

/// `load`, with the text it read (the daemon keeps it to go back to).
pub fn load_text(path: &Path) -> Result<(Config, String), LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    let cfg = parse(&text, path)?;
    Ok((cfg, text))
}

/// The public address is `"auto"` and its interface has none (yet).
#[derive(Debug, thiserror::Error)]
#[error(
    "interfaces.public.address is \"auto\" but {interface} has no IPv4 address; \
     configure the interface or write the address in the config"
)]
pub struct Unresolved {
    pub interface: String,
}

/// Read and validate the config at `path`, then fill in the public address
/// with `resolve(interface name)` when the config says `"auto"`. The lookup
/// is passed in so that this module never reads the kernel itself.
pub fn load_resolved(
    path: &Path,
    resolve: impl FnOnce(&str) -> Option<ipnet::Ipv4Net>,
) -> anyhow::Result<Config> {
    Ok(load_resolved_text(path, resolve)?.0)
}

/// `load_resolved`, and the text it read: the daemon keeps the text of the
/// config it runs, to go back to it after an unconfirmed `apply --confirm`.
pub fn load_resolved_text(
    path: &Path,
    resolve: impl FnOnce(&str) -> Option<ipnet::Ipv4Net>,
) -> anyhow::Result<(Config, String)> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    let cfg = parse_resolved(&text, path, resolve)?;
    Ok((cfg, text))
}

/// `parse`, then the public address filled in as `load_resolved` does.
pub fn parse_resolved(
    text: &str,
    path: &Path,
    resolve: impl FnOnce(&str) -> Option<ipnet::Ipv4Net>,
) -> anyhow::Result<Config> {
    let mut cfg = parse(text, path).map_err(LoadError::from)?;
    if cfg.public.address.is_none() {
        let a = resolve(&cfg.public.name).ok_or_else(|| Unresolved {
            interface: cfg.public.name.clone(),
        })?;
        cfg.resolve_public(a);
    }
    Ok(cfg)
}

/// Validate config text; `path` is only used in messages.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    validate::parse(text, path).map_err(|diagnostics| ConfigErrors {
        path: path.to_owned(),
        diagnostics,
    })
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let line = text[..offset].matches('\n').count() + 1;
    (line, column(text, offset))
}

/// 1-based column, in characters, of a byte offset.
pub(crate) fn column(text: &str, offset: usize) -> usize {
    let before = &text[..offset.min(text.len())];
    before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1
}

/// Config text for unit tests: the origin box's two interfaces.
#[cfg(test)]
pub(crate) mod test_text {
    pub const INTERFACES: &str = r#"
[interfaces.public]
name = "eth1"
address = "203.0.113.210/24"

[interfaces.private]
name = "eth0"
address = "192.168.1.254/24"
"#;
}
