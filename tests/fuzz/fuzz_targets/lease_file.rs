//! Arbitrary bytes as the DHCP lease file, opened as the server does at
//! start: a clean recovery to a file that loads without problems, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;

thread_local! {
    static DIR: PathBuf = headnode::dhcp::fuzzing::lease_dir();
}

fuzz_target!(|data: &[u8]| DIR.with(|d| headnode::dhcp::fuzzing::lease_file(d, data)));
