//! Which balancing backend carries out the `[[balancer.virtual]]` services:
//! kernel IPVS when the kernel has it, the nftables ruleset otherwise.

use crate::config::model::{Backend, Config};

/// The backend to use, and why (shown by `plan` and `status`).
pub fn select_backend(cfg: &Config) -> (Backend, String) {
    select_with(cfg.balancer.backend, || {
        crate::ipvs::probe().map_err(|e| match e {
            // Not the error's own advice (load ip_vs or choose nftables):
            // auto has already chosen.
            crate::ipvs::Error::NoIpvs(why) => format!("the kernel has no IPVS ({why})"),
            e => e.to_string(),
        })
    })
}

fn select_with(
    configured: Backend,
    probe: impl FnOnce() -> Result<(), String>,
) -> (Backend, String) {
    match configured {
        Backend::Ipvs => (Backend::Ipvs, "balancer.backend = \"ipvs\"".into()),
        Backend::Nftables => (Backend::Nftables, "balancer.backend = \"nftables\"".into()),
        Backend::Auto => match probe() {
            Ok(()) => (
                Backend::Ipvs,
                "backend auto: the kernel has IPVS (generic netlink family \"IPVS\" resolved)"
                    .into(),
            ),
            Err(why) => (Backend::Nftables, format!("backend auto: {why}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_follows_the_probe_and_explicit_choices_do_not_probe() {
        let (b, why) = select_with(Backend::Auto, || Err("no IPVS here".into()));
        assert_eq!(b, Backend::Nftables);
        assert!(why.contains("no IPVS here"));
        assert_eq!(select_with(Backend::Auto, || Ok(())).0, Backend::Ipvs);
        let (b, _) = select_with(Backend::Nftables, || panic!("must not probe"));
        assert_eq!(b, Backend::Nftables);
    }

    #[test]
    fn probe_answers_on_this_kernel() {
        // Either answer is fine; it must not hang or panic.
        let _ = crate::ipvs::probe();
    }
}
