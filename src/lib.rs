//! headnode: the head node of a small cluster from one config file.
//!
//! The rule of the code base: turning the config into desired state is pure
//! and deterministic (`config`, `plan` and the planning halves of `dhcp`,
//! `firewall` and `ipvs`); adapters that touch the kernel only carry out a
//! plan, after reading what is live and computing the difference.

pub mod cli;
pub mod commands;
pub mod config;
pub mod control;
pub mod daemon;
pub mod deadline;
pub mod dhcp;
pub mod dns;
pub mod errors;
pub mod firewall;
pub mod ha;
pub mod health;
pub mod import;
pub mod ipvs;
pub mod logging;
pub mod metrics;
pub mod netinfo;
pub mod paths;
pub mod plan;
pub mod sysctl;
pub mod tftp;
pub mod timings;
