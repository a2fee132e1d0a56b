//! `headnode run`: the daemon (see `crate::daemon`).

use crate::cli::RunArgs;
use std::path::Path;

pub fn run(path: &Path, args: &RunArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(crate::daemon::run(path.to_owned(), args.force))
}
