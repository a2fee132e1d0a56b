//! The IPVS side of `headnode plan` and `headnode apply` on this host. The
//! build machines' kernel has no ip_vs, so this checks the "no IPVS" path;
//! the full reconcile runs on a real IPVS kernel in the VM (tests/vm/run.sh).
use super::common;

use common::Netns;

fn config_with_backend(dir: &std::path::Path, backend: &str) -> std::path::PathBuf {
    let origin =
        std::fs::read_to_string(common::root().join("fixtures/origin/headnode.toml")).unwrap();
    let path = dir.join("headnode.toml");
    std::fs::write(
        &path,
        format!("{origin}\n[balancer]\nbackend = \"{backend}\"\n"),
    )
    .unwrap();
    path
}

fn kernel_has_ipvs() -> bool {
    std::path::Path::new("/proc/net/ip_vs").exists()
        || std::process::Command::new("modinfo")
            .arg("ip_vs")
            .output()
            .is_ok_and(|o| o.status.success())
}

#[test]
fn apply_without_ipvs_kernel_says_so() {
    if !common::can_netns(&[]) {
        return;
    }
    if kernel_has_ipvs() {
        common::cannot_run("a kernel without IPVS (tests/vm covers IPVS)");
        return;
    }
    let ns = Netns::new("ipvs");
    let dir = tempdir();
    let cfg = config_with_backend(&dir, "ipvs");
    let hn = common::headnode();
    let out = ns
        .cmd(&[hn.to_str().unwrap(), "-c", cfg.to_str().unwrap(), "apply"])
        .env("HEADNODE_STATE_DIR", &dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("the kernel has no IPVS (modprobe ip_vs failed / family IPVS not found)"),
        "{err}"
    );

    // backend auto: IPVS is optional, apply goes on without it.
    let cfg = config_with_backend(&dir, "auto");
    let out = ns
        .cmd(&[hn.to_str().unwrap(), "-c", cfg.to_str().unwrap(), "apply"])
        .env("HEADNODE_STATE_DIR", &dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn plan_shows_the_ipvsadm_table_and_changes() {
    // Backend "ipvs" explicitly: with "auto" on a kernel without IPVS the plan
    // shows the nftables balancer instead.
    let dir = std::env::temp_dir().join(format!("hn-ipvs-cli-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = config_with_backend(&dir, "ipvs");
    let out = common::headnode_run(&["-c", cfg.to_str().unwrap(), "plan"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("FWM  1 rr\n  -> 192.168.1.101:8000           Masq    1\n"),
        "{text}"
    );
    assert!(text.contains("sysctl net.ipv4.vs.conntrack = 1"), "{text}");
    assert!(
        text.contains("ipvsadm -a -f 1 -r 192.168.1.102:8000 -m -w 1"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("hn-ipvs-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
