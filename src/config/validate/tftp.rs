//! `[tftp]`: the read-only TFTP server for network boot.

use super::Validator;
use crate::config::model::Tftp;
use crate::config::raw::*;

impl Validator<'_> {
    /// The server's settings, or `None` when it is off or the table is wrong.
    pub(super) fn tftp(&mut self, raw: &S<RawTftp>) -> Option<Tftp> {
        let t = raw.get_ref();
        let root = match &t.root {
            Some(r) => {
                let root = self.text(r, "tftp.root", 4096);
                if root.as_ref().is_some_and(|p| !p.starts_with('/')) {
                    self.err(
                        r.span(),
                        "tftp.root",
                        "is not an absolute path".into(),
                        Some("write the directory from /, e.g. \"/srv/tftp\""),
                    );
                    None
                } else {
                    root
                }
            }
            None => {
                self.err(
                    raw.span(),
                    "tftp.root",
                    "[tftp] has no root".into(),
                    Some("add root = \"/srv/tftp\" (the directory the boot files are served from)"),
                );
                None
            }
        };
        let max_transfers = t
            .max_transfers
            .as_ref()
            .and_then(|n| self.count(n, "tftp.max_transfers", 1, 10_000))
            .unwrap_or(256);
        let max_transfers_per_client = t
            .max_transfers_per_client
            .as_ref()
            .and_then(|n| self.count(n, "tftp.max_transfers_per_client", 1, 10_000))
            .unwrap_or(8);
        let max_blksize = t
            .max_blksize
            .as_ref()
            .and_then(|n| self.count(n, "tftp.max_blksize", 512, 65464))
            .unwrap_or(1468);
        if !t.enabled.unwrap_or(true) {
            return None;
        }
        Some(Tftp {
            root: root?.into(),
            max_transfers,
            max_transfers_per_client,
            max_blksize: max_blksize as u16,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::cases::{check_all, lan};
    use crate::config::parse;
    use std::path::Path;

    #[test]
    fn defaults_and_off() {
        let cfg = parse(&lan("[tftp]\nroot = \"/srv/tftp\"\n"), Path::new("t.toml")).unwrap();
        let t = cfg.tftp.unwrap();
        assert_eq!(
            (t.max_transfers, t.max_transfers_per_client, t.max_blksize),
            (256, 8, 1468)
        );
        let off = lan("[tftp]\nenabled = false\nroot = \"/srv/tftp\"\n");
        assert!(parse(&off, Path::new("t.toml")).unwrap().tftp.is_none());
        assert!(parse(&lan(""), Path::new("t.toml")).unwrap().tftp.is_none());
    }

    #[test]
    fn diagnostics() {
        check_all(&[
            (
                lan("[tftp] # <-\nmax_transfers = 4\n"),
                "tftp.root",
                "[tftp] has no root",
            ),
            (
                lan("[tftp]\nroot = \"srv/tftp\" # <-\n"),
                "tftp.root",
                "is not an absolute path",
            ),
            (
                lan("[tftp]\nroot = \"/srv\"\nmax_transfers = 0 # <-\n"),
                "tftp.max_transfers",
                "0 is out of range",
            ),
            (
                lan("[tftp]\nroot = \"/srv\"\nmax_transfers_per_client = 0 # <-\n"),
                "tftp.max_transfers_per_client",
                "0 is out of range",
            ),
            (
                lan("[tftp]\nroot = \"/srv\"\nmax_blksize = 70000 # <-\n"),
                "tftp.max_blksize",
                "70000 is out of range",
            ),
        ]);
    }
}
