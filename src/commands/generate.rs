//! `headnode generate`: the man pages and shell completions, rendered from the
//! clap definition in `cli.rs` so they can never drift from the real flags.
//! Hidden from `--help`; the package build runs it (ripgrep's `--generate`).
//! `headnode.toml(5)` is rendered from the README's config reference (the
//! block a test checks against the schema), so the page on the box and the
//! README say the same and neither can miss a key.

use crate::cli::{Cli, GenerateArgs, GenerateKind};
use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;
use std::io::{self, Write};
use std::path::Path;

/// headnode is a system administration command in /usr/sbin: man section 8.
const MAN_SECTION: &str = "8";

/// The README, whose "Config reference" section is the config page's source.
const README: &str = include_str!("../../README.md");

pub fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    // Each shell's completion file under the name it looks for in its
    // standard completion directory.
    let (shell, file_name) = match args.kind {
        GenerateKind::Man => {
            return match &args.dir {
                None => write_stdout(&man_page(cmd)?.1),
                Some(dir) => write_man_pages(cmd, dir),
            };
        }
        GenerateKind::Example => {
            let text = reference_block().1;
            return match &args.dir {
                None => write_stdout(text.as_bytes()),
                Some(dir) => write_file(&dir.join("headnode.toml"), text.as_bytes()),
            };
        }
        GenerateKind::Bash => (Shell::Bash, "headnode"),
        GenerateKind::Zsh => (Shell::Zsh, "_headnode"),
        GenerateKind::Fish => (Shell::Fish, "headnode.fish"),
    };
    // Rendered into memory first: clap_complete panics on a failed write
    // (a closed pipe), and writing a Vec cannot fail.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "headnode", &mut script);
    match &args.dir {
        None => write_stdout(&script),
        Some(dir) => write_file(&dir.join(file_name), &script),
    }
}

/// The page's file name (headnode.8, headnode-init.8) and its roff source;
/// the main page also gets FILES, ENVIRONMENT, EXIT STATUS and SEE ALSO.
fn man_page(cmd: clap::Command) -> anyhow::Result<(String, Vec<u8>)> {
    let main = cmd.get_name() == "headnode";
    let page = clap_mangen::Man::new(cmd).section(MAN_SECTION);
    let mut roff = Vec::new();
    page.render(&mut roff)?;
    if main {
        roff.extend_from_slice(MAIN_SECTIONS.as_bytes());
    }
    Ok((page.get_filename(), roff))
}

/// The main page and one page per subcommand (headnode-init.8, ...), which
/// the main page's SUBCOMMANDS section refers to; then headnode.toml.5.
fn write_man_pages(cmd: clap::Command, dir: &Path) -> anyhow::Result<()> {
    let main = cmd.get_name() == "headnode";
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_man_pages(sub.clone(), dir)?;
    }
    let (name, roff) = man_page(cmd)?;
    write_file(&dir.join(name), &roff)?;
    if main {
        write_file(&dir.join("headnode.toml.5"), config_page().as_bytes())?;
    }
    Ok(())
}

/// What the main page says beyond the CLI definition. The variables are the
/// ones the code reads (`grep HEADNODE_ src`); the exit codes are the help's.
const MAIN_SECTIONS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
success
.TP
\fB1\fR
invalid input: the config (with file, line, field and a fix) or the arguments
.TP
\fB2\fR
runtime failure (a command that failed, a daemon that could not be reached)
.PP
\fBheadnode status\fR has its own: 3 the daemon is not running, 4 drift (the
firewall or IPVS differs from the config), 5 a load-balanced service has no
healthy real server, 6 DHCP is on but does not answer; see
\fBheadnode\-status\fR(8).
.SH ENVIRONMENT
.TP
\fBHEADNODE_CONFIG\fR
the config file, as \fB\-c\fR (default \fI/etc/headnode/headnode.toml\fR)
.TP
\fBHEADNODE_STATE_DIR\fR
where persistent state is kept (default \fI/var/lib/headnode\fR)
.TP
\fBHEADNODE_RUN_DIR\fR
where the daemon's control socket is (default \fI/run/headnode\fR)
.TP
\fBHEADNODE_NFT\fR
the nft program to run (default \fBnft\fR from \fBPATH\fR)
.TP
\fBHEADNODE_NFT_TIMEOUT\fR
how long one nft run may take before it is killed (a duration; default 20s)
.TP
\fBHEADNODE_RECONCILE_INTERVAL\fR
how often the daemon compares the kernel with the config and repairs drift
(a duration; default 10s)
.TP
\fBHEADNODE_SSHD_CONFIG\fR
the sshd config whose \fBPort\fR lines name the SSH ports the lockout guard
watches (default \fI/etc/ssh/sshd_config\fR and its \fI.d\fR directory; port 22
when it names none)
.TP
\fBHEADNODE_JOURNAL_SOCKET\fR
journald's native socket, used under systemd (default
\fI/run/systemd/journal/socket\fR; when nothing takes datagrams there, lines
go to standard error with their priority)
.TP
\fBRUST_LOG\fR
log filter (e.g. \fBdebug\fR), overriding \fB\-v\fR
.TP
\fBNO_COLOR\fR
when set and not empty, no colours in log output (there are none either
when standard error is not a terminal or under systemd)
.SH FILES
.TP
\fI/etc/headnode/headnode.toml\fR
the config; see \fBheadnode.toml\fR(5)
.TP
\fI/var/lib/headnode/leases\fR
the DHCP lease file (the default of \fBdhcp.lease_file\fR)
.TP
\fI/var/lib/headnode/firewall.applied\fR
the last ruleset headnode applied, loaded at boot when the config does not load
.TP
\fI/var/lib/headnode/ipvs\-owned\fR
the IPVS services headnode created, so that it changes no others
.TP
\fI/var/lib/headnode/confirm.pending\fR, \fI/var/lib/headnode/firewall\-pending.json\fR
an \fBapply \-\-confirm\fR waiting for \fBheadnode confirm\fR
.TP
\fI/run/headnode/control.sock\fR
the running daemon's control socket (mode 0600)
.TP
\fI/usr/share/doc/headnode/examples/headnode.toml\fR
an example config listing every key
.SH "SEE ALSO"
\fBheadnode.toml\fR(5), \fBnft\fR(8), \fBipvsadm\fR(8), \fBsystemctl\fR(1), \fBjournalctl\fR(1)
"#;

