//! Clients that asked and were refused (no reservation, no pool), for
//! `headnode leases --unknown`: adding a node is reading its MAC here rather
//! than grepping the journal. Bounded: at most [`CAP`] MACs are kept; a new
//! one beyond that pushes out the one heard from longest ago, and the number
//! pushed out is counted, so a flood of made-up MACs costs a fixed amount of
//! memory and shows as a count.

use crate::config::model::Mac;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// MACs kept at most (a few hundred bytes each).
pub const CAP: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    first: u64,
    last: u64,
    requests: u64,
    interface: String,
}

#[derive(Debug, Default)]
pub struct Unknown {
    seen: HashMap<Mac, Seen>,
    dropped: u64,
}

/// One refused client as `leases --unknown` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownClient {
    pub mac: String,
    /// Unix seconds of its first and latest refused request.
    pub first_seen: u64,
    pub last_seen: u64,
    pub requests: u64,
    pub interface: String,
    /// The maker, from the MAC's first three bytes when the built-in table
    /// knows them.
    pub vendor: Option<String>,
}

/// The daemon's answer: the refused clients, latest first, and how many
/// were pushed out of the table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownList {
    pub clients: Vec<UnknownClient>,
    pub dropped: u64,
}

impl Unknown {
    /// `mac` asked on `interface` at `now` and was refused.
    pub fn saw(&mut self, mac: Mac, interface: &str, now: u64) {
        if let Some(s) = self.seen.get_mut(&mac) {
            s.last = now;
            s.requests += 1;
            if s.interface != interface {
                s.interface = interface.to_string();
            }
            return;
        }
        if self.seen.len() >= CAP {
            // O(CAP) per new MAC once full; CAP is small and DHCP rate-limited.
            if let Some(oldest) = self
                .seen
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(m, _)| *m)
            {
                self.seen.remove(&oldest);
                self.dropped += 1;
            }
        }
        self.seen.insert(
            mac,
            Seen {
                first: now,
                last: now,
                requests: 1,
                interface: interface.to_string(),
            },
        );
    }

    /// Forget MACs that now have a reservation (after a reload).
    pub fn forget_known(&mut self, known: impl Fn(&Mac) -> bool) {
        self.seen.retain(|m, _| !known(m));
    }

    pub fn list(&self) -> UnknownList {
        let mut clients: Vec<UnknownClient> = self
            .seen
            .iter()
            .map(|(mac, s)| UnknownClient {
                mac: mac.to_string(),
                first_seen: s.first,
                last_seen: s.last,
                requests: s.requests,
                interface: s.interface.clone(),
                vendor: vendor(*mac).map(str::to_string),
            })
            .collect();
        clients.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.mac.cmp(&b.mac)));
        UnknownList {
            clients,
            dropped: self.dropped,
        }
    }
}

/// Sorted by OUI (a test checks), for the binary search.
const OUI: &[([u8; 3], &str)] = &[
    ([0x00, 0x02, 0xc9], "Mellanox"),
    ([0x00, 0x0a, 0xf7], "Broadcom"),
    ([0x00, 0x0c, 0x29], "VMware (virtual)"),
    ([0x00, 0x14, 0x22], "Dell"),
    ([0x00, 0x15, 0x5d], "Microsoft Hyper-V (virtual)"),
    ([0x00, 0x16, 0x3e], "Xen (virtual)"),
    ([0x00, 0x1b, 0x21], "Intel"),
    ([0x00, 0x1c, 0x42], "Parallels (virtual)"),
    ([0x00, 0x25, 0x90], "Supermicro"),
    ([0x00, 0x50, 0x56], "VMware (virtual)"),
    ([0x00, 0xe0, 0x4c], "Realtek"),
    ([0x08, 0x00, 0x27], "VirtualBox (virtual)"),
    ([0x0c, 0xc4, 0x7a], "Supermicro"),
    ([0x18, 0x66, 0xda], "Dell"),
    ([0x24, 0x8a, 0x07], "Mellanox"),
    ([0x3c, 0xfd, 0xfe], "Intel"),
    ([0x52, 0x54, 0x00], "QEMU/KVM (virtual)"),
    ([0xa0, 0x36, 0x9f], "Intel"),
    ([0xac, 0x1f, 0x6b], "Supermicro"),
    ([0xb8, 0x27, 0xeb], "Raspberry Pi"),
    ([0xdc, 0xa6, 0x32], "Raspberry Pi"),
    ([0xe4, 0x5f, 0x01], "Raspberry Pi"),
];

