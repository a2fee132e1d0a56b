//! `headnode import`: translate a legacy head node (/etc/network/interfaces,
//! ISC dhcpd or dnsmasq, /etc/hosts, shorewall, ipvsadm or keepalived, sysctl.conf, tftpd-hpa) into one headnode
//! config, plus a report of everything not translated and every problem
//! found, each at `file:line`.
//!
//! Pure apart from reading the input files: the result is text and a report.
//! One module reads each source; `build` decides what the config says.

mod build;
mod dhcpd;
mod dnsmasq;
mod draft;
mod hosts;
mod ifupdown;
mod ipvsadm;
mod keepalived;
mod report;
mod shorewall;
mod sysctl;
mod tftpd;
mod toml_out;
mod values;

pub use report::{Entry, Kind, Loc, Report};

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The first line of every imported config; `import --output` overwrites
/// only files that start with it, never a hand-written config.
pub const HEADER: &str = "# headnode config written by `headnode import`";

/// The legacy files to read; any may be missing.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    pub interfaces: Option<PathBuf>,
    pub dhcpd: Option<PathBuf>,
    pub hosts: Option<PathBuf>,
    pub shorewall: Option<PathBuf>,
    pub ipvsadm: Option<PathBuf>,
    pub sysctl: Option<PathBuf>,
    /// /etc/default/tftpd-hpa.
    pub tftpd: Option<PathBuf>,
    /// dnsmasq.conf (DHCP, PXE, TFTP and DNS settings).
    pub dnsmasq: Option<PathBuf>,
    /// keepalived.conf (virtual servers with their checks, and the VRRP instance for [ha]).
    pub keepalived: Option<PathBuf>,
}

#[derive(Debug)]
pub struct Imported {
    /// The config as TOML text with comments.
    pub config: String,
    pub report: Report,
    /// The public address the inputs name for this box, when valid.
    pub public: Option<Ipv4Addr>,
}

impl Imported {
    /// True when the inputs have problems (the config then carries `# FIXME`s).
    pub fn has_errors(&self) -> bool {
        self.report.count(Kind::Error) > 0
    }
}

/// An input that cannot be read at all (missing file, dhcpd.conf syntax error).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ImportError(pub String);

/// Read the inputs and translate them. `config_path` only names the
/// generated config in messages about it.
pub fn import(inputs: &Inputs, config_path: &Path) -> Result<Imported, ImportError> {
    let mut report = Report::default();
    let interfaces = inputs
        .interfaces
        .as_deref()
        .map(|p| ifupdown::load(p, &mut report))
        .transpose()
        .map_err(ImportError)?;
    let hosts = match &inputs.hosts {
        Some(p) => hosts::Hosts::parse(&read(p)?, p, &mut report),
        None => hosts::Hosts::default(),
    };
    let dhcpd = inputs
        .dhcpd
        .as_deref()
        .map(|p| dhcpd::Dhcpd::load(p, &mut report))
        .transpose()
        .map_err(|e| ImportError(format!("{e}")))?;
    let dnsmasq = inputs
        .dnsmasq
        .as_deref()
        .map(|p| dnsmasq::load(p, &mut report))
        .transpose()
        .map_err(ImportError)?;
    if dhcpd.is_some() && dnsmasq.is_some() {
        return Err(ImportError(
            "--dhcpd and --dnsmasq both configure DHCP: import one of them".into(),
        ));
    }
    let (dnsmasq_dhcp, dnsmasq_tftp, dns) = match dnsmasq {
        Some(d) => (Some(d.dhcp), d.tftp, d.dns),
        None => (None, None, None),
    };
    let dhcpd = dhcpd.or(dnsmasq_dhcp);
    let shorewall = inputs
        .shorewall
        .as_deref()
        .map(|p| shorewall::Shorewall::load(p, &hosts, &mut report))
        .transpose()
        .map_err(ImportError)?;
    let mut virtuals = inputs
        .ipvsadm
        .as_deref()
        .map(|p| ipvsadm::load(p, &hosts, &mut report))
        .transpose()
        .map_err(ImportError)?
        .unwrap_or_default();
    let keepalived = inputs
        .keepalived
        .as_deref()
        .map(|p| keepalived::load(p, &mut report))
        .transpose()
        .map_err(ImportError)?
        .unwrap_or_default();
    virtuals.extend(keepalived.virtuals);
    let sysctls = inputs
        .sysctl
        .as_deref()
        .map(|p| sysctl::load(p, &mut report))
        .transpose()
        .map_err(ImportError)?
        .unwrap_or_default();
    let tftpd = inputs
        .tftpd
        .as_deref()
        .map(|p| tftpd::load(p, &mut report))
        .transpose()
        .map_err(ImportError)?
        .flatten()
        .or(dnsmasq_tftp);
    let sources = build::Sources {
        inputs,
        interfaces: interfaces.as_ref(),
        hosts: &hosts,
        dhcpd: dhcpd.as_ref(),
        shorewall: shorewall.as_ref(),
        virtuals,
        vrrp: keepalived.instances,
        sysctls,
        tftpd,
        dns,
    };
    let (config, public) = build::build(sources, &mut report);
    // The promise: what import writes, check accepts, or the report says why not.
    if let Err(e) = crate::config::parse(&config, config_path) {
        for d in e.diagnostics {
            let at = Loc {
                file: config_path.display().to_string().into(),
                line: d.line,
            };
            report.error(
                &at,
                format!("{}: {} (the written config does not pass `headnode check` until this is fixed)", d.field, d.message),
            );
        }
    }
    Ok(Imported {
        config,
        report,
        public,
    })
}

fn read(p: &Path) -> Result<String, ImportError> {
    std::fs::read_to_string(p).map_err(|e| ImportError(format!("cannot read {}: {e}", p.display())))
}
