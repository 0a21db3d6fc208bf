//! The command line: `check-config` points into the file at every problem,
//! `hash-password` makes argon2id hashes, `config-reference` writes
//! `docs/configuration.md`.
//!
//! The configs are in `tests/fixtures/check-config/`; each is copied into a
//! temporary directory next to generated certificates, `users.yaml`,
//! `ca.pem` and `secret.key`.

use std::process::Command;

use crate::support::expect::mentions_line;
use crate::support::users::{run_hash_password, users_yaml};
use crate::support::*;

/// What `portvakt check-config` did with one fixture.
struct Checked {
    /// The fixture's text (to find line numbers in).
    text: String,
    success: bool,
    stderr: String,
    stdout: String,
}

impl Checked {
    /// 1-based number of the `nth` (0-based) line containing `needle`.
    fn line_of(&self, needle: &str, nth: usize) -> usize {
        self.text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains(needle))
            .nth(nth)
            .map(|(i, _)| i + 1)
            .unwrap_or_else(|| panic!("{needle:?} (#{nth}) not in the fixture"))
    }

    /// The output must name the file, `line N` (one of `lines`), the key
    /// path and the words.
    fn assert_reports(&self, lines: &[usize], key_path: &str, words: &[&str]) {
        let out = &self.stderr;
        let all = format!(
            "--- stderr ---\n{}\n--- stdout ---\n{}",
            self.stderr, self.stdout
        );
        assert!(!self.success, "check-config accepted a bad file:\n{all}");
        assert!(
            out.contains("portvakt.yaml"),
            "the error does not name the file:\n{all}"
        );
        assert!(
            lines.iter().any(|n| mentions_line(out, *n)),
            "the error does not say line {lines:?}:\n{all}"
        );
        assert!(
            out.contains(key_path),
            "the error does not name {key_path}:\n{all}"
        );
        let lower = out.to_lowercase();
        for word in words {
            assert!(
                lower.contains(&word.to_lowercase()),
                "the error does not mention {word:?}:\n{all}"
            );
        }
    }
}

