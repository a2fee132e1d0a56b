//! The README's config reference is a complete, valid config, and it names
//! every key the schema accepts (found by asking the parser which keys a
//! table expects).

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
    let text = reference();
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
                let l = l.trim_start();
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
    assert!(
        missing.is_empty(),
        "keys missing from the README reference: {missing:?}"
    );
}
