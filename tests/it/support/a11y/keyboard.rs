//! A keyboard-only user, and the check that whatever has the focus shows it.

use serde_json::json;

use super::super::browser::Browser;

/// The computed look of an element that a focus indicator would change.
const STYLE_JS: &str = "const pvStyle = e => { const c = getComputedStyle(e);
  return { outline: c.outlineStyle + ' ' + c.outlineWidth + ' ' + c.outlineColor,
           outlineStyle: c.outlineStyle, outlineWidth: parseFloat(c.outlineWidth) || 0,
           boxShadow: c.boxShadow, border: c.borderColor + ' ' + c.borderWidth,
           background: c.backgroundColor }; };
const pvWhat = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
  + (e.name ? '[name=' + e.name + ']' : '') + (e.type ? '[type=' + e.type + ']' : '')
  + (e.getAttribute('href') ? '[href=' + e.getAttribute('href') + ']' : '')
  + ' \"' + (e.textContent || e.value || '').trim().slice(0, 40) + '\"';
const pvVerdict = (what, focused, unfocused) => {
  const outline = focused.outlineStyle !== 'none' && focused.outlineWidth >= 2
    && focused.outline !== unfocused.outline;
  const shadow = focused.boxShadow !== 'none' && focused.boxShadow !== unfocused.boxShadow;
  return { what, ok: outline || shadow, focused, unfocused };
};";

/// A keyboard-only user: Tab, Enter, Space, arrows and typing as WebDriver
/// key actions, never a click. Every element that gets the focus is checked
/// for a visible focus indicator: a computed outline of at least 2 px or a
/// box-shadow that the same element does not have unfocused.
pub struct Keyboard<'a> {
    b: &'a Browser,
    /// Elements whose focus indicator was checked.
    pub checked: Vec<String>,
}

/// Most Tab presses to reach one element: more means it is not reachable.
pub const MAX_TABS: usize = 40;

impl<'a> Keyboard<'a> {
    /// The keyboard of `b`, on the page it shows now.
    pub async fn on(b: &'a Browser) -> Keyboard<'a> {
        let k = Keyboard {
            b,
            checked: Vec::new(),
        };
        k.page_loaded().await;
        k
    }

    /// Note how every focusable element of the new page looks unfocused
    /// (and which one the page focused itself, e.g. `autofocus`). Call it
    /// after opening a page from the address bar.
    pub async fn page_loaded(&self) {
        self.b
            .script(&format!(
                "{STYLE_JS}
                 const m = new WeakMap();
                 for (const e of document.querySelectorAll('a[href], button, input, select, textarea, [tabindex]')) {{
                   if (e !== document.activeElement) {{ m.set(e, pvStyle(e)); }}
                 }}
                 window.pvUnfocused = m;
                 const a = document.activeElement;
                 window.pvPending = (a && a !== document.body) ? {{ el: a, what: pvWhat(a), focused: pvStyle(a) }} : null;
                 return null;"
            ))
            .await;
    }

    /// Look at the element focused now (and at the one focused before,
    /// whose unfocused look is known once it lost the focus): what has the
    /// focus, and each element judged, with a failure if its indicator is
    /// not visible.
    async fn inspect(&mut self) -> (String, Vec<Result<String, String>>) {
        let answer = self
            .b
            .script(&format!(
                "{STYLE_JS}
                 const out = [];
                 const e = document.activeElement;
                 const p = window.pvPending;
                 if (p && p.el !== e) {{ out.push(pvVerdict(p.what, p.focused, pvStyle(p.el))); window.pvPending = null; }}
                 let now = 'body';
                 if (e && e !== document.body) {{
                   now = pvWhat(e);
                   const before = window.pvUnfocused.get(e);
                   if (before) {{ out.push(pvVerdict(now, pvStyle(e), before)); }}
                   else if (!window.pvPending) {{ window.pvPending = {{ el: e, what: now, focused: pvStyle(e) }}; }}
                 }}
                 return {{ now, verdicts: out }};"
            ))
            .await;
        let url = self.b.url().await;
        let mut verdicts = Vec::new();
        for v in answer["verdicts"].as_array().into_iter().flatten() {
            let what = v["what"].as_str().unwrap_or("?").to_string();
            if v["ok"] == json!(true) {
                self.checked.push(what.clone());
                verdicts.push(Ok(what));
            } else {
                verdicts.push(Err(format!(
                    "no visible focus indicator on {what} at {url}: focused {}, unfocused {}",
                    v["focused"], v["unfocused"]
                )));
            }
        }
        (answer["now"].as_str().unwrap_or("?").to_string(), verdicts)
    }

    /// [`Keyboard::inspect`], panicking on an element without a visible
    /// focus indicator; what has the focus now.
    async fn check_focus(&mut self) -> String {
        let (now, verdicts) = self.inspect().await;
        for v in verdicts {
            if let Err(problem) = v {
                panic!("{problem}");
            }
        }
        now
    }

    /// Press Tab once and say what the focus indicators that could be
    /// judged showed, without failing (for proving the check itself).
    pub async fn tab_and_judge(&mut self) -> Vec<Result<String, String>> {
        self.b
            .keys(&char::from(fantoccini::key::Key::Tab).to_string())
            .await;
        self.inspect().await.1
    }

    /// Whether the focused element matches `css`.
    pub async fn focused_is(&self, css: &str) -> bool {
        let js = format!(
            "return !!document.activeElement && document.activeElement.matches({});",
            json!(css)
        );
        self.b.script(&js).await == json!(true)
    }

    /// Press Tab until the element matching `css` has the focus (at most
    /// [`MAX_TABS`] times), checking each focused element on the way.
    pub async fn tab_to(&mut self, css: &str) {
        let mut path = Vec::new();
        for _ in 0..MAX_TABS {
            if self.focused_is(css).await {
                self.check_focus().await;
                return;
            }
            self.b
                .keys(&char::from(fantoccini::key::Key::Tab).to_string())
                .await;
            path.push(self.check_focus().await);
        }
        panic!(
            "{css} not reached with {MAX_TABS} Tabs on {}; the focus went: {path:#?}",
            self.b.url().await
        );
    }

    /// Press Shift+Tab until the element matching `css` has the focus (at
    /// most [`MAX_TABS`] times), checking each focused element on the way.
    pub async fn shift_tab_to(&mut self, css: &str) {
        use fantoccini::key::Key;
        let mut path = Vec::new();
        for _ in 0..MAX_TABS {
            if self.focused_is(css).await {
                self.check_focus().await;
                return;
            }
            self.b
                .key_chord(&[char::from(Key::Shift), char::from(Key::Tab)])
                .await;
            path.push(self.check_focus().await);
        }
        panic!(
            "{css} not reached with {MAX_TABS} Shift+Tabs on {}; the focus went: {path:#?}",
            self.b.url().await
        );
    }

    /// Type `text` into whatever has the focus.
    pub async fn type_text(&self, text: &str) {
        self.b.keys(text).await;
    }

    /// Press `key` (e.g. an arrow) without leaving the page, and check the
    /// element focused then.
    pub async fn press(&mut self, key: fantoccini::key::Key) {
        self.b.keys(&char::from(key).to_string()).await;
        self.check_focus().await;
    }

    /// Press `key` (Enter on a link or in a form, Space on a button) and
    /// wait for the page it leads to.
    pub async fn press_and_wait(&mut self, key: fantoccini::key::Key, what: &str) {
        self.b.mark_page().await;
        self.b.keys(&char::from(key).to_string()).await;
        self.b.wait_new_page(what).await;
        self.page_loaded().await;
    }
}
