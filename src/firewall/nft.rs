//! Adapter to the `nft` binary. The `nftables` crate's own apply loses nft's
//! stderr, and its listing fails on rules from other software, so headnode
//! spawns `nft -j -f -` itself with stderr piped and lists only its own table.
//!
//! "Is the live table what we want?" is answered from the record of the last
//! load (`applied`): after loading, the table is listed back in nft's own
//! normal form (`nft -s list table`, no counter values) and later listings
//! are compared with that.

use super::applied::Applied;
use super::{FAMILY_NAME, TABLE};
use nftables::schema::{NfCmd, NfListObject, NfObject, Nftables};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("cannot run {bin}: {source} (install the nftables package, or set HEADNODE_NFT)")]
    Spawn { bin: String, source: std::io::Error },
    #[error("nft {args} failed: {stderr}")]
    Failed { args: String, stderr: String },
    #[error(
        "nft rejected the ruleset at rule {index} in chain `{chain}` ({comment}): {stderr}; nothing was changed"
    )]
    Rejected {
        index: usize,
        chain: String,
        /// The rule's comment: the config line it came from.
        comment: String,
        stderr: String,
    },
    #[error("cannot serialize the ruleset: {0}")]
    Json(#[from] serde_json::Error),
}

/// The nft binary: `$HEADNODE_NFT` or `nft` from PATH.
#[derive(Debug, Clone)]
pub struct Nft {
    bin: PathBuf,
    /// How long one nft run may take before it is killed.
    deadline: Duration,
}

impl Default for Nft {
    fn default() -> Self {
        Self::from_env()
    }
}

impl Nft {
    /// A specific binary (tests point this at a wrapper).
    pub fn new(bin: impl Into<PathBuf>) -> Self {
        Nft {
            bin: bin.into(),
            deadline: DEADLINE,
        }
    }

