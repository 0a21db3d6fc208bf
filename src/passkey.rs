//! Passkeys and security keys (WebAuthn) as a second factor: the relying
//! party that asks a browser to create or use a credential bound to the
//! portal's name, and checks what comes back.
//!
//! The cryptography (CBOR, COSE keys, signatures, origin, RP id hash, user
//! presence and verification flags, the signature counter) is
//! [`webauthn_rs`]'s; this module only keeps its ceremony state between the
//! two requests of a ceremony and maps its answers to ours. What the browser
//! is asked for: user verification *preferred*, attestation *none*, no
//! resident key (the user has already given a name and password), the
//! user's registered credentials excluded when adding one (the same key is
//! not registered twice).
//!
//! A login ceremony's state lives in the shared state under the session for
//! [`CEREMONY_MS`] and is taken (removed) by the answer, so one challenge
//! answers once, on whichever gateway the answer lands.
//!
//! **A passkey alone** (a realm's `methods.passkey_alone`): the same stored
//! keys, asked for with user verification *required*, since possession
//! without the PIN or fingerprint is one factor. There is no session yet, so
//! the ceremony is kept under a random ceremony id the page carries. A name
//! with no usable key (unknown, disabled, locked, none registered) gets a
//! [`decoy`](RelyingParty::decoy_login) challenge that names credential ids
//! derived from the name with a secret: the same page, and the same ids for
//! the same name every time, so the page cannot tell who has an account.

use std::time::Duration;

use base64::Engine;
use webauthn_rs::prelude::{
    Passkey as AloneKey, PasskeyAuthentication, PublicKeyCredential, RegisterPublicKeyCredential,
    SecurityKey, SecurityKeyAuthentication, SecurityKeyRegistration, Url, Uuid, Webauthn,
    WebauthnBuilder, WebauthnError,
};

use crate::session::SessionKey;
use crate::state::{SharedState, StateError};
use crate::storage::{Passkey, UserRef};

/// How long the browser (and the user, touching the key) has to answer.
pub const CEREMONY_MS: u64 = 5 * 60 * 1000;

/// Largest browser answer accepted (an attestation with certificates is a
/// few KiB; the form limit caps it anyway).
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024;

/// What went wrong in a ceremony.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// The relying party could not be set up from the configuration.
    #[error("passkeys: cannot use relying party id {rp_id:?} for https://{host}: {why}")]
    Setup {
        /// `passkeys.rp_id`.
        rp_id: String,
        /// The portal host.
        host: String,
        /// The library's reason.
        why: String,
    },
    /// The browser's answer is not a WebAuthn credential at all.
    #[error("not a WebAuthn response: {0}")]
    Malformed(String),
    /// The signature counter did not move forward: two copies of the key
    /// may exist (a cloned authenticator).
    #[error("signature counter went backwards (a cloned key?)")]
    CounterRegression {
        /// Which of the user's passkeys presented it, if known.
        id: Option<i64>,
    },
    /// The signature, challenge, origin or flags did not verify, or the
    /// credential is not one of the user's.
    #[error("WebAuthn verification failed: {0}")]
    Refused(String),
    /// No ceremony is waiting (expired, answered already, or never started).
    #[error("no WebAuthn ceremony is waiting for this session")]
    NoCeremony,
    /// The user has no usable passkey.
    #[error("no passkey registered")]
    NoPasskeys,
    /// A login with the key alone, but the authenticator did not verify
    /// the user (no PIN or fingerprint).
    #[error("the authenticator did not verify the user")]
    NotVerified,
    /// The shared state did not answer.
    #[error(transparent)]
    State(#[from] StateError),
}

/// A credential the browser created, checked and ready to store.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The credential id, base64url (the store keeps it unique).
    pub credential_id: String,
    /// The library's serialised credential (public key, counter, flags).
    pub key: String,
}

/// A verified use of one of the user's passkeys.
#[derive(Debug, Clone)]
pub struct Used {
    /// The store's id of the passkey.
    pub id: i64,
    /// Its description, for the audit line.
    pub description: String,
    /// The counter the authenticator reported.
    pub counter: u32,
    /// The credential with that counter, to save.
    pub key: String,
    /// Whether the authenticator verified the user (PIN, fingerprint).
    pub user_verified: bool,
}

