//! `headnode import`: write the config translated from the legacy files and
//! the report of what was not translated.
//!
//! Exit 0: the config is complete. Exit 1: the inputs have problems; the
//! config is still written, with a `# FIXME` at each, and the report names
//! them (file:line). Nothing is written when an input cannot be read at all.

use super::InvalidInput;
use crate::cli::ImportArgs;
use crate::import::{self, HEADER, Inputs};
use anyhow::Context;
use std::path::{Path, PathBuf};

pub fn run(args: &ImportArgs) -> anyhow::Result<()> {
    let inputs = Inputs {
        interfaces: args.interfaces.clone(),
        dhcpd: args.dhcpd.clone(),
        hosts: args.hosts.clone(),
        shorewall: args.shorewall.clone(),
        ipvsadm: args.ipvsadm.clone(),
        sysctl: args.sysctl.clone(),
        tftpd: args.tftpd_hpa.clone(),
        dnsmasq: args.dnsmasq.clone(),
        keepalived: args.keepalived.clone(),
    };
    if [
        &inputs.interfaces,
        &inputs.dhcpd,
        &inputs.hosts,
        &inputs.shorewall,
        &inputs.ipvsadm,
        &inputs.sysctl,
        &inputs.tftpd,
        &inputs.dnsmasq,
        &inputs.keepalived,
    ]
    .iter()
    .all(|p| p.is_none())
    {
        return Err(InvalidInput(
            "nothing to import: give at least one of --interfaces, --dhcpd, --hosts, --shorewall, --ipvsadm, --sysctl, --tftpd-hpa, --dnsmasq, --keepalived"
                .into(),
        )
        .into());
    }
    let shown = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from("headnode.toml"));
    let imported = import::import(&inputs, &shown).map_err(|e| InvalidInput(e.to_string()))?;
    let report = imported.report.to_string();
    match &args.output {
        Some(path) => {
            refuse_to_clobber(path)?;
            write(path, &imported.config)?;
            let report_path = report_path(path);
            write(&report_path, &report)?;
            eprint!("{report}");
            eprintln!(
                "import: wrote {} and {}",
                path.display(),
                report_path.display()
            );
        }
        None => {
            print!("{}", imported.config);
            eprint!("{report}");
        }
    }
    if imported.has_errors() {
        return Err(InvalidInput(format!(
            "the legacy files have {} problem(s); the config carries a `# FIXME` at each (see the report)",
            imported.report.count(import::Kind::Error)
        ))
        .into());
    }
    Ok(())
}

/// The report goes next to the config: `headnode.toml` → `headnode.toml.import-report`.
pub fn report_path(config: &Path) -> PathBuf {
    let mut s = config.as_os_str().to_owned();
    s.push(".import-report");
    PathBuf::from(s)
}

/// Overwrite only a config an earlier import wrote, never a hand-written one.
fn refuse_to_clobber(path: &Path) -> anyhow::Result<()> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.starts_with(HEADER) => Err(InvalidInput(format!(
            "{} exists and was not written by `headnode import`; move it away or choose another --output",
            path.display()
        ))
        .into()),
        _ => Ok(()),
    }
}

/// Write through a temporary file and rename, so a crash leaves the old file or the new one.
fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    crate::paths::atomic_write(
        path,
        text.as_bytes(),
        0o640,
        crate::paths::Existing::Replace,
    )
    .with_context(|| format!("cannot write {}", path.display()))
}
