//! Configuration: read the YAML file, check everything, report every problem
//! with file, line, column and key path.
//!
//! - [`file`]: the serde shape users write.
//! - [`types`]: durations, languages, localised text.
//! - [`defaults`]: what the checker puts in place of a key left out.
//! - [`locate`]: key path → line/column, for checks made after parsing.
//! - `services`: validation of `services:` (upstreams, rules, hours).
//! - [`validate`]: file shape → [`model::Config`], collecting all problems.
//! - [`model`]: the validated configuration the program runs on.
//! - [`reference`]: `docs/configuration.md`, made from [`file`]'s schema.

mod assertion;
mod contrast;
pub mod defaults;
pub mod file;
pub mod locate;
pub mod model;
mod passkeys;
pub mod reference;
mod services;
pub mod types;
pub mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use model::Config;

/// One thing wrong in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// 1-based line and column, when known.
    pub at: Option<(usize, usize)>,
    /// Key path such as `services[1].policy` (may be empty).
    pub key: String,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl Problem {
    /// A problem at a known place.
    pub fn new(file: &Path, at: Option<(usize, usize)>, key: &str, message: String) -> Problem {
        Problem {
            file: file.to_path_buf(),
            at,
            key: key.to_owned(),
            message,
        }
    }

    /// A YAML parse or type error, with serde's own location and key path.
    pub fn from_yaml(file: &Path, err: &serde_norway::Error) -> Problem {
        let at = err.location().map(|l| (l.line(), l.column()));
        let text = err.to_string();
        // serde_norway prefixes the key path ("services[0].policy: …") and
        // appends " at line L column C"; split those off to format uniformly.
        let text = text
            .rsplit_once(" at line ")
            .map(|(head, _)| head.to_owned())
            .unwrap_or(text);
        let (key, message) = match text.split_once(": ") {
            Some((k, m)) if !k.contains(' ') => (k.to_owned(), m.to_owned()),
            _ => (String::new(), text),
        };
        Problem {
            file: file.to_path_buf(),
            at,
            key,
            message,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.at {
            write!(f, ": line {line} column {col}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    /// The problems, in file order where possible.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{n} problem{} in the configuration:",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// Read and validate the configuration at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let fail = |p: Problem| ConfigError { problems: vec![p] };
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(Problem::new(path, None, "", format!("cannot read: {e}"))))?;
    parse(path, &text)
}

/// Validate `text` as the configuration file at `path` (relative paths in
/// it resolve against `path`'s directory).
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let fail = |p: Problem| ConfigError { problems: vec![p] };
    let locations = locate::Locations::index(text);
    let parsed: file::FileConfig = serde_norway::from_str(text).map_err(|e| {
        let mut p = Problem::from_yaml(path, &e);
        // serde names the enclosing mapping for a bad value; name the key itself.
        if let Some(key) = p.at.and_then(|at| locations.key_at(at, &p.key)) {
            p.key = key;
        }
        fail(p)
    })?;
    validate::validate(path, parsed, &locations).map_err(|problems| ConfigError { problems })
}
