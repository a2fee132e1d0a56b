//! What headnode last loaded into its table, so that "is the live table what
//! the config wants?" needs neither a second load nor a scratch network
//! namespace (which would cost the daemon CAP_SYS_ADMIN).
//!
//! After every successful load the table is listed back (`nft -s list table`,
//! normalised by `Nft::live_text`) and recorded together with a fingerprint
//! of the JSON that was loaded. The live table is unchanged when the desired
//! JSON has the recorded fingerprint *and* nft lists the live table exactly
//! as recorded. Anything else (no record, a damaged one, another config, a
//! hand-edited or flushed table, another nft version) means: load it again.
//! Both sides of the listing comparison come from the same `nft` on the same
//! kernel, so nft's normal form never has to be predicted.

use nftables::schema::Nftables;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The record's file name in the state directory.
pub const FILE: &str = "firewall.applied";

/// One load of headnode's table: what was loaded and what nft listed after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// `fingerprint` of the loaded ruleset.
    pub fingerprint: String,
    /// The table as `Nft::live_text` listed it right after the load.
    pub listing: String,
}

/// How the live table relates to the desired ruleset and the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// The live table is what loading the desired ruleset produced.
    Unchanged,
    /// There is no headnode table.
    NoTable,
    /// No (readable) record of a load: the listing cannot be vouched for.
    NotRecorded,
    /// The desired ruleset is not the one last loaded.
    ConfigChanged,
    /// The desired ruleset was loaded, but the table changed since (drift).
    LiveChanged,
}

impl Comparison {
    /// Why a load is needed, for plan and status; `None` when unchanged.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Comparison::Unchanged => None,
            Comparison::NoTable => Some("no headnode table is loaded"),
            Comparison::NotRecorded => Some("no record that headnode loaded the live table"),
            Comparison::ConfigChanged => Some("the config's ruleset is not the one last loaded"),
            Comparison::LiveChanged => Some("the table was changed since headnode loaded it"),
        }
    }
}