/// A small built-in table of the OUIs (first three bytes) of NICs and boards
/// common on cluster nodes and of hypervisors' virtual NICs; not the IEEE
/// registry (30 000+ entries, which the appliance does not ship). A locally
/// administered MAC has no maker: it was made up by software.
pub fn vendor(mac: Mac) -> Option<&'static str> {
    let oui = [mac.0[0], mac.0[1], mac.0[2]];
    if let Ok(i) = OUI.binary_search_by(|(o, _)| o.cmp(&oui)) {
        return Some(OUI[i].1);
    }
    // QEMU's 52:54:00 is locally administered too, hence after the table.
    (mac.0[0] & 0x02 != 0).then_some("locally administered (no maker)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(last: u16) -> Mac {
        Mac([0x00, 0x25, 0x90, 0, (last >> 8) as u8, last as u8])
    }

    #[test]
    fn first_and_last_seen_and_count() {
        let mut u = Unknown::default();
        u.saw(mac(1), "eth1", 100);
        u.saw(mac(2), "eth1", 150);
        u.saw(mac(1), "eth1", 200);
        let l = u.list();
        assert_eq!(l.dropped, 0);
        assert_eq!(l.clients.len(), 2);
        let c = &l.clients[0];
        assert_eq!(c.mac, "00:25:90:00:00:01");
        assert_eq!((c.first_seen, c.last_seen, c.requests), (100, 200, 2));
        assert_eq!(c.vendor.as_deref(), Some("Supermicro"));
        assert_eq!(l.clients[1].last_seen, 150);
    }

    #[test]
    fn bounded_the_oldest_goes_and_is_counted() {
        let mut u = Unknown::default();
        for i in 0..CAP as u16 + 10 {
            u.saw(mac(i), "eth1", u64::from(i));
        }
        let l = u.list();
        assert_eq!(l.clients.len(), CAP);
        assert_eq!(l.dropped, 10);
        assert!(l.clients.iter().all(|c| c.first_seen >= 10));
        // One already known costs nothing.
        u.saw(mac(500), "eth1", 99_999);
        assert_eq!(u.list().dropped, 10);
    }

    #[test]
    fn reserved_macs_are_forgotten() {
        let mut u = Unknown::default();
        u.saw(mac(1), "eth1", 1);
        u.saw(mac(2), "eth1", 1);
        u.forget_known(|m| *m == mac(1));
        assert_eq!(u.list().clients.len(), 1);
    }

    #[test]
    fn vendors() {
        assert!(OUI.windows(2).all(|w| w[0].0 < w[1].0), "OUI table sorted");
        assert_eq!(
            vendor(Mac([0x52, 0x54, 0, 1, 2, 3])),
            Some("QEMU/KVM (virtual)")
        );
        assert_eq!(
            vendor(Mac([0xb8, 0x27, 0xeb, 1, 2, 3])),
            Some("Raspberry Pi")
        );
        assert_eq!(vendor(Mac([0x00, 0x02, 0xc9, 1, 2, 3])), Some("Mellanox"));
        assert_eq!(
            vendor(Mac([0xe4, 0x5f, 0x01, 1, 2, 3])),
            Some("Raspberry Pi")
        );
        assert_eq!(
            vendor(Mac([0x02, 0, 0, 0, 0, 1])),
            Some("locally administered (no maker)")
        );
        assert_eq!(vendor(Mac([0x00, 0x99, 0x99, 0, 0, 1])), None);
    }
}
