//! The documentation's relative links resolve: every `[text](target)` and
//! `![alt](picture)` in the repository's Markdown files (README.md, docs/,
//! bench/, certs/, …) that is not a URL names a file or directory inside the
//! repository, and every `#anchor` names a heading (or an `id`) of the page
//! it points at, spelt as GitHub makes heading anchors. Code fences must be
//! closed (an unclosed one turns the rest of a page into code, as issue 15
//! found in the old README).
//!
//! Pages moved and split often (issue 15 split the README into docs/); a link
//! left pointing at a section that moved is what this catches. External URLs
//! are not fetched: the tests run without the internet.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

/// Directories never searched for Markdown: build output, git, fuzzing data.
const SKIP_DIRS: &[&str] = &["target", ".git", "corpus", "artifacts", "node_modules"];

/// One broken thing, as reported: `file:line: what`.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Problem {
    file: String,
    line: usize,
    what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.what)
    }
}

/// A link found on a page: its line and its target as written.
#[derive(Debug, PartialEq, Eq)]
struct Link {
    line: usize,
    target: String,
}

/// What a page offers and asks for, read once.
#[derive(Debug, Default)]
struct Page {
    links: Vec<Link>,
    anchors: BTreeSet<String>,
    /// Line of a code fence opened and never closed.
    unclosed_fence: Option<usize>,
}

/// Read a Markdown page: its links (outside code), its anchors, its fences.
fn read_page(text: &str) -> Page {
    let mut page = Page::default();
    let mut fence: Option<(usize, char, usize)> = None; // (line, char, length)
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_start();
        let indent = raw.len() - line.len();
        let fence_char = line.chars().next().filter(|c| *c == '`' || *c == '~');
        if let Some(c) = fence_char.filter(|_| indent <= 3) {
            let len = line.chars().take_while(|x| *x == c).count();
            if len >= 3 {
                match fence {
                    None => {
                        fence = Some((n, c, len));
                        continue;
                    }
                    Some((_, open, open_len))
                        if open == c && len >= open_len && line[len..].trim().is_empty() =>
                    {
                        fence = None;
                        continue;
                    }
                    Some(_) => {}
                }
            }
        }
        if fence.is_some() {
            continue;
        }
        let plain = blank_code_spans(raw);
        if let Some(heading) = atx_heading(&plain, raw) {
            let slug = slug(&heading);
            let count = seen.entry(slug.clone()).or_insert(0);
            let anchor = if *count == 0 {
                slug
            } else {
                format!("{slug}-{count}")
            };
            *count += 1;
            page.anchors.insert(anchor);
        }
        for id in html_ids(&plain) {
            page.anchors.insert(id);
        }
        for target in link_targets(&plain, raw) {
            page.links.push(Link { line: n, target });
        }
    }
    page.unclosed_fence = fence.map(|(n, _, _)| n);
    page
}

/// The line with the inside of every `code span` replaced by spaces (same
/// byte offsets), so brackets in code are not links.
fn blank_code_spans(line: &str) -> String {
    let bytes = line.as_bytes();
    let mut out = bytes.to_vec();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'`' {
            i += 1;
            continue;
        }
        let ticks = bytes[i..].iter().take_while(|b| **b == b'`').count();
        let open_end = i + ticks;
        let closer = "`".repeat(ticks);
        match line[open_end..].find(&closer) {
            Some(rel) => {
                let close = open_end + rel;
                for b in &mut out[open_end..close] {
                    *b = b' ';
                }
                i = close + ticks;
            }
            None => i = open_end,
        }
    }
    // A span's bytes are all replaced, whole characters included, so the
    // result is UTF-8 again.
    String::from_utf8(out).unwrap_or_else(|_| line.to_owned())
}

/// The text of an ATX heading (`## Text ##`), from the original line so the
/// code spans' words stay in the anchor.
fn atx_heading(plain: &str, raw: &str) -> Option<String> {
    let t = plain.trim_start();
    if raw.len() - raw.trim_start().len() > 3 {
        return None;
    }
    let level = t.bytes().take_while(|b| *b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &t[level..];
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
        return None;
    }
    let raw_t = raw.trim_start();
    let text = raw_t[level..].trim();
    let text = text.trim_end_matches('#').trim_end();
    Some(text.to_owned())
}

