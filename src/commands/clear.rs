//! `headnode clear`: remove headnode's table and the IPVS services it
//! created, nothing else (shorewall's `clear`), and say what forwarding state
//! the box is left in. Refused while the daemon runs: it owns the firewall.

use crate::firewall::{nft::Nft, rollback};
use crate::sysctl::Sysctls;

pub fn run() -> anyhow::Result<()> {
    let socket = crate::paths::control_socket();
    if crate::control::listening(&socket)? {
        // It would load the table again at its next reconcile.
        return Err(crate::errors::InvalidInput(
            "the headnode daemon is running and keeps the firewall in place; stop it first \
             (`systemctl stop headnode`), then run `headnode clear`"
                .into(),
        )
        .into());
    }
    let nft = Nft::from_env();
    {
        // A pending confirm would otherwise put the table back later.
        let lock = rollback::Lock::take()?;
        rollback::remove(&lock)?;
    }
    if nft.delete_table()? {
        tracing::info!("table inet headnode removed");
        println!("removed table inet headnode (other tables untouched)");
    } else {
        println!("no headnode table was loaded (other tables untouched)");
    }
    for key in crate::ipvs::clear_owned()? {
        println!("removed IPVS service {key} (services headnode did not create are untouched)");
    }
    let s = Sysctls::default();
    for (key, what) in [
        ("net.ipv4.ip_forward", "IPv4"),
        ("net.ipv6.conf.all.forwarding", "IPv6"),
    ] {
        match s.read(key)?.as_deref() {
            Some("1") => println!(
                "{key} = 1: the box still routes {what} between its interfaces, now without filtering or NAT"
            ),
            Some(v) => println!("{key} = {v}: {what} forwarding is off"),
            None => {}
        }
    }
    Ok(())
}