/// The relying party for one configuration.
pub struct RelyingParty {
    webauthn: Webauthn,
    rp_id: String,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RelyingParty({})", self.rp_id)
    }
}

impl RelyingParty {
    /// Passkeys bound to `rp_id`, asked for from `https://portal_host` (any
    /// port: the portal may be reached through a port mapping; the name is
    /// what binds a credential), shown to the user as `name`.
    pub fn new(rp_id: &str, portal_host: &str, name: &str) -> Result<RelyingParty, PasskeyError> {
        let setup = |why: String| PasskeyError::Setup {
            rp_id: rp_id.to_owned(),
            host: portal_host.to_owned(),
            why,
        };
        let origin =
            Url::parse(&format!("https://{portal_host}")).map_err(|e| setup(e.to_string()))?;
        let webauthn = WebauthnBuilder::new(rp_id, &origin)
            .map_err(|e| setup(e.to_string()))?
            .rp_name(name)
            .allow_any_port(true)
            .timeout(Duration::from_millis(CEREMONY_MS))
            .build()
            .map_err(|e| setup(e.to_string()))?;
        Ok(RelyingParty {
            webauthn,
            rp_id: rp_id.to_owned(),
        })
    }

    /// The relying party id.
    pub fn rp_id(&self) -> &str {
        &self.rp_id
    }

    /// Options for `navigator.credentials.create` (JSON, for the page) and
    /// the state to keep until the answer (JSON).
    pub fn start_registration(
        &self,
        who: &UserRef,
        display_name: &str,
        existing: &[Passkey],
    ) -> Result<(String, String), PasskeyError> {
        let exclude = existing
            .iter()
            .filter_map(|p| parse_key::<SecurityKey>(p).map(|k| k.cred_id().clone()))
            .collect();
        let shown = if display_name.is_empty() {
            &who.user
        } else {
            display_name
        };
        let (options, state) = self
            .webauthn
            .start_securitykey_registration(
                user_handle(who),
                &who.user,
                shown,
                Some(exclude),
                None,
                None,
            )
            .map_err(|e| PasskeyError::Refused(e.to_string()))?;
        Ok((without_cred_protect(&options), to_json(&state)))
    }

    /// Check the browser's answer to a registration against its state.
    pub fn finish_registration(
        &self,
        response: &str,
        state: &str,
    ) -> Result<Registered, PasskeyError> {
        let response: RegisterPublicKeyCredential = parse(response)?;
        let state: SecurityKeyRegistration =
            serde_json::from_str(state).map_err(|_| PasskeyError::NoCeremony)?;
        let key = self
            .webauthn
            .finish_securitykey_registration(&response, &state)
            .map_err(|e| PasskeyError::Refused(e.to_string()))?;
        Ok(Registered {
            credential_id: b64(key.cred_id().as_ref()),
            key: to_json(&key),
        })
    }

    /// Options for `navigator.credentials.get` naming the user's
    /// credentials (JSON) and the state to keep (JSON).
    pub fn start_login(&self, keys: &[Passkey]) -> Result<(String, String), PasskeyError> {
        let keys: Vec<SecurityKey> = keys.iter().filter_map(parse_key).collect();
        if keys.is_empty() {
            return Err(PasskeyError::NoPasskeys);
        }
        let (options, state) = self
            .webauthn
            .start_securitykey_authentication(&keys)
            .map_err(|e| PasskeyError::Refused(e.to_string()))?;
        Ok((to_json(&options), to_json(&state)))
    }

    /// Check the browser's answer to a login against its state and the
    /// user's passkeys (as stored now: a removed one no longer verifies even
    /// if the challenge named it).
    pub fn finish_login(
        &self,
        response: &str,
        state: &str,
        keys: &[Passkey],
    ) -> Result<Used, PasskeyError> {
        let state: SecurityKeyAuthentication =
            serde_json::from_str(state).map_err(|_| PasskeyError::NoCeremony)?;
        self.finish::<SecurityKey>(response, keys, |r| {
            self.webauthn.finish_securitykey_authentication(r, &state)
        })
    }

