//! Arbitrary bytes as a config file through the loader: a config or
//! diagnostics inside the text, never a panic, and the same answer whether
//! the `[[host]]` sections are parsed with the file or one at a time.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| headnode::config::fuzzing::run(data));
