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

use std::time::Duration;

use base64::Engine;
use webauthn_rs::prelude::{
    PublicKeyCredential, RegisterPublicKeyCredential, SecurityKey, SecurityKeyAuthentication,
    SecurityKeyRegistration, Url, Uuid, Webauthn, WebauthnBuilder, WebauthnError,
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
            .filter_map(|p| parse_key(p).map(|k| k.cred_id().clone()))
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
        let response: PublicKeyCredential = parse(response)?;
        let state: SecurityKeyAuthentication =
            serde_json::from_str(state).map_err(|_| PasskeyError::NoCeremony)?;
        let presented = b64(&response.raw_id);
        let Some(stored) = keys.iter().find(|k| k.credential_id == presented) else {
            return Err(PasskeyError::Refused(
                "the credential is not one of the user's passkeys".into(),
            ));
        };
        let result = match self
            .webauthn
            .finish_securitykey_authentication(&response, &state)
        {
            Ok(r) => r,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                return Err(PasskeyError::CounterRegression {
                    id: Some(stored.id),
                })
            }
            Err(e) => return Err(PasskeyError::Refused(e.to_string())),
        };
        let mut key = parse_key(stored)
            .ok_or_else(|| PasskeyError::Refused("the stored credential does not parse".into()))?;
        key.update_credential(&result);
        Ok(Used {
            id: stored.id,
            description: stored.description.clone(),
            counter: result.counter(),
            key: to_json(&key),
            user_verified: result.user_verified(),
        })
    }
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

fn parse_key(p: &Passkey) -> Option<SecurityKey> {
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