    /// Options for a login with a passkey alone, naming the user's
    /// credentials with user verification required (JSON), and the state to
    /// keep (JSON).
    pub fn start_login_alone(&self, keys: &[Passkey]) -> Result<(String, String), PasskeyError> {
        let keys: Vec<AloneKey> = keys.iter().filter_map(parse_key).collect();
        if keys.is_empty() {
            return Err(PasskeyError::NoPasskeys);
        }
        let (options, state) = self
            .webauthn
            .start_passkey_authentication(&keys)
            .map_err(|e| PasskeyError::Refused(e.to_string()))?;
        Ok((same_shape(to_json(&options)), to_json(&state)))
    }

    /// Options shaped like [`start_login_alone`](Self::start_login_alone)'s
    /// for a name with no usable key: a fresh challenge and one or two
    /// credential ids derived from `seed` (a secret MAC of realm and name,
    /// so the same name always shows the same ids and no one can compute
    /// them). No authenticator holds them; nothing is kept to answer.
    pub fn decoy_login(&self, seed: &[u8; 32]) -> String {
        use rand::RngCore;
        let template = self
            .webauthn
            .start_passkey_authentication(&[])
            .ok()
            .map(|(o, _)| o);
        let mut challenge = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut challenge);
        // Most people have one key; some have two.
        let count = if seed[0].is_multiple_of(8) { 2 } else { 1 };
        let ids: Vec<Vec<u8>> = (0..count)
            .map(|i| {
                use sha2::{Digest, Sha256};
                let mut id = Vec::with_capacity(DECOY_ID_LEN);
                for block in 0u8..2 {
                    let mut h = Sha256::new();
                    h.update(seed);
                    h.update([i as u8, block]);
                    id.extend_from_slice(&h.finalize());
                }
                id.truncate(DECOY_ID_LEN);
                id
            })
            .collect();
        let mut v = template
            .and_then(|o| serde_json::to_value(&o).ok())
            .unwrap_or_else(|| serde_json::json!({"publicKey": {"rpId": self.rp_id, "userVerification": "required", "timeout": CEREMONY_MS}}));
        if let Some(pk) = v.get_mut("publicKey").and_then(|p| p.as_object_mut()) {
            pk.insert(
                "challenge".into(),
                serde_json::Value::String(b64(&challenge)),
            );
            pk.insert(
                "allowCredentials".into(),
                serde_json::Value::Array(
                    ids.iter()
                        .map(|id| serde_json::json!({"type": "public-key", "id": b64(id)}))
                        .collect(),
                ),
            );
        }
        same_shape(v.to_string())
    }

    /// Check the answer to a login with a passkey alone: as
    /// [`finish_login`](Self::finish_login), and the authenticator must have
    /// verified the user (the library refuses it otherwise; checked here
    /// again, since without it the key is one factor).
    pub fn finish_login_alone(
        &self,
        response: &str,
        state: &str,
        keys: &[Passkey],
    ) -> Result<Used, PasskeyError> {
        let state: PasskeyAuthentication =
            serde_json::from_str(state).map_err(|_| PasskeyError::NoCeremony)?;
        let used = self.finish::<AloneKey>(response, keys, |r| {
            self.webauthn.finish_passkey_authentication(r, &state)
        })?;
        if !used.user_verified {
            return Err(PasskeyError::NotVerified);
        }
        Ok(used)
    }

    fn finish<K: StoredKey>(
        &self,
        response: &str,
        keys: &[Passkey],
        verify: impl FnOnce(
            &PublicKeyCredential,
        )
            -> Result<webauthn_rs::prelude::AuthenticationResult, WebauthnError>,
    ) -> Result<Used, PasskeyError> {
        let response: PublicKeyCredential = parse(response)?;
        let presented = b64(&response.raw_id);
        let Some(stored) = keys.iter().find(|k| k.credential_id == presented) else {
            return Err(PasskeyError::Refused(
                "the credential is not one of the user's passkeys".into(),
            ));
        };
        let result = match verify(&response) {
            Ok(r) => r,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                return Err(PasskeyError::CounterRegression {
                    id: Some(stored.id),
                })
            }
            Err(WebauthnError::UserNotVerified) => return Err(PasskeyError::NotVerified),
            Err(e) => return Err(PasskeyError::Refused(e.to_string())),
        };
        let mut key: K = parse_key(stored)
            .ok_or_else(|| PasskeyError::Refused("the stored credential does not parse".into()))?;
        key.update(&result);
        Ok(Used {
            id: stored.id,
            description: stored.description.clone(),
            counter: result.counter(),
            key: to_json(&key),
            user_verified: result.user_verified(),
        })
    }
}

