//! The TOML file as written by the admin, one struct per table.
//!
//! Every value that validation must check and point at is kept as
//! `Spanned<..>` so an error can name the line and column. Unknown keys are
//! rejected (`deny_unknown_fields`) so a typo never silently does nothing.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub interfaces: Option<S<RawInterfaces>>,
    #[serde(default)]
    pub dhcp: RawDhcp,
    #[serde(default, rename = "host")]
    pub hosts: Vec<S<RawHost>>,
    #[serde(default)]
    pub firewall: RawFirewall,
    #[serde(default)]
    pub balancer: RawBalancer,
    #[serde(default, rename = "service")]
    pub services: Vec<S<RawService>>,
    #[serde(default)]
    pub sysctl: BTreeMap<String, S<RawSysctlValue>>,
    pub tftp: Option<S<RawTftp>>,
    pub metrics: Option<S<RawMetrics>>,
    pub dns: Option<S<RawDns>>,
    pub ha: Option<S<RawHa>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHa {
    pub role: Option<S<String>>,
    pub priority: Option<S<i64>>,
    pub peer: Option<S<String>>,
    pub public_address: Option<S<String>>,
    pub lan_address: Option<S<String>>,
    pub interface: Option<S<String>>,
    pub virtual_router_id: Option<S<i64>>,
    pub advert_interval: Option<S<RawDuration>>,
    pub keepalived_config: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    pub enabled: Option<bool>,
    pub domain: Option<S<String>>,
    pub name: Option<S<String>>,
    pub upstream: Option<Vec<S<String>>>,
    pub ttl: Option<S<i64>>,
    pub cache_size: Option<S<i64>>,
    pub rate_limit: Option<S<i64>>,
    pub pool_names: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub listen: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTftp {
    pub enabled: Option<bool>,
    pub root: Option<S<String>>,
    pub max_transfers: Option<S<i64>>,
    pub max_transfers_per_client: Option<S<i64>>,
    pub max_blksize: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInterfaces {
    pub public: S<RawPublic>,
    pub private: S<RawPrivate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPublic {
    pub name: S<String>,
    /// `"203.0.113.210/24"`, or `"auto"` to read it from the interface at apply time.
    #[serde(default)]
    pub address: Option<S<String>>,
    #[serde(default)]
    pub gateway: Option<S<String>>,
    /// IPv6 address of the public side, if any (only used to open v6 rules).
    #[serde(default)]
    pub address6: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrivate {
    pub name: S<String>,
    pub address: S<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDhcp {
    pub enabled: Option<bool>,
    pub lease_time: Option<S<RawDuration>>,
    pub max_lease_time: Option<S<RawDuration>>,
    #[serde(default)]
    pub routers: Option<Vec<S<String>>>,
    #[serde(default)]
    pub dns_servers: Vec<S<String>>,
    pub domain_name: Option<S<String>>,
    #[serde(default)]
    pub domain_search: Vec<S<String>>,
    #[serde(default)]
    pub ntp_servers: Vec<S<String>>,
    pub next_server: Option<S<String>>,
    pub filename: Option<S<String>>,
    pub lease_file: Option<S<String>>,
    /// Serve even though the private interface holds the default route.
    pub allow_default_route_interface: Option<bool>,
    pub pool: Option<S<RawPool>>,
    /// PXE by client: the first rule that matches picks the boot file.
    #[serde(default)]
    pub boot: Vec<S<RawBoot>>,
}

/// One `[[dhcp.boot]]` (or a host's `boot` entry).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBoot {
    /// Option 93: a name ("bios", "efi-x64", ...) or the number.
    pub arch: Option<S<RawArch>>,
    /// Option 77, e.g. "iPXE".
    pub user_class: Option<S<String>>,
    pub filename: S<String>,
    pub next_server: Option<S<String>>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum RawArch {
    Number(i64),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub start: S<String>,
    pub end: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    pub name: S<String>,
    pub mac: S<String>,
    pub address: S<String>,
    pub lease_time: Option<S<RawDuration>>,
    pub next_server: Option<S<String>>,
    pub filename: Option<S<String>>,
    #[serde(default)]
    pub dns_servers: Option<Vec<S<String>>>,
    pub domain_name: Option<S<String>>,
    #[serde(default)]
    pub boot: Vec<S<RawBoot>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawFirewall {
    pub enabled: Option<bool>,
    /// Accept SSH from loc to fw (shorewall's sample does). Default true.
    pub ssh_from_loc: Option<bool>,
    /// Log dropped packets from net (rate limited). Default true.
    pub log_drops: Option<bool>,
    /// Masquerade loc→net. Default true.
    pub masquerade: Option<bool>,
    /// SNAT to this fixed public address instead of masquerading.
    pub snat: Option<S<String>>,
    /// Forward IPv6 between the interfaces. Default false.
    pub ipv6_forward: Option<bool>,
    #[serde(default, rename = "policy")]
    pub policies: Vec<S<RawPolicy>>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<S<RawRule>>,
    #[serde(default, rename = "mark")]
    pub marks: Vec<S<RawMark>>,
    #[serde(default, rename = "forward")]
    pub forwards: Vec<S<RawForward>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub from: S<String>,
    pub to: S<String>,
    pub action: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub action: S<String>,
    pub from: S<String>,
    pub to: S<String>,
    pub proto: Option<S<String>>,
    #[serde(default)]
    pub ports: Vec<S<RawPort>>,
    pub source: Option<S<String>>,
    pub dest: Option<S<String>>,
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMark {
    pub mark: S<i64>,
    /// Destination address; `"public"` (the default) is the public interface's address.
    pub dest: Option<S<String>>,
    pub source: Option<S<String>>,
    pub proto: Option<S<String>>,
    #[serde(default)]
    pub ports: Vec<S<RawPort>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForward {
    pub proto: S<String>,
    pub port: S<RawPort>,
    /// Host name from `[[host]]` or an address on the private subnet.
    pub to: S<String>,
    pub to_port: Option<S<i64>>,
    pub source: Option<S<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawBalancer {
    pub backend: Option<S<String>>,
    /// Remove IPVS services that this config does not name, even ones headnode did not create.
    pub exclusive: Option<bool>,
    #[serde(default, rename = "virtual")]
    pub virtuals: Vec<S<RawVirtual>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVirtual {
    pub name: Option<S<String>>,
    pub fwmark: Option<S<i64>>,
    pub proto: Option<S<String>>,
    pub address: Option<S<String>>,
    pub port: Option<S<i64>>,
    pub scheduler: Option<S<String>>,
    pub method: Option<S<String>>,
    pub persistence: Option<S<RawDuration>>,
    pub persistence_netmask: Option<S<String>>,
    #[serde(default)]
    pub real: Vec<S<RawReal>>,
    pub health: Option<S<RawHealth>>,
    pub sorry_server: Option<S<String>>,
}

/// A real server: `"node1:8000"` or `{ host = "node1", port = 8000, weight = 2 }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawReal {
    Short(String),
    Full(RawRealFull),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRealFull {
    pub host: String,
    pub port: Option<i64>,
    pub weight: Option<i64>,
    pub upper_threshold: Option<i64>,
    pub lower_threshold: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// `tcp` or `http`; without a `health` table no check runs.
    pub check: S<String>,
    pub interval: Option<S<RawDuration>>,
    pub timeout: Option<S<RawDuration>>,
    pub rise: Option<S<i64>>,
    pub fall: Option<S<i64>>,
    pub path: Option<S<String>>,
    pub expect_status: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub name: S<String>,
    pub proto: Option<S<String>>,
    pub port: S<i64>,
    /// Address the service listens on; default `"public"`.
    pub address: Option<S<String>>,
    #[serde(default)]
    pub real: Vec<S<RawReal>>,
    pub scheduler: Option<S<String>>,
    pub method: Option<S<String>>,
    /// fwmark to use; default: the lowest mark not used elsewhere.
    pub mark: Option<S<i64>>,
    pub persistence: Option<S<RawDuration>>,
    pub health: Option<S<RawHealth>>,
    pub sorry_server: Option<S<String>>,
    /// Zone allowed to reach the service; default `"net"`.
    pub from: Option<S<String>>,
}

/// A duration: integer seconds or a string like `"90s"`, `"5m"`, `"12h"`, `"1d"`.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum RawDuration {
    Seconds(i64),
    Text(String),
}

/// A port: `8000` or a range `"8000-8010"`.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum RawPort {
    One(i64),
    Range(String),
}

#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum RawSysctlValue {
    Int(i64),
    Text(String),
    Bool(bool),
}
