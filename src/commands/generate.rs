//! `headnode generate`: the man pages and shell completions, rendered from the
//! clap definition in `cli.rs` so they can never drift from the real flags.
//! Hidden from `--help`; the package build runs it (ripgrep's `--generate`).

use crate::cli::{Cli, GenerateArgs, GenerateKind};
use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;
use std::io::{self, Write};
use std::path::Path;

/// headnode is a system administration command in /usr/sbin: man section 8.
const MAN_SECTION: &str = "8";

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

/// The page's file name (headnode.8, headnode-init.8) and its roff source.
fn man_page(cmd: clap::Command) -> anyhow::Result<(String, Vec<u8>)> {
    let page = clap_mangen::Man::new(cmd).section(MAN_SECTION);
    let mut roff = Vec::new();
    page.render(&mut roff)?;
    Ok((page.get_filename(), roff))
}

/// The main page and one page per subcommand (headnode-init.8, ...), which
/// the main page's SUBCOMMANDS section refers to.
fn write_man_pages(cmd: clap::Command, dir: &Path) -> anyhow::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_man_pages(sub.clone(), dir)?;
    }
    let (name, roff) = man_page(cmd)?;
    write_file(&dir.join(name), &roff)
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
