//! Tests of the key ring: signatures, kids, rotation, the sealed file and the shared ring.
use super::*;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

const HOUR: u64 = 3_600_000;
const R: Rotation = Rotation {
    rotate_every: Duration::from_secs(3600),
    overlap: Duration::from_secs(600),
};

fn sealer() -> Sealer {
    Sealer::from_secret(&[9; 32])
}

fn kids(ring: &Ring, now: u64) -> Vec<String> {
    ring.published(now, R).map(|k| k.kid.clone()).collect()
}

#[test]
fn a_signature_verifies_with_the_published_point_and_the_kid_is_the_thumbprint() {
    let k = SigningKey::generate(0).unwrap();
    let sig = k.sign(b"header.payload").unwrap();
    assert_eq!(sig.len(), 64, "JWS ES256 wants r ‖ s");
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, k.public_point());
    public.verify(b"header.payload", &sig).unwrap();
    assert!(public.verify(b"header.payloaX", &sig).is_err());
    // The same key read back has the same kid; the kid is 43 base64url chars.
    let again = SigningKey::from_pkcs8(k.pkcs8.clone(), 0).unwrap();
    assert_eq!(again.kid, k.kid);
    assert_eq!(k.kid.len(), 43);
    assert!(!format!("{k:?}").contains(&b64(&k.pkcs8)));
}

#[tokio::test]
async fn rotation_keeps_the_previous_key_for_the_overlap_then_retires_it() {
    let dir = tempfile::tempdir().unwrap();
    let ring = KeyRing::new(Place::File(dir.path().join(FILE_NAME)), sealer());
    let t0 = 1_000 * HOUR;
    let first = ring.at(t0, R).await.unwrap();
    let k1 = first.current().unwrap().kid.clone();
    assert_eq!(kids(&first, t0), std::slice::from_ref(&k1));
    // Not due yet: the same ring, no new key.
    let same = ring.at(t0 + HOUR - 1, R).await.unwrap();
    assert!(Arc::ptr_eq(&first, &same));
    // Due: a new key signs, the old one is still published.
    let t1 = t0 + HOUR;
    let second = ring.at(t1, R).await.unwrap();
    let k2 = second.current().unwrap().kid.clone();
    assert_ne!(k1, k2);
    assert_eq!(kids(&second, t1), [k1.clone(), k2.clone()]);
    assert_eq!(kids(&second, t1 + 600_000 - 1), [k1.clone(), k2.clone()]);
    // Past the overlap the old key is no longer published.
    assert_eq!(kids(&second, t1 + 600_000), std::slice::from_ref(&k2));
    // The next rotation drops it from the ring itself.
    let third = ring.at(t1 + HOUR, R).await.unwrap();
    assert_eq!(third.keys.len(), 2);
    assert!(!kids(&third, t1 + HOUR).contains(&k1));
}

#[tokio::test]
async fn the_ring_file_is_private_sealed_and_read_back_after_a_restart() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let kid = {
        let ring = KeyRing::new(Place::File(path.clone()), sealer());
        ring.at(HOUR, R)
            .await
            .unwrap()
            .current()
            .unwrap()
            .kid
            .clone()
    };
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        !bytes.windows(6).any(|w| w == b"pkcs8\""),
        "the file must be sealed, not plain JSON"
    );
    // A restart reads the same key.
    let again = KeyRing::new(Place::File(path.clone()), sealer());
    assert_eq!(
        again.at(HOUR + 1, R).await.unwrap().current().unwrap().kid,
        kid
    );
    // Another secret key cannot open it, and says so.
    let other = KeyRing::new(Place::File(path.clone()), Sealer::from_secret(&[1; 32]));
    let err = other.at(HOUR + 1, R).await.unwrap_err();
    assert!(matches!(err, KeyRingError::Sealed { .. }), "{err}");
    // A file others can read is refused, not used.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loose = KeyRing::new(Place::File(path.clone()), sealer());
    let err = loose.at(HOUR + 1, R).await.unwrap_err();
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[tokio::test]
async fn gateways_sharing_state_agree_on_one_key_and_one_rotation() {
    let clock = crate::clock::ManualClock::starting_at(HOUR);
    let state: SharedState = Arc::new(crate::state::memory::MemoryBackend::new(clock));
    let a = KeyRing::new(Place::Shared(state.clone()), sealer());
    let b = KeyRing::new(Place::Shared(state.clone()), sealer());
    // Starting at the same moment: one key, not two.
    let (ra, rb) = tokio::join!(a.at(HOUR, R), b.at(HOUR, R));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.current().unwrap().kid, rb.current().unwrap().kid);
    assert_eq!(ra.keys.len(), 1);
    // A rotates; B, not yet due by its own copy, learns the new key for
    // its JWKS when it refreshes.
    let t1 = 2 * HOUR;
    let rotated = a.at(t1, R).await.unwrap();
    let seen = b.refreshed(t1 + 1, R).await.unwrap();
    assert_eq!(kids(&seen, t1 + 1), kids(&rotated, t1 + 1));
    assert_eq!(seen.keys.len(), 2);
    // And when B comes to rotate at the same time, it adopts A's key.
    let c = KeyRing::new(Place::Shared(state), sealer());
    let rc = c.at(t1 + 2, R).await.unwrap();
    assert_eq!(rc.current().unwrap().kid, rotated.current().unwrap().kid);
}
