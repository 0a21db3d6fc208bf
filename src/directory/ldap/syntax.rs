//! The strings of the LDAP protocol that we build or take apart: search
//! filters (RFC 4515), distinguished names (RFC 4514) and Active Directory's
//! bind diagnostics. Pure functions, so every rule is unit-tested here.

use crate::directory::Verdict;

/// The placeholder in `user_filter` that is replaced by the escaped login name.
pub const USERNAME_PLACEHOLDER: &str = "{username}";

/// Active Directory's `LDAP_MATCHING_RULE_IN_CHAIN`: `member:<OID>:=<DN>`
/// matches every group the DN is in, directly or through other groups.
/// OpenLDAP does not implement it.
pub const MATCHING_RULE_IN_CHAIN: &str = "1.2.840.113556.1.4.1941";

/// Escape `value` for use as an assertion value in a search filter
/// (RFC 4515 section 3): `*`, `(`, `)`, `\`, NUL and every byte outside
/// printable ASCII become `\xx`. Without this a login name such as
/// `*` or `alice)(uid=*` would change what the filter matches.
pub fn escape_filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        match b {
            b'*' | b'(' | b')' | b'\\' | 0 => push_hex(&mut out, b),
            // Control characters and every byte of a multi-byte UTF-8
            // sequence: escaping them is always correct and keeps the
            // filter plain ASCII whatever the server's parser expects.
            0x01..=0x1f | 0x7f..=0xff => push_hex(&mut out, b),
            _ => out.push(char::from(b)),
        }
    }
    out
}

fn push_hex(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('\\');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0x0f)]));
}

/// The filter that finds the user: `template` with every `{username}`
/// replaced by the escaped `username`.
pub fn user_filter(template: &str, username: &str) -> String {
    template.replace(USERNAME_PLACEHOLDER, &escape_filter_value(username))
}

/// The filter that finds every group `user_dn` belongs to, nested groups
/// included, in Active Directory.
pub fn nested_group_filter(user_dn: &str) -> String {
    format!(
        "(&(objectClass=group)(member:{MATCHING_RULE_IN_CHAIN}:={}))",
        escape_filter_value(user_dn)
    )
}

/// The value of attribute `attr` (compared without regard to case) in the
/// first RDN of `dn`: `cn` of `CN=Lön\, HR,OU=Groups,DC=example,DC=org` is
/// `Lön, HR`. `None` when the first RDN has no such attribute, or the DN is
/// malformed, or the value is BER-encoded (`#…`) — a group we cannot name is
/// left out rather than sent upstream as something it is not.
pub fn first_rdn_value(dn: &str, attr: &str) -> Option<String> {
    let mut rest = dn.trim_start();
    loop {
        let (ty, after) = rest.split_once('=')?;
        let (raw, end) = split_value(after)?;
        if ty.trim().eq_ignore_ascii_case(attr) {
            return unescape_dn_value(raw.trim_start_matches(' '));
        }
        // `+` joins the parts of a multi-valued RDN; `,` ends the RDN.
        match end {
            Some('+') => rest = &after[raw.len() + 1..],
            _ => return None,
        }
    }
}

/// Split off an RDN value: up to the first unescaped `,` or `+`. Returns the
/// raw value and the character that ended it.
fn split_value(s: &str) -> Option<(&str, Option<char>)> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' || c == '+' {
            return Some((&s[..i], Some(c)));
        }
    }
    if escaped {
        return None;
    }
    Some((s, None))
}

/// Undo RFC 4514 escapes: `\,` and friends, and `\xx` bytes (UTF-8).
fn unescape_dn_value(raw: &str) -> Option<String> {
    if raw.starts_with('#') {
        return None;
    }
    // Spaces around the value are not part of it, unless escaped (`\ `).
    let mut raw = raw;
    while raw.ends_with(' ') && !raw[..raw.len() - 1].ends_with('\\') {
        raw = &raw[..raw.len() - 1];
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hex = bytes.get(i + 1..i + 3).and_then(|h| {
            let h = std::str::from_utf8(h).ok()?;
            u8::from_str_radix(h, 16).ok()
        });
        match (hex, bytes.get(i + 1)) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, Some(&c)) => {
                out.push(c);
                i += 2;
            }
            (None, None) => return None,
        }
    }
    let value = String::from_utf8(out).ok()?;
    (!value.is_empty()).then_some(value)
}

/// The verdict for a bind that failed with `invalidCredentials` (49). Active
/// Directory puts the reason in the diagnostic message as `data <hex>`:
/// `52e` is a wrong password; the codes below mean the account cannot log
/// in now whatever the password (AD reports most of them only after the
/// password was checked).
pub fn verdict_for_invalid_credentials(diagnostic: &str) -> Verdict {
    match ad_data_code(diagnostic).as_deref() {
        // 530 not permitted at this time, 531 not at this workstation,
        // 532 password expired, 533 disabled, 701 account expired,
        // 773 must reset password, 775 locked out.
        Some("530" | "531" | "532" | "533" | "701" | "773" | "775") => Verdict::Disabled,
        _ => Verdict::WrongPassword,
    }
}