/// Length of a decoy credential id: what the common security keys give a
/// non-discoverable credential (YubiKey 5, Feitian, SoloKey: 64 bytes).
const DECOY_ID_LEN: usize = 64;

/// The options of a login with a passkey alone with each credential's
/// `transports` left out, real or decoy: they are only a hint for the
/// browser's prompt (it then offers every transport), and the hint a real
/// key registered with would tell it from a decoy.
fn same_shape(options: String) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&options) else {
        return options;
    };
    if let Some(list) = v
        .get_mut("publicKey")
        .and_then(|p| p.get_mut("allowCredentials"))
        .and_then(|a| a.as_array_mut())
    {
        for c in list.iter_mut().filter_map(|c| c.as_object_mut()) {
            c.remove("transports");
        }
    }
    v.to_string()
}

/// Login ceremonies waiting for the browser's answer, by session.
#[derive(Debug)]
pub struct Ceremonies {
    state: SharedState,
}

const PREFIX: &str = "portvakt:wa:";

impl Ceremonies {
    /// Ceremonies kept in `state`.
    pub fn new(state: SharedState) -> Ceremonies {
        Ceremonies { state }
    }

    fn key(session: SessionKey) -> String {
        format!("{PREFIX}{}", crate::state::hex(&session.0))
    }

    /// Keep a login ceremony's state for `session` (replacing an earlier one:
    /// only the newest challenge on the newest page answers).
    pub async fn put(&self, session: SessionKey, state: &str) -> Result<(), StateError> {
        self.state
            .put(
                &Self::key(session),
                state.as_bytes(),
                Duration::from_millis(CEREMONY_MS),
            )
            .await
    }

    /// Keep the state of a login with a passkey alone under `ceremony` (a
    /// random id the page carries; there is no session yet).
    pub async fn put_alone(&self, ceremony: &str, state: &str) -> Result<(), StateError> {
        self.state
            .put(
                &format!("{PREFIX}alone:{ceremony}"),
                state.as_bytes(),
                Duration::from_millis(CEREMONY_MS),
            )
            .await
    }

    /// Take the login ceremony `ceremony`: it answers once.
    pub async fn take_alone(&self, ceremony: &str) -> Result<Option<String>, StateError> {
        Ok(self
            .state
            .take(&format!("{PREFIX}alone:{ceremony}"))
            .await?
            .and_then(|raw| String::from_utf8(raw).ok()))
    }

    /// Take the ceremony of `session`: it answers once.
    pub async fn take(&self, session: SessionKey) -> Result<Option<String>, StateError> {
        Ok(self
            .state
            .take(&Self::key(session))
            .await?
            .and_then(|raw| String::from_utf8(raw).ok()))
    }
}

