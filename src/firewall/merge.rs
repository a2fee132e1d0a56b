//! Consecutive rules that differ only in matched values become one rule
//! with an anonymous set (`tcp dport { 22, 80 }`), or a set of
//! concatenations (`ip saddr . tcp dport { 192.0.2.1 . 22, ... }`) when
//! several values differ. Only neighbours with the same verdict are merged,
//! so the first-match order of the config is kept exactly; and only exact
//! values (addresses, ports, names), never prefixes or ranges, so the set
//! needs no interval handling and overlapping entries cannot conflict.
//! This is what keeps a 10,000-rule config fast to load and to list.

use super::PlannedRule;
use super::expr::{Expr, Stmt};
use nftables::expr::{Expression, NamedExpression, SetItem};
use nftables::stmt::{Match, Operator};

/// Smallest group worth a set.
const MIN_GROUP: usize = 2;

pub fn consecutive(rules: Vec<PlannedRule>) -> Vec<PlannedRule> {
    let mut out = Vec::with_capacity(rules.len());
    let mut group: Vec<PlannedRule> = Vec::new();
    for r in rules {
        if group.first().is_some_and(|g| !mergeable(g, &r)) {
            out.extend(collapse(std::mem::take(&mut group)));
        }
        group.push(r);
    }
    out.extend(collapse(group));
    out
}

fn scalar(e: &Expr) -> bool {
    matches!(e, Expression::String(_) | Expression::Number(_))
}

/// Same chain and statements, except the values of `==` matches on exact values.
fn mergeable(a: &PlannedRule, b: &PlannedRule) -> bool {
    a.chain == b.chain
        && a.stmts.len() == b.stmts.len()
        && a.stmts.iter().zip(&b.stmts).all(|(x, y)| {
            x == y
                || matches!((x, y), (Stmt::Match(m), Stmt::Match(n))
                    if m.op == Operator::EQ && n.op == Operator::EQ && m.left == n.left
                        && scalar(&m.right) && scalar(&n.right))
        })
}

fn collapse(group: Vec<PlannedRule>) -> Vec<PlannedRule> {
    if group.len() < MIN_GROUP {
        return group;
    }
    let first = &group[0];
    let differing: Vec<usize> = (0..first.stmts.len())
        .filter(|&i| group.iter().any(|r| r.stmts[i] != first.stmts[i]))
        .collect();
    let Some(&at) = differing.first() else {
        return group; // identical rules: leave them as written
    };
    let right_of = |s: &Stmt| match s {
        Stmt::Match(m) => m.right.clone(),
        _ => unreachable!("mergeable() only lets matches differ"),
    };
    let left_of = |s: &Stmt| match s {
        Stmt::Match(m) => m.left.clone(),
        _ => unreachable!("mergeable() only lets matches differ"),
    };
    let mut elements: Vec<Expr> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in &group {
        let values: Vec<Expr> = differing.iter().map(|&i| right_of(&r.stmts[i])).collect();
        let e = if values.len() == 1 {
            values.into_iter().next().unwrap_or(Expression::Number(0))
        } else {
            Expression::Named(NamedExpression::Concat(values))
        };
        // Duplicates would make nft refuse the set; a hash keeps this linear.
        if seen.insert(format!("{e:?}")) {
            elements.push(e);
        }
    }
    let left = if differing.len() == 1 {
        left_of(&first.stmts[at])
    } else {
        Expression::Named(NamedExpression::Concat(
            differing
                .iter()
                .map(|&i| left_of(&first.stmts[i]))
                .collect(),
        ))
    };
    let mut stmts: Vec<Stmt> = Vec::with_capacity(first.stmts.len());
    for (i, s) in first.stmts.iter().enumerate() {
        if i == at {
            stmts.push(Stmt::Match(Match {
                left: left.clone(),
                right: Expression::Named(NamedExpression::Set(
                    elements.drain(..).map(SetItem::Element).collect(),
                )),
                op: Operator::EQ,
            }));
        } else if !differing.contains(&i) {
            stmts.push(s.clone());
        }
    }
    vec![PlannedRule {
        chain: first.chain.clone(),
        stmts,
        comment: merged_comment(&group),
    }]
}

/// nft keeps at most this much of a comment (`NFTNL_UDATA_COMMENT_MAXLEN`).
const COMMENT_MAX: usize = 128;

