//! Checks across sections, run once every section is validated.

use super::Validator;
use crate::config::model::*;
use crate::config::raw::*;
use std::collections::BTreeSet;

impl Validator<'_> {
    /// A mark nobody balances does nothing, and a fwmark service nothing marks
    /// never sees a packet: both are mistakes worth stopping for.
    pub(super) fn check_marks(
        &mut self,
        raw: &RawConfig,
        firewall: &Firewall,
        balancer: &Balancer,
    ) {
        let balanced: BTreeSet<u32> = balancer
            .services
            .iter()
            .filter_map(|s| match s.key {
                VirtualKey::Fwmark { mark } => Some(mark),
                _ => None,
            })
            .collect();
        let marked: BTreeSet<u32> = firewall.marks.iter().map(|m| m.mark).collect();
        for (i, m) in raw.firewall.marks.iter().enumerate() {
            let n = *m.get_ref().mark.get_ref();
            if n > 0 && !balanced.contains(&(n as u32)) {
                self.err(
                    m.get_ref().mark.span(),
                    &format!("firewall.mark[{i}].mark"),
                    format!("mark {n} is set here but no balancer service uses fwmark {n}"),
                    Some(&format!(
                        "add [[balancer.virtual]] with fwmark = {n}, or remove this mark"
                    )),
                );
            }
        }
        for (i, v) in raw.balancer.virtuals.iter().enumerate() {
            if let Some(m) = &v.get_ref().fwmark {
                let n = *m.get_ref();
                if n > 0 && !marked.contains(&(n as u32)) {
                    self.err(
                        m.span(),
                        &format!("balancer.virtual[{i}].fwmark"),
                        format!("no firewall mark sets mark {n}, so this service gets no packets"),
                        Some(&format!(
                            "add [[firewall.mark]] with mark = {n}, proto, dest and ports"
                        )),
                    );
                }
            }
        }
        for (i, s) in raw.services.iter().enumerate() {
            if let Some(m) = &s.get_ref().mark {
                let n = *m.get_ref() as u32;
                let elsewhere = raw
                    .firewall
                    .marks
                    .iter()
                    .any(|x| *x.get_ref().mark.get_ref() as u32 == n)
                    || raw.balancer.virtuals.iter().any(|v| {
                        v.get_ref()
                            .fwmark
                            .as_ref()
                            .is_some_and(|f| *f.get_ref() as u32 == n)
                    })
                    || raw.services.iter().enumerate().any(|(j, o)| {
                        j < i
                            && o.get_ref()
                                .mark
                                .as_ref()
                                .is_some_and(|x| *x.get_ref() as u32 == n)
                    });
                if elsewhere {
                    self.err(
                        m.span(),
                        &format!("service[{i}].mark"),
                        format!("mark {n} is already used elsewhere in this file"),
                        Some("leave mark out and headnode picks a free one"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::cases::{check_all, lan};

    #[test]
    fn diagnostics() {
        let mark_5 = "[[firewall.mark]]\nmark = 5\nproto = \"tcp\"\nports = [80]\n";
        let fwmark_5 = "[[balancer.virtual]]\nfwmark = 5\nreal = [\"192.168.1.10:80\"]\n";
        check_all(&[
            (
                lan(&mark_5.replace("mark = 5", "mark = 5 # <-")),
                "firewall.mark[0].mark",
                "mark 5 is set here but no balancer service uses fwmark 5",
            ),
            (
                lan(&fwmark_5.replace("fwmark = 5", "fwmark = 5 # <-")),
                "balancer.virtual[0].fwmark",
                "no firewall mark sets mark 5, so this service gets no packets",
            ),
            (
                lan(&format!(
                    "{mark_5}{fwmark_5}[[service]]\nname = \"web\"\nport = 8080\n\
                     real = [\"192.168.1.10\"]\nmark = 5 # <-\n"
                )),
                "service[0].mark",
                "mark 5 is already used elsewhere in this file",
            ),
        ]);
    }
}
