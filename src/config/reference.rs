//! The configuration reference (`docs/configuration.md`): every key of the
//! file with its type, default, limits and doc comment, made from the code
//! so that it cannot drift from it (`portvakt config-reference`).
//!
//! The facts come from the file structs' JSON Schema, which `schemars`
//! derives from the same structs serde reads: the doc comments, serde's
//! renames and defaults (a `Default` impl or `default = …` is serialised,
//! so the value shown is the one the code uses), and what the structs add
//! with `#[schemars(…)]`: `x-default` for a default the checker puts in
//! place of a key left out (from [`super::defaults`]), `x-limits` and
//! `range` for the bounds it checks, `x-values` for the names it accepts,
//! and `x-type` for values written as text (durations, networks). A parser
//! of the source (`syn`) would see the doc comments too, but not the
//! defaults: those are Rust expressions, evaluated here by the code itself.
//!
//! JSON Schema keeps no order of keys, so the order is the example
//! configuration's (`config/portvakt.example.yaml`), commented-out keys
//! included; a test holds the example to every key and the reference to
//! every key of the example.

use std::collections::HashMap;
use std::path::Path;

use schemars::generate::SchemaSettings;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::Value;

use super::types::X_TYPE;

/// The line in `docs/configuration.md` below which the reference is
/// written; the prose above it is left alone.
pub const MARKER: &str = "<!-- generated reference below: do not edit by hand -->";

/// The example configuration, whose key order the reference follows.
const EXAMPLE: &str = include_str!("../../config/portvakt.example.yaml");

/// Why the reference could not be written into a file.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// The file could not be read or written.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file has no marker line, so nothing says where its prose ends.
    #[error("{file} has no line {MARKER:?}; add it where the generated reference is to begin")]
    NoMarker {
        /// The file.
        file: String,
    },
}

/// A duration, as the reference names it.
pub(crate) const DURATION: &str = "duration";
/// A CIDR block.
pub(crate) const NETWORK: &str = "network";
/// A socket address.
pub(crate) const ADDRESS: &str = "address";
/// `#rrggbb`.
pub(crate) const COLOUR: &str = "colour";
/// [`super::types::Localized`].
pub(crate) const LOCALIZED: &str = "localised text";
/// A notify template value.
pub(crate) const TEMPLATE: &str = "template";

/// How each value type named above is written, for the reference's
/// opening.
fn glossary() -> String {
    let placeholders = crate::notify::config::PLACEHOLDERS
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ");
    [
        (
            DURATION,
            "a number and a unit: `500ms`, `30s`, `15m`, `10h`, `7d`.".to_owned(),
        ),
        (
            NETWORK,
            "an address block, CIDR: `10.20.0.0/16`, `192.0.2.7/32`, `2001:db8::/32`.".into(),
        ),
        (ADDRESS, "IP and port: `127.0.0.1:8443`, `[::]:443`.".into()),
        (COLOUR, "`#rrggbb`.".into()),
        (
            LOCALIZED,
            "one text for every language, or `{ sv: …, en: … }`; a language left out \
             falls back to Swedish, then English."
                .into(),
        ),
        (
            TEMPLATE,
            format!(
                "text in which {placeholders} are filled in; a number or `true` is taken as text."
            ),
        ),
    ]
    .iter()
    .map(|(name, how)| format!("- *{name}*: {how}\n"))
    .collect()
}

/// The type of `trusted_proxies` and the other network lists' entries
/// (an `ipnet::IpNet`, for the schema only).
pub struct Network;

impl JsonSchema for Network {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Network".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", X_TYPE: NETWORK })
    }
}

/// The type of the listeners' addresses (a `SocketAddr`, for the schema
/// only).
pub struct Address;

impl JsonSchema for Address {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Address".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", X_TYPE: ADDRESS })
    }
}