/// The `data XXX` code of an AD diagnostic such as `80090308: LdapErr:
/// DSID-0C09044E, comment: AcceptSecurityContext error, data 533, v4563`.
fn ad_data_code(diagnostic: &str) -> Option<String> {
    let at = diagnostic.find("data ")?;
    let code: String = diagnostic[at + 5..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    (!code.is_empty()).then(|| code.to_ascii_lowercase())
}

/// Whether `name` looks like an attribute description (`mail`,
/// `displayName`, `userCertificate;binary`, an OID).
pub fn is_attribute_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ';'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_rfc_4515_specials_and_non_ascii() {
        assert_eq!(escape_filter_value("alice"), "alice");
        assert_eq!(escape_filter_value("*"), "\\2a");
        assert_eq!(escape_filter_value("a(b)c"), "a\\28b\\29c");
        assert_eq!(escape_filter_value("back\\slash"), "back\\5cslash");
        assert_eq!(escape_filter_value("nul\0"), "nul\\00");
        assert_eq!(escape_filter_value("Örjan"), "\\c3\\96rjan");
        assert_eq!(escape_filter_value("tab\t"), "tab\\09");
        // The RFC's own example.
        assert_eq!(
            escape_filter_value("Lu\u{010d}i\u{0107}"),
            "Lu\\c4\\8di\\c4\\87"
        );
    }

    #[test]
    fn builds_user_filters_that_injection_cannot_widen() {
        let t = "(&(objectClass=inetOrgPerson)(uid={username}))";
        assert_eq!(
            user_filter(t, "alice"),
            "(&(objectClass=inetOrgPerson)(uid=alice))"
        );
        assert_eq!(
            user_filter(t, "alice)(uid=*"),
            "(&(objectClass=inetOrgPerson)(uid=alice\\29\\28uid=\\2a))"
        );
        assert_eq!(
            user_filter("(|(a={username})(b={username}))", "*"),
            "(|(a=\\2a)(b=\\2a))"
        );
        for name in ["*", "alice)(uid=*", "x\\", "(", "Örjan"] {
            let f = user_filter(t, name);
            assert!(ldap3::parse_filter(&f).is_ok(), "{f}");
        }
    }

    #[test]
    fn builds_the_matching_rule_in_chain_filter() {
        let f = nested_group_filter("CN=Smith\\, John,OU=Users,DC=example,DC=org");
        assert_eq!(
            f,
            "(&(objectClass=group)(member:1.2.840.113556.1.4.1941:=CN=Smith\\5c, John,OU=Users,DC=example,DC=org))"
        );
        assert!(ldap3::parse_filter(&f).is_ok());
    }

    #[test]
    fn takes_the_cn_from_a_group_dn() {
        let cn = |dn| first_rdn_value(dn, "cn");
        assert_eq!(
            cn("cn=staff,ou=groups,dc=example,dc=org").as_deref(),
            Some("staff")
        );
        assert_eq!(
            cn("CN=lon-users,OU=Groups,DC=x").as_deref(),
            Some("lon-users")
        );
        assert_eq!(cn("CN=Smith\\, John,OU=x").as_deref(), Some("Smith, John"));
        assert_eq!(cn("cn=L\\C3\\B6n,ou=x").as_deref(), Some("Lön"));
        assert_eq!(cn("cn = spaced ,ou=x").as_deref(), Some("spaced"));
        assert_eq!(cn("uid=a+cn=b,ou=x").as_deref(), Some("b"));
        assert_eq!(cn("ou=groups,dc=x"), None);
        assert_eq!(cn("cn=#04024869,dc=x"), None);
        assert_eq!(cn("garbage"), None);
        assert_eq!(cn("cn=bad\\"), None);
        assert_eq!(cn("cn=,dc=x"), None);
        assert_eq!(
            first_rdn_value("uid=bob,dc=x", "UID").as_deref(),
            Some("bob")
        );
    }

    #[test]
    fn maps_ad_diagnostics_to_verdicts() {
        let ad = |code: &str| {
            format!("80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data {code}, v4563")
        };
        assert_eq!(
            verdict_for_invalid_credentials(&ad("52e")),
            Verdict::WrongPassword
        );
        assert_eq!(
            verdict_for_invalid_credentials(&ad("533")),
            Verdict::Disabled
        );
        assert_eq!(
            verdict_for_invalid_credentials(&ad("775")),
            Verdict::Disabled
        );
        assert_eq!(
            verdict_for_invalid_credentials(&ad("701")),
            Verdict::Disabled
        );
        assert_eq!(
            verdict_for_invalid_credentials(&ad("532")),
            Verdict::Disabled
        );
        assert_eq!(verdict_for_invalid_credentials(""), Verdict::WrongPassword);
        // OpenLDAP says nothing about why.
        assert_eq!(
            verdict_for_invalid_credentials("Invalid credentials"),
            Verdict::WrongPassword
        );
    }

    #[test]
    fn recognises_attribute_names() {
        for ok in [
            "mail",
            "displayName",
            "sAMAccountName",
            "userCertificate;binary",
            "2.5.4.3",
        ] {
            assert!(is_attribute_name(ok), "{ok}");
        }
        for bad in ["", "-x", "mail,cn", "dis play", "(cn)"] {
            assert!(!is_attribute_name(bad), "{bad}");
        }
    }
}
