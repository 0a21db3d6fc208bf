//! Form bodies: bounded field count, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portvakt::pages::{parse_form, MAX_FORM_FIELDS};

fuzz_target!(|data: &[u8]| {
    if let Some(fields) = parse_form(data) {
        assert!(fields.len() <= MAX_FORM_FIELDS);
    }
});
