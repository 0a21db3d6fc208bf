//! What one text message costs (`notify.sms.cost_per_message` and
//! `notify.sms.currency`), for the estimated SMS cost in `portvakt audit
//! report` and the price gauge in the metrics.
//!
//! The amount is kept as a whole number of ten-thousandths, not a float: the
//! report multiplies it by counts in the millions, and `1000 × 0.45` must be
//! `450.00`, not `450.00000000000006`. Four decimals cover every price list
//! seen (46elks quotes SEK with two, some providers quote EUR with four).

use std::fmt;

use serde::{Serialize, Serializer};

/// Decimal places an amount may have.
pub const DECIMALS: u32 = 4;

/// `10^DECIMALS`: ten-thousandths in one unit.
const SCALE: u64 = 10u64.pow(DECIMALS);

/// The largest price per message accepted, in the currency's main unit. A
/// text message costs well under one unit in SEK, EUR or USD and a few
/// hundred in IDR or VND; more than this is a typing mistake.
pub const MAX_PER_MESSAGE: u64 = 10_000;

/// The limits [`Amount::parse`] holds an amount to, as the configuration
/// reference prints them.
pub(crate) fn limits() -> String {
    format!("not negative, at most {DECIMALS} decimals, at most {MAX_PER_MESSAGE}")
}

/// A non-negative amount of money with at most four decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Amount {
    ten_thousandths: u64,
}

/// Why a text is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not digits with an optional decimal point.
    #[error("{0:?} is not an amount: write digits with a decimal point, like 0.45")]
    NotAnAmount(String),
    /// A minus sign.
    #[error("{0:?} is negative: a message cannot cost less than nothing")]
    Negative(String),
    /// More than [`DECIMALS`] decimals.
    #[error("{0:?} has more than {DECIMALS} decimals")]
    TooPrecise(String),
    /// Above [`MAX_PER_MESSAGE`].
    #[error("{0:?} is more than {MAX_PER_MESSAGE} per message: surely a mistake")]
    TooLarge(String),
}

impl Amount {
    /// Parse `text`: digits, optionally a point and up to four decimals
    /// (`0.45`, `1`, `.5`). Signs, exponents, commas, `NaN` and `inf` are
    /// refused.
    pub fn parse(text: &str) -> Result<Amount, AmountError> {
        let t = text.trim();
        let not = || AmountError::NotAnAmount(text.to_owned());
        if let Some(rest) = t.strip_prefix('-') {
            // "-0.45" is negative; "-x" is simply not an amount.
            return Err(if Amount::parse(rest).is_ok() {
                AmountError::Negative(text.to_owned())
            } else {
                not()
            });
        }
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        if (whole.is_empty() && frac.is_empty())
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(not());
        }
        if frac.len() > DECIMALS as usize {
            return Err(AmountError::TooPrecise(text.to_owned()));
        }
        let whole = whole.trim_start_matches('0');
        // More digits than the limit has cannot be under it (and would
        // overflow the parse).
        if whole.len() > MAX_PER_MESSAGE.to_string().len() {
            return Err(AmountError::TooLarge(text.to_owned()));
        }
        let units: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| not())?
        };
        let mut padded = frac.to_owned();
        while padded.len() < DECIMALS as usize {
            padded.push('0');
        }
        let fraction: u64 = padded.parse().map_err(|_| not())?;
        let amount = Amount {
            ten_thousandths: units * SCALE + fraction,
        };
        if amount.ten_thousandths > MAX_PER_MESSAGE * SCALE {
            return Err(AmountError::TooLarge(text.to_owned()));
        }
        Ok(amount)
    }

    /// This amount `n` times; saturates rather than wraps (at 10 000 a
    /// message that is 1.8 × 10¹¹ messages, far beyond any log).
    pub fn times(self, n: u64) -> Amount {
        Amount {
            ten_thousandths: self.ten_thousandths.saturating_mul(n),
        }
    }

    /// As a float, for JSON and the metrics. Exact to the printed decimal
    /// for any amount below 2⁵³ ten-thousandths (the nearest float to a
    /// four-decimal number prints as that number).
    pub fn as_f64(self) -> f64 {
        self.ten_thousandths as f64 / SCALE as f64
    }
}

