//! `passkeys:`: the WebAuthn relying party id passkeys are bound to, as
//! written and as checked.

use schemars::JsonSchema;
use serde::Deserialize;

use super::validate::Checker;

/// `passkeys:` the relying party a passkey is bound to.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Passkeys {
    /// The name passkeys are registered for: the portal host (without this
    /// key) or a domain it belongs to (`example.se` for `portal.example.se`), so one
    /// credential also serves the portal after it moves to another host of
    /// that domain. Changing it later makes every registered passkey unusable.
    pub rp_id: Option<String>,
}

/// `passkeys.rp_id`: the portal host or a domain it is under. Browsers refuse
/// any other name (a passkey for `example.se` cannot be asked for from
/// `portal.other.se`), and a bare top-level domain would let every site
/// under it ask for our users' passkeys.
pub(super) fn rp_id(c: &mut Checker<'_>, rp_id: Option<&str>, portal_host: &str) -> String {
    let Some(rp_id) = rp_id else {
        return portal_host.to_owned();
    };
    let id = rp_id.trim_end_matches('.').to_ascii_lowercase();
    let under = portal_host == id || portal_host.ends_with(&format!(".{id}"));
    if !under || !id.contains('.') || id.starts_with('.') {
        c.problem(
            "passkeys.rp_id",
            format!(
                "{rp_id:?} must be the portal host ({portal_host}) or a domain it belongs to, \
                 with at least two labels (e.g. example.se for portal.example.se)"
            ),
        );
    }
    id
}
