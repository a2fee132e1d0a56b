//! The README's config reference is a complete, valid config, and it names
//! every key the schema accepts (found by asking the parser which keys a
//! table expects). headnode.toml(5) and the shipped example are rendered
//! from it: the same checks hold for them, and the page is a golden file.

use super::{common, golden};
use headnode::config;
use std::path::Path;

fn reference() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let start = readme
        .find("<!-- reference:start -->")
        .expect("reference start marker");
    let end = readme
        .find("<!-- reference:end -->")
        .expect("reference end marker");
    let block = &readme[start..end];
    let body = block.split("```toml").nth(1).expect("toml block");
    body.split("```").next().expect("closing fence").to_string()
}

#[test]
fn reference_block_is_a_valid_config() {
    if let Err(e) = config::parse(&reference(), Path::new("README.md")) {
        panic!("the README reference does not validate:\n{e}");
    }
}

/// Every key each table accepts, as the parser lists them in its
/// "unknown field" message, appears as a key in the reference block.
#[test]
fn reference_block_documents_every_key() {
    let missing = undocumented(&reference());
    assert!(
        missing.is_empty(),
        "keys missing from the README reference: {missing:?}"
    );
}

/// `headnode generate man DIR`'s headnode.toml.5, as text.
fn config_page() -> String {
    let dir = std::env::temp_dir().join(format!("headnode-man5-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = common::headnode_run(&["generate", "man", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let page = std::fs::read_to_string(dir.join("headnode.toml.5")).expect("headnode.toml.5");
    let _ = std::fs::remove_dir_all(&dir);
    page
}

/// The man page documents every key too, and is the golden file
/// fixtures/golden/headnode.toml.5 (re-bless with HEADNODE_BLESS=1).
#[test]
fn config_man_page_documents_every_key() {
    let page = config_page();
    assert!(page.starts_with(".TH headnode.toml 5 "), "{page}");
    for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "KEYS", "FILES"] {
        assert!(page.contains(&format!(".SH {section}\n")), "{section}");
    }
    // roff escapes undone: the example as the reader sees it.
    let plain = page
        .replace("\\-", "-")
        .replace("\\&", "")
        .replace("\\e", "\\");
    let example = plain
        .split(".EX\n")
        .nth(1)
        .and_then(|b| b.split(".EE\n").next())
        .expect("an example block");
    assert_eq!(
        example,
        reference().trim_start_matches('\n'),
        "the page's example is the README's"
    );
    let missing = undocumented(example);
    assert!(
        missing.is_empty(),
        "keys missing from headnode.toml(5): {missing:?}"
    );
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden/headnode.toml.5");
    golden::assert_or_bless(&golden, &page);
}

/// The example the package ships is the reference, and a valid config.
#[test]
fn shipped_example_is_the_reference() {
    let out = common::headnode_run(&["generate", "example"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(text, reference().trim_start_matches('\n'));
    config::parse(&text, Path::new("headnode.toml")).expect("valid");
}

/// The headnode(8) page names the files, the environment and exit codes.
#[test]
fn main_man_page_has_files_environment_and_exit_status() {
    let out = common::headnode_run(&["generate", "man"]);
    let page = String::from_utf8(out.stdout).expect("utf-8");
    for section in [
        ".SH \"EXIT STATUS\"",
        ".SH ENVIRONMENT",
        ".SH FILES",
        ".SH \"SEE ALSO\"",
    ] {
        assert!(page.contains(section), "{section} in headnode.8");
    }
    // Every HEADNODE_ variable the code reads is documented.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut vars = std::collections::BTreeSet::new();
    let mut stack = vec![src];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).expect("src").flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") && !path.ends_with("tests.rs") {
                // What tests set for themselves is not the admin's business.
                let source = std::fs::read_to_string(&path).expect("source");
                let text = source.split("#[cfg(test)]").next().unwrap_or_default();
                for (i, _) in text
                    .match_indices("var_os(\"HEADNODE_")
                    .chain(text.match_indices("var(\"HEADNODE_"))
                {
                    let name: String = text[i..].split('"').nth(1).expect("name").to_string();
                    vars.insert(name);
                }
            }
        }
    }
    assert!(vars.contains("HEADNODE_STATE_DIR"), "{vars:?}");
    for v in &vars {
        assert!(page.contains(&format!("\\fB{v}\\fR")), "{v} in ENVIRONMENT");
    }
    assert!(page.contains("\\fBHEADNODE_CONFIG\\fR"));
}

/// The keys the schema accepts that `text` does not name.
fn undocumented(text: &str) -> Vec<String> {
    let tables = [
        "",
        "[interfaces]",
        "[interfaces.public]\nname=\"a\"",
        "[interfaces.private]\nname=\"a\"",
        "[dhcp]",
        "[dhcp.pool]\nstart=\"1.1.1.1\"\nend=\"1.1.1.1\"",
        "[[host]]\nname=\"a\"\nmac=\"00:00:00:00:00:01\"\naddress=\"1.1.1.1\"",
        "[firewall]",
        "[[firewall.policy]]\nfrom=\"a\"\nto=\"b\"\naction=\"c\"",
        "[[firewall.rule]]\naction=\"a\"\nfrom=\"a\"\nto=\"b\"",
        "[[firewall.mark]]\nmark=1",
        "[[firewall.forward]]\nproto=\"tcp\"\nport=1\nto=\"a\"",
        "[balancer]",
        "[[balancer.virtual]]",
        "[[balancer.virtual]]\n[balancer.virtual.health]\ncheck=\"tcp\"",
        "[[service]]\nname=\"a\"\nport=1",
        "[tftp]\nroot=\"/a\"",
        "[dns]\ndomain=\"a\"",
        "[metrics]\nlisten=\"127.0.0.1:1\"",
        "[ha]",
        "[[dhcp.boot]]\nuser_class=\"a\"\nfilename=\"a\"",
    ];
    let mut missing = Vec::new();
    for t in tables {
        let probe = format!("{t}\nzz_not_a_key = 1\n");
        let err = config::parse(&probe, Path::new("probe.toml")).expect_err("probe key must fail");
        let msg = err.to_string();
        let expected = msg
            .split("expected")
            .nth(1)
            .unwrap_or_else(|| panic!("no field list for {t:?}: {msg}"));
        for key in expected.split('`').skip(1).step_by(2) {
            let documented = text.lines().any(|l| {
                // A table commented out (one that changes what the box is,
                // like [ha]) documents its keys as well.
                let l = l.trim_start().trim_start_matches("# ");
                l.starts_with(&format!("{key} ="))
                    || l.starts_with(&format!("[{key}"))
                    || l.starts_with(&format!("[[{key}"))
                    || l.contains(&format!(".{key}]"))
                    || l.contains(&format!("{key} = "))
            });
            if !documented {
                missing.push(format!("{t:?}: {key}"));
            }
        }
    }
    missing
}
