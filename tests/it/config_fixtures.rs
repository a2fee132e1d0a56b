//! The config fixtures: the origin scenario passes `check`, and every file
//! under `fixtures/invalid/` fails with exactly the message stored beside it
//! (`NAME.err`). Re-bless after an intended change with `HEADNODE_BLESS=1`.

use super::{common, golden};

fn check(path: &str, extra: &[&str]) -> std::process::Output {
    common::headnode_run(&[&["check", "-c", path], extra].concat())
}

#[test]
fn origin_config_passes_check() {
    let out = check("fixtures/origin/headnode.toml", &["--explain"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 reservations"), "{stdout}");
    assert!(stdout.contains("firewall mark: tcp to the public address dport 8000 -> mark 1"));
    assert!(
        stdout
            .contains("virtual service: FWM 1 rr masq -> node1:8000 weight 1, node2:8000 weight 1")
    );
}

#[test]
fn invalid_fixtures_give_their_expected_errors() {
    let dir = common::root().join("fixtures/invalid");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures/invalid")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    names.sort();
    assert!(
        names.len() >= 5,
        "expected the invalid fixtures, found {names:?}"
    );
    let mut failures = Vec::new();
    for toml in names {
        let rel = format!(
            "fixtures/invalid/{}",
            toml.file_name().unwrap().to_string_lossy()
        );
        let out = check(&rel, &[]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{rel} must fail with exit code 1"
        );
        let got = String::from_utf8_lossy(&out.stderr);
        if let Err(e) = golden::check_or_bless(&toml.with_extension("err"), &got) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
