//! Accessibility checks in the real browser (WCAG 2.1 AA, issue 15):
//! axe-core run on the page as it is, reflow at 320 CSS px and at 200 %
//! zoom, the page's `lang`, errors tied to their fields and announced, and
//! the keyboard's focus indicator.
//!
//! # How it works
//! - axe-core is the npm package pinned in `tests/a11y/package-lock.json`
//!   (version and sha512 integrity). [`axe_source`] installs it with
//!   `npm ci` the first time a test needs it (once per test process), then
//!   reads `axe.min.js`. It is sent into the page through WebDriver's
//!   Execute Script, which the pages' CSP does not govern, so the pages stay
//!   script-free; axe runs on the DOM Chromium rendered, with the computed
//!   styles (contrast, visibility) of the real stylesheet.
//! - [`Audit::check`] is every check on the current page; the findings of a
//!   whole journey are kept, written to `target/a11y/<test>.md` and then
//!   judged by [`Audit::finish`]: any axe violation of impact serious or
//!   critical, any horizontal scrolling, a wrong `lang` or an error the
//!   page does not tie to its field fails the test; moderate and minor axe
//!   findings are listed, not failed.
//! - Reflow uses Chromium's device metrics override: 320×640 CSS px at
//!   scale 1 (WCAG 1.4.10: 1280 px at 400 %), and 640×450 CSS px at scale 2,
//!   which is what a 1280×900 window zoomed to 200 % lays out (browser zoom
//!   is a change of CSS px per device px; media queries and the layout see
//!   a 640 px wide viewport). CSS `zoom` on the root would not do: it
//!   leaves the viewport and the media queries as they were.
//!
//! # Layout
//! - `checks`   — reflow, text spacing, `lang` and errors, and the self-test.
//! - `audit`    — the findings of a journey, its report, the verdict.
//! - `keyboard` — a keyboard-only user and the focus indicator.

mod audit;
mod checks;
mod keyboard;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use super::browser::Browser;

pub use audit::Audit;
pub use checks::{horizontal_scroll, page_rules, self_test, text_spacing_problems};
pub use keyboard::Keyboard;

/// The axe rule tags run: WCAG 2.0 and 2.1, levels A and AA, and axe's own
/// best practices (listed by impact like the rest).
pub const AXE_TAGS: &[&str] = &["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"];

/// Impacts that fail a test.
pub const FAILING_IMPACTS: &[&str] = &["serious", "critical"];

/// Longest wait for `npm ci`.
const NPM_WAIT: Duration = Duration::from_secs(300);

/// `tests/a11y`: package.json and package-lock.json pinning axe-core.
pub fn axe_dir() -> PathBuf {
    super::repo_dir().join("tests/a11y")
}

/// The text of `axe.min.js`, installing the locked package first if needed.
pub fn axe_source() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    static INSTALL: Mutex<()> = Mutex::new(());
    SOURCE.get_or_init(|| {
        let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
        let dir = axe_dir();
        let script = dir.join("node_modules/axe-core/axe.min.js");
        if installed_version(&dir).as_deref() != Some(&locked_version(&dir)) {
            npm_ci(&dir);
        }
        std::fs::read_to_string(&script)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", script.display()))
    })
}

/// The axe-core version the lock file pins.
pub fn locked_version(dir: &Path) -> String {
    let path = dir.join("package-lock.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let lock: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    lock["packages"]["node_modules/axe-core"]["version"]
        .as_str()
        .unwrap_or_else(|| panic!("{} pins no axe-core", path.display()))
        .to_string()
}

/// The axe-core version in `node_modules`, if any.
fn installed_version(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("node_modules/axe-core/package.json")).ok()?;
    let package: Value = serde_json::from_str(&text).ok()?;
    package["version"].as_str().map(str::to_string)
}

/// `npm ci` in `dir`: exactly the locked packages, their integrity checked,
/// no install scripts run.
fn npm_ci(dir: &Path) {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("npm")
        .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run npm ({e}): the accessibility tests need Node.js and npm \
                 (Debian packages `nodejs npm`; tests/install-deps.sh installs them)"
            )
        });
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() > NPM_WAIT => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("npm ci in {} took more than {NPM_WAIT:?}", dir.display());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => panic!("waiting for npm ci: {e}"),
        }
    }
    let out = child.wait_with_output().expect("npm ci's output");
    assert!(
        out.status.success(),
        "npm ci in {} failed ({}):\n{}\n{}",
        dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One axe rule that failed on a page.
#[derive(Clone, Debug, Deserialize)]
pub struct Violation {
    /// The rule, e.g. `color-contrast`.
    pub id: String,
    /// `minor`, `moderate`, `serious` or `critical`.
    pub impact: Option<String>,
    /// What the rule asks, in a line.
    pub help: String,
    #[serde(rename = "helpUrl")]
    pub help_url: String,
    /// WCAG criteria and levels (`wcag143`, `wcag2aa`, `best-practice`).
    pub tags: Vec<String>,
    /// The elements that fail it.
    pub nodes: Vec<Node>,
}

/// An element an axe rule failed on.
#[derive(Clone, Debug, Deserialize)]
pub struct Node {
    /// CSS selector(s) of the element.
    pub target: Vec<Value>,
    /// Its start tag.
    pub html: String,
    #[serde(rename = "failureSummary", default)]
    pub failure_summary: Option<String>,
}

impl Violation {
    /// Whether this finding fails the test.
    pub fn fails(&self) -> bool {
        self.impact
            .as_deref()
            .is_some_and(|i| FAILING_IMPACTS.contains(&i))
    }

    fn impact(&self) -> &str {
        self.impact.as_deref().unwrap_or("unknown")
    }

    fn targets(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                n.target
                    .iter()
                    .map(|t| t.as_str().map(str::to_string).unwrap_or(t.to_string()))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Run axe-core on the current page: its violations of [`AXE_TAGS`].
pub async fn axe(b: &Browser) -> Vec<Violation> {
    let loaded = b
        .script(&format!("{}\n;return typeof window.axe;", axe_source()))
        .await;
    assert_eq!(
        loaded,
        json!("object"),
        "axe-core did not load into the page"
    );
    let js = format!(
        "const done = arguments[arguments.length - 1];
         window.axe.run(document, {{
             runOnly: {{ type: 'tag', values: {tags} }},
             resultTypes: ['violations'],
         }}).then(
             r => done(JSON.stringify({{ violations: r.violations }})),
             e => done(JSON.stringify({{ error: String(e) }})));",
        tags = serde_json::to_string(AXE_TAGS).expect("tags as JSON")
    );
    let answer = b.script_async(&js).await;
    let text = answer
        .as_str()
        .unwrap_or_else(|| panic!("axe answered {answer}"));
    let answer: Value = serde_json::from_str(text).expect("axe's answer is JSON");
    if let Some(e) = answer.get("error") {
        panic!("axe-core failed on {}: {e}", b.url().await);
    }
    serde_json::from_value(answer["violations"].clone()).expect("axe's violations")
}
