//! The page checks beyond axe: horizontal scrolling at a viewport, WCAG
//! 1.4.12 text spacing, `lang` and errors; and the self-test that plants
//! a fault for each check, axe's included.

use serde_json::json;

use super::super::browser::Browser;
use super::axe;

/// Horizontal scrolling at `width`×`height` CSS px and device scale
/// `scale`: a description of it, or `None` if the page fits.
pub async fn horizontal_scroll(b: &Browser, width: u32, height: u32, scale: f64) -> Option<String> {
    b.cdp(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": width, "height": height, "deviceScaleFactor": scale, "mobile": false }),
    )
    .await;
    // Reading the sizes forces a layout at the new viewport.
    let found = b
        .script(
            "const d = document.documentElement;
             if (d.scrollWidth <= d.clientWidth) { return null; }
             const wide = [];
             for (const e of document.body.querySelectorAll('*')) {
               const r = e.getBoundingClientRect();
               if (r.right > d.clientWidth + 0.5 && r.width > 0) {
                 wide.push(e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
                   + (e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\\s+/).join('.') : '')
                   + ' (right edge ' + Math.round(r.right) + ')');
               }
             }
             return 'scrollWidth ' + d.scrollWidth + ' > clientWidth ' + d.clientWidth
               + '; too wide: ' + wide.slice(0, 6).join(', ');",
        )
        .await;
    b.cdp("Emulation.clearDeviceMetricsOverride", json!({}))
        .await;
    found.as_str().map(str::to_string)
}

/// Text spacing overridden as WCAG 1.4.12 asks (line height 1.5, 2 em
/// after paragraphs, letter spacing 0.12 em, word spacing 0.16 em): what
/// then scrolls sideways or is cut off, if anything. The rules go into
/// the page's own stylesheet through the CSSOM (the CSP forbids a new
/// `<style>`, not that) and are taken out again.
pub async fn text_spacing_problems(b: &Browser) -> Vec<String> {
    let found = b
        .script(
            "const sheet = [...document.styleSheets].find(s => { try { return !!s.cssRules; } catch (e) { return false; } });
             if (!sheet) { return ['no stylesheet to add the text spacing to']; }
             const first = sheet.cssRules.length;
             sheet.insertRule('* { line-height: 1.5 !important; letter-spacing: 0.12em !important; word-spacing: 0.16em !important; }', first);
             sheet.insertRule('p { margin-bottom: 2em !important; }', first + 1);
             const out = [];
             const d = document.documentElement;
             if (d.scrollWidth > d.clientWidth) {
               out.push('with WCAG 1.4.12 text spacing the page scrolls sideways (' + d.scrollWidth + ' > ' + d.clientWidth + ')');
             }
             for (const e of document.body.querySelectorAll('*')) {
               if (e.closest('.visually-hidden') || e.matches('input, textarea, select, img, svg')) { continue; }
               const c = getComputedStyle(e);
               const cut = (['hidden', 'clip'].includes(c.overflowX) && e.scrollWidth > e.clientWidth + 1)
                 || (['hidden', 'clip'].includes(c.overflowY) && e.scrollHeight > e.clientHeight + 1);
               if (cut) {
                 out.push('with WCAG 1.4.12 text spacing ' + e.tagName.toLowerCase()
                   + (e.className ? '.' + String(e.className).trim().split(/\\s+/).join('.') : '') + ' cuts off its text');
               }
             }
             sheet.deleteRule(first + 1);
             sheet.deleteRule(first);
             return out;",
        )
        .await;
    serde_json::from_value(found).expect("a list of sentences")
}

