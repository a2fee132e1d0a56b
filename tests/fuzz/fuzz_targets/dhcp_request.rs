//! Arbitrary bytes through the DHCP request path: headnode's parser, the responder with reservations and a pool, and a
//! check that every reply decodes, is padded and fits the client's size.
#![no_main]

use headnode::dhcp::fuzzing::Harness;
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;

thread_local! {
    // Bindings carry over between inputs, so pool state is fuzzed too.
    static HARNESS: RefCell<Harness> = RefCell::new(Harness::default());
}

fuzz_target!(|data: &[u8]| {
    HARNESS.with(|h| {
        h.borrow_mut().run(data);
    });
});
