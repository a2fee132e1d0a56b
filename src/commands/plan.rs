//! `headnode plan [--json]`: what apply would change; changes nothing.

use crate::cli::PlanArgs;
use crate::firewall::nft::Nft;
use crate::plan;
use crate::sysctl::Sysctls;
use std::path::Path;

pub fn run(path: &Path, args: &PlanArgs) -> anyhow::Result<()> {
    let cfg = super::load_resolved(path)?;
    let nft = Nft::from_env();
    let live = plan::live::observe(
        &cfg,
        &nft,
        &Sysctls::default(),
        crate::daemon::live_health(),
    )?;
    let mut plan = plan::compute(&cfg, &live)?;
    plan::render::preview(&mut plan, &nft);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", plan.to_text());
    }
    Ok(())
}