/// Two decimals at least, four at most, trailing zeros beyond the second
/// dropped: `0.45`, `450.00`, `0.4523`, `1.255`.
impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = self.ten_thousandths / SCALE;
        let frac = format!(
            "{:0width$}",
            self.ten_thousandths % SCALE,
            width = DECIMALS as usize
        );
        let frac = frac.trim_end_matches('0');
        write!(f, "{units}.{frac:0<2}")
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_f64())
    }
}

/// An ISO 4217 currency code: three letters, kept in upper case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Currency(String);

impl Currency {
    /// `SEK`, `sek` (made `SEK`); anything but three ASCII letters is refused.
    pub fn parse(text: &str) -> Option<Currency> {
        let t = text.trim();
        (t.len() == 3 && t.bytes().all(|b| b.is_ascii_alphabetic()))
            .then(|| Currency(t.to_ascii_uppercase()))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The price of one message in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Price {
    /// What one message costs.
    pub per_message: Amount,
    /// In which currency.
    pub currency: Currency,
}

impl Price {
    /// What `n` messages cost.
    pub fn of(&self, n: u64) -> Amount {
        self.per_message.times(n)
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.per_message, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(s: &str) -> Amount {
        Amount::parse(s).unwrap()
    }

    #[test]
    fn amounts_are_decimal_and_exact() {
        assert_eq!(amount("0.45").to_string(), "0.45");
        assert_eq!(amount("0.45").times(1000).to_string(), "450.00");
        assert_eq!(amount("0.45").times(3).as_f64(), 1.35);
        assert_eq!(amount("1").to_string(), "1.00");
        assert_eq!(amount(".5").to_string(), "0.50");
        assert_eq!(amount("0.4523").to_string(), "0.4523");
        assert_eq!(amount("0.455").times(3).to_string(), "1.365");
        assert_eq!(amount("0").times(9).to_string(), "0.00");
        assert_eq!(amount(" 0010000 ").to_string(), "10000.00");
        assert_eq!(
            amount("10000").times(u64::MAX),
            Amount {
                ten_thousandths: u64::MAX
            },
            "saturates"
        );
    }

    #[test]
    fn what_is_not_a_sane_price_is_refused() {
        for (text, want) in [
            ("-0.45", AmountError::Negative("-0.45".into())),
            ("-", AmountError::NotAnAmount("-".into())),
            ("NaN", AmountError::NotAnAmount("NaN".into())),
            ("inf", AmountError::NotAnAmount("inf".into())),
            ("0,45", AmountError::NotAnAmount("0,45".into())),
            ("4.5e-1", AmountError::NotAnAmount("4.5e-1".into())),
            ("+1", AmountError::NotAnAmount("+1".into())),
            ("", AmountError::NotAnAmount("".into())),
            (".", AmountError::NotAnAmount(".".into())),
            ("1.2.3", AmountError::NotAnAmount("1.2.3".into())),
            ("0.00001", AmountError::TooPrecise("0.00001".into())),
            ("10000.0001", AmountError::TooLarge("10000.0001".into())),
            (
                "99999999999999999999999",
                AmountError::TooLarge("99999999999999999999999".into()),
            ),
        ] {
            assert_eq!(Amount::parse(text), Err(want), "{text:?}");
        }
    }

    #[test]
    fn currencies_are_three_letters() {
        assert_eq!(Currency::parse("sek").unwrap().as_str(), "SEK");
        for bad in ["kr", "SEKK", "S3K", "", "€"] {
            assert!(Currency::parse(bad).is_none(), "{bad:?}");
        }
        let p = Price {
            per_message: amount("0.45"),
            currency: Currency::parse("SEK").unwrap(),
        };
        assert_eq!(p.to_string(), "0.45 SEK");
        assert_eq!(p.of(4).to_string(), "1.80");
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"per_message":0.45,"currency":"SEK"}"#
        );
    }
}