/// The WebAuthn user handle of a user: stable, and not their name (it is
/// stored on the authenticator, which may be shared or lost).
fn user_handle(who: &UserRef) -> Uuid {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"portvakt webauthn user\0");
    h.update(who.realm.as_bytes());
    h.update(b"\0");
    h.update(who.user.as_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

/// The creation options without the credProtect extension the library asks
/// for: Chromium refuses the whole request ("NotSupportedError: requested
/// protection policy is inconsistent") for a non-discoverable credential
/// with user verification only preferred, which is exactly what we ask for.
/// Leaving it out changes nothing we rely on: user verification is still
/// preferred, and we read whether it happened from each assertion's flags.
fn without_cred_protect<T: serde::Serialize>(options: &T) -> String {
    let mut v = serde_json::to_value(options).unwrap_or_default();
    if let Some(ext) = v
        .get_mut("publicKey")
        .and_then(|p| p.get_mut("extensions"))
        .and_then(|e| e.as_object_mut())
    {
        ext.remove("credentialProtectionPolicy");
        ext.remove("enforceCredentialProtectionPolicy");
    }
    v.to_string()
}

/// A stored credential as either of the library's types: a security key
/// (second factor) or a passkey (alone, user verification required). Both
/// are the same credential serialised the same way (`{"cred": …}`), so one
/// stored key serves both ceremonies.
trait StoredKey: serde::Serialize + serde::de::DeserializeOwned {
    fn update(&mut self, result: &webauthn_rs::prelude::AuthenticationResult);
}

impl StoredKey for SecurityKey {
    fn update(&mut self, result: &webauthn_rs::prelude::AuthenticationResult) {
        self.update_credential(result);
    }
}

impl StoredKey for AloneKey {
    fn update(&mut self, result: &webauthn_rs::prelude::AuthenticationResult) {
        self.update_credential(result);
    }
}

fn parse_key<K: serde::de::DeserializeOwned>(p: &Passkey) -> Option<K> {
    match serde_json::from_str(&p.key) {
        Ok(k) => Some(k),
        Err(e) => {
            tracing::error!(passkey = p.id, error = %e, "stored passkey does not parse; skipped");
            None
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(response: &str) -> Result<T, PasskeyError> {
    if response.len() > MAX_RESPONSE_BYTES {
        return Err(PasskeyError::Malformed("too large".into()));
    }
    serde_json::from_str(response).map_err(|e| PasskeyError::Malformed(e.to_string()))
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // The library's own types always serialise.
    serde_json::to_string(value).unwrap_or_default()
}

/// base64url without padding, as WebAuthn JSON writes ids.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp() -> RelyingParty {
        RelyingParty::new("portal.test", "portal.test", "Test").expect("relying party")
    }

    fn parts(options: &str) -> (serde_json::Value, Vec<String>) {
        let mut v: serde_json::Value = serde_json::from_str(options).expect("JSON");
        let pk = v["publicKey"].as_object_mut().expect("publicKey");
        pk.remove("challenge");
        let ids = pk
            .remove("allowCredentials")
            .and_then(|l| l.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|c| c["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        (v, ids)
    }

    #[test]
    fn a_decoy_asks_like_a_real_login_with_ids_fixed_by_the_seed() {
        let rp = rp();
        let a = rp.decoy_login(&[1; 32]);
        let b = rp.decoy_login(&[1; 32]);
        let (shape_a, ids_a) = parts(&a);
        let (shape_b, ids_b) = parts(&b);
        assert_eq!(ids_a, ids_b, "the same seed, the same ids");
        assert_eq!(shape_a, shape_b);
        assert_ne!(a, b, "a fresh challenge each time");
        assert_eq!(shape_a["publicKey"]["userVerification"], "required");
        assert_eq!(shape_a["publicKey"]["rpId"], "portal.test");
        assert_eq!(ids_a.len(), 1);
        assert_eq!(
            decode(&ids_a[0]).len(),
            DECOY_ID_LEN,
            "a security key's id length"
        );
        let (_, other) = parts(&rp.decoy_login(&[2; 32]));
        assert_ne!(other, ids_a, "another name, other ids");
        // A seed starting with a multiple of 8: two keys, as some have.
        assert_eq!(parts(&rp.decoy_login(&[8; 32])).1.len(), 2);
        // The real options, from the library with no keys, have the same
        // fields: a decoy is the library's template with ids put in.
        let (template, _) = rp
            .webauthn
            .start_passkey_authentication(&[])
            .expect("a template");
        let (real, _) = parts(&same_shape(to_json(&template)));
        assert_eq!(real, shape_a);
    }

    #[test]
    fn transports_are_left_out_of_every_credential() {
        let options = r#"{"publicKey":{"allowCredentials":[{"type":"public-key","id":"AA","transports":["usb"]}]}}"#;
        let v: serde_json::Value = serde_json::from_str(&same_shape(options.into())).unwrap();
        assert_eq!(
            v["publicKey"]["allowCredentials"][0],
            serde_json::json!({"type": "public-key", "id": "AA"})
        );
        assert_eq!(
            rp().start_login_alone(&[]).unwrap_err().to_string(),
            "no passkey registered"
        );
    }

    fn decode(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .expect("base64url")
    }
}
