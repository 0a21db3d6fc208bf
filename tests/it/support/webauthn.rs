//! A security key for the browser tests: Chromium's virtual authenticator,
//! driven through the W3C WebAuthn WebDriver extension that chromedriver
//! implements (`/session/{id}/webauthn/…`), sent through the same WebDriver
//! client as every other browser command.
//!
//! The key is a CTAP2 USB authenticator with user verification (a PIN the
//! user "types"); its credentials can be read out (private key and
//! signature counter) and put back, which is how a cloned key is made.
//! [`without_webauthn`] makes the next pages of a browser behave like one
//! that has no WebAuthn at all.

use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::{json, Value};

use super::browser::{Browser, COMMAND_WAIT};

/// One WebDriver command under the session (`path` after `session/{id}/`).
#[derive(Debug)]
struct Command {
    method: http::Method,
    path: String,
    body: Option<Value>,
}

impl WebDriverCompatibleCommand for Command {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        let body = match (&self.method, &self.body) {
            (_, Some(b)) => Some(b.to_string()),
            (&http::Method::POST, None) => Some("{}".into()),
            _ => None,
        };
        (self.method.clone(), body)
    }
}

async fn send(b: &Browser, method: http::Method, path: String, body: Option<Value>) -> Value {
    let what = format!("{method} {path}");
    let cmd = Command { method, path, body };
    match tokio::time::timeout(COMMAND_WAIT, b.client().issue_cmd(cmd)).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => panic!("WebDriver {what} failed: {e}"),
        Err(_) => panic!("WebDriver {what} did not answer within {COMMAND_WAIT:?}"),
    }
}

/// A credential as the virtual authenticator holds it.
#[derive(Debug, Clone)]
pub struct StoredCredential {
    /// base64url credential id.
    pub id: String,
    /// The relying party it is bound to.
    pub rp_id: String,
    /// base64url PKCS#8 private key: whoever has it has a copy of the key.
    pub private_key: String,
    /// The signature counter the next use will exceed.
    pub sign_count: u64,
}

/// A virtual security key plugged into a browser.
pub struct SecurityKey<'a> {
    browser: &'a Browser,
    id: String,
}

impl<'a> SecurityKey<'a> {
    /// Plug a new, empty CTAP2 USB key with user verification into `b`.
    pub async fn plug_into(b: &'a Browser) -> SecurityKey<'a> {
        let answer = send(
            b,
            http::Method::POST,
            "webauthn/authenticator".into(),
            Some(json!({
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": false,
                "hasUserVerification": true,
                "isUserConsenting": true,
                "isUserVerified": true,
            })),
        )
        .await;
        let id = answer
            .as_str()
            .or_else(|| answer.get("authenticatorId").and_then(Value::as_str))
            .unwrap_or_else(|| panic!("no authenticator id in {answer}"))
            .to_string();
        SecurityKey { browser: b, id }
    }

    /// The credentials on the key.
    pub async fn credentials(&self) -> Vec<StoredCredential> {
        let answer = send(
            self.browser,
            http::Method::GET,
            format!("webauthn/authenticator/{}/credentials", self.id),
            None,
        )
        .await;
        answer
            .as_array()
            .unwrap_or_else(|| panic!("credentials are not a list: {answer}"))
            .iter()
            .map(|c| StoredCredential {
                id: c["credentialId"].as_str().unwrap_or_default().into(),
                rp_id: c["rpId"].as_str().unwrap_or_default().into(),
                private_key: c["privateKey"].as_str().unwrap_or_default().into(),
                sign_count: c["signCount"].as_u64().unwrap_or_default(),
            })
            .collect()
    }

    /// Put `c` on the key (as a copy of another key would hold it).
    pub async fn add(&self, c: &StoredCredential) {
        send(
            self.browser,
            http::Method::POST,
            format!("webauthn/authenticator/{}/credential", self.id),
            Some(json!({
                "credentialId": c.id,
                "isResidentCredential": false,
                "rpId": c.rp_id,
                "privateKey": c.private_key,
                "signCount": c.sign_count,
            })),
        )
        .await;
    }

    /// Wipe the key.
    pub async fn clear(&self) {
        send(
            self.browser,
            http::Method::DELETE,
            format!("webauthn/authenticator/{}/credentials", self.id),
            None,
        )
        .await;
    }

    /// Unplug the key.
    pub async fn unplug(self) {
        send(
            self.browser,
            http::Method::DELETE,
            format!("webauthn/authenticator/{}", self.id),
            None,
        )
        .await;
    }
}

/// From now on, every page `b` opens sees no `PublicKeyCredential` (as in
/// a browser without WebAuthn): removed before any page script runs.
pub async fn without_webauthn(b: &Browser) {
    send(
        b,
        http::Method::POST,
        "goog/cdp/execute".into(),
        Some(json!({
            "cmd": "Page.addScriptToEvaluateOnNewDocument",
            "params": { "source": "delete window.PublicKeyCredential;" },
        })),
    )
    .await;
}
