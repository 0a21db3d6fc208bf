//! Second factors: one-time codes sent by SMS or e-mail, authenticator apps
//! (TOTP) and hardware OATH tokens ("Webbdosa").
//!
//! - [`code`]: generated codes and their challenges (validity, tries, budgets).
//! - [`totp`]: authenticator-app secrets, `otpauth://` URIs, RFC 6238 steps.
//! - [`phone`]: mobile numbers as typed and as stored (E.164).
//! - [`token`]: hardware token import (CSV) and RFC 4226 HOTP.

pub mod code;
pub mod phone;
pub mod token;
pub mod totp;