/// One key of the reference.
#[derive(Debug)]
struct Key {
    /// `listen.https`, `realms[].id`.
    path: String,
    /// What it takes, in words.
    kind: String,
    /// Must be written.
    required: bool,
    /// The default, as it would be written in the file.
    default: Option<String>,
    /// Bounds and accepted names.
    limits: Vec<String>,
    /// The doc comment.
    doc: String,
    /// The keys under it (a section, or each entry of a list).
    children: Vec<Key>,
}

/// The schema of the whole file, every subschema inlined.
fn schema() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    generator
        .into_root_schema_for::<super::file::FileConfig>()
        .to_value()
}

/// The non-null alternative of an `Option`'s schema, with the field's own
/// metadata (doc comment, default) kept.
fn non_null(schema: &Value) -> Value {
    let mut s = schema.clone();
    if let Some(alternatives) = s.get("anyOf").and_then(Value::as_array).cloned() {
        let rest: Vec<&Value> = alternatives
            .iter()
            .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
            .collect();
        if let ([only], Some(obj)) = (rest.as_slice(), s.as_object_mut()) {
            obj.remove("anyOf");
            if let Some(inner) = only.as_object() {
                for (k, v) in inner {
                    obj.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
    }
    if let Some(types) = s.get("type").and_then(Value::as_array).cloned() {
        let rest: Vec<Value> = types.into_iter().filter(|t| t != "null").collect();
        if let Some(obj) = s.as_object_mut() {
            obj.insert(
                "type".into(),
                match rest.as_slice() {
                    [one] => one.clone(),
                    _ => Value::Array(rest),
                },
            );
        }
    }
    s
}

/// `value` as it would be written in YAML, on one line.
fn yaml(value: &Value) -> String {
    match value {
        Value::Null => "~".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(yaml).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) if map.is_empty() => "{}".into(),
        Value::Object(map) => format!(
            "{{ {} }}",
            map.iter()
                .map(|(k, v)| format!("{k}: {}", yaml(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// The names a schema allows: a unit enum's variants, or `x-values`.
fn values(s: &Value) -> Option<Vec<String>> {
    if let Some(v) = s
        .get("x-values")
        .or_else(|| s.get("enum"))
        .and_then(Value::as_array)
    {
        return Some(v.iter().map(yaml).collect());
    }
    let one_of = s.get("oneOf").and_then(Value::as_array)?;
    one_of
        .iter()
        .map(|v| v.get("const").map(yaml))
        .collect::<Option<Vec<_>>>()
}

fn code_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value's kind in words, for a schema without children.
fn kind_of(s: &Value) -> String {
    if let Some(t) = s.get(X_TYPE).and_then(Value::as_str) {
        return t.into();
    }
    if let Some(names) = values(s) {
        return format!("one of {}", code_list(&names));
    }
    match s.get("type").and_then(Value::as_str) {
        Some("string") => "text".into(),
        Some("integer") => "whole number".into(),
        Some("number") => "number".into(),
        Some("boolean") => "`true` or `false`".into(),
        Some("array") => match s.get("items") {
            Some(items) => format!("list of {}", plural(&kind_of(&non_null(items)))),
            None => "list".into(),
        },
        Some("object") => match s.get("additionalProperties") {
            Some(v) if v.is_object() => {
                format!("map of names to {}", plural(&kind_of(&non_null(v))))
            }
            _ => "mapping".into(),
        },
        // `true`: a JSON body, any shape.
        _ => "any YAML value".into(),
    }
}

/// "text" → "texts" where that reads; kinds with details stay as they are.
fn plural(kind: &str) -> String {
    match kind {
        "text" | "whole number" | "number" | DURATION | NETWORK | ADDRESS | TEMPLATE => {
            format!("{kind}s")
        }
        other => other.into(),
    }
}

/// Bounds a schema states, in words.
fn limits_of(s: &Value) -> Vec<String> {
    let mut out = Vec::new();
    // Unsigned types say `minimum: 0` on their own; that is no limit.
    let min = s
        .get("minimum")
        .and_then(Value::as_f64)
        .filter(|m| *m != 0.0);
    let max = s.get("maximum").and_then(Value::as_f64);
    let n = format_number;
    match (min, max) {
        (Some(a), Some(b)) => out.push(format!("{} to {}", n(a), n(b))),
        (Some(a), None) => out.push(format!("at least {}", n(a))),
        (None, Some(b)) => out.push(format!("at most {}", n(b))),
        (None, None) => {}
    }
    if let Some(text) = s.get("x-limits").and_then(Value::as_str) {
        out.push(text.into());
    }
    if s.get(X_TYPE).is_none() {
        // A list's entries or a map's values may be limited to names.
        let inner = s
            .get("items")
            .or_else(|| s.get("additionalProperties"))
            .map(non_null);
        if let Some(names) = inner.as_ref().and_then(values) {
            if s.get("x-values").is_none() {
                out.push(format!("each one of {}", code_list(&names)));
            }
        }
    }
    if let Some(keys) = s.get("x-keys").and_then(Value::as_array) {
        let names: Vec<String> = keys.iter().map(yaml).collect();
        out.push(format!("keys {}", code_list(&names)));
    }
    out
}

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        v.to_string()
    }
}

/// The key at `path` and everything under it.
fn key(path: String, schema: &Value, required: bool, order: &HashMap<String, usize>) -> Key {
    let s = non_null(schema);
    let doc = s
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let default = s
        .get("x-default")
        .or_else(|| s.get("default"))
        .filter(|d| !d.is_null())
        .map(yaml);
    let section = |s: &Value, prefix: &str| -> Vec<Key> {
        let required: Vec<&str> = s
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut children: Vec<Key> = s
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| {
                props
                    .iter()
                    .map(|(name, sub)| {
                        let path = if prefix.is_empty() {
                            name.clone()
                        } else {
                            format!("{prefix}.{name}")
                        };
                        key(path, sub, required.contains(&name.as_str()), order)
                    })
                    .collect()
            })
            .unwrap_or_default();
        // Keys the example does not show go last, by name; a test keeps
        // that from happening.
        children.sort_by_key(|k| order.get(&k.path).copied().unwrap_or(usize::MAX));
        children
    };
    let items = s.get("items").map(non_null);
    let (kind, children) = if s.get("properties").is_some() && s.get(X_TYPE).is_none() {
        ("section".to_owned(), section(&s, &path))
    } else if let Some(items) = items.filter(|i| i.get("properties").is_some()) {
        (
            "list; each entry has the keys below".to_owned(),
            section(&items, &format!("{path}[]")),
        )
    } else {
        (kind_of(&s), Vec::new())
    };
    Key {
        limits: limits_of(&s),
        path,
        kind,
        required,
        default,
        doc,
        children,
    }
}

/// Every top-level key, in the example's order.
fn keys() -> Vec<Key> {
    let order: HashMap<String, usize> = example_keys(EXAMPLE)
        .into_iter()
        .enumerate()
        .map(|(i, k)| (k, i))
        .collect();
    let root = key(String::new(), &schema(), true, &order);
    root.children
}

/// Every key path of the reference, sections and list entries' keys
/// included (`realms`, `realms[].id`), in its order.
pub fn key_paths() -> Vec<String> {
    fn walk(k: &Key, out: &mut Vec<String>) {
        out.push(k.path.clone());
        for c in &k.children {
            walk(c, out);
        }
    }
    let mut out = Vec::new();
    for k in keys() {
        walk(&k, &mut out);
    }
    out
}

/// Key paths whose value is one piece though it may be written as a
/// mapping (`branding.title: { sv: …, en: … }`, `identity_headers`): keys
/// under them in a file are part of the value.
pub fn leaf_paths() -> Vec<String> {
    fn walk(k: &Key, out: &mut Vec<String>) {
        if k.children.is_empty() {
            out.push(k.path.clone());
        }
        for c in &k.children {
            walk(c, out);
        }
    }
    let mut out = Vec::new();
    for k in keys() {
        walk(&k, &mut out);
    }
    out
}

/// The reference in Markdown: what goes below [`MARKER`].
pub fn markdown() -> String {
    fn write(k: &Key, depth: usize, out: &mut String) {
        let hashes = match depth {
            0 => "##",
            1 => "###",
            _ => "####",
        };
        out.push_str(&format!("{hashes} `{}`\n\n", k.path));
        let mut facts = vec![format!("*{}*", k.kind)];
        if k.required {
            facts.push("**required**".into());
        }
        if let Some(d) = &k.default {
            facts.push(format!("default `{d}`"));
        }
        facts.extend(k.limits.iter().cloned());
        out.push_str(&facts.join(" · "));
        out.push_str("\n\n");
        if !k.doc.is_empty() {
            out.push_str(k.doc.trim());
            out.push_str("\n\n");
        }
        for c in &k.children {
            write(c, depth + 1, out);
        }
    }
    let mut out = String::from(
        "Every key of the configuration file, in the order of \
         `config/portvakt.example.yaml`. Made by `portvakt config-reference` from the \
         code: the doc comments of the configuration's fields, the defaults the code \
         applies and the limits `portvakt check-config` checks. To change this text, \
         change the code and run `cargo run -- config-reference --write \
         docs/configuration.md`.\n\n\
         Each key says what it takes, its default (what a key left out means), \
         and what `check-config` accepts. Values are written:\n\n",
    );
    out.push_str(&glossary());
    out.push('\n');
    for k in keys() {
        write(&k, 0, &mut out);
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// `existing` with everything below its [`MARKER`] line replaced by the
/// reference; `None` without the line.
pub fn below_marker(existing: &str) -> Option<String> {
    let mut out = String::new();
    for line in existing.split_inclusive('\n') {
        out.push_str(line);
        if line.trim_end() == MARKER {
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out.push('\n');
            out.push_str(&markdown());
            return Some(out);
        }
    }
    None
}

/// Write the reference below the marker line of `file`, keeping what is
/// above it.
pub fn write(file: &Path) -> Result<(), ReferenceError> {
    let name = file.display().to_string();
    let io = |source| ReferenceError::Io {
        file: name.clone(),
        source,
    };
    let existing = std::fs::read_to_string(file).map_err(io)?;
    let new =
        below_marker(&existing).ok_or_else(|| ReferenceError::NoMarker { file: name.clone() })?;
    if new != existing {
        std::fs::write(file, new).map_err(io)?;
    }
    Ok(())
}

/// The key paths of a YAML file in the order they first appear, keys in
/// comments (`# state: memory`) included; keys of a list's entries are
/// `list[].key`. Reads the layout of `config/portvakt.example.yaml`: block
/// mappings indented under their key, `- ` entries indented under theirs,
/// flow collections on one line, a commented key written `# key:` with the
/// indentation it would have after the `# `.
pub fn example_keys(yaml: &str) -> Vec<String> {
    struct Open {
        col: usize,
        path: String,
        list: bool,
    }
    let mut open: Vec<Open> = Vec::new();
    let mut out: Vec<String> = Vec::new();
    let mut push = |out: &mut Vec<String>, path: String| {
        if !out.contains(&path) {
            out.push(path);
        }
    };
    for raw in yaml.lines() {
        let Some(line) = uncommented(raw) else {
            continue;
        };
        let indent = line.len() - line.trim_start().len();
        let mut rest = &line[indent..];
        let mut col = indent;
        let entry = rest.starts_with("- ");
        if entry {
            let after = &rest[2..];
            col += 2 + (after.len() - after.trim_start().len());
            rest = after.trim_start();
        }
        while open.last().is_some_and(|o| o.col >= col) {
            open.pop();
        }
        let parent = match open.last_mut() {
            Some(o) => {
                o.list |= entry;
                if o.list {
                    format!("{}[]", o.path)
                } else {
                    o.path.clone()
                }
            }
            None => String::new(),
        };
        if entry && rest.starts_with('{') {
            flow_keys(rest, &parent, &mut out, &mut push);
            continue;
        }
        let Some((name, value)) = split_key(rest) else {
            continue;
        };
        let path = if parent.is_empty() {
            name.to_owned()
        } else {
            format!("{parent}.{name}")
        };
        push(&mut out, path.clone());
        let value = value.trim();
        if value.is_empty() || value.starts_with('#') {
            open.push(Open {
                col,
                path,
                list: false,
            });
        } else if value.starts_with('{') || value.starts_with('[') {
            flow_keys(value, &path, &mut out, &mut push);
        }
    }
    out
}

/// `raw` with a leading `# ` taken off; `None` for a blank or comment line.
fn uncommented(raw: &str) -> Option<String> {
    let indent = raw.len() - raw.trim_start().len();
    let body = &raw[indent..];
    let text = match body.strip_prefix('#') {
        Some(c) => format!("{}{}", &raw[..indent], c.strip_prefix(' ').unwrap_or(c)),
        None => raw.to_owned(),
    };
    let t = text.trim_start();
    (!t.is_empty() && !t.starts_with('#')).then_some(text)
}

/// `name: rest` where `name` is a config key (lower case, digits, `_`).
fn split_key(text: &str) -> Option<(&str, &str)> {
    let (name, rest) = text.split_once(':')?;
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    (ok && (rest.is_empty() || rest.starts_with(' '))).then_some((name, rest))
}

/// The keys inside a one-line flow collection (`{ a: 1, b: [ { c: 2 } ] }`).
fn flow_keys(
    text: &str,
    path: &str,
    out: &mut Vec<String>,
    push: &mut impl FnMut(&mut Vec<String>, String),
) {
    fn walk(
        v: &serde_norway::Value,
        path: &str,
        out: &mut Vec<String>,
        push: &mut impl FnMut(&mut Vec<String>, String),
    ) {
        match v {
            serde_norway::Value::Mapping(m) => {
                for (k, v) in m {
                    if let Some(k) = k.as_str() {
                        let p = if path.is_empty() {
                            k.to_owned()
                        } else {
                            format!("{path}.{k}")
                        };
                        push(out, p.clone());
                        walk(v, &p, out, push);
                    }
                }
            }
            serde_norway::Value::Sequence(items) => {
                for item in items {
                    walk(item, &format!("{path}[]"), out, push);
                }
            }
            _ => {}
        }
    }
    if let Ok(v) = serde_norway::from_str::<serde_norway::Value>(text) {
        walk(&v, path, out, push);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGENERATE: &str = "cargo run -- config-reference --write docs/configuration.md";

    fn repo_file(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
    }

    #[test]
    fn the_checked_in_reference_is_what_the_code_makes() {
        let file = repo_file("docs/configuration.md");
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e}; make it with {REGENERATE}", file.display()));
        let Some(expected) = below_marker(&text) else {
            panic!("docs/configuration.md has no line {MARKER:?}");
        };
        if text != expected {
            let first = text
                .lines()
                .zip(expected.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(text.lines().count().min(expected.lines().count()));
            panic!(
                "docs/configuration.md differs from what the code makes, first at line {}:\n  \
                 file: {:?}\n  code: {:?}\nRegenerate it with `{REGENERATE}` and commit it.",
                first + 1,
                text.lines().nth(first).unwrap_or("(end of file)"),
                expected.lines().nth(first).unwrap_or("(end of file)"),
            );
        }
    }

    #[test]
    fn the_example_shows_every_key_and_the_reference_every_key_of_the_example() {
        let reference = key_paths();
        let leaves = leaf_paths();
        let example = example_keys(EXAMPLE);
        // `branding.title.sv` is part of the value of `branding.title`.
        let known = |k: &str| {
            reference.iter().any(|r| r == k)
                || leaves.iter().any(|l| {
                    k.strip_prefix(l.as_str())
                        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with("[]"))
                })
        };
        let unknown: Vec<&String> = example.iter().filter(|k| !known(k)).collect();
        let missing: Vec<&String> = reference.iter().filter(|k| !example.contains(k)).collect();
        assert!(
            unknown.is_empty(),
            "config/portvakt.example.yaml has keys the configuration does not know: {unknown:?}"
        );
        assert!(
            missing.is_empty(),
            "config/portvakt.example.yaml does not show these keys (add them, commented out \
             if they are not for everyone, as `# key: value`): {missing:?}"
        );
    }

    #[test]
    fn keys_are_read_from_blocks_lists_flow_collections_and_comments() {
        let yaml = "\
# A comment: with a colon, not a key.
top:
  a: 1                # an inline comment
  # b: 2              # a commented key
  #   prose that is not a key
  list:
    - x: 1
      y: { p: 1, q: [ { r: 1 } ] }
    - x: 2
      z: 3
  flow: [ { s: 1 } ]
  windows:
    - { days: mon, from: \"06:00\" }
# other:
#   deep: true
last: \"#1f4e79\"
";
        assert_eq!(
            example_keys(yaml),
            [
                "top",
                "top.a",
                "top.b",
                "top.list",
                "top.list[].x",
                "top.list[].y",
                "top.list[].y.p",
                "top.list[].y.q",
                "top.list[].y.q[].r",
                "top.list[].z",
                "top.flow",
                "top.flow[].s",
                "top.windows",
                "top.windows[].days",
                "top.windows[].from",
                "other",
                "other.deep",
                "last",
            ]
        );
    }

    #[test]
    fn the_reference_follows_the_example_and_shows_defaults_limits_and_names_from_the_code() {
        let paths = key_paths();
        let at = |p: &str| {
            paths
                .iter()
                .position(|k| k == p)
                .unwrap_or_else(|| panic!("{p} is not in the reference"))
        };
        // The example's order, not the alphabet's.
        assert!(at("listen") < at("tls") && at("tls") < at("portal"));
        assert!(at("listen.https") < at("listen.http"));
        let md = markdown();
        let section = |p: &str| {
            let head = format!("`{p}`\n\n");
            let start = md
                .find(&head)
                .unwrap_or_else(|| panic!("no heading for {p}"));
            let rest = &md[start + head.len()..];
            rest[..rest.find("\n#").unwrap_or(rest.len())].to_owned()
        };
        let length = section("codes.length");
        let rules = crate::factors::code::CodeRules::DEFAULT;
        assert!(
            length.contains(&format!("default `{}`", rules.length)),
            "{length}"
        );
        let (lo, hi) = (
            super::super::validate::CODE_LENGTH.start(),
            super::super::validate::CODE_LENGTH.end(),
        );
        assert!(length.contains(&format!("{lo} to {hi}")), "{length}");
        assert!(length.contains("*whole number*"), "{length}");
        let validity = section("codes.validity");
        assert!(
            validity.contains(&format!(
                "default `{}`",
                super::super::types::Duration(rules.validity)
            )),
            "{validity}"
        );
        let https = section("listen.https");
        assert!(https.contains("**required**"), "{https}");
        assert!(https.contains("HTTPS listener"), "the doc comment: {https}");
        let admin = section("listen.admin");
        assert!(
            admin.contains(&format!("default `{}`", super::super::defaults::ADMIN)),
            "{admin}"
        );
        let policy = section("services[].policy");
        for p in crate::policy::Policy::ALL {
            assert!(policy.contains(&format!("`{}`", p.as_str())), "{policy}");
        }
        let language = section("pages.default_language");
        assert!(language.contains("one of `sv`, `en`"), "{language}");
    }

    #[test]
    fn writing_keeps_the_prose_above_the_marker_and_refuses_a_file_without_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("configuration.md");
        let prose = format!("# Configuration\n\nHand-written.\n\n{MARKER}\n");
        std::fs::write(&file, format!("{prose}\nstale text\n")).unwrap();
        write(&file).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text, format!("{prose}\n{}", markdown()));
        assert!(!text.contains("stale text"));

        std::fs::write(&file, "# Configuration\n").unwrap();
        let err = write(&file).unwrap_err().to_string();
        assert!(
            err.contains("configuration.md") && err.contains(MARKER),
            "{err}"
        );
    }
}
