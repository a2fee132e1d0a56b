//! The integration tests, one crate so they share one build and one set of
//! helpers. Each module under `tests/it/` covers one area; shared helpers
//! (namespaces, the binary under test) are in `it::common`.
//!
//! Run one area with `cargo test --test tests dhcp_pool::`.

mod it {
    mod architecture;
    mod cli_exit;
    mod common;
    mod config_fixtures;
    mod daemon_netns;
    mod dhcp_clients;
    mod dhcp_lan;
    mod dhcp_pool;
    mod dns_netns;
    mod firewall_golden;
    mod firewall_netns;
    mod generate_cli;
    pub mod golden;
    mod import_golden;
    mod init_netinfo;
    mod init_netns;
    mod ipvs_cli;
    mod observe_netns;
    mod readme_reference;
    mod tftp_netns;
}
