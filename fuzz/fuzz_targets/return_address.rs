//! Return addresses: nothing a client sends verifies unless we signed it,
//! and what we sign (URLs built from a client's own Host and path) verifies
//! only for an https URL on a host and port we serve — no open redirect.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portvakt::pages::verify_return;
use portvakt::signing::{Purpose, Signer};

const LISTENER: u16 = 8443;

fn known(host: &str) -> bool {
    host == "app.test" || host == "portal.test"
}

fuzz_target!(|data: &[u8]| {
    let signer = Signer::from_bytes(&[7u8; 32]);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The request's own port, as a Host header may claim it.
    let (suffix, text) = match text.split_once('\n') {
        Some((s, rest)) => (s, rest),
        None => ("", text),
    };
    // Arbitrary tokens never verify (HMAC-SHA256 cannot be guessed).
    assert!(verify_return(&signer, known, LISTENER, suffix, text).is_none());
    // Whatever we signed verifies only for a host and port we serve.
    let token = signer.sign(Purpose::Return, text);
    if let Some(target) = verify_return(&signer, known, LISTENER, suffix, &token) {
        let url = url::Url::parse(&target.url).expect("a verified target parses");
        assert_eq!(url.scheme(), "https", "{text:?}");
        assert!(known(&target.host), "{text:?} → {}", target.host);
        assert_eq!(url.host_str().map(str::to_ascii_lowercase).as_deref(), Some(target.host.as_str()));
        assert!(url.username().is_empty() && url.password().is_none(), "{text:?}");
        let claimed = suffix.strip_prefix(':').and_then(|p| p.parse::<u16>().ok());
        assert!(
            matches!(url.port(), None | Some(443) | Some(LISTENER)) || url.port() == claimed,
            "{text:?} on port {:?}",
            url.port()
        );
    }
    assert!(signer.verify(Purpose::SessionCsrf, &token).is_none());
});