/// FNV-1a (64 bit) of the JSON nft is given: stable across runs, builds and
/// Rust versions (unlike `DefaultHasher`), and collisions are no concern for
/// telling one of our own rulesets from another.
pub fn fingerprint(rs: &Nftables) -> Result<String, serde_json::Error> {
    let json = serde_json::to_string(rs)?;
    Ok(format!("fnv1a64:{:016x}", fnv1a64(json.as_bytes())))
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// Compare the live listing (`None`: no table) and the record with the
/// desired ruleset's fingerprint.
pub fn compare(record: Option<&Applied>, desired: &str, live: Option<&str>) -> Comparison {
    let Some(live) = live else {
        return Comparison::NoTable;
    };
    match record {
        None => Comparison::NotRecorded,
        Some(r) if r.fingerprint != desired => Comparison::ConfigChanged,
        Some(r) if r.listing != live => Comparison::LiveChanged,
        Some(_) => Comparison::Unchanged,
    }
}

impl Applied {
    pub fn new(rs: &Nftables, listing: String) -> Result<Applied, serde_json::Error> {
        Ok(Applied {
            fingerprint: fingerprint(rs)?,
            listing,
        })
    }

    /// The record in `dir`. Missing, unreadable or damaged all give `None`:
    /// the next apply loads the ruleset and records it again.
    pub fn load(dir: &Path) -> Option<Applied> {
        let path = dir.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(
                    "cannot read {}: {e}; the ruleset is loaded again",
                    path.display()
                );
                return None;
            }
        };
        match serde_json::from_str(&text) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(
                    "{} is damaged ({e}); the ruleset is loaded again",
                    path.display()
                );
                None
            }
        }
    }

    /// Write the record to `dir` atomically (`paths::atomic_write`), so a
    /// crash leaves the old record or the new one, never half of one.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let text = serde_json::to_string(self).map_err(std::io::Error::other)?;
        crate::paths::atomic_write(
            &dir.join(FILE),
            text.as_bytes(),
            0o644,
            crate::paths::Existing::Replace,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nftables::schema::{NfCmd, NfListObject, NfObject, Table};
    use nftables::types::NfFamily;
    use std::borrow::Cow;

    fn ruleset(name: &'static str) -> Nftables<'static> {
        Nftables {
            objects: Cow::Owned(vec![NfObject::CmdObject(NfCmd::Add(NfListObject::Table(
                Table {
                    family: NfFamily::INet,
                    name: Cow::Borrowed(name),
                    handle: None,
                },
            )))]),
        }
    }

    #[test]
    fn fingerprint_is_fnv1a_of_the_json_and_tells_rulesets_apart() {
        // The published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        let a = fingerprint(&ruleset("headnode")).unwrap();
        assert_eq!(a, fingerprint(&ruleset("headnode")).unwrap());
        assert_ne!(a, fingerprint(&ruleset("other")).unwrap());
        assert!(a.starts_with("fnv1a64:") && a.len() == 8 + 16, "{a}");
    }

    #[test]
    fn fingerprint_of_a_rendering_is_stable() {
        // Rendered twice, the full golden config (persistence sets included)
        // must give the same JSON: a HashSet with more than one element in
        // the ruleset would serialise in a per-instance order and make every
        // apply a reload.
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden/full.toml");
        let cfg = crate::config::load(&path).expect("golden config");
        let render = || {
            let bal = crate::firewall::NftBalancer::all_up(&cfg);
            fingerprint(&crate::firewall::ruleset(&cfg, Some(&bal))).unwrap()
        };
        let first = render();
        for _ in 0..8 {
            assert_eq!(render(), first);
        }
    }

    #[test]
    fn unchanged_needs_the_same_ruleset_and_the_same_listing() {
        let rs = ruleset("headnode");
        let rec = Applied::new(&rs, "table inet headnode {\n}\n".into()).unwrap();
        let fp = fingerprint(&rs).unwrap();
        let live = Some(rec.listing.as_str());
        assert_eq!(compare(Some(&rec), &fp, live), Comparison::Unchanged);
        assert_eq!(compare(Some(&rec), &fp, None), Comparison::NoTable);
        assert_eq!(compare(None, &fp, live), Comparison::NotRecorded);
        let other = fingerprint(&ruleset("other")).unwrap();
        assert_eq!(compare(Some(&rec), &other, live), Comparison::ConfigChanged);
        let edited = "table inet headnode {\n\tchain x {\n\t}\n}\n";
        assert_eq!(
            compare(Some(&rec), &fp, Some(edited)),
            Comparison::LiveChanged
        );
        assert!(Comparison::Unchanged.reason().is_none());
        assert!(Comparison::LiveChanged.reason().is_some());
    }

    #[test]
    fn record_round_trips_and_a_damaged_or_missing_one_is_no_record() {
        let dir = std::env::temp_dir().join(format!("hn-applied-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(Applied::load(&dir), None, "missing");
        let rec = Applied::new(&ruleset("headnode"), "table inet headnode {\n}\n".into()).unwrap();
        rec.save(&dir).unwrap();
        assert_eq!(Applied::load(&dir), Some(rec.clone()));
        assert!(!dir.join(format!("{FILE}.tmp")).exists());
        // Cut short (as by a full disk before the rename existed) or edited by hand.
        let text = std::fs::read_to_string(dir.join(FILE)).unwrap();
        std::fs::write(dir.join(FILE), &text[..text.len() / 2]).unwrap();
        assert_eq!(Applied::load(&dir), None, "truncated");
        std::fs::write(dir.join(FILE), "{\"fingerprint\": 7}").unwrap();
        assert_eq!(Applied::load(&dir), None, "wrong shape");
        // Saving again replaces the damaged record.
        rec.save(&dir).unwrap();
        assert_eq!(Applied::load(&dir), Some(rec));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
