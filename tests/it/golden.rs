//! Golden files: output compared with a file in the repository, rewritten
//! instead under `HEADNODE_BLESS=1` after a deliberate change (then review
//! the change with `git diff`). `tests/deb.sh` honours the same switch for
//! the package contents.

use std::path::Path;

/// The variable that rewrites golden files instead of comparing with them.
pub const BLESS: &str = "HEADNODE_BLESS";

fn blessing() -> bool {
    std::env::var(BLESS).is_ok_and(|v| v == "1")
}

/// Panic unless `got` equals the file at `path`; under `HEADNODE_BLESS=1`
/// write `got` there instead.
pub fn assert_or_bless(path: &Path, got: &str) {
    if let Err(e) = check_or_bless(path, got) {
        panic!("{e}");
    }
}

/// [`assert_or_bless`] that returns the difference instead of panicking, for
/// a test over many files that reports all of them at once.
pub fn check_or_bless(path: &Path, got: &str) -> Result<(), String> {
    if blessing() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        return std::fs::write(path, got).map_err(|e| format!("{}: {e}", path.display()));
    }
    let want = match std::fs::read_to_string(path) {
        Ok(want) => want,
        Err(e) => {
            return Err(format!(
                "{}: {e}\n(create it with {BLESS}=1, then review it)",
                path.display()
            ));
        }
    };
    if want == got {
        return Ok(());
    }
    Err(format!(
        "{} differs at {}\n--- got\n{got}--- end\n(after checking the change: {BLESS}=1 cargo test, then git diff)",
        path.display(),
        first_difference(&want, got)
    ))
}

/// The first line that differs, for a readable failure.
fn first_difference(want: &str, got: &str) -> String {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    for i in 0..w.len().max(g.len()) {
        if w.get(i) != g.get(i) {
            return format!(
                "line {}:\n  expected: {:?}\n  got:      {:?}",
                i + 1,
                w.get(i),
                g.get(i)
            );
        }
    }
    "the final newline".into()
}

#[test]
fn the_test_switches_are_documented() {
    let readme =
        std::fs::read_to_string(super::common::root().join("README.md")).expect("README.md");
    for switch in [BLESS, super::common::STRICT] {
        assert!(
            readme.contains(&format!("{switch}=1")),
            "README.md must document {switch}=1"
        );
    }
}

#[test]
fn a_difference_names_the_file_and_the_first_line() {
    let dir = std::env::temp_dir().join(format!("hn-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("want.txt");
    std::fs::write(&path, "a\nb\n").unwrap();
    // Unless blessing, which would rewrite the file: then only equality holds.
    if !blessing() {
        let err = check_or_bless(&path, "a\nc\n").unwrap_err();
        assert!(err.contains("want.txt differs at line 2"), "{err}");
        assert!(err.contains("expected: Some(\"b\")"), "{err}");
        let err = check_or_bless(&dir.join("missing.txt"), "x").unwrap_err();
        assert!(err.contains("missing.txt"), "{err}");
    }
    assert_eq!(check_or_bless(&path, "a\nb\n"), Ok(()));
    std::fs::remove_dir_all(&dir).unwrap();
}
