//! A gateway's name: which of several gateways wrote a record. It is in
//! every access and auth record (`gateway`), sealed into every auth record's
//! hash, and kept in the chain head, so one gateway's records cannot pass as
//! another's and two gateways never continue one chain.
//!
//! Records written before names existed have no `gateway` field: they are
//! the *legacy* single gateway, and a named gateway may continue such a
//! chain (once; after its first named record the chain is that gateway's).

/// The longest name: a host name's limit on Linux (`HOST_NAME_MAX`).
pub const MAX_LEN: usize = 64;

/// The record field and the head-file member that hold the name.
pub const FIELD: &str = "gateway";

/// Whether `name` is a usable gateway name: 1–64 of `A-Z a-z 0-9 . _ -`.
/// Names become parts of file names and log columns: nothing that could
/// climb a directory, hide in a terminal or split a field.
pub fn is_valid(name: &str) -> bool {
    (1..=MAX_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && name != "."
        && name != ".."
}

/// The name from `audit.gateway`, or the host name when it is not set;
/// the message for the config error when neither is usable.
pub fn from_config(configured: Option<&str>) -> Result<String, String> {
    match configured {
        Some(name) if is_valid(name) => Ok(name.to_owned()),
        Some(name) => Err(format!(
            "{name:?} cannot name a gateway: use 1–{MAX_LEN} letters, digits, `.`, `_` or `-`"
        )),
        None => {
            let host = host_name();
            if is_valid(&host) {
                Ok(host)
            } else {
                Err(format!(
                    "not set, and the host name {host:?} cannot name a gateway (1–{MAX_LEN} letters, \
                     digits, `.`, `_` or `-`): set audit.gateway"
                ))
            }
        }
    }
}

/// This machine's host name (empty if it cannot be read).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_plain_words() {
        for good in ["gw-a", "portvakt1.example.org", "A_b-9", &"x".repeat(64)] {
            assert!(is_valid(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../etc",
            "gw a",
            "gw\u{1b}[2J",
            "gw\n",
            "göteborg",
            "a:b",
            &"x".repeat(65),
        ] {
            assert!(!is_valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_bad_configured_name_is_refused_and_the_default_is_the_host_name() {
        assert_eq!(from_config(Some("gw-a")).unwrap(), "gw-a");
        let e = from_config(Some("gw/a")).unwrap_err();
        assert!(e.contains("cannot name a gateway"), "{e}");
        let host = host_name();
        if is_valid(&host) {
            assert_eq!(from_config(None).unwrap(), host);
        }
    }

    fn config_with(audit: &str) -> Result<crate::config::Config, crate::config::ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        crate::demo::write_certs(dir.path()).expect("dev certificate");
        std::fs::write(dir.path().join("secret.key"), [7u8; 32]).expect("secret.key");
        std::fs::write(dir.path().join("users.yaml"), "users: {}\n").expect("users.yaml");
        let yaml = format!(
            r#"listen: {{ https: "127.0.0.1:1" }}
tls:
  certificates:
    - {{ cert: gateway.pem, key: gateway.key }}
portal: {{ host: portal.test }}
secret_key_file: secret.key
realms:
  - id: staff
    title: {{ sv: "Personal", en: "Staff" }}
    internal_networks: [10.0.0.0/8]
    directory: {{ file: users.yaml }}
services: []
audit:
  access_log: access.jsonl
  auth_log: auth.jsonl
{audit}"#
        );
        crate::config::parse(&dir.path().join("portvakt.yaml"), &yaml)
    }

    #[test]
    fn the_config_key_is_checked_at_the_border_and_named_in_the_error() {
        let c = config_with("  gateway: gw-a\n").expect("a good name");
        assert_eq!(c.gateway, "gw-a");
        let e = config_with("  gateway: \"../../etc/gw\"\n")
            .expect_err("a path is no name")
            .to_string();
        assert!(e.contains("portvakt.yaml: line 16 column"), "{e}");
        assert!(
            e.contains("audit.gateway: \"../../etc/gw\" cannot name a gateway"),
            "{e}"
        );
        if is_valid(&host_name()) {
            assert_eq!(config_with("").expect("default").gateway, host_name());
        }
    }
}