/// GitHub's anchor for a heading: the rendered text (links become their
/// text, code spans their content), lower-cased, with every character that
/// is not a letter, digit, space, `-` or `_` removed and spaces made `-`.
fn slug(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    // [text](target) → text
    while let Some(open) = rest.find('[') {
        text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find("](").and_then(|close| {
            let tail = &after[close + 2..];
            tail.find(')').map(|end| (close, close + 2 + end + 1))
        }) {
            Some((close, skip)) => {
                text.push_str(&after[..close]);
                rest = &after[skip..];
            }
            None => {
                text.push('[');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    text.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Values of `id="…"` and `name="…"` attributes in HTML on the line (the
/// anchors `<a id="x"></a>` makes).
fn html_ids(line: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for attr in [" id=\"", " name=\""] {
        let mut rest = line;
        while let Some(at) = rest.find(attr) {
            let value = &rest[at + attr.len()..];
            if let Some(end) = value.find('"') {
                if line[..line.len() - rest.len() + at].rfind('<').is_some() {
                    ids.push(value[..end].to_owned());
                }
                rest = &value[end..];
            } else {
                break;
            }
        }
    }
    ids
}

/// The targets of the inline links and images on the line (`](target)`,
/// with an optional `"title"`), and of a reference definition (`[x]: target`).
/// `plain` (code spans blanked) decides where links are; the target is read
/// from `raw` at the same offsets.
fn link_targets(plain: &str, raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(rel) = plain[from..].find("](") {
        let start = from + rel + 2;
        let mut depth = 0usize;
        let mut end = None;
        for (k, c) in plain[start..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => {
                    end = Some(start + k);
                    break;
                }
                ')' => depth -= 1,
                _ => {}
            }
        }
        let Some(end) = end else { break };
        let mut target = raw[start..end].trim();
        if let Some(t) = target.strip_prefix('<') {
            target = t.split('>').next().unwrap_or("");
        } else if let Some(space) = target.find(char::is_whitespace) {
            target = &target[..space]; // a "title" follows
        }
        out.push(target.to_owned());
        from = end + 1;
    }
    let t = plain.trim_start();
    if t.starts_with('[') && !t.starts_with("[^") {
        if let Some(close) = t.find("]:") {
            let lead = plain.len() - t.len();
            let value = raw[lead + close + 2..].split_whitespace().next();
            if let Some(v) = value {
                out.push(v.to_owned());
            }
        }
    }
    out
}

/// Whether a target is a URL with a scheme (`https:`, `mailto:`, …).
fn is_url(target: &str) -> bool {
    let scheme: String = target
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        .collect();
    !scheme.is_empty()
        && target[scheme.len()..].starts_with(':')
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
}

/// `%20`-style escapes decoded (a path written for a browser).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `dir/../x/./y` → `x/y`, refusing a path that climbs above the root.
fn normalise(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Check every page of `pages` (path relative to the repository → text)
/// against each other and against `exists` (does this relative path exist
/// as a file or directory?). Returns every problem, sorted.
fn check(pages: &BTreeMap<PathBuf, String>, exists: &dyn Fn(&Path) -> bool) -> Vec<Problem> {
    let read: BTreeMap<&PathBuf, Page> = pages.iter().map(|(p, t)| (p, read_page(t))).collect();
    let mut problems = Vec::new();
    for (file, page) in &read {
        let name = file.display().to_string();
        if let Some(line) = page.unclosed_fence {
            problems.push(Problem {
                file: name.clone(),
                line,
                what: "this code fence is never closed".into(),
            });
        }
        for link in &page.links {
            let mut problem = |what: String| {
                problems.push(Problem {
                    file: name.clone(),
                    line: link.line,
                    what,
                })
            };
            let target = link.target.as_str();
            if target.is_empty() {
                problem("a link with no target".into());
                continue;
            }
            if is_url(target) {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target, None),
            };
            let resolved = if path.is_empty() {
                Some((*file).clone())
            } else {
                let base = file.parent().unwrap_or(Path::new(""));
                normalise(&base.join(percent_decode(path)))
            };
            let Some(resolved) = resolved else {
                problem(format!("{target}: leaves the repository"));
                continue;
            };
            if !path.is_empty() && !exists(&resolved) {
                problem(format!("{target}: no such file ({})", resolved.display()));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            match read.get(&resolved) {
                Some(other) if other.anchors.contains(&percent_decode(anchor)) => {}
                Some(_) => problem(format!(
                    "{target}: {} has no heading with the anchor #{anchor}",
                    resolved.display()
                )),
                None if resolved.extension().is_some_and(|e| e == "md") => {
                    problem(format!("{target}: {} was not read", resolved.display()))
                }
                None if is_line_anchor(anchor) => {}
                None => problem(format!(
                    "{target}: an anchor into {}, which is not a Markdown page",
                    resolved.display()
                )),
            }
        }
    }
    problems.sort();
    problems
}

/// `L10` or `L10-L12`: lines of a source file, as GitHub numbers them.
fn is_line_anchor(anchor: &str) -> bool {
    let number = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    match anchor.split_once('-') {
        None => anchor.strip_prefix('L').is_some_and(number),
        Some((a, b)) => {
            a.strip_prefix('L').is_some_and(number) && b.strip_prefix('L').is_some_and(number)
        }
    }
}

/// Every Markdown file under `dir` (relative to `root`), skipping build
/// output and the like.
fn markdown_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let rel = dir.join(&name);
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if !SKIP_DIRS.iter().any(|s| name == *s) {
                markdown_files(root, &rel, out);
            }
        } else if rel.extension().is_some_and(|e| e == "md") {
            out.push(rel);
        }
    }
}

#[test]
fn every_relative_link_and_anchor_in_the_docs_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    markdown_files(root, Path::new(""), &mut files);
    let pages: BTreeMap<PathBuf, String> = files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(root.join(&f))
                .unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
            (f, text)
        })
        .collect();
    for must in [
        "README.md",
        "docs/anvandarguide.md",
        "docs/configuration.md",
    ] {
        assert!(pages.contains_key(Path::new(must)), "{must} was not found");
    }
    let links: usize = pages.values().map(|t| read_page(t).links.len()).sum();
    assert!(
        links > 50,
        "only {links} links found: is the parser broken?"
    );
    let problems = check(&pages, &|p| root.join(p).exists());
    assert!(
        problems.is_empty(),
        "{} broken link(s) in the documentation:\n{}",
        problems.len(),
        problems
            .iter()
            .map(|p| format!("  {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Two small pages checked with an invented file system: every kind of
/// breakage is reported with its line, and nothing else is.
#[test]
fn broken_links_anchors_and_fences_are_each_reported() {
    let readme = "\
# Project

See [the guide](docs/guide.md), [its install part](docs/guide.md#install-it-now),
[a picture](docs/pic.png), [the web](https://example.org/#x) and [mail](mailto:a@b).
[Gone](docs/gone.md) and [no such part](docs/guide.md#nowhere) and [up](../outside.md).
Code is not a link: `[x](nowhere.md)`, nor `services[].methods` below.

```yaml
[y](also-nowhere.md)
```

[ref]: docs/missing.md
[here](#project) [not here](#projects)
";
    let guide = "\
# Guide

## Install it *now*!

## `portvakt audit query`: the lines

## Install it now

Back [home](../README.md#project), [to a query](#portvakt-audit-query-the-lines),
[the second](#install-it-now-1), [a source line](../src/lib.rs#L10-L12).

~~~
never closed
";
    let pages: BTreeMap<PathBuf, String> = [
        (PathBuf::from("README.md"), readme.to_owned()),
        (PathBuf::from("docs/guide.md"), guide.to_owned()),
    ]
    .into();
    let files: BTreeSet<&str> = [
        "README.md",
        "docs",
        "docs/guide.md",
        "docs/pic.png",
        "src/lib.rs",
    ]
    .into();
    let problems = check(&pages, &|p| files.contains(p.to_str().unwrap_or("")));
    let got: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        got,
        [
            "README.md:5: ../outside.md: leaves the repository",
            "README.md:5: docs/gone.md: no such file (docs/gone.md)",
            "README.md:5: docs/guide.md#nowhere: docs/guide.md has no heading with the anchor #nowhere",
            "README.md:12: docs/missing.md: no such file (docs/missing.md)",
            "README.md:13: #projects: README.md has no heading with the anchor #projects",
            "docs/guide.md:12: this code fence is never closed",
        ],
        "{got:#?}"
    );
}

#[test]
fn anchors_are_spelt_as_github_spells_them() {
    assert_eq!(
        slug("Auth log: one line per decision"),
        "auth-log-one-line-per-decision"
    );
    assert_eq!(
        slug("`portvakt audit query`: the lines that match"),
        "portvakt-audit-query-the-lines-that-match"
    );
    assert_eq!(
        slug("Users: a file or LDAP / Active Directory"),
        "users-a-file-or-ldap--active-directory"
    );
    assert_eq!(
        slug("Logga in hemifrån (på distans)"),
        "logga-in-hemifrån-på-distans"
    );
    assert_eq!(
        slug("TLS, as testssl.sh sees it"),
        "tls-as-testsslsh-sees-it"
    );
    assert_eq!(slug("See [the guide](x.md) now"), "see-the-guide-now");
    assert_eq!(slug("snake_case stays"), "snake_case-stays");
}
