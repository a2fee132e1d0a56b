//! `[sysctl]`: extra kernel settings, with IPv4 forwarding always on.

use super::Validator;
use crate::config::raw::*;
use std::collections::BTreeMap;

impl Validator<'_> {
    pub(super) fn sysctls(
        &mut self,
        raw: &BTreeMap<String, S<RawSysctlValue>>,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        out.insert("net.ipv4.ip_forward".to_string(), "1".to_string());
        for (k, v) in raw {
            let key_ok = k.split('.').count() >= 2
                && k.split('.').all(|p| {
                    !p.is_empty()
                        && p.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                });
            if !key_ok {
                self.err(
                    v.span(),
                    &format!("sysctl.\"{k}\""),
                    format!("\"{k}\" is not a sysctl name"),
                    Some("write the dotted name as sysctl shows it, e.g. \"net.ipv4.conf.all.rp_filter\""),
                );
                continue;
            }
            let value = match v.get_ref() {
                RawSysctlValue::Int(n) => n.to_string(),
                RawSysctlValue::Bool(b) => (*b as u8).to_string(),
                RawSysctlValue::Text(t) => t.clone(),
            };
            if k == "net.ipv4.ip_forward" && value != "1" {
                self.err(
                    v.span(),
                    &format!("sysctl.\"{k}\""),
                    "a head node must forward between its interfaces".into(),
                    Some("remove this line; headnode sets net.ipv4.ip_forward = 1 itself"),
                );
                continue;
            }
            out.insert(k.clone(), value);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::cases::{check_all, lan};

    #[test]
    fn diagnostics() {
        check_all(&[
            (
                lan("[sysctl]\nnet = 1 # <-\n"),
                "sysctl.\"net\"",
                "\"net\" is not a sysctl name",
            ),
            (
                lan("[sysctl]\n\"net.ipv4.ip_forward\" = 0 # <-\n"),
                "sysctl.\"net.ipv4.ip_forward\"",
                "a head node must forward between its interfaces",
            ),
        ]);
    }
}
