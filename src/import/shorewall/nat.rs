//! masq and snat: masquerade or SNAT out of the public interface.

use super::*;

impl Shorewall {
    /// masq (shorewall ≤ 5.1) or snat (5.2+): masquerade or SNAT out of the public interface.
    pub(super) fn nat(&mut self, r: &mut Reader) {
        let public = self.public_if.as_ref().map(|(_, n)| n.clone());
        let mut found = false;
        for (file, lines) in [("masq", r.lines("masq")), ("snat", r.lines("snat"))] {
            let Some(lines) = lines else { continue };
            found = true;
            for l in lines {
                // masq: INTERFACE SOURCE [ADDRESS]; snat: ACTION SOURCE DEST.
                let (iface, address) = if file == "masq" {
                    (l.col(0).unwrap_or(""), l.col(2).map(str::to_string))
                } else {
                    let action = l.col(0).unwrap_or("");
                    let addr = action
                        .strip_prefix("SNAT(")
                        .and_then(|a| a.strip_suffix(')'))
                        .map(str::to_string);
                    if action != "MASQUERADE" && addr.is_none() {
                        r.report.skip(
                            &l.at,
                            format!(
                                "`{}`: only MASQUERADE and SNAT(address) are translated",
                                l.text()
                            ),
                        );
                        continue;
                    }
                    (l.col(2).unwrap_or(""), addr)
                };
                let iface = iface.split(':').next().unwrap_or(iface);
                if public.as_deref() != Some(iface) {
                    r.report.skip(
                        &l.at,
                        format!(
                            "`{}`: headnode translates addresses only out of the public interface",
                            l.text()
                        ),
                    );
                    continue;
                }
                if self.nat.as_ref().is_some_and(|n| !matches!(n, Nat::None)) {
                    r.report.note(&l.at, format!("`{}`: headnode has one NAT setting for the whole LAN; the first line decides", l.text()));
                    continue;
                }
                self.nat = Some(match address {
                    None => Nat::Masquerade(l.source()),
                    Some(a) => match values::ipv4(&a) {
                        Ok(ip) => Nat::Snat(l.source(), ip),
                        Err(why) => {
                            r.report.error(
                                &l.at,
                                format!("`{}`: {why}; headnode masquerades instead", l.text()),
                            );
                            Nat::Masquerade(l.source())
                        }
                    },
                });
            }
        }
        if self.nat.is_none() {
            let at = file_loc(r.dir, "masq");
            r.report.note(
                &at,
                if found {
                    "no masq/snat entry for the public interface: masquerade = false"
                } else {
                    "no masq or snat file: masquerade = false"
                },
            );
            self.nat = Some(Nat::None);
        }
    }
}