    /// `$HEADNODE_NFT` (default `nft`), with `$HEADNODE_NFT_TIMEOUT` (e.g.
    /// `2s`) as the deadline when set.
    pub fn from_env() -> Self {
        let bin = std::env::var_os("HEADNODE_NFT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("nft"));
        let deadline = std::env::var("HEADNODE_NFT_TIMEOUT")
            .ok()
            .and_then(|t| crate::config::parse_duration(&t))
            .filter(|d| !d.is_zero())
            .unwrap_or(DEADLINE);
        Nft { bin, deadline }
    }

    pub fn with_deadline(self, deadline: Duration) -> Self {
        Nft { deadline, ..self }
    }

    pub fn available(&self) -> bool {
        self.version().is_some()
    }

    /// `nft --version` output, e.g. "nftables v1.0.6 (Lester Gooch #5)".
    pub fn version(&self) -> Option<String> {
        let out = self.run(&["--version"], None).ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<Output, NftError> {
        run_with_stdin(Command::new(&self.bin).args(args), stdin, self.deadline).map_err(|source| {
            NftError::Spawn {
                bin: self.bin.display().to_string(),
                source,
            }
        })
    }

    fn run_ok(&self, args: &[&str], stdin: Option<&str>) -> Result<String, NftError> {
        let out = self.run(args, stdin)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(NftError::Failed {
                args: args.join(" "),
                stderr: stderr_of(&out),
            })
        }
    }

    /// `nft -c`: the kernel validates the whole transaction without committing it.
    /// On failure the error names the first rule nft refuses, like `apply`.
    pub fn check(&self, rs: &Nftables) -> Result<(), NftError> {
        let json = serde_json::to_string(rs)?;
        let out = self.run(&["-c", "-j", "-f", "-"], Some(&json))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = stderr_of(&out);
        Err(self.locate(rs).unwrap_or(NftError::Failed {
            args: "-c -j -f -".into(),
            stderr,
        }))
    }

    /// Load the ruleset in one transaction. On failure nothing changed, and
    /// the error names the first rule nft refuses and the config line it came from.
    pub fn apply(&self, rs: &Nftables) -> Result<(), NftError> {
        let json = serde_json::to_string(rs)?;
        let out = self.run(&["-j", "-f", "-"], Some(&json))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = stderr_of(&out);
        Err(self.locate(rs).unwrap_or(NftError::Failed {
            args: "-j -f -".into(),
            stderr,
        }))
    }

    /// Find the first command nft refuses by checking ever longer prefixes of
    /// the batch with `nft -c` (binary search, so about log2(n) runs).
    fn locate(&self, rs: &Nftables) -> Option<NftError> {
        let objs = &rs.objects;
        let fails = |n: usize| -> Option<String> {
            let prefix = Nftables {
                objects: Cow::Owned(objs[..n].to_vec()),
            };
            let json = serde_json::to_string(&prefix).ok()?;
            let out = self.run(&["-c", "-j", "-f", "-"], Some(&json)).ok()?;
            (!out.status.success()).then(|| stderr_of(&out))
        };
        let all = fails(objs.len())?;
        let (mut lo, mut hi) = (0, objs.len()); // fails(hi) holds, fails(lo) does not
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if fails(mid).is_some() {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        let stderr = fails(hi).unwrap_or(all);
        match &objs[hi - 1] {
            NfObject::CmdObject(NfCmd::Add(NfListObject::Rule(r))) => Some(NftError::Rejected {
                index: objs[..hi]
                    .iter()
                    .filter(|o| matches!(o, NfObject::CmdObject(NfCmd::Add(NfListObject::Rule(_)))))
                    .count(),
                chain: r.chain.to_string(),
                comment: r.comment.as_deref().unwrap_or("no comment").to_string(),
                stderr,
            }),
            other => Some(NftError::Failed {
                args: format!("-j -f - (at {})", describe(other)),
                stderr,
            }),
        }
    }

    /// Our table as nft lists it, without counter values; `None` when it does not exist.
    pub fn live_text(&self) -> Result<Option<String>, NftError> {
        let out = self.run(&["-s", "list", "table", FAMILY_NAME, TABLE], None)?;
        if out.status.success() {
            return Ok(Some(normalize(&String::from_utf8_lossy(&out.stdout))));
        }
        let stderr = stderr_of(&out);
        if stderr.contains("No such file or directory") {
            Ok(None)
        } else {
            Err(NftError::Failed {
                args: format!("-s list table {FAMILY_NAME} {TABLE}"),
                stderr,
            })
        }
    }

    /// Every rule of our table that counts, with its comment (the config
    /// line it came from) and its counter; `None` when the table is not loaded.
    pub fn rule_counters(&self) -> Result<Option<Vec<RuleCounter>>, NftError> {
        let out = self.run(&["-j", "list", "table", FAMILY_NAME, TABLE], None)?;
        if !out.status.success() {
            let stderr = stderr_of(&out);
            if stderr.contains("No such file or directory") {
                return Ok(None);
            }
            return Err(NftError::Failed {
                args: format!("-j list table {FAMILY_NAME} {TABLE}"),
                stderr,
            });
        }
        Ok(Some(rule_counters(&out.stdout)?))
    }

    /// Our table with counter values, in nft syntax that `restore` can load again.
    pub fn snapshot(&self) -> Result<Option<String>, NftError> {
        let out = self.run(&["list", "table", FAMILY_NAME, TABLE], None)?;
        if out.status.success() {
            Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
        } else if stderr_of(&out).contains("No such file or directory") {
            Ok(None)
        } else {
            Err(NftError::Failed {
                args: format!("list table {FAMILY_NAME} {TABLE}"),
                stderr: stderr_of(&out),
            })
        }
    }

    /// Put back a snapshot in one transaction (or remove our table when there was none).
    pub fn restore(&self, snapshot: Option<&str>) -> Result<(), NftError> {
        let mut script =
            format!("add table {FAMILY_NAME} {TABLE}\ndelete table {FAMILY_NAME} {TABLE}\n");
        if let Some(s) = snapshot {
            script.push_str(s);
        }
        self.run_ok(&["-f", "-"], Some(&script)).map(|_| ())
    }

    /// List the table right after `apply` (or `update_balancer`) loaded
    /// `rs`: the record that later listings are compared with.
    pub fn read_back(&self, rs: &Nftables) -> Result<Applied, NftError> {
        let listing = self.live_text()?.ok_or_else(|| NftError::Failed {
            args: format!("-s list table {FAMILY_NAME} {TABLE}"),
            stderr: "the table is gone right after loading it".into(),
        })?;
        Ok(Applied::new(rs, listing)?)
    }

    /// The desired ruleset in nft's normal form, by loading it into a scratch
    /// network namespace: only for showing it (`headnode plan`), since it
    /// needs CAP_SYS_ADMIN, which the daemon does not have.
    pub fn canonical_text(&self, rs: &Nftables) -> Result<String, NftError> {
        let json = serde_json::to_string(rs)?;
        let script = format!("\"$0\" -j -f - && \"$0\" -s list table {FAMILY_NAME} {TABLE}");
        let bin = self.bin.display().to_string();
        let out = run_with_stdin(
            Command::new("unshare").args(["--net", "--", "sh", "-c", &script, &bin]),
            Some(&json),
            self.deadline,
        )
        .map_err(|source| NftError::Spawn {
            bin: "unshare".into(),
            source,
        })?;
        if out.status.success() {
            Ok(normalize(&String::from_utf8_lossy(&out.stdout)))
        } else {
            Err(NftError::Failed {
                args: "-j -f - in a scratch network namespace (unshare --net)".into(),
                stderr: stderr_of(&out),
            })
        }
    }

    /// Health changed: replace only the `balance` chain, in one transaction,
    /// leaving the rest of the table and its counters alone. The table must
    /// have been applied with a balancer (`ruleset(cfg, Some(..))`) before.
    pub fn update_balancer(
        &self,
        cfg: &crate::config::Config,
        bal: &super::NftBalancer,
    ) -> Result<(), NftError> {
        self.apply(&super::balance_update(cfg, bal))
    }

    /// Remove our table, and nothing else. Returns whether it existed.
    pub fn delete_table(&self) -> Result<bool, NftError> {
        let existed = self.live_text()?.is_some();
        if existed {
            self.run_ok(&["delete", "table", FAMILY_NAME, TABLE], None)?;
        }
        Ok(existed)
    }
}

/// One counted rule of our table, as `headnode status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleCounter {
    pub chain: String,
    pub comment: Option<String>,
    pub packets: u64,
    pub bytes: u64,
}

/// The part of nft's JSON listing that carries counters. Read with our own
/// types rather than `nftables::schema`, whose expressions do not cover
/// every statement an admin's nft version may list.
#[derive(Deserialize)]
struct Listing {
    nftables: Vec<ListedObject>,
}

#[derive(Deserialize)]
struct ListedObject {
    rule: Option<ListedRule>,
}

#[derive(Deserialize)]
struct ListedRule {
    chain: String,
    comment: Option<String>,
    expr: Vec<ListedExpr>,
}

#[derive(Deserialize)]
struct ListedExpr {
    counter: Option<ListedCounter>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ListedCounter {
    Anonymous {
        packets: u64,
        bytes: u64,
    },
    /// A reference to a named counter object: no values in the rule.
    Named(serde::de::IgnoredAny),
}

fn rule_counters(json: &[u8]) -> Result<Vec<RuleCounter>, serde_json::Error> {
    let listing: Listing = serde_json::from_slice(json)?;
    Ok(listing
        .nftables
        .into_iter()
        .filter_map(|o| o.rule)
        .filter_map(|r| {
            let (packets, bytes) = r.expr.iter().find_map(|e| match e.counter {
                Some(ListedCounter::Anonymous { packets, bytes }) => Some((packets, bytes)),
                _ => None,
            })?;
            Some(RuleCounter {
                chain: r.chain,
                comment: r.comment,
                packets,
                bytes,
            })
        })
        .collect())
}

/// How long one nft run may take. Loading a 10,000-rule table takes about
/// a second; the limit is for an nft stuck on a kernel that never answers,
/// and stays below the daemon's watchdog (30 s) so a stuck nft is reported
/// rather than the daemon killed.
const DEADLINE: Duration = Duration::from_secs(20);

/// Run `cmd` with `stdin`, killing it when it outlives `limit`.
fn run_with_stdin(
    cmd: &mut Command,
    stdin: Option<&str>,
    limit: Duration,
) -> std::io::Result<Output> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let input = stdin.map(str::to_owned);
    let pipe = child.stdin.take();
    let waited = crate::deadline::within(limit, move || {
        if let (Some(text), Some(mut pipe)) = (input, pipe) {
            // A write error (nft exited early) shows up in its exit status and stderr.
            let _ = pipe.write_all(text.as_bytes());
        }
        child.wait_with_output()
    });
    match waited {
        Ok(out) => out,
        Err(missed) => {
            // SAFETY: kill on the pid of our own child, which the waiting
            // thread has not reaped (it is still waiting for it).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("killed: {missed}"),
            ))
        }
    }
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

