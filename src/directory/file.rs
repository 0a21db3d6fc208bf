//! The `users.yaml` directory: argon2id hashes, display names, e-mail, groups.

use std::collections::BTreeMap;
use std::path::Path;

use async_trait::async_trait;
use serde::Deserialize;

use super::{Directory, DirectoryError, Presence, User, Verdict};
use crate::config::Problem;
use crate::password::{is_valid_hash, PasswordChecker};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    users: BTreeMap<String, UserEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    password: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    disabled: bool,
}

#[derive(Debug)]
struct Entry {
    user: User,
    hash: String,
    disabled: bool,
}

/// Users read from a YAML file at (re)load time.
#[derive(Debug)]
pub struct FileDirectory {
    users: BTreeMap<String, Entry>,
    checker: PasswordChecker,
}

impl FileDirectory {
    /// Read and check `path`; problems name the file, line and user.
    pub fn load(path: &Path, checker: PasswordChecker) -> Result<FileDirectory, Vec<Problem>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![Problem::new(
                path,
                None,
                "",
                format!("cannot read users file: {e}"),
            )]
        })?;
        let parsed: UsersFile =
            serde_norway::from_str(&text).map_err(|e| vec![Problem::from_yaml(path, &e)])?;
        let locations = crate::config::locate::Locations::index(&text);
        let mut problems = Vec::new();
        let mut users = BTreeMap::new();
        for (name, e) in parsed.users {
            let key = format!("users.{name}.password");
            if !is_valid_hash(&e.password) {
                problems.push(Problem::new(
                    path,
                    locations.find(&key),
                    &key,
                    "not an argon2 hash; create one with `portvakt hash-password`".into(),
                ));
                continue;
            }
            let user = User {
                display_name: e.display_name.unwrap_or_else(|| name.clone()),
                email: e.email.unwrap_or_default(),
                groups: e.groups,
                username: name.clone(),
            };
            users.insert(
                name,
                Entry {
                    user,
                    hash: e.password,
                    disabled: e.disabled,
                },
            );
        }
        if problems.is_empty() {
            Ok(FileDirectory { users, checker })
        } else {
            Err(problems)
        }
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file has no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[async_trait]
impl Directory for FileDirectory {
    async fn check(&self, username: &str, password: &str) -> Result<Verdict, DirectoryError> {
        let entry = self.users.get(username);
        // Always hash, so the answer time does not reveal whether the user exists.
        let ok = self
            .checker
            .verify(password, entry.map(|e| e.hash.as_str()))
            .await;
        Ok(match entry {
            None => Verdict::UnknownUser,
            Some(e) if !ok => {
                if e.disabled {
                    Verdict::Disabled
                } else {
                    Verdict::WrongPassword
                }
            }
            Some(e) if e.disabled => Verdict::Disabled,
            Some(e) => Verdict::Valid(e.user.clone()),
        })
    }

    async fn lookup(&self, username: &str) -> Result<Presence, DirectoryError> {
        // A map lookup either way: nothing to equalise.
        Ok(match self.users.get(username) {
            None => Presence::UnknownUser,
            Some(e) if e.disabled => Presence::Disabled,
            Some(e) => Presence::Active(e.user.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checks_users_and_reports_bad_hashes_with_lines() {
        let dir = tempfile::tempdir().unwrap();
        let h = crate::password::hash("pw").unwrap();
        let p = dir.path().join("users.yaml");
        std::fs::write(
            &p,
            format!("users:\n  alice:\n    password: \"{h}\"\n    groups: [a]\n  bob:\n    password: \"{h}\"\n    disabled: true\n"),
        )
        .unwrap();
        let d = FileDirectory::load(&p, PasswordChecker::new(1)).unwrap();
        assert!(
            matches!(d.check("alice", "pw").await.unwrap(), Verdict::Valid(u) if u.groups == ["a"])
        );
        assert_eq!(d.check("alice", "x").await.unwrap(), Verdict::WrongPassword);
        assert_eq!(d.check("bob", "pw").await.unwrap(), Verdict::Disabled);
        assert_eq!(d.check("carol", "pw").await.unwrap(), Verdict::UnknownUser);
        assert!(
            matches!(d.lookup("alice").await.unwrap(), Presence::Active(u) if u.groups == ["a"])
        );
        assert_eq!(d.lookup("bob").await.unwrap(), Presence::Disabled);
        assert_eq!(d.lookup("carol").await.unwrap(), Presence::UnknownUser);

        std::fs::write(&p, "users:\n  alice:\n    password: secret\n").unwrap();
        let err = FileDirectory::load(&p, PasswordChecker::new(1)).unwrap_err();
        let msg = err[0].to_string();
        assert!(
            msg.contains("line 3") && msg.contains("users.alice.password"),
            "{msg}"
        );
    }
}
