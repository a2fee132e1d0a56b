//! The policy file: zone-pair defaults, judged against shorewall's sample.

use super::*;

/// The zone pairs a two-interface firewall has, with headnode's default
/// policy and what shorewall's sample policy file gives (fw→net is either,
/// as the sample ships `$FW net ACCEPT` commented out).
const PAIRS: &[(Zone, Zone, Action, &[&str])] = &[
    (Zone::Loc, Zone::Net, Action::Accept, &["ACCEPT"]),
    (Zone::Net, Zone::Fw, Action::Drop, &["DROP"]),
    (Zone::Net, Zone::Loc, Action::Drop, &["DROP"]),
    (Zone::Loc, Zone::Fw, Action::Reject, &["REJECT"]),
    (Zone::Fw, Zone::Net, Action::Accept, &["REJECT", "ACCEPT"]),
    (Zone::Fw, Zone::Loc, Action::Accept, &["REJECT"]),
];

impl Shorewall {
    /// Read the policy file: the pairs that differ from shorewall's sample become
    /// overrides; the result is the policy headnode will have, for judging rules.
    pub(super) fn policy(
        &mut self,
        r: &mut Reader,
        zones: &Zones,
    ) -> BTreeMap<(Zone, Zone), Action> {
        let mut effective: BTreeMap<(Zone, Zone), Action> = PAIRS
            .iter()
            .map(|(a, b, act, _)| ((*a, *b), *act))
            .collect();
        let Some(lines) = r.lines("policy") else {
            r.report.note(
                &file_loc(r.dir, "policy"),
                "no policy file: headnode's two-interface defaults apply",
            );
            return effective;
        };
        let mut parsed = Vec::new();
        for l in &lines {
            let (Some(s), Some(d), Some(p)) = (l.col(0), l.col(1), l.col(2)) else {
                r.report.skip(
                    &l.at,
                    format!("`{}`: expected SOURCE DEST POLICY", l.text()),
                );
                continue;
            };
            let (Some(s), Some(d)) = (zones.sel(s), zones.sel(d)) else {
                r.report.skip(
                    &l.at,
                    format!("`{}`: names a zone headnode does not have", l.text()),
                );
                continue;
            };
            let policy = p.split(':').next().unwrap_or(p).to_ascii_uppercase();
            if let Some(level) = l.col(3)
                && s != Sel::One(Zone::Net)
            {
                r.report.note(
                    &l.at,
                    format!("log level {level} is not translated; headnode logs dropped packets from net (rate limited)"),
                );
            }
            parsed.push((l, s, d, policy));
        }
        let mut relaxed = Vec::new();
        for (from, to, default, sample) in PAIRS {
            let Some((l, _, _, policy)) = parsed
                .iter()
                .find(|(_, s, d, _)| s.matches(*from) && d.matches(*to))
            else {
                continue;
            };
            if sample.contains(&policy.as_str()) {
                if policy != action_name(*default) {
                    relaxed.push((l.at.clone(), *from, *to));
                }
                continue;
            }
            let action = match policy.as_str() {
                "ACCEPT" => Action::Accept,
                "DROP" => Action::Drop,
                "REJECT" => Action::Reject,
                other => {
                    r.report.skip(
                        &l.at,
                        format!(
                            "policy {other} for {from}→{to} is not translated; headnode keeps {}",
                            action_name(*default).to_lowercase()
                        ),
                    );
                    continue;
                }
            };
            effective.insert((*from, *to), action);
            if action != *default {
                self.policies.push(Policy {
                    src: l.source(),
                    from: *from,
                    to: *to,
                    action,
                });
            }
        }
        for (at, from, to) in relaxed {
            r.report.note(
                &at,
                format!("shorewall's sample rejects {from}→{to}; headnode's two-interface firewall accepts what the head node itself opens (add [[firewall.policy]] from = \"{from}\", to = \"{to}\", action = \"reject\" to keep shorewall's behaviour)"),
            );
        }
        effective
    }
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Accept => "ACCEPT",
        Action::Drop => "DROP",
        Action::Reject => "REJECT",
    }
}