fn check_config(fixture: &str) -> Checked {
    let source = repo_dir().join("tests/fixtures/check-config").join(fixture);
    let text =
        std::fs::read_to_string(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    let dir = tempfile::Builder::new()
        .prefix("portvakt-cli-")
        .tempdir()
        .unwrap();
    Pki::shared().write_to(dir.path());
    std::fs::write(dir.path().join("users.yaml"), users_yaml()).unwrap();
    std::fs::write(dir.path().join("secret.key"), [7u8; 32]).unwrap();
    let config = dir.path().join("portvakt.yaml");
    std::fs::write(&config, &text).unwrap();

    let out = Command::new(portvakt_bin())
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run portvakt check-config");
    Checked {
        text,
        success: out.status.success(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

#[test]
fn check_config_accepts_a_good_file() {
    let checked = check_config("good.yaml");
    assert!(
        checked.success,
        "check-config refused the good file:\n--- stderr ---\n{}\n--- stdout ---\n{}",
        checked.stderr, checked.stdout
    );
}

#[test]
fn check_config_points_at_an_unknown_key() {
    let checked = check_config("unknown-key.yaml");
    checked.assert_reports(
        &[checked.line_of("hots: app.test", 0)],
        "services[0]",
        &["hots"],
    );
}

#[test]
fn check_config_points_at_a_bad_network() {
    let checked = check_config("bad-cidr.yaml");
    checked.assert_reports(
        &[checked.line_of("10.0.0.0/33", 0)],
        "realms[0].internal_networks",
        &[],
    );
}

#[test]
fn check_config_points_at_a_bad_duration() {
    let checked = check_config("bad-duration.yaml");
    checked.assert_reports(
        &[checked.line_of("idle_timeout: soon", 0)],
        "sessions.idle_timeout",
        &["soon"],
    );
}

#[test]
fn check_config_points_at_a_missing_certificate() {
    let checked = check_config("missing-cert.yaml");
    checked.assert_reports(
        &[checked.line_of("certs/missing.pem", 0)],
        "tls.certificates[0].cert",
        &["certs/missing.pem"],
    );
}

#[test]
fn check_config_points_at_a_duplicate_service() {
    let checked = check_config("duplicate-service.yaml");
    // The duplicate entry starts at its `- name:` line; its host is on the next.
    let lines = [
        checked.line_of("- name: App again", 0),
        checked.line_of("host: app.test", 1),
    ];
    checked.assert_reports(&lines, "services[1]", &["app.test"]);
}

#[test]
fn check_config_points_at_an_unknown_policy() {
    let checked = check_config("unknown-policy.yaml");
    checked.assert_reports(
        &[checked.line_of("policy: sometimes", 0)],
        "services[0].policy",
        &["sometimes"],
    );
}

#[test]
fn check_config_reports_every_problem_at_once() {
    let checked = check_config("several-problems.yaml");
    checked.assert_reports(
        &[checked.line_of("policy: sometimes", 0)],
        "services[0].policy",
        &["sometimes"],
    );
    checked.assert_reports(
        &[checked.line_of("certs/missing.pem", 0)],
        "tls.certificates[0].cert",
        &["certs/missing.pem"],
    );
    let duplicate = [
        checked.line_of("- name: App again", 0),
        checked.line_of("host: app.test", 1),
    ];
    checked.assert_reports(&duplicate, "services[1]", &[]);
}

#[test]
fn hash_password_prints_one_argon2id_hash() {
    // run_hash_password asserts one line starting with $argon2id$.
    let first = run_hash_password("ett lösenord");
    let second = run_hash_password("ett lösenord");
    assert_ne!(
        first, second,
        "two hashes of the same password should differ (salt)"
    );
}

#[test]
fn check_config_refuses_a_passkey_name_the_portal_is_not_under() {
    // A passkey for `other.example` could not be asked for from
    // portal.test; a bare top-level domain would let every site under it
    // ask for our users' keys.
    let checked = check_config("bad-rp-id.yaml");
    checked.assert_reports(
        &[checked.line_of("rp_id: other.example", 0)],
        "passkeys.rp_id",
        &["other.example", "portal.test"],
    );
}

#[test]
fn check_config_refuses_a_passkey_alone_without_keys_or_a_way_to_tell_disabled_accounts() {
    // Users register keys where the realm offers passkeys; and with LDAP,
    // only `enabled_filter` tells a disabled account when no password is
    // bound.
    let checked = check_config("passkey-alone.yaml");
    checked.assert_reports(
        &[checked.line_of("passkey_alone: true", 0)],
        "realms[0].methods.passkey_alone",
        &["needs passkey in methods.internal or methods.external"],
    );
    checked.assert_reports(
        &[checked.line_of("passkey_alone: true", 1)],
        "realms[1].methods.passkey_alone",
        &["enabled_filter", "userAccountControl"],
    );
}

#[test]
fn check_config_points_at_bad_assertion_settings_and_reports_them_all() {
    let checked = check_config("bad-assertion.yaml");
    checked.assert_reports(
        &[checked.line_of("header: Cookie", 0)],
        "assertion.header",
        &["Cookie", "already uses"],
    );
    checked.assert_reports(
        &[checked.line_of("overlap: 90s", 0)],
        "assertion.overlap",
        &["twice"],
    );
}

#[test]
fn check_config_warns_about_brand_colours_below_wcag_contrast() {
    let checked = check_config("low-contrast.yaml");
    let all = format!("{}\n{}", checked.stderr, checked.stdout);
    assert!(checked.success, "a warning is not an error:\n{all}");
    let line = checked.line_of("colors:", 0);
    for (key, what) in [
        ("branding.colors.on_primary", "text on primary buttons"),
        ("branding.colors.primary", "links and secondary buttons"),
    ] {
        let warning = checked
            .stderr
            .lines()
            .find(|l| l.starts_with("warning:") && l.contains(key))
            .unwrap_or_else(|| panic!("no warning about {key}:\n{all}"));
        assert!(
            warning.contains("portvakt.yaml")
                && mentions_line(warning, line)
                && warning.contains(what)
                && warning.contains("4.5:1"),
            "{warning}"
        );
    }
    assert!(
        !checked.stderr.contains("branding.colors.background"),
        "the default background is fine:\n{all}"
    );
    // The shipped colours draw no warning.
    let good = check_config("good.yaml");
    assert!(!good.stderr.contains("warning:"), "{}", good.stderr);
}

/// The line of `docs/configuration.md` the generated reference follows.
const REFERENCE_MARKER: &str = "<!-- generated reference below: do not edit by hand -->";

fn config_reference(args: &[&str]) -> std::process::Output {
    Command::new(portvakt_bin())
        .arg("config-reference")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn config_reference_is_what_docs_configuration_md_holds_below_its_marker() {
    let out = config_reference(&[]);
    assert!(out.status.success(), "{out:?}");
    let reference = String::from_utf8(out.stdout).unwrap();
    for heading in [
        "## `listen`",
        "### `listen.https`",
        "#### `realms[].methods.internal`",
    ] {
        assert!(reference.contains(heading), "no {heading} in:\n{reference}");
    }
    let file = repo_dir().join("docs/configuration.md");
    let text = std::fs::read_to_string(&file).unwrap();
    let (_, below) = text
        .split_once(&format!("{REFERENCE_MARKER}\n"))
        .expect("docs/configuration.md has the marker line");
    assert!(
        below == format!("\n{reference}"),
        "docs/configuration.md below its marker is not what `portvakt config-reference` prints; \
         regenerate it with `cargo run -- config-reference --write docs/configuration.md`"
    );
}

#[test]
fn config_reference_writes_below_the_marker_keeps_the_prose_and_refuses_a_file_without_it() {
    let reference = String::from_utf8(config_reference(&[]).stdout).unwrap();
    let dir = tempfile::Builder::new()
        .prefix("portvakt-cli-")
        .tempdir()
        .unwrap();
    let file = dir.path().join("configuration.md");
    let prose = format!(
        "# Configuration\n\nWritten by hand, with `code` and a [link](#x).\n\n{REFERENCE_MARKER}\n"
    );
    std::fs::write(&file, format!("{prose}\n## Old reference\n\nstale\n")).unwrap();
    let out = config_reference(&["--write", file.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text, format!("{prose}\n{reference}"));
    // Again: nothing changes.
    assert!(config_reference(&["--write", file.to_str().unwrap()])
        .status
        .success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);

    let bare = dir.path().join("bare.md");
    std::fs::write(&bare, "# Configuration\n\nNo marker here.\n").unwrap();
    let out = config_reference(&["--write", bare.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a file without the marker was accepted"
    );
    assert!(
        stderr.contains("bare.md") && stderr.contains(REFERENCE_MARKER),
        "the error does not name the file and the marker: {stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&bare).unwrap(),
        "# Configuration\n\nNo marker here.\n",
        "a refused file was changed"
    );
}