/// The comment of rules merged into one: the range of config lines
/// (`a.toml:1 .. a.toml:3 (3 rules)`), or for built-in rules, which have no
/// line, their names (`built-in: dhcp from loc, dns from loc (3 rules)`),
/// cut to what nft keeps. Metrics label the rule's counters with it.
fn merged_comment(group: &[PlannedRule]) -> String {
    const BUILT_IN: &str = "built-in: ";
    let (first, last) = (&group[0], &group[group.len() - 1]);
    let n = group.len();
    if first.comment == last.comment {
        return format!("{} ({n} rules)", first.comment);
    }
    if group.iter().all(|r| r.comment.starts_with(BUILT_IN)) {
        let mut names: Vec<&str> = Vec::new();
        for r in group {
            let name = r.comment[BUILT_IN.len()..].split(" (").next().unwrap_or("");
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let tail = format!(" ({n} rules)");
        let mut head = format!("{BUILT_IN}{}", names.join(", "));
        if head.len() + tail.len() > COMMENT_MAX {
            let mut cut = COMMENT_MAX - tail.len() - 3;
            while !head.is_char_boundary(cut) {
                cut -= 1;
            }
            head.truncate(cut);
            head.push_str("...");
        }
        return head + &tail;
    }
    format!(
        "{} .. {} ({n} rules)",
        first.comment.split(' ').next().unwrap_or(""),
        last.comment.split(' ').next().unwrap_or(""),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::expr::*;

    fn rule(stmts: Vec<Stmt>, comment: &str) -> PlannedRule {
        PlannedRule {
            chain: "net_fw".into(),
            stmts,
            comment: comment.into(),
        }
    }

    #[test]
    fn neighbours_with_the_same_verdict_share_a_set() {
        let r = |port: u32, c: &str| {
            rule(
                vec![
                    matches(payload("tcp", "dport"), Expression::Number(port)),
                    counter(),
                    accept(),
                ],
                c,
            )
        };
        let out = consecutive(vec![
            r(22, "a.toml:1"),
            r(80, "a.toml:2"),
            r(22, "a.toml:3"),
        ]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].comment, "a.toml:1 .. a.toml:3 (3 rules)");
        let Stmt::Match(m) = &out[0].stmts[0] else {
            panic!("{:?}", out[0].stmts)
        };
        assert_eq!(
            m.right,
            set(vec![Expression::Number(22), Expression::Number(80)])
        );
    }

    #[test]
    fn merged_built_in_rules_keep_their_names_within_what_nft_keeps() {
        let r = |c: &str| rule(vec![accept()], c);
        let got = merged_comment(&[
            r("built-in: dhcp from loc (dhcp.enabled)"),
            r("built-in: dns from loc ([dns])"),
            r("built-in: dns from loc ([dns])"),
        ]);
        assert_eq!(got, "built-in: dhcp from loc, dns from loc (3 rules)");
        let long: Vec<PlannedRule> = (0..20)
            .map(|i| r(&format!("built-in: service number {i} from loc")))
            .collect();
        let got = merged_comment(&long);
        assert!(got.len() <= COMMENT_MAX, "{} bytes: {got}", got.len());
        assert!(got.ends_with("... (20 rules)"), "{got}");
    }

    #[test]
    fn order_and_verdicts_are_kept() {
        let r = |port: u32, v: Stmt| {
            rule(
                vec![
                    matches(payload("tcp", "dport"), Expression::Number(port)),
                    v,
                ],
                "x",
            )
        };
        let rules = vec![r(22, accept()), r(23, drop()), r(24, accept())];
        assert_eq!(consecutive(rules.clone()).len(), 3);
        // Prefixes are never merged (no interval sets, no overlap conflicts).
        let p = |n: &str| rule(vec![saddr(n.parse().expect("net")), accept()], "x");
        assert_eq!(
            consecutive(vec![p("10.0.0.0/8"), p("10.1.0.0/16")]).len(),
            2
        );
    }

    #[test]
    fn several_differing_values_become_a_concatenation() {
        let r = |a: &str, port: u32| {
            rule(
                vec![
                    saddr(a.parse().expect("net")),
                    matches(payload("tcp", "dport"), Expression::Number(port)),
                    accept(),
                ],
                "x",
            )
        };
        let out = consecutive(vec![r("192.0.2.1/32", 22), r("192.0.2.2/32", 23)]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].stmts.len(), 2);
        let Stmt::Match(m) = &out[0].stmts[0] else {
            panic!()
        };
        assert!(matches!(
            m.left,
            Expression::Named(NamedExpression::Concat(_))
        ));
    }
}
