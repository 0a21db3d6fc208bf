//! The path normaliser: never panics, and what it returns is a fixed point
//! with none of the spellings it exists to remove.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portvakt::request::path::normalise;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(once) = normalise(raw) else {
        return;
    };
    let path: &str = &once.path;
    assert!(path.starts_with('/'), "{raw:?} → {path:?}");
    assert!(!path.contains("//"), "{raw:?} → {path:?}");
    assert!(!path.contains('\\'), "{raw:?} → {path:?}");
    for segment in path.split('/') {
        assert!(segment != "." && segment != "..", "{raw:?} → {path:?}");
    }
    assert!(!path.bytes().any(|b| b < 0x20 || b == 0x7f), "{raw:?} → {path:?}");
    // Escapes left are upper case and never of an unreserved character,
    // a backslash or a control byte.
    let bytes = path.as_bytes();
    for (i, _) in path.match_indices('%') {
        let hex = &bytes[i + 1..i + 3];
        assert!(hex.iter().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b)), "{path:?}");
        let v = u8::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap();
        assert!(!v.is_ascii_alphanumeric() && !b"-._~\\".contains(&v) && v >= 0x20 && v != 0x7f, "{path:?}");
    }
    assert_eq!(once.encoded_slash, path.contains("%2F"), "{raw:?} → {path:?}");
    let twice = normalise(path).expect("a normalised path normalises");
    assert_eq!(twice.path, path, "not idempotent for {raw:?}");
});
