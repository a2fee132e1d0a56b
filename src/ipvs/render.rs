//! PURE: IPVS tables and changes as text, in the `ipvsadm -Ln` form admins
//! already read.

use super::{Family, Op, Table, netmask};
use std::fmt::Write;

/// `ipvsadm -Ln` without the header and counters.
pub fn render_table(t: &Table) -> String {
    let mut out = String::new();
    for (k, s) in t {
        let _ = write!(out, "{k} {}", s.attrs.scheduler);
        if s.attrs.flags & super::SVC_F_PERSISTENT != 0 {
            let _ = write!(out, " persistent {}", s.attrs.timeout);
            if k.family() == Family::Inet && s.attrs.netmask != u32::MAX {
                let _ = write!(out, " mask {}", netmask(s.attrs.netmask));
            }
        }
        out.push('\n');
        for (d, a) in &s.dests {
            let _ = writeln!(
                out,
                "  -> {:<28} {:<7} {}",
                d.to_string(),
                a.forward.ipvsadm_name(),
                a.weight
            );
        }
    }
    out
}

/// One `ipvsadm <args>` line per change.
pub fn render_ops(ops: &[Op]) -> String {
    ops.iter().map(|op| format!("ipvsadm {op}\n")).collect()
}
