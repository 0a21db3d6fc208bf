//! Directories: where users, passwords, groups, e-mail and display names come
//! from: a YAML file ([`file`]) or LDAP / Active Directory ([`ldap`]).

pub mod file;
pub mod ldap;

use async_trait::async_trait;

use crate::audit::Reason;

/// A user as the directory knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub username: String,
    /// Name shown on pages and sent upstream.
    pub display_name: String,
    /// E-mail address.
    pub email: String,
    /// Group names.
    pub groups: Vec<String>,
}

/// The result of checking a username and password. The reasons are for the
/// audit log only; users see one message for all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The password is right and the account usable.
    Valid(User),
    /// No such user.
    UnknownUser,
    /// Wrong password.
    WrongPassword,
    /// The account is disabled.
    Disabled,
}

impl Verdict {
    /// Reason for the audit log.
    pub fn reason(&self) -> Reason {
        match self {
            Verdict::Valid(_) => Reason::Ok,
            Verdict::UnknownUser => Reason::UnknownUser,
            Verdict::WrongPassword => Reason::WrongPassword,
            Verdict::Disabled => Reason::Disabled,
        }
    }
}

/// What the directory says about a name when no password is given (a
/// login with a passkey alone). The reasons are for the audit log only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// The account exists and may log in.
    Active(User),
    /// No such user.
    UnknownUser,
    /// The account exists but is disabled.
    Disabled,
}

impl Presence {
    /// Reason for the audit log.
    pub fn reason(&self) -> Reason {
        match self {
            Presence::Active(_) => Reason::Ok,
            Presence::UnknownUser => Reason::UnknownUser,
            Presence::Disabled => Reason::Disabled,
        }
    }
}

/// Failures of the directory itself (not of the user).
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The backing service cannot be reached.
    #[error("directory unavailable: {0}")]
    Unavailable(String),
}

/// A source of users.
#[async_trait]
pub trait Directory: Send + Sync + std::fmt::Debug {
    /// Check `password` for `username`. Must cost the same work whether or not
    /// the user exists.
    async fn check(&self, username: &str, password: &str) -> Result<Verdict, DirectoryError>;

    /// Look `username` up without a password: whether the account exists
    /// and may log in, and its attributes. Used only where another proof
    /// stands in for the password (a passkey with user verification), so a
    /// disabled account must come back [`Presence::Disabled`], never
    /// [`Presence::Active`]. Must cost the same whether or not the user
    /// exists.
    async fn lookup(&self, username: &str) -> Result<Presence, DirectoryError>;

    /// Whether the directory can answer now (the admin listener's
    /// `/readyz`). A file directory that loaded always can.
    async fn health(&self) -> Result<(), DirectoryError> {
        Ok(())
    }
}