/// The page's own checks beyond axe: `lang`, errors announced and tied to
/// their fields, invalid fields described. Each problem as a sentence.
pub async fn page_rules(b: &Browser, lang: &str) -> Vec<String> {
    let js = "const out = [];
             const lang = __LANG__;
             if (document.documentElement.lang !== lang) {
               out.push('html lang is \"' + document.documentElement.lang + '\", not \"' + lang + '\"');
             }
             const shown = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
             const described = (c, id) => (c.getAttribute('aria-describedby') || '').split(/\\s+/).includes(id);
             const controls = [...document.querySelectorAll(
               'input:not([type=hidden]), select, textarea, button, fieldset')].filter(shown);
             for (const a of document.querySelectorAll('.alert--error')) {
               if (!shown(a)) { continue; }
               const live = a.closest('[role=alert], [aria-live=assertive], [aria-live=polite]');
               if (!live) { out.push('the error \"' + a.textContent.trim() + '\" is not announced (no role=alert or aria-live)'); }
               if (!a.id) { out.push('the error \"' + a.textContent.trim() + '\" has no id a field could point at'); continue; }
               if (controls.length && !controls.some(c => described(c, a.id))) {
                 out.push('no field is described by the error #' + a.id + ' (aria-describedby)');
               }
             }
             for (const c of document.querySelectorAll('[aria-invalid=true]')) {
               const ids = (c.getAttribute('aria-describedby') || '').split(/\\s+/).filter(Boolean);
               const what = c.tagName.toLowerCase() + (c.id ? '#' + c.id : '');
               if (!ids.length) { out.push(what + ' is aria-invalid but describes no error'); }
               for (const id of ids) {
                 const e = document.getElementById(id);
                 if (!e || !shown(e)) { out.push(what + ' is described by #' + id + ', which is not shown'); }
               }
             }
             for (const c of document.querySelectorAll('[aria-describedby]')) {
               for (const id of c.getAttribute('aria-describedby').split(/\\s+/).filter(Boolean)) {
                 if (!document.getElementById(id)) { out.push('aria-describedby points at a missing #' + id); }
               }
             }
             return out;"
        .replace("__LANG__", &json!(lang).to_string());
    let found = b.script(&js).await;
    serde_json::from_value(found).expect("a list of sentences")
}

/// Prove that the checks see what they look for: on the current page
/// (reloaded afterwards), add an image without a text alternative, pale
/// text, text outside the landmarks, a box wider than the phone, an error
/// nobody is told about and a box that cuts off its text, and panic unless
/// each check reports its own.
pub async fn self_test(b: &Browser) {
    let url = b.url().await;
    b.script(
        "const main = document.querySelector('main') || document.body;
         const img = document.createElement('img'); img.src = 'data:,'; main.appendChild(img);
         const pale = document.createElement('p'); pale.textContent = 'Blek text'; pale.style.color = '#bbbbbb'; main.appendChild(pale);
         const wide = document.createElement('div'); wide.style.width = '2000px'; wide.style.height = '1px'; main.appendChild(wide);
         const error = document.createElement('div'); error.className = 'alert alert--error'; error.textContent = 'Fel'; main.appendChild(error);
         const tight = document.createElement('div'); tight.style.height = '1em'; tight.style.overflow = 'hidden';
         tight.textContent = 'Ord '.repeat(3); main.appendChild(tight);
         const stray = document.createElement('p'); stray.textContent = 'Utanför'; document.body.appendChild(stray);
         return null;",
    )
    .await;
    let rules: Vec<String> = axe(b).await.into_iter().map(|v| v.id).collect();
    // Critical, serious, and (text outside the landmarks) moderate.
    for rule in ["image-alt", "color-contrast", "region"] {
        assert!(
            rules.iter().any(|r| r == rule),
            "axe missed {rule}: {rules:?}"
        );
    }
    let problems = page_rules(b, "xx").await.join("\n");
    for expected in ["html lang is", "is not announced", "has no id"] {
        assert!(
            problems.contains(expected),
            "page rules missed {expected:?}:\n{problems}"
        );
    }
    assert!(
        horizontal_scroll(b, 320, 640, 1.0).await.is_some(),
        "a 2000 px box did not scroll at 320 CSS px"
    );
    assert!(
        horizontal_scroll(b, 640, 450, 2.0).await.is_some(),
        "a 2000 px box did not scroll at 200 % zoom"
    );
    let spacing = text_spacing_problems(b).await.join("\n");
    assert!(
        spacing.contains("cuts off its text"),
        "a box of fixed height did not cut off spaced-out text: {spacing:?}"
    );
    b.open(url.as_str()).await;
}
