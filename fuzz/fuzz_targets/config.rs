//! The config loader on arbitrary YAML: an error or a config, never a panic
//! (the running gateway keeps its old config on a bad reload only if loading
//! returns).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Validation resolves upstream host names; a fuzzer must not send DNS
    // queries (nor wait for their time-outs), so such inputs are skipped.
    if text.contains("upstream") {
        return;
    }
    let dir = std::env::temp_dir().join("portvakt-fuzz-config");
    let _ = portvakt::config::parse(&dir.join("portvakt.yaml"), text);
});
