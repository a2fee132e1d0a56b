//! Arbitrary bytes as a DNS query to the cluster's names: the zone's
//! answer, the reply's size and encoding, the cache fed with the bytes as
//! an upstream's answer. Never a panic.
#![no_main]

use headnode::dns::fuzzing::Harness;
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;

thread_local! {
    static H: RefCell<Harness> = RefCell::new(Harness::default());
}

fuzz_target!(|data: &[u8]| H.with(|h| h.borrow_mut().run(data)));
