//! How a failed command is shown and which exit status it gets: 1 for
//! what the user gave us (flags, config), 2 for everything else. Shared by
//! the CLI and the daemon (which logs a rejected reload the same way).

use crate::config;

/// An error caused by what the user gave us (config, flags), exit code 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

/// How an error is shown: config diagnostics as they are (they already name
/// file, line and field), anything else with its full cause chain.
pub fn render(e: &anyhow::Error) -> String {
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
