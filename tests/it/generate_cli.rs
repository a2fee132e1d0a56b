//! `headnode generate`: the man pages and completions the .deb ships are
//! rendered from the clap definition, one page per visible subcommand.

use super::common;

use clap::CommandFactory;
use headnode::cli::Cli;
use std::fs;
use std::path::PathBuf;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("headnode-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn visible_subcommands() -> Vec<String> {
    Cli::command()
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_string())
        .collect()
}

#[test]
fn man_pages_one_per_visible_subcommand_in_section_8() {
    let dir = TempDir::new("man");
    let out = common::headnode_run(&["generate", "man", dir.0.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let main = fs::read_to_string(dir.0.join("headnode.8")).expect("headnode.8");
    assert!(main.contains(".TH headnode 8"), "{main}");
    let subs = visible_subcommands();
    assert!(subs.len() > 5, "{subs:?}");
    for sub in &subs {
        let page = fs::read_to_string(dir.0.join(format!("headnode-{sub}.8")))
            .unwrap_or_else(|e| panic!("headnode-{sub}.8: {e}"));
        assert!(page.contains(&format!(".TH headnode-{sub} 8")), "{page}");
        assert!(
            main.contains(&format!("headnode\\-{sub}(8)")),
            "main page lists {sub}"
        );
    }
    // The hidden command has no page and is not listed; neither is `help`.
    let names: Vec<_> = fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    // Nested commands get their own page too (headnode-leases-release.8).
    let nested: usize = Cli::command()
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_subcommands().filter(|n| !n.is_hide_set()).count())
        .sum();
    assert!(
        names.contains(&"headnode-leases-release.8".to_string()),
        "{names:?}"
    );
    // And the config's page, in section 5.
    assert!(names.contains(&"headnode.toml.5".to_string()), "{names:?}");
    assert_eq!(names.len(), subs.len() + nested + 2, "{names:?}");
    assert!(!main.contains("generate"), "{main}");
}

#[test]
fn init_page_documents_its_flags() {
    let out = common::headnode_run(&["generate", "man"]);
    assert!(out.status.success());
    let main = String::from_utf8(out.stdout).unwrap();
    assert!(main.starts_with(".ie"), "roff on stdout");

    let dir = TempDir::new("man-init");
    common::headnode_run(&["generate", "man", dir.0.to_str().unwrap()]);
    let init = fs::read_to_string(dir.0.join("headnode-init.8")).unwrap();
    for flag in ["\\-\\-public", "\\-\\-private", "\\-\\-dry\\-run"] {
        assert!(init.contains(flag), "{flag} in {init}");
    }
}

#[test]
fn completions_for_bash_zsh_fish() {
    let dir = TempDir::new("completions");
    for (shell, file, marker) in [
        ("bash", "headnode", "complete -F _headnode"),
        ("zsh", "_headnode", "#compdef headnode"),
        ("fish", "headnode.fish", "complete -c headnode"),
    ] {
        let out = common::headnode_run(&["generate", shell, dir.0.to_str().unwrap()]);
        assert!(out.status.success(), "{shell}");
        let text = fs::read_to_string(dir.0.join(file)).unwrap();
        assert!(text.contains(marker), "{shell}: {marker}");
        assert!(text.contains("init") && text.contains("dry-run"), "{shell}");
    }
}

#[test]
fn unwritable_directory_is_a_runtime_error() {
    let out = common::headnode_run(&["generate", "bash", "/nonexistent/headnode"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot write /nonexistent/headnode/headnode"),
        "{err}"
    );
}

#[test]
fn generate_is_hidden_from_help() {
    let out = common::headnode_run(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("init") && !help.contains("generate"),
        "{help}"
    );
}
