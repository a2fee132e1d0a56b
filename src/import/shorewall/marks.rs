//! tcrules and mangle: the marks IPVS fwmark services balance on.

use super::*;

impl Shorewall {
    /// tcrules (`1 0.0.0.0/0 ADDR tcp 8000`) or mangle (`MARK(1) ...`).
    pub(super) fn marks(&mut self, r: &mut Reader) {
        for file in ["tcrules", "mangle"] {
            let Some(lines) = r.lines(file) else { continue };
            for l in lines {
                let skip = |r: &mut Reader, why: &str| {
                    r.report.skip(&l.at, format!("`{}`: {why}", l.text()))
                };
                let first = l.col(0).unwrap_or("");
                let mark_text = if file == "mangle" {
                    match first
                        .strip_prefix("MARK(")
                        .and_then(|m| m.strip_suffix(')'))
                    {
                        Some(m) => m.to_string(),
                        None => {
                            skip(r, "only MARK(n) is translated");
                            continue;
                        }
                    }
                } else {
                    // `1` or `1:P` mark in PREROUTING; `:F`/`:T` and classes are other chains.
                    match first.split_once(':') {
                        None => first.to_string(),
                        Some((m, "P")) => m.to_string(),
                        Some(_) => {
                            skip(r, "only marks set in PREROUTING are translated");
                            continue;
                        }
                    }
                };
                let mark_text = mark_text.split('/').next().unwrap_or("").to_string();
                let mark = match mark_text.strip_prefix("0x") {
                    Some(h) => u32::from_str_radix(h, 16).ok(),
                    None => mark_text.parse::<u32>().ok(),
                };
                let Some(mark) = mark.filter(|m| *m > 0) else {
                    skip(r, "the mark is not a positive number");
                    continue;
                };
                if (5..l.cols.len()).any(|i| l.col(i).is_some()) {
                    skip(r, "columns after DEST PORT(S) are not translated");
                    continue;
                }
                let source = match l.col(1) {
                    None => None,
                    Some(s) if self.public_if.as_ref().is_some_and(|(_, n)| n == s) => None,
                    Some(s) => match values::net(s) {
                        Ok(n) => n,
                        Err(why) => {
                            r.report
                                .error(&l.at, format!("`{}`: {why}; mark left out", l.text()));
                            continue;
                        }
                    },
                };
                let dest = match l.col(2).map(values::net).transpose() {
                    Ok(d) => d.flatten(),
                    Err(why) => {
                        r.report
                            .error(&l.at, format!("`{}`: {why}; mark left out", l.text()));
                        continue;
                    }
                };
                let proto = match l.col(3) {
                    None | Some("all") => None,
                    Some(p) => match values::proto(p) {
                        Some(p) => Some(p),
                        None => {
                            skip(r, "the protocol is not tcp, udp or icmp");
                            continue;
                        }
                    },
                };
                let mut ports = Vec::new();
                if let Some(d) = l.col(4) {
                    for p in d.split(',') {
                        match values::port_range(p) {
                            Ok(pr) => ports.push(pr),
                            Err(why) => {
                                skip(r, &why);
                                ports.clear();
                                break;
                            }
                        }
                    }
                    if ports.is_empty() {
                        continue;
                    }
                }
                self.marks.push(Mark {
                    src: l.source(),
                    mark,
                    dest,
                    source,
                    proto,
                    ports,
                });
            }
        }
    }
}