fn describe(o: &NfObject) -> String {
    match o {
        NfObject::CmdObject(NfCmd::Add(NfListObject::Chain(c))) => format!("chain {}", c.name),
        NfObject::CmdObject(NfCmd::Add(NfListObject::Set(s))) => format!("set {}", s.name),
        NfObject::CmdObject(NfCmd::Add(NfListObject::Table(_))) => "table".into(),
        NfObject::CmdObject(NfCmd::Flush(_)) => "flush".into(),
        _ => "command".into(),
    }
}

/// Drop what changes at run time without being configuration: the elements
/// of dynamic (affinity) sets.
fn normalize(listing: &str) -> String {
    let mut out = String::new();
    let mut in_elements = false;
    for line in listing.lines() {
        let t = line.trim_start();
        if t.starts_with("elements = {") {
            in_elements = !t.ends_with('}');
            continue;
        }
        if in_elements {
            in_elements = !t.ends_with('}');
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_nft_that_hangs_is_killed_at_the_deadline() {
        let dir = std::env::temp_dir().join(format!("hn-nft-hang-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("nft");
        std::fs::write(&bin, "#!/bin/sh\nexec sleep 30\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let nft = Nft::new(&bin).with_deadline(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let e = nft.live_text().expect_err("killed").to_string();
        assert!(started.elapsed() < Duration::from_secs(5), "{e}");
        assert!(e.contains("killed: no answer within 0.3 s"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn counters_are_read_from_the_json_listing() {
        // As nft 1.0.6 lists a table: metainfo, table, chain, rules with and
        // without a counter, a named counter reference.
        let listing = br#"{"nftables": [
            {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
            {"table": {"family": "inet", "name": "headnode", "handle": 1}},
            {"chain": {"family": "inet", "table": "headnode", "name": "input", "handle": 1}},
            {"rule": {"family": "inet", "table": "headnode", "chain": "input", "handle": 4,
              "comment": "headnode.toml:12 allow ssh",
              "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}},
                       {"counter": {"packets": 7, "bytes": 420}}, {"accept": null}]}},
            {"rule": {"family": "inet", "table": "headnode", "chain": "input", "handle": 5,
              "expr": [{"counter": "named"}, {"drop": null}]}},
            {"rule": {"family": "inet", "table": "headnode", "chain": "forward", "handle": 6,
              "expr": [{"counter": {"packets": 0, "bytes": 0}}]}}
        ]}"#;
        assert_eq!(
            rule_counters(listing).expect("listing"),
            [
                RuleCounter {
                    chain: "input".into(),
                    comment: Some("headnode.toml:12 allow ssh".into()),
                    packets: 7,
                    bytes: 420,
                },
                RuleCounter {
                    chain: "forward".into(),
                    comment: None,
                    packets: 0,
                    bytes: 0,
                },
            ]
        );
    }

    #[test]
    fn dynamic_set_elements_are_not_configuration() {
        let live = "set a {\n\ttype ipv4_addr\n\telements = { 1.2.3.4 expires 4m,\n\t\t1.2.3.5 expires 3m }\n}\nchain b {\n}\n";
        assert_eq!(
            normalize(live),
            "set a {\n\ttype ipv4_addr\n}\nchain b {\n}\n"
        );
        let one = "set a {\n\telements = { 1.2.3.4 }\n}\n";
        assert_eq!(normalize(one), "set a {\n}\n");
    }
}
