//! The findings of one journey through the pages: every check on each
//! page, the Markdown report, and the verdict.

use std::fmt::Write as _;

use serde_json::json;

use super::super::browser::{screenshot_root, Browser};
use super::{
    axe, axe_dir, horizontal_scroll, locked_version, page_rules, text_spacing_problems, Violation,
};

/// What one page showed.
#[derive(Debug)]
pub struct PageReport {
    /// The state's name in the journey, e.g. `login-wrong-password`.
    pub name: String,
    pub path: String,
    pub violations: Vec<Violation>,
    /// Horizontal scrolling, lang, errors: each a failure.
    pub problems: Vec<String>,
}

impl PageReport {
    fn failing(&self) -> impl Iterator<Item = &Violation> {
        self.violations.iter().filter(|v| v.fails())
    }

    fn listed(&self) -> impl Iterator<Item = &Violation> {
        self.violations.iter().filter(|v| !v.fails())
    }
}

/// The accessibility findings of one journey through the pages.
pub struct Audit {
    test: String,
    lang: &'static str,
    pages: Vec<PageReport>,
}

impl Audit {
    /// A journey of the test `test` whose pages must all be in `lang`.
    pub fn new(test: &str, lang: &'static str) -> Audit {
        Audit {
            test: test.to_string(),
            lang,
            pages: Vec::new(),
        }
    }

    /// Every check on the page the browser shows now, kept under `name`.
    pub async fn check(&mut self, b: &Browser, name: &str) {
        let url = b.url().await;
        b.snap(name).await;
        let violations = axe(b).await;
        let mut problems = page_rules(b, self.lang).await;
        problems.extend(text_spacing_problems(b).await);
        for (label, width, height, scale) in [
            ("320 CSS px", 320, 640, 1.0),
            ("200 % zoom (640 CSS px)", 640, 450, 2.0),
        ] {
            if let Some(scroll) = horizontal_scroll(b, width, height, scale).await {
                problems.push(format!("scrolls sideways at {label}: {scroll}"));
                // The page as it looked then, beside the others.
                b.cdp(
                    "Emulation.setDeviceMetricsOverride",
                    json!({ "width": width, "height": height, "deviceScaleFactor": scale, "mobile": false }),
                )
                .await;
                b.snap(&format!("{name}-{width}px-scrolls")).await;
                b.cdp("Emulation.clearDeviceMetricsOverride", json!({}))
                    .await;
            }
        }
        let failing = violations.iter().filter(|v| v.fails()).count();
        eprintln!(
            "a11y {}: {name} ({}): {failing} serious/critical, {} moderate/minor, {} other",
            self.lang,
            url.path(),
            violations.len() - failing,
            problems.len()
        );
        self.pages.push(PageReport {
            name: name.to_string(),
            path: url.path().to_string(),
            violations,
            problems,
        });
    }

    /// Add a failure found by the test itself to the page checked last.
    pub fn fail_last(&mut self, problem: String) {
        let page = self.pages.last_mut().expect("a page checked before");
        page.problems.push(problem);
    }

    /// The language every page must be in.
    pub fn lang(&self) -> &'static str {
        self.lang
    }

    /// The pages checked so far.
    pub fn pages(&self) -> &[PageReport] {
        &self.pages
    }

    /// The findings as Markdown: per page, then the moderate and minor ones by rule.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Accessibility: {} ({}), axe-core {}\n",
            self.test,
            self.lang,
            locked_version(&axe_dir())
        );
        let _ = writeln!(
            out,
            "| page | path | serious/critical | moderate/minor | other failures |\n|---|---|---|---|---|"
        );
        for p in &self.pages {
            let _ = writeln!(
                out,
                "| {} | `{}` | {} | {} | {} |",
                p.name,
                p.path,
                p.failing().count(),
                p.listed().count(),
                p.problems.len()
            );
        }
        let mut failures = String::new();
        for p in &self.pages {
            for v in p.failing() {
                let _ = writeln!(
                    failures,
                    "- {} (`{}`): **{}** {} — {} [{}] on {}",
                    p.name,
                    p.path,
                    v.impact(),
                    v.id,
                    v.help,
                    v.tags.join(" "),
                    v.targets()
                );
            }
            for problem in &p.problems {
                let _ = writeln!(failures, "- {} (`{}`): {problem}", p.name, p.path);
            }
        }
        if !failures.is_empty() {
            let _ = writeln!(out, "\n## Failures\n\n{failures}");
        }
        // Moderate and minor: one line per rule, with the pages it is on.
        let mut rules: Vec<(String, String, String, Vec<String>)> = Vec::new();
        for p in &self.pages {
            for v in p.listed() {
                let at = format!("{} ({})", p.name, v.targets());
                match rules.iter_mut().find(|r| r.0 == v.id) {
                    Some(r) => r.3.push(at),
                    None => rules.push((
                        v.id.clone(),
                        v.impact().to_string(),
                        format!("{} — {}", v.help, v.help_url),
                        vec![at],
                    )),
                }
            }
        }
        let _ = writeln!(out, "\n## Moderate and minor findings (not failed)\n");
        if rules.is_empty() {
            let _ = writeln!(out, "None.");
        }
        for (id, impact, help, at) in rules {
            let _ = writeln!(out, "- {impact} `{id}`: {help}\n  on {}", at.join("; "));
        }
        out
    }

    /// Write the report to `target/a11y/<test>.md`, print it, and fail if
    /// any page had a failure.
    pub fn finish(self) {
        let report = self.report();
        let dir = screenshot_root()
            .parent()
            .map(|t| t.join("a11y"))
            .expect("target directory");
        std::fs::create_dir_all(&dir).expect("create target/a11y");
        let path = dir.join(format!("{}.md", self.test));
        std::fs::write(&path, &report).expect("write the accessibility report");
        eprintln!("{report}\n(report: {})", path.display());
        let failed: Vec<&str> = self
            .pages
            .iter()
            .filter(|p| p.failing().next().is_some() || !p.problems.is_empty())
            .map(|p| p.name.as_str())
            .collect();
        assert!(
            failed.is_empty(),
            "accessibility failures on {} of {} pages: {failed:?} (see {})",
            failed.len(),
            self.pages.len(),
            path.display()
        );
    }
}