/// The README's "Config reference": its opening paragraph and the config.
fn reference_block() -> (&'static str, &'static str) {
    let section = README
        .split("\n## Config reference\n")
        .nth(1)
        .expect("README has a Config reference section");
    let (intro, rest) = section
        .split_once("<!-- reference:start -->")
        .expect("reference start marker");
    let block = rest
        .split_once("<!-- reference:end -->")
        .expect("reference end marker")
        .0;
    let toml = block
        .split_once("```toml\n")
        .and_then(|(_, b)| b.split_once("```"))
        .expect("a toml block")
        .0;
    (intro, toml)
}

/// headnode.toml(5), from the README's "Config reference": its opening
/// paragraph and its annotated, complete example config.
fn config_page() -> String {
    let (intro, toml) = reference_block();
    // The README's last sentence is about the README.
    let intro = intro
        .split(" This block lists every key")
        .next()
        .unwrap_or(intro);
    let mut out = format!(
        ".TH headnode.toml 5 \"\" \"headnode {}\"\n\
         .SH NAME\nheadnode.toml \\- the configuration of headnode(8)\n\
         .SH SYNOPSIS\n\\fI/etc/headnode/headnode.toml\\fR\n\
         .SH DESCRIPTION\nOne TOML file describes the head node: its two interfaces, DHCP on \
         the private LAN, the firewall, forwarding and load balancing. \
         \\fBheadnode check\\fR validates it and names file, line, field and a fix \
         for every error; \\fBheadnode init\\fR writes one for this box.\n.PP\n{}\n",
        env!("CARGO_PKG_VERSION"),
        markdown_text(intro.trim()),
    );
    out.push_str(
        ".SH KEYS\nEvery key, with its default, as one complete, valid config (the \
                  same text as the README's config reference):\n.PP\n.EX\n",
    );
    for line in toml.lines() {
        out.push_str(&roff_literal(line));
        out.push('\n');
    }
    out.push_str(".EE\n");
    out.push_str(
        ".SH FILES\n.TP\n\\fI/etc/headnode/headnode.toml\\fR\nthe default path \
         (\\fB\\-c\\fR or \\fBHEADNODE_CONFIG\\fR choose another)\n.TP\n\
         \\fI/usr/share/doc/headnode/examples/headnode.toml\\fR\nthis reference as a file\n\
         .SH \"SEE ALSO\"\n\\fBheadnode\\fR(8), \\fBheadnode\\-check\\fR(8), \
         \\fBheadnode\\-init\\fR(8)\n",
    );
    out
}

/// Escape text for roff: backslashes, hyphens (\- is a minus that copies
/// and searches as "-"), and a control character at the start of a line.
fn roff_escape(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    match s.chars().next() {
        Some('.' | '\'') => format!("\\&{s}"),
        _ => s,
    }
}

/// A line of the example, as it is.
fn roff_literal(line: &str) -> String {
    if line.is_empty() {
        // An empty line in .nf is a blank line; keep it explicit.
        return String::new();
    }
    roff_escape(line)
}

/// Markdown prose to roff: `code` in bold, lines joined.
fn markdown_text(md: &str) -> String {
    let joined = md.split_whitespace().collect::<Vec<_>>().join(" ");
    let escaped = roff_escape(&joined);
    let mut out = String::new();
    for (i, part) in escaped.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str("\\fB");
            out.push_str(part);
            out.push_str("\\fR");
        } else {
            out.push_str(part);
        }
    }
    out
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        // `headnode generate man | head` is not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}
