//! Mobile numbers as users type them ("Endast siffror är tillåtna. T.ex:
//! 0701234567") and as they are stored (E.164, `+46701234567`).

/// Why a typed number was refused; each has its own message on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Something other than digits was typed.
    #[error("only digits are allowed")]
    NotDigits,
    /// The number does not start with 0 (national) or 00 (international).
    #[error("the number must start with 0 or 00")]
    NoPrefix,
    /// Too short or too long for a phone number.
    #[error("the number has the wrong length")]
    Length,
}

/// Normalise a typed number to E.164: digits only; `0…` is national
/// (`default_country` like `+46` replaces the 0), `00…` international.
pub fn normalise(typed: &str, default_country: &str) -> Result<String, PhoneError> {
    let t = typed.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PhoneError::NotDigits);
    }
    let e164 = if let Some(rest) = t.strip_prefix("00") {
        format!("+{rest}")
    } else if let Some(rest) = t.strip_prefix('0') {
        format!("{default_country}{rest}")
    } else {
        return Err(PhoneError::NoPrefix);
    };
    // E.164: at most 15 digits; mobile numbers have at least 8.
    let digits = e164.len() - 1;
    if !(8..=15).contains(&digits) || e164.as_bytes().get(1) == Some(&b'0') {
        return Err(PhoneError::Length);
    }
    Ok(e164)
}

/// The national form for display when the number is in `default_country`
/// (`+46701234567` → `0701234567`), else the E.164 form.
pub fn display(e164: &str, default_country: &str) -> String {
    match e164.strip_prefix(default_country) {
        Some(rest) => format!("0{rest}"),
        None => e164.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_and_international_numbers_are_normalised() {
        assert_eq!(normalise("0701234567", "+46").unwrap(), "+46701234567");
        assert_eq!(normalise(" 0046701234567 ", "+46").unwrap(), "+46701234567");
        assert_eq!(normalise("004791234567", "+46").unwrap(), "+4791234567");
        assert_eq!(display("+46701234567", "+46"), "0701234567");
        assert_eq!(display("+4791234567", "+46"), "+4791234567");
    }

    #[test]
    fn anything_but_digits_is_refused() {
        assert_eq!(
            normalise("070-123 45 67", "+46"),
            Err(PhoneError::NotDigits)
        );
        assert_eq!(normalise("+46701234567", "+46"), Err(PhoneError::NotDigits));
        assert_eq!(normalise("", "+46"), Err(PhoneError::NotDigits));
        assert_eq!(normalise("701234567", "+46"), Err(PhoneError::NoPrefix));
        assert_eq!(normalise("07012", "+46"), Err(PhoneError::Length));
        assert_eq!(
            normalise("0070123456789012345", "+46"),
            Err(PhoneError::Length)
        );
    }
}
