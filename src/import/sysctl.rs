//! sysctl.conf: `key = value` lines become `[sysctl]` entries; ip_forward is
//! headnode's own business.

use super::report::{Loc, Report};
use std::path::Path;
use std::rc::Rc;

#[derive(Debug, Clone)]
pub struct Setting {
    pub at: Loc,
    pub key: String,
    pub value: String,
}

pub fn load(path: &Path, report: &mut Report) -> Result<Vec<Setting>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: Rc<str> = path.display().to_string().into();
    report.saw(&file);
    let mut out: Vec<Setting> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let at = Loc {
            file: file.clone(),
            line: i + 1,
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            report.skip(&at, format!("`{line}` is not `key = value`"));
            continue;
        };
        // A leading '-' only tells sysctl to ignore errors; '/' is an alternative separator.
        let key = key.trim().trim_start_matches('-').replace('/', ".");
        let value = value.trim().to_string();
        let key_ok = key.split('.').count() >= 2
            && key.split('.').all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            });
        if !key_ok || key.contains('*') {
            report.skip(
                &at,
                format!("`{line}`: \"{key}\" is not a plain sysctl name"),
            );
            continue;
        }
        if key == "net.ipv4.ip_forward" {
            if value == "1" {
                report.note(&at, "headnode sets net.ipv4.ip_forward = 1 itself");
            } else {
                report.note(
                    &at,
                    format!(
                        "`{line}`: a head node must forward; headnode sets net.ipv4.ip_forward = 1"
                    ),
                );
            }
            continue;
        }
        // Later lines win, as with `sysctl -p`.
        if let Some(prev) = out.iter().position(|s| s.key == key) {
            report.note(
                &out[prev].at,
                format!("{key} is set again on line {}", at.line),
            );
            out.remove(prev);
        }
        out.push(Setting { at, key, value });
    }
    Ok(out)
}
