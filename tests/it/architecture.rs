//! The module graph has no cycles: between the crate's top-level modules
//! (`crate::X` in one module's code), and between the files of one module
//! (`super::X` and `crate::module::X`). Read from the source text, test
//! code left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The text of a file without its `#[cfg(test)]` module.
fn code(path: &Path) -> String {
    let t = std::fs::read_to_string(path).expect("read source");
    match t.find("#[cfg(test)]\nmod tests") {
        Some(i) => t[..i].to_string(),
        None => t,
    }
}

fn rs_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rs_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// Names after `prefix` in `text` (`crate::` gives `config` for
/// `crate::config::load`, and `a` and `b` for `crate::{a, b::c}`).
fn uses(text: &str, prefix: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices(prefix) {
        let rest = &text[i + prefix.len()..];
        match rest.strip_prefix('{') {
            Some(group) => {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                out.extend(group.split(',').map(ident));
            }
            None => {
                out.insert(ident(rest));
            }
        }
    }
    out.retain(|n| !n.is_empty());
    out
}

fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let start = path.iter().position(|p| p == m).unwrap_or(0);
                    let mut c = path[start..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, graph, state, path) {
                        return Some(c);
                    }
                }
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if !state.contains_key(n.as_str())
            && let Some(c) = visit(n, graph, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

/// The module a path under `dir` belongs to: `dir/x.rs` and `dir/x/...` are `x`.
fn module_of(dir: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(dir).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    let name = first.trim_end_matches(".rs").to_string();
    (name != "mod" && name != "lib" && name != "main").then_some(name)
}

#[test]
fn top_level_modules_have_no_cycle() {
    let src = root();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let files = rs_files(&src);
    let mods: BTreeSet<String> = files.iter().filter_map(|f| module_of(&src, f)).collect();
    assert!(
        mods.contains("daemon") && mods.contains("commands"),
        "{mods:?}"
    );
    for f in &files {
        let Some(m) = module_of(&src, f) else {
            continue;
        };
        let deps = graph.entry(m.clone()).or_default();
        deps.extend(
            uses(&code(f), "crate::")
                .into_iter()
                .filter(|d| mods.contains(d) && *d != m),
        );
    }
    assert!(
        !graph["daemon"].contains("commands"),
        "the daemon must not import commands"
    );
    assert_eq!(cycle(&graph), None, "module graph: {graph:#?}");
}

#[test]
fn files_within_a_module_have_no_cycle() {
    let src = root();
    for dir in std::fs::read_dir(&src)
        .expect("src")
        .flatten()
        .map(|e| e.path())
    {
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let files = rs_files(&dir);
        let siblings: BTreeSet<String> = files.iter().filter_map(|f| module_of(&dir, f)).collect();
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for f in &files {
            let Some(m) = module_of(&dir, f) else {
                continue;
            };
            let text = code(f);
            let mut deps = uses(&text, &format!("crate::{name}::"));
            // `super::` from a file directly in the module is a sibling.
            if f.parent() == Some(dir.as_path()) {
                deps.extend(uses(&text, "super::"));
            }
            graph
                .entry(m.clone())
                .or_default()
                .extend(deps.into_iter().filter(|d| siblings.contains(d) && *d != m));
        }
        assert_eq!(cycle(&graph), None, "src/{name}: {graph:#?}");
    }
}
