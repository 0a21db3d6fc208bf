//! Cookie headers and session ids as a client may send them: no panic, and
//! stripping our cookies leaves none of them behind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portvakt::session::{cookie, SessionId};

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    for name in ["__Host-portvakt", "__Host-portvakt-flow", "x"] {
        if let Some(value) = cookie::find(header, name) {
            let _ = SessionId::from_cookie(value);
        }
    }
    let _ = SessionId::from_cookie(header);
    if let Some(kept) = cookie::strip_ours(header) {
        for pair in kept.split(';') {
            let name = pair.split('=').next().unwrap_or("").trim();
            assert!(!cookie::is_ours(name), "{header:?} kept {name:?}");
        }
    }
});
