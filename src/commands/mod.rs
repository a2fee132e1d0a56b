//! The CLI's commands: thin glue between the command line, the pure planning
//! code and the adapters. Errors carry their cause chain; `exit_code` maps
//! them to 1 (invalid input) or 2 (runtime failure).

mod apply;
mod balancer;
mod check;
mod clear;
mod dhcp;
mod generate;
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

/// An error caused by what the user gave us (config, flags), exit code 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let path = cli.config.as_path();
    match cli.command {
        Command::Check(args) => check::run(path, &args),
        Command::Init(args) => init::run(path, &args),
        Command::Plan(args) => plan::run(path, &args),
        Command::Apply(args) => apply::run(path, &args),
        Command::Confirm => apply::confirm(),
        Command::Clear => clear::run(),
        Command::RollbackTimer(args) => apply::rollback_timer(&args.token),
        Command::Generate(args) => generate::run(&args),
        Command::Dhcp => dhcp::run(path),
        Command::Leases(args) => leases::run(path, &args),
        Command::Import(args) => import::run(&args),
        Command::Run => run::run(path),
        Command::Reload => reload::run(),
        Command::Status(args) => status::run(path, &args),
    }
}

/// Load and validate the config, as an input error when it is invalid.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    Ok(config::load(path)?)
}

/// Load the config and fill in the public address when it says `"auto"`.
pub fn load_resolved(path: &Path) -> anyhow::Result<Config> {
    let mut cfg = load_config(path)?;
    if cfg.public.address.is_none() {
        let name = cfg.public.name.clone();
        let a = crate::netinfo::ipv4_of(&name).ok_or_else(|| {
            anyhow::anyhow!(
                "interfaces.public.address is \"auto\" but {name} has no IPv4 address; \
                 configure the interface or write the address in the config"
            )
        })?;
        cfg.resolve_public(a);
    }
    Ok(cfg)
}

/// How an error is shown: config diagnostics as they are (they already name
/// file, line and field), anything else with its full cause chain.
pub fn render_error(e: &anyhow::Error) -> String {
    match e.downcast_ref::<config::LoadError>() {
        Some(config::LoadError::Invalid(errs)) => errs.to_string(),
        _ => format!("headnode: {e:#}"),
    }
}

pub fn exit_code(e: &anyhow::Error) -> u8 {
    let input = e.chain().any(|c| {
        c.is::<InvalidInput>() || c.is::<config::LoadError>() || c.is::<config::ConfigErrors>()
    });
    if input { 1 } else { 2 }
}
