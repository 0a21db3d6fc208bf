//! Parsing of the hardware-token import file (the CSV format described in
//! [`super`]): every line is checked and every problem reported, so one
//! run of the admin import shows all of them.

use totp_rs::Secret;

use super::{TokenKind, TokenMode, TokenRecord, MIN_SECRET_BYTES};

/// Largest start counter accepted on import (kept far from i64::MAX so the
/// counter always fits an SQL integer after any number of logins).
const MAX_START_COUNTER: u64 = 1 << 48;

/// One thing wrong on one line of an import file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvProblem {
    /// 1-based line number.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

/// Why an import file was refused: every problem found, so one run shows
/// them all. Nothing is imported when there is any.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.problems))]
pub struct CsvError {
    /// Problems in line order; line 0 is the file as a whole.
    pub problems: Vec<CsvProblem>,
}

fn render(problems: &[CsvProblem]) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|p| match p.line {
            0 => p.message.clone(),
            n => format!("line {n}: {}", p.message),
        })
        .collect();
    lines.join("\n")
}

/// Parse a token import file. Any problem on any line refuses the whole file.
/// A byte-order mark (Excel writes one) is skipped; `;` is accepted as the
/// separator when the first line uses it (Swedish Excel does).
pub fn parse_csv(text: &str) -> Result<Vec<TokenRecord>, CsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first_line = text
        .lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    let delimiter = if first_line.contains(';') && !first_line.contains(',') {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut records = Vec::new();
    let mut problems = Vec::new();
    let mut seen = std::collections::HashMap::new();
    let mut first = true;
    for row in reader.records() {
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                problems.push(CsvProblem {
                    line,
                    message: format!("not valid CSV: {e}"),
                });
                continue;
            }
        };
        let line = row.position().map_or(0, |p| p.line());
        if row.iter().all(str::is_empty) {
            continue;
        }
        let is_header = first && row.get(0).is_some_and(|f| f.eq_ignore_ascii_case("serial"));
        first = false;
        if is_header {
            continue;
        }
        match parse_row(&row) {
            Ok(rec) => {
                if let Some(prev) = seen.insert(rec.serial.clone(), line) {
                    problems.push(CsvProblem {
                        line,
                        message: format!("serial {} already appears on line {prev}", rec.serial),
                    });
                }
                records.push(rec);
            }
            Err(message) => problems.push(CsvProblem { line, message }),
        }
    }
    if problems.is_empty() && records.is_empty() {
        problems.push(CsvProblem {
            line: 0,
            message: "the file holds no tokens".into(),
        });
    }
    if problems.is_empty() {
        Ok(records)
    } else {
        Err(CsvError { problems })
    }
}

/// One data row, or what is wrong with it (all faults of the row, joined).
fn parse_row(row: &csv::StringRecord) -> Result<TokenRecord, String> {
    if !(3..=5).contains(&row.len()) {
        return Err(format!(
            "expected 3 to 5 columns (serial,type,secret,digits,period_or_counter), found {}",
            row.len()
        ));
    }
    let field = |i: usize| row.get(i).unwrap_or("");
    let mut faults = Vec::new();
    let serial = field(0);
    if serial.is_empty() || serial.len() > 64 {
        faults.push("serial must be 1 to 64 characters".to_string());
    } else if !serial
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        faults.push(format!(
            "serial {serial:?} may only hold letters, digits and - _ . :"
        ));
    }
    let kind = match field(1).to_ascii_lowercase().as_str() {
        "hotp" => Some(TokenKind::Hotp),
        "totp" => Some(TokenKind::Totp),
        other => {
            faults.push(format!("type must be hotp or totp, got {other:?}"));
            None
        }
    };
    let secret = decode_secret(field(2)).map_err(|e| faults.push(e)).ok();
    let digits = match field(3) {
        "" | "6" => Some(6),
        "8" => Some(8),
        other => {
            faults.push(format!("digits must be 6 or 8, got {other:?}"));
            None
        }
    };
    let last = field(4);
    let mode = match kind {
        Some(TokenKind::Hotp) => match last {
            "" => Some(TokenMode::Hotp { counter: 0 }),
            s => match s.parse::<u64>() {
                Ok(counter) if counter < MAX_START_COUNTER => Some(TokenMode::Hotp { counter }),
                _ => {
                    faults.push(format!(
                        "HOTP start counter must be a whole number below 2^48, got {s:?}"
                    ));
                    None
                }
            },
        },
        Some(TokenKind::Totp) => match last {
            "" => Some(TokenMode::Totp { period: 30 }),
            s => match s.parse::<u32>() {
                Ok(period) if (10..=300).contains(&period) => Some(TokenMode::Totp { period }),
                _ => {
                    faults.push(format!("TOTP period must be 10 to 300 seconds, got {s:?}"));
                    None
                }
            },
        },
        None => None,
    };
    match (secret, digits, mode) {
        (Some(secret), Some(digits), Some(mode)) if faults.is_empty() => Ok(TokenRecord {
            serial: serial.to_string(),
            secret,
            digits,
            mode,
        }),
        _ => Err(faults.join("; ")),
    }
}

/// Decode a secret column: `hex:`/`base32:` prefix, else hex when it is an
/// even number of hex digits, else base32. At least 128 bits.
pub fn decode_secret(text: &str) -> Result<Vec<u8>, String> {
    let lower = text.to_ascii_lowercase();
    let bytes = if let Some(h) = lower.strip_prefix("hex:") {
        decode_hex(h.trim()).ok_or("secret is not valid hex")?
    } else if lower.starts_with("base32:") {
        decode_base32(&text[7..]).ok_or("secret is not valid base32")?
    } else if text.is_empty() {
        return Err("secret is empty".into());
    } else if text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        decode_hex(text).ok_or("secret is not valid hex")?
    } else {
        decode_base32(text)
            .ok_or("secret is neither hex (even number of 0-9a-f) nor valid base32")?
    };
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "secret is {} bits; at least {} bits are required",
            bytes.len() * 8,
            MIN_SECRET_BYTES * 8
        ));
    }
    Ok(bytes)
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Base32 (RFC 4648) in any case, with or without `=` padding and spaces.
pub fn decode_base32(text: &str) -> Option<Vec<u8>> {
    let clean: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    // These lengths cannot come from encoding whole bytes.
    if clean.is_empty() || matches!(clean.len() % 8, 1 | 3 | 6) {
        return None;
    }
    Secret::Encoded(clean).to_bytes().ok()
}
