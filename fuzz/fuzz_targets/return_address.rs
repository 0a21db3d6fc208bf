//! Signed return addresses: a token that verifies is one we signed, and
//! nothing a client sends makes verification panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portvakt::signing::{Purpose, Signer};

fuzz_target!(|data: &[u8]| {
    let signer = Signer::from_bytes(&[7u8; 32]);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Arbitrary tokens: never verify (the fuzzer cannot forge HMAC-SHA256).
    assert_eq!(signer.verify(Purpose::Return, text), None, "{text:?} verified");
    // Our own tokens round-trip, and only for their purpose.
    let token = signer.sign(Purpose::Return, text);
    assert_eq!(signer.verify(Purpose::Return, &token).as_deref(), Some(text));
    assert_eq!(signer.verify(Purpose::SessionCsrf, &token), None);
});
