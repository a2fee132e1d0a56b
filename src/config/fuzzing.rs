//! The config loader on arbitrary text, for the cargo-fuzz target in
//! `tests/fuzz` and the stable smoke test below. Any panic is a bug; so is
//! a diagnostic that points outside the text, and so is a difference
//! between the two ways a file is read: whole, or with its `[[host]]`
//! sections cut out and parsed one at a time (the way big files take).

use super::validate::parse_with;
use super::{ConfigErrors, Diagnostic};
use std::path::Path;

/// Feed one input: bytes that are not UTF-8 are replaced, as the loader
/// itself only ever sees text.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("fuzz.toml");
    let whole = parse_with(&text, path, usize::MAX);
    let sections = parse_with(&text, path, 0);
    // Debug, not PartialEq: the model does not need equality otherwise.
    let (shown_whole, shown_sections) = (format!("{whole:?}"), format!("{sections:?}"));
    assert!(
        shown_whole == shown_sections,
        "whole-file and host-section loads differ:\n{shown_whole}\n{shown_sections}"
    );
    if let Err(diagnostics) = whole {
        let lines = text.split('\n').count();
        for d in &diagnostics {
            check(d, &text, lines);
        }
        let shown = ConfigErrors {
            path: path.to_owned(),
            diagnostics,
        }
        .to_string();
        assert!(shown.contains("error: fuzz.toml:"), "{shown}");
    }
}

fn check(d: &Diagnostic, text: &str, lines: usize) {
    assert!((1..=lines).contains(&d.line), "{d:?} is past the end");
    let line_len = text
        .split('\n')
        .nth(d.line - 1)
        .map_or(0, |l| l.chars().count());
    assert!(
        (1..=line_len + 1).contains(&d.col),
        "{d:?} is past its line"
    );
    assert!(!d.field.is_empty() && !d.message.is_empty(), "{d:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Valid and invalid configs from the repository: mutation starts from
    /// files that reach every section.
    const SEEDS: &[&str] = &[
        include_str!("../../fixtures/origin/headnode.toml"),
        include_str!("../../fixtures/golden/full.toml"),
        include_str!("../../fixtures/invalid/hosts.toml"),
        include_str!("../../fixtures/invalid/marks.toml"),
        include_str!("../../fixtures/invalid/service.toml"),
        include_str!("../../fixtures/invalid/pool-overlap.toml"),
    ];

    /// Pieces of TOML and of the values the validator reads, inserted at
    /// random places: a byte flip rarely makes a new table or a long number.
    const TOKENS: &[&str] = &[
        "[",
        "]",
        "[[host]]\n",
        "\n[[host]]",
        "[dhcp]\n",
        "\"",
        "'",
        "\"\"\"",
        "'''",
        "=",
        "\n",
        "\r\n",
        "\r",
        "#",
        ",",
        "{",
        "}",
        ".",
        "-",
        ":",
        "/",
        " ",
        "\t",
        "\\",
        "\\u00e9",
        "0",
        "1",
        "255",
        "256",
        "65536",
        "-1",
        "4294967296",
        "9223372036854775807",
        "é",
        "✓",
        "\u{0}",
        "public",
        "auto",
        "1d",
        "500ms",
        "node1",
        "00:12:34:56:78:91",
        "192.168.1.101",
        "192.168.1.254/24",
        "fwmark = 1\n",
        "mark = 1\n",
        "real = []\n",
    ];

    /// A short deterministic run on every `cargo test`: mutated
    /// repository configs and random bytes.
    #[test]
    fn smoke() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut valid = 0;
        for i in 0..3_000 {
            if i % 20 == 0 {
                let random: Vec<u8> = (0..next() % 300).map(|_| next() as u8).collect();
                run(&random);
                continue;
            }
            let mut t = SEEDS[(next() as usize) % SEEDS.len()].as_bytes().to_vec();
            for _ in 0..next() % 4 {
                let at = (next() as usize) % (t.len() + 1);
                match next() % 6 {
                    0 if at < t.len() => t[at] = next() as u8,
                    1 | 2 => {
                        let token = TOKENS[(next() as usize) % TOKENS.len()];
                        t.splice(at..at, token.bytes());
                    }
                    3 => {
                        let end = (at + (next() as usize) % 40).min(t.len());
                        t.drain(at..end);
                    }
                    4 => {
                        // A copy of a stretch: repeated hosts, tables and keys.
                        let end = (at + (next() as usize) % 200).min(t.len());
                        let copy = t[at..end].to_vec();
                        t.splice(at..at, copy);
                    }
                    _ => t.truncate(at),
                }
            }
            run(&t);
            let text = String::from_utf8_lossy(&t);
            valid += usize::from(crate::config::parse(&text, Path::new("x")).is_ok());
        }
        assert!(
            valid > 150,
            "only {valid} mutated configs were valid: the mutations rarely reach validation"
        );
    }
}
