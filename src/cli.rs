//! Command-line interface (clap derive). One subcommand per operation the
//! admin performs; each is carried out by a module under `commands/`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "headnode",
    version,
    about = "Turn a two-interface Linux box into the head node of a small cluster",
    long_about = "headnode replaces ISC dhcpd, shorewall, sysctl.conf and ipvsadm for the head \
node of a small cluster: DHCP on the private LAN, an nftables firewall with masquerade, \
forwarding, and load balancing with kernel IPVS (or nftables), all from one TOML file.\n\n\
Exit codes: 0 success, 1 invalid input (config, arguments), 2 runtime failure; \
`status` has its own (`headnode status --help`)."
)]
pub struct Cli {
    /// Config file.
    #[arg(short, long, global = true, default_value = crate::config::DEFAULT_PATH, env = "HEADNODE_CONFIG")]
    pub config: PathBuf,
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a working config for this box, read from its interfaces and routes.
    Init(InitArgs),
    /// Validate the config and print a summary.
    Check(CheckArgs),
    /// Show what apply would change (ruleset, sysctls, balancer), changing nothing.
    Plan(PlanArgs),
    /// Apply sysctls, firewall and balancer once (the daemon does it when it runs).
    Apply(ApplyArgs),
    /// Keep the ruleset applied with `apply --confirm`.
    Confirm,
    /// Remove headnode's firewall table and the IPVS services it created (stop the daemon first).
    Clear,
    /// Run the daemon: apply, serve DHCP, check health, reconcile drift.
    Run(RunArgs),
    /// Serve DHCP only.
    Dhcp,
    /// Ask the running daemon to re-read its config; exit 1 if it is invalid, 2 if it could not be put in place.
    Reload(ReloadArgs),
    /// Show what is live: interfaces, firewall, balancer, leases.
    #[command(after_help = STATUS_EXIT_CODES)]
    Status(JsonArgs),
    /// List reservations and leases, the clients refused (--unknown), or end a lease.
    Leases(LeasesArgs),
    /// Translate a legacy dhcpd + shorewall + ipvsadm (or keepalived) setup into a headnode config.
    Import(ImportArgs),
    /// Write the man pages, the example config or a shell completion script (used to build the package).
    #[command(hide = true)]
    Generate(GenerateArgs),
    /// Internal: started detached by `apply --confirm`; restores the previous
    /// ruleset at the deadline unless `confirm` arrived.
    #[command(hide = true)]
    RollbackTimer(RollbackTimerArgs),
    /// Internal: keepalived's notify hook with `[ha]` (the file headnode
    /// writes for keepalived names it); tells the daemon the new VRRP state.
    #[command(hide = true)]
    HaNotify(HaNotifyArgs),
}

#[derive(Debug, Args)]
pub struct HaNotifyArgs {
    /// The daemon's control socket (default: the one in $HEADNODE_RUN_DIR).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// What keepalived passes: INSTANCE or GROUP, its name, the state
    /// (MASTER, BACKUP, FAULT, STOP) and the priority.
    #[arg(num_args = 1.., allow_hyphen_values = true)]
    pub words: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RollbackTimerArgs {
    /// The pending apply this timer belongs to.
    pub token: String,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Public interface (default: the one holding the default route).
    #[arg(long)]
    pub public: Option<String>,
    /// Private LAN interface (default: the other interface with a private address).
    #[arg(long)]
    pub private: Option<String>,
    /// Where to write (default: the --config path).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
    /// Print the config instead of writing it.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also show what each [[service]] block expands to.
    #[arg(long)]
    pub explain: bool,
    /// With [ha]: the other head node's config (a copy of its file), checked
    /// to mirror this one and to give the nodes the same answers.
    #[arg(long, value_name = "FILE")]
    pub peer: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Print the plan as JSON (the ruleset in nftables JSON).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Roll back unless `headnode confirm` arrives within this time (e.g. 120s).
    #[arg(long)]
    pub confirm: Option<String>,
    /// Apply even if the new ruleset would cut the current SSH session.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Start even if the config's ruleset would cut an SSH session into this box.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// Reload even if the new ruleset would cut an SSH session into this box.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LeasesArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// The MACs the running daemon refused (no reservation, no pool), each
    /// with a ready [[host]] block to paste into the config.
    #[arg(long)]
    pub unknown: bool,
    #[command(subcommand)]
    pub action: Option<LeasesAction>,
}

#[derive(Debug, Subcommand)]
pub enum LeasesAction {
    /// End a pool lease through the running daemon, as if the client had
    /// sent a RELEASE (recorded in the lease file); the address goes back to the pool.
    Release {
        /// The lease's address or MAC.
        lease: String,
    },
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Debian's /etc/network/interfaces (ifupdown; `source` lines are followed).
    #[arg(long)]
    pub interfaces: Option<PathBuf>,
    /// ISC dhcpd.conf.
    #[arg(long)]
    pub dhcpd: Option<PathBuf>,
    /// /etc/hosts style file.
    #[arg(long)]
    pub hosts: Option<PathBuf>,
    /// Shorewall configuration directory.
    #[arg(long)]
    pub shorewall: Option<PathBuf>,
    /// `ipvsadm-save` output (or a script of ipvsadm commands).
    #[arg(long)]
    pub ipvsadm: Option<PathBuf>,
    /// sysctl.conf.
    #[arg(long)]
    pub sysctl: Option<PathBuf>,
    /// tftpd-hpa's /etc/default/tftpd-hpa (its root becomes [tftp]).
    #[arg(long = "tftpd-hpa")]
    pub tftpd_hpa: Option<PathBuf>,
    /// dnsmasq.conf (its DHCP, PXE, TFTP and DNS settings; instead of --dhcpd).
    #[arg(long)]
    pub dnsmasq: Option<PathBuf>,
    /// keepalived.conf: its virtual_server blocks (real servers, TCP_CHECK and
    /// HTTP_GET checks) and its vrrp_instance (as [ha]).
    #[arg(long, value_name = "FILE")]
    pub keepalived: Option<PathBuf>,
    /// Write the config here (default: stdout).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// What to generate.
    #[arg(value_enum)]
    pub kind: GenerateKind,
    /// Directory to write into, under the conventional file name (default: stdout).
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum GenerateKind {
    /// The man pages: headnode.8 (to DIR: also one per subcommand, and headnode.toml.5).
    Man,
    /// The example config (the README's config reference), headnode.toml.
    Example,
    Bash,
    Zsh,
    Fish,
}

/// The text of `headnode status --help` that lists the codes.
pub const STATUS_EXIT_CODES: &str = "Exit status (the lowest that applies):
  0  the daemon runs, the firewall and IPVS match the config, every service has a healthy real server
  1  the config is invalid
  2  status itself failed (e.g. the control socket cannot be read)
  3  the daemon is not running
  4  drift: the firewall or the IPVS table does not match the config (or cannot be read)
  5  a load-balanced service has no healthy real server
  6  DHCP is on but does not answer (no server, the interface gone or down, or stuck)";
