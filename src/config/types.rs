//! Small value types parsed at the border, so a bad value is reported by serde
//! with its line and column.

use std::fmt;

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The kind of value a config key takes, as the reference names it
/// (`x-type` in the schema, read by [`super::reference`]).
pub(crate) const X_TYPE: &str = "x-type";

/// A duration written like `15m`, `10h`, `30s`, `365d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Duration(std::time::Duration::from_secs(secs))
    }
}

/// Written back the way people write it: the largest of `d`, `h`, `m`, `s`,
/// `ms` that divides it exactly (`15m`, `365d`, `90s`), so the reference and
/// the checker's messages show what a config file would say.
impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        const UNITS: [(u128, &str); 7] = [
            (86_400_000_000_000, "d"),
            (3_600_000_000_000, "h"),
            (60_000_000_000, "m"),
            (1_000_000_000, "s"),
            (1_000_000, "ms"),
            (1_000, "us"),
            (1, "ns"),
        ];
        if nanos == 0 {
            return f.write_str("0s");
        }
        let (size, unit) = UNITS
            .into_iter()
            .find(|(size, _)| nanos.is_multiple_of(*size))
            .unwrap_or((1, "ns"));
        write!(f, "{}{unit}", nanos / size)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A string the reference calls a duration.
impl JsonSchema for Duration {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", X_TYPE: super::reference::DURATION })
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim())
            .map(Duration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "bad duration {text:?} ({e}); write it like 30s, 15m, 10h or 7d"
                ))
            })
    }
}

/// A page language.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Deserialize,
    Serialize,
    Default,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Swedish, the default.
    #[default]
    Sv,
    /// English.
    En,
}

impl Lang {
    /// Every language we ship, in preference order.
    pub const ALL: [Lang; 2] = [Lang::Sv, Lang::En];

    /// ISO 639-1 code.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Sv => "sv",
            Lang::En => "en",
        }
    }

    /// The language for an ISO 639-1 code.
    pub fn from_code(code: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.code() == code)
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Text in several languages: either one string for all, or `{ sv: …, en: … }`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Localized {
    /// The same text in every language.
    Plain(String),
    /// Per language; a missing language falls back to Swedish, then English.
    PerLang {
        /// Swedish.
        #[serde(skip_serializing_if = "Option::is_none")]
        sv: Option<String>,
        /// English.
        #[serde(skip_serializing_if = "Option::is_none")]
        en: Option<String>,
    },
}

/// One value in the reference: its `sv`/`en` keys are part of the value,
/// not keys of their own.
impl JsonSchema for Localized {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Localized".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["string", "object"],
            X_TYPE: super::reference::LOCALIZED,
        })
    }
}

impl Localized {
    /// The text for `lang`.
    pub fn get(&self, lang: Lang) -> &str {
        match self {
            Localized::Plain(s) => s,
            Localized::PerLang { sv, en } => {
                let first = match lang {
                    Lang::Sv => sv.as_ref().or(en.as_ref()),
                    Lang::En => en.as_ref().or(sv.as_ref()),
                };
                first.map(String::as_str).unwrap_or("")
            }
        }
    }
}
