//! tftpd-hpa's /etc/default/tftpd-hpa: `TFTP_DIRECTORY` becomes `[tftp]
//! root`, `--blocksize` its `max_blksize`. headnode always does what
//! `--secure` does (names resolve beneath the root) and never accepts
//! uploads, so `--create` and the other options are reported, not kept.

use super::report::{Loc, Report};
use std::path::Path;
use std::rc::Rc;

#[derive(Debug, Clone)]
pub struct Tftpd {
    pub at: Loc,
    pub root: String,
    /// `--blocksize` and the line it is on.
    pub max_blksize: Option<(u16, Loc)>,
}

pub fn load(path: &Path, report: &mut Report) -> Result<Option<Tftpd>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: Rc<str> = path.display().to_string().into();
    report.saw(&file);
    Ok(parse(&text, &file, report))
}

fn parse(text: &str, file: &Rc<str>, report: &mut Report) -> Option<Tftpd> {
    let mut out: Option<Tftpd> = None;
    let mut blksize = None;
    for (i, raw) in text.lines().enumerate() {
        let at = Loc {
            file: file.clone(),
            line: i + 1,
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            report.skip(&at, format!("`{line}` is not `NAME=value`"));
            continue;
        };
        let value = value.trim().trim_matches('"').trim_matches('\'');
        match key.trim() {
            "TFTP_DIRECTORY" => {
                out = Some(Tftpd {
                    at: at.clone(),
                    root: value.to_string(),
                    max_blksize: None,
                })
            }
            "TFTP_USERNAME" => report.note(
                &at,
                "headnode serves as the daemon's own user; it reads only world-readable files",
            ),
            "TFTP_ADDRESS" => report.note(
                &at,
                format!(
                    "TFTP_ADDRESS={value}: headnode serves TFTP on the private address, port 69"
                ),
            ),
            "TFTP_OPTIONS" => {
                let mut words = value.split_whitespace();
                while let Some(w) = words.next() {
                    match w {
                        "-s" | "--secure" => {}
                        "-B" | "--blocksize" => match words.next().and_then(|n| n.parse().ok()) {
                            Some(n) if (512..=65464).contains(&n) => {
                                blksize = Some((n, at.clone()))
                            }
                            _ => {
                                report.skip(&at, format!("`{w}` without a block size of 512-65464"))
                            }
                        },
                        "-c" | "--create" => report.note(
                            &at,
                            "--create: headnode's TFTP is read-only; uploads are refused",
                        ),
                        other => {
                            report.skip(&at, format!("option `{other}` has no headnode equivalent"))
                        }
                    }
                }
            }
            other => report.skip(&at, format!("`{other}` is not a tftpd-hpa setting")),
        }
    }
    if let Some(t) = &mut out {
        t.max_blksize = blksize;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_default_file() {
        let text = "# /etc/default/tftpd-hpa\n\nTFTP_USERNAME=\"tftp\"\nTFTP_DIRECTORY=\"/srv/tftp\"\nTFTP_ADDRESS=\":69\"\nTFTP_OPTIONS=\"--secure --create -B 1468 -v\"\n";
        let mut report = Report::default();
        let t = parse(text, &"tftpd-hpa".into(), &mut report).unwrap();
        let blksize = t.max_blksize.map(|(b, at)| (b, at.line));
        assert_eq!(
            (t.root.as_str(), blksize, t.at.line),
            ("/srv/tftp", Some((1468, 6)), 4)
        );
        let r = report.to_string();
        assert!(r.contains("read-only") && r.contains("`-v` has no"), "{r}");
    }
}
