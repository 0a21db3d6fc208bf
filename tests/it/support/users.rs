//! The people in every test's `users.yaml`.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// A user of the file directory, with the password the tests type.
pub struct User {
    pub name: &'static str,
    pub password: &'static str,
    pub display_name: &'static str,
    pub email: &'static str,
    pub groups: &'static [&'static str],
    pub disabled: bool,
}

/// Staff, and a user of the salary service (`lon-users`).
pub const ALICE: User = User {
    name: "alice",
    password: "correct horse alice",
    display_name: "Alice Andersson",
    email: "alice@example.org",
    groups: &["staff", "lon-users"],
    disabled: false,
};

/// Staff only.
pub const BOB: User = User {
    name: "bob",
    password: "bobs battery staple",
    display_name: "Bob Berg",
    email: "bob@example.org",
    groups: &["staff"],
    disabled: false,
};

/// Disabled in the directory; her password is right.
pub const CAROL: User = User {
    name: "carol",
    password: "carols secret words",
    display_name: "Carol Carlsson",
    email: "carol@example.org",
    groups: &["staff"],
    disabled: true,
};

/// A name that is not ASCII.
pub const ORJAN: User = User {
    name: "orjan",
    password: "örjans lösenord",
    display_name: "Örjan Åberg",
    email: "orjan@example.org",
    groups: &["staff"],
    disabled: false,
};

/// Everyone written to `users.yaml`.
pub const ALL: &[&User] = &[&ALICE, &BOB, &CAROL, &ORJAN];

/// An argon2id hash of `password` made by `portvakt hash-password` (password
/// on stdin). Cached per password for the whole test process.
pub fn password_hash(password: &str) -> String {
    static CACHE: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(h) = cache.lock().unwrap().get(password) {
        return h.clone();
    }
    let hash = run_hash_password(password);
    cache
        .lock()
        .unwrap()
        .insert(password.to_string(), hash.clone());
    hash
}

/// Run `portvakt hash-password` once and return its single output line.
pub fn run_hash_password(password: &str) -> String {
    let mut child = Command::new(super::portvakt_bin())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn portvakt hash-password");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        // Like `echo PASSWORD | portvakt hash-password`.
        stdin
            .write_all(format!("{password}\n").as_bytes())
            .expect("write password");
    }
    let out = child.wait_with_output().expect("wait hash-password");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "portvakt hash-password failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "hash-password should print one line, printed: {stdout:?}"
    );
    let hash = lines[0].trim().to_string();
    assert!(
        hash.starts_with("$argon2id$"),
        "not an argon2id hash: {hash:?}"
    );
    hash
}

/// The `users.yaml` text for [`ALL`].
pub fn users_yaml() -> String {
    let mut out = String::from("users:\n");
    for u in ALL {
        let groups = u.groups.join(", ");
        out.push_str(&format!(
            "  {name}:\n    password: \"{hash}\"\n    display_name: \"{display}\"\n    email: {email}\n    groups: [{groups}]\n    disabled: {disabled}\n",
            name = u.name,
            hash = password_hash(u.password),
            display = u.display_name,
            email = u.email,
            disabled = u.disabled,
        ));
    }
    out
}
