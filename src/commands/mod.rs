//! The CLI's commands: thin glue between the command line, the pure planning
//! code and the adapters. Errors carry their cause chain; `exit_code` maps
//! them to 1 (invalid input) or 2 (runtime failure).

mod apply;
mod check;
mod clear;
mod dhcp;
mod generate;
mod ha_notify;
mod import;
mod init;
mod leases;
mod plan;
mod reload;
mod run;
mod status;

use crate::cli::{Cli, Command};
use crate::config::{self, Config};
use std::path::Path;

pub(crate) use crate::errors::InvalidInput;

/// Carry out the command; the exit code when it succeeded (0, or what
/// `status` found).
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    let path = cli.config.as_path();
    match cli.command {
        Command::Status(args) => return status::run(path, &args),
        Command::Check(args) => check::run(path, &args),
        Command::Init(args) => init::run(path, &args),
        Command::Plan(args) => plan::run(path, &args),
        Command::Apply(args) => apply::run(path, &args),
        Command::Confirm => apply::confirm(),
        Command::Clear => clear::run(),
        Command::RollbackTimer(args) => apply::rollback_timer(&args.token),
        Command::HaNotify(args) => ha_notify::run(&args),
        Command::Generate(args) => generate::run(&args),
        Command::Dhcp => dhcp::run(path),
        Command::Leases(args) => leases::run(path, &args),
        Command::Import(args) => import::run(&args),
        Command::Run(args) => run::run(path, &args),
        Command::Reload(args) => reload::run(&args),
    }?;
    Ok(0)
}

/// Load and validate the config, as an input error when it is invalid.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    Ok(config::load(path)?)
}

/// Load the config and fill in the public address from the interface when
/// it says `"auto"`.
pub fn load_resolved(path: &Path) -> anyhow::Result<Config> {
    config::load_resolved(path, crate::netinfo::ipv4_of)
}
