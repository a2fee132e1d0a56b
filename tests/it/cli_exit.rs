//! The exit codes the help documents: 0 success, 1 invalid input (config,
//! arguments), 2 runtime failure. clap alone would exit 2 on bad arguments.

use super::common;

#[test]
fn bad_arguments_exit_1_with_clap_message() {
    for args in [
        &["--bogus"][..],
        &["status", "--bogus"],
        &["no-such-command"],
        &["generate", "nroff"],
        &[],
    ] {
        let out = common::headnode_run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--help"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_and_version_exit_0_on_stdout() {
    for args in [&["--help"][..], &["--version"], &["status", "--help"]] {
        let out = common::headnode_run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
}
