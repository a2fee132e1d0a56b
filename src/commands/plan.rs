//! `headnode plan [--json]`: what apply would change; changes nothing.

use crate::cli::PlanArgs;
use crate::firewall::nft::Nft;
use crate::sysctl::Sysctls;
use std::path::Path;

pub fn run(path: &Path, args: &PlanArgs) -> anyhow::Result<()> {
    let cfg = super::load_resolved(path)?;
    let plan = crate::plan::build(
        &cfg,
        &Nft::from_env(),
        &Sysctls::default(),
        &crate::daemon::live_health(),
        crate::plan::Purpose::Show,
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", plan.to_text());
    }
    Ok(())
}
