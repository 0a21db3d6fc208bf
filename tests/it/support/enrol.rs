//! What users have enrolled, and the second step of login as a browser does it.
//!
//! - Enrolments: SMS numbers are written through the library's own store
//!   (there is no command for them yet); authenticator devices and hardware
//!   tokens through the admin commands (`portvakt totp add`, `token import`,
//!   `token assign`, `enrolments list`), as an administrator would.
//! - Codes the way a phone or a token makes them: TOTP/HOTP with the
//!   `totp-rs` crate directly (not portvakt's wrapper), and `oathtool`, an
//!   independent RFC 6238 implementation.
//! - Pages: the password step with a chosen method, the method choice page
//!   (`/.portvakt/second`), the code page (`/.portvakt/code`).

use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Url;
use totp_rs::{Algorithm, TOTP};

use super::client::Client;
use super::gateway::Gateway;
use super::page::{Page, Whoami};
use super::users::User;

// ---------------------------------------------------------------- enrolments

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

pub fn now_secs() -> u64 {
    now_ms() / 1000
}

/// The gateway's enrolment store, as its configuration names it (the
/// default `portvakt.db` beside the config, or a shared PostgreSQL).
pub fn store_of(gw: &Gateway) -> std::sync::Arc<dyn portvakt::storage::EnrolmentStore> {
    let cfg = portvakt::config::load(&gw.config_path()).expect("the gateway's config");
    let sealer = portvakt::storage::crypto::Sealer::from_key_file(&cfg.secret_key_file)
        .expect("the gateway's secret key");
    portvakt::storage::open(
        &cfg.storage,
        sealer,
        // The gateway has already migrated the store: nothing from before realms.
        portvakt::storage::LegacyRows::Keep,
    )
    .expect("open the gateway's store")
}

/// Register `e164` as `user`'s SMS number in `position` (0 or 1), the way
/// "Mina SMS-nummer" will, for the default realm `staff`. Works while the
/// gateway runs (WAL).
pub async fn set_sms_number(gw: &Gateway, user: &User, position: u8, e164: &str) {
    set_sms_number_in(gw, "staff", user, position, e164).await;
}

/// [`set_sms_number`] for the user of realm `realm`.
pub async fn set_sms_number_in(gw: &Gateway, realm: &str, user: &User, position: u8, e164: &str) {
    store_of(gw)
        .set_sms_number(
            &portvakt::storage::UserRef::new(realm, user.name),
            position,
            e164,
            now_ms(),
        )
        .await
        .unwrap_or_else(|e| panic!("set SMS number {position} of {}: {e}", user.name));
}

/// Run `portvakt ARGS --config <the gateway's config>`.
pub fn admin(gw: &Gateway, args: &[&str]) -> Output {
    Command::new(super::portvakt_bin())
        .args(args)
        .arg("--config")
        .arg(gw.config_path())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run portvakt {args:?}: {e}"))
}

/// Like [`admin`], insisting on success; returns stdout.
pub fn admin_ok(gw: &Gateway, args: &[&str]) -> String {
    let out = admin(gw, args);
    assert!(
        out.status.success(),
        "portvakt {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `portvakt totp add USER --description D`; returns the base32 secret it prints.
pub fn totp_add(gw: &Gateway, user: &User, description: &str) -> String {
    let out = admin_ok(
        gw,
        &["totp", "add", user.name, "--description", description],
    );
    let secret = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret:"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| panic!("no `secret:` line in the output of totp add:\n{out}"));
    assert!(
        out.contains("otpauth://totp/"),
        "totp add prints no otpauth URI:\n{out}"
    );
    secret
}

/// Write `csv` into the gateway's directory and run `portvakt token import` on it.
pub fn token_import(gw: &Gateway, name: &str, csv: &str) -> Output {
    let path = gw.dir().join(name);
    std::fs::write(&path, csv).expect("write token CSV");
    admin(gw, &["token", "import", path.to_str().expect("utf-8 path")])
}

/// `portvakt token assign SERIAL USER`.
pub fn token_assign(gw: &Gateway, serial: &str, user: &User) -> Output {
    admin(gw, &["token", "assign", serial, user.name])
}

/// `portvakt enrolments list USER` (stdout; must succeed).
pub fn enrolments_list(gw: &Gateway, user: &User) -> String {
    admin_ok(gw, &["enrolments", "list", user.name])
}

// ---------------------------------------------------------------- codes

/// The RFC 6238 code (SHA-1, 6 digits, 30 s) at `unix_secs`, by totp-rs.
pub fn totp_code(secret_b32: &str, unix_secs: u64) -> String {
    let secret = totp_rs::Secret::Encoded(secret_b32.to_string())
        .to_bytes()
        .unwrap_or_else(|e| panic!("not base32: {secret_b32:?}: {e:?}"));
    TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, secret, None, String::new()).generate(unix_secs)
}

/// The RFC 4226 code for `counter` (HMAC-SHA-1, dynamic truncation), by
/// totp-rs: a 1-second TOTP evaluated at "time" `counter` is HOTP(counter).
pub fn hotp_code(secret: &[u8], counter: u64) -> String {
    TOTP::new_unchecked(
        Algorithm::SHA1,
        6,
        0,
        1,
        secret.to_vec(),
        None,
        String::new(),
    )
    .generate(counter)
}

/// The code at `unix_secs` from `oathtool --totp -b -N @SECS SECRET`, or
/// None (with a loud message) when oathtool is not installed.
pub fn oathtool_totp(secret_b32: &str, unix_secs: u64) -> Option<String> {
    let at = format!("@{unix_secs}");
    let out = match Command::new("oathtool")
        .args(["--totp", "-b", "-N", &at, secret_b32])
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!(
                "\n\n*** SKIPPING the oathtool check: cannot run oathtool ({e}).\n\
                 *** Install the Debian package `oathtool` (tests/install-deps.sh test).\n"
            );
            return None;
        }
    };
    assert!(
        out.status.success(),
        "oathtool failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Now for `gw` (unix seconds), so that a code computed for it is still for
/// the same step when the gateway checks it: an in-process gateway's manual
/// clock stands still, so at once; a process's, at least 5 s before the end
/// of a 30-s step (waiting up to 5 s for the next one).
pub async fn fresh_step_time(gw: &Gateway) -> u64 {
    if let Some(clock) = gw.manual_clock() {
        return portvakt::clock::Clock::now_secs(&**clock);
    }
    let into = now_ms() % 30_000;
    if into > 25_000 {
        tokio::time::sleep(Duration::from_millis(30_000 - into + 200)).await;
    }
    now_secs()
}

/// The one-time code in a message: the one word made only of characters of
/// the code alphabet, as long as a code.
pub fn code_in(text: &str) -> Option<String> {
    let alphabet = portvakt::factors::code::ALPHABET;
    let mut found: Vec<&str> = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.len() == 6 && w.bytes().all(|b| alphabet.contains(&b)))
        .collect();
    found.dedup();
    found.sort();
    found.dedup();
    match found.as_slice() {
        [one] => Some(one.to_string()),
        _ => None,
    }
}

// ---------------------------------------------------------------- pages

/// Attributes of every `<input …>` in `html`, in order, values unescaped.
pub fn inputs(html: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find("<input") {
        let tag_start = at + "<input".len();
        let mut end = tag_start;
        let mut quote: Option<char> = None;
        for (i, c) in rest[tag_start..].char_indices() {
            match (quote, c) {
                (None, '>') => {
                    end = tag_start + i;
                    break;
                }
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                _ => {}
            }
        }
        out.push(attributes(&rest[tag_start..end]));
        rest = &rest[end..];
    }
    out
}

fn attributes(tag: &str) -> Vec<(String, String)> {
    let mut attrs = Vec::new();
    let chars: Vec<char> = tag.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() || chars[i] == '/' {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '=' {
            i += 1;
        }
        let name: String = chars[start..i]
            .iter()
            .collect::<String>()
            .to_ascii_lowercase();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i < chars.len() && chars[i] == '=' {
            i += 1;
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            let value: String = if i < chars.len() && (chars[i] == '"' || chars[i] == '\'') {
                let q = chars[i];
                i += 1;
                let vs = i;
                while i < chars.len() && chars[i] != q {
                    i += 1;
                }
                let v = chars[vs..i].iter().collect();
                i += 1;
                v
            } else {
                let vs = i;
                while i < chars.len() && !chars[i].is_whitespace() {
                    i += 1;
                }
                chars[vs..i].iter().collect()
            };
            attrs.push((name, super::html_unescape(&value)));
        } else {
            attrs.push((name, String::new()));
        }
    }
    attrs
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Text between `start` (after it) and the next `end`, tags stripped, unescaped.
fn text_after(html: &str, start: &str, end: &str) -> Option<String> {
    let from = html.find(start)? + start.len();
    let to = from + html[from..].find(end)?;
    let mut text = String::new();
    let mut in_tag = false;
    for c in html[from..to].chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    Some(
        super::html_unescape(&text)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// One radio of the method choice.
#[derive(Debug, Clone)]
pub struct MethodOption {
    /// `sms:0`, `sms:1`, `email`, `totp`, `token` (or `sms` when there is no number).
    pub value: String,
    pub disabled: bool,
    pub checked: bool,
    /// The label with its detail ("SMS-kod Till 070*****67").
    pub label: String,
    /// The explanation shown under a disabled option.
    pub reason: Option<String>,
}

/// A page with `method` radios and a csrf token: the login page or the
/// second step's choice page.
#[derive(Debug)]
pub struct ChoicePage {
    pub page: Page,
    pub csrf: String,
    pub rd: String,
    pub options: Vec<MethodOption>,
}

impl ChoicePage {
    pub fn parse(page: Page) -> ChoicePage {
        assert!(
            page.is_html(),
            "expected a page with a method choice, got {}",
            page.describe()
        );
        let all = inputs(&page.body);
        let csrf = all
            .iter()
            .find(|a| attr(a, "name") == Some("csrf"))
            .and_then(|a| attr(a, "value"))
            .unwrap_or_else(|| panic!("no csrf input: {}", page.describe()))
            .to_string();
        let rd = all
            .iter()
            .find(|a| attr(a, "name") == Some("rd"))
            .and_then(|a| attr(a, "value"))
            .unwrap_or("")
            .to_string();
        let options = all
            .iter()
            .filter(|a| attr(a, "name") == Some("method") && attr(a, "type") == Some("radio"))
            .map(|a| {
                let id = attr(a, "id").unwrap_or("");
                MethodOption {
                    value: attr(a, "value").unwrap_or("").to_string(),
                    disabled: attr(a, "disabled").is_some(),
                    checked: attr(a, "checked").is_some(),
                    label: text_after(&page.body, &format!("for=\"{id}\">"), "</label>")
                        .unwrap_or_default(),
                    reason: text_after(&page.body, &format!("id=\"{id}-why\">"), "</p>"),
                }
            })
            .collect();
        ChoicePage {
            page,
            csrf,
            rd,
            options,
        }
    }

    /// The option with this value; panics (listing them) if there is none.
    pub fn option(&self, value: &str) -> &MethodOption {
        self.options
            .iter()
            .find(|o| o.value == value)
            .unwrap_or_else(|| {
                panic!(
                    "no method option {value:?}; the page offers {:#?}\n{}",
                    self.options,
                    self.page.describe()
                )
            })
    }

    pub fn values(&self) -> Vec<&str> {
        self.options.iter().map(|o| o.value.as_str()).collect()
    }

    /// The error alert, if any.
    pub fn error(&self) -> Option<String> {
        text_after(&self.page.body, "id=\"second-error\">", "</div>")
    }
}

/// The code entry page (`code.html`).
#[derive(Debug)]
pub struct CodePage {
    pub page: Page,
    pub csrf: String,
    pub rd: String,
    /// The method value the page posts back (`sms:0`, `email`, `totp`, `token`).
    pub method: String,
}

impl CodePage {
    /// Panics (with the page) unless `page` is a code page.
    pub fn parse(page: Page) -> CodePage {
        let all = inputs(&page.body);
        let value = |name: &str| {
            all.iter()
                .find(|a| attr(a, "name") == Some(name))
                .map(|a| attr(a, "value").unwrap_or("").to_string())
        };
        let is_code_page = page.is_html() && value("code").is_some();
        assert!(
            is_code_page,
            "expected the code page (an input named code), got {}",
            page.describe()
        );
        CodePage {
            csrf: value("csrf").unwrap_or_else(|| panic!("no csrf: {}", page.describe())),
            rd: value("rd").unwrap_or_default(),
            method: value("method").unwrap_or_else(|| panic!("no method: {}", page.describe())),
            page,
        }
    }

    /// The error alert, if any.
    pub fn error(&self) -> Option<String> {
        text_after(&self.page.body, "id=\"code-error\">", "</div>")
    }

    /// The notice (e.g. "Vi har skickat en engångskod till 070*****67 …").
    pub fn notice(&self) -> Option<String> {
        text_after(&self.page.body, "role=\"status\">", "</div>")
    }

    /// Whether the page offers to send the code again.
    pub fn offers_resend(&self) -> bool {
        inputs(&self.page.body)
            .iter()
            .any(|a| attr(a, "name") == Some("resend"))
    }
}

fn portal_url(page: &Page, path: &str) -> String {
    let mut url: Url = page.url.clone();
    url.set_path(path);
    url.set_query(None);
    url.to_string()
}

/// Open `url`, get sent to the login form, post `user`'s password (and the
/// login page's `method` radio when given). The answer is not followed.
pub async fn password_step(b: &Client, url: &str, user: &User, method: Option<&str>) -> Page {
    let form = b.open_login_form(url).await;
    let mut fields = vec![
        ("username", user.name),
        ("password", user.password),
        ("csrf", form.csrf.as_str()),
    ];
    if let Some(rd) = &form.rd {
        fields.push(("rd", rd.as_str()));
    }
    if let Some(m) = method {
        fields.push(("method", m));
    }
    b.post_form(form.action.as_str(), &fields).await
}

/// Whether `page` sends the browser to the second step on the portal.
pub fn is_sent_to_second(page: &Page) -> bool {
    page.is_redirect()
        && page.location().is_some_and(|l| {
            l.scheme() == "https"
                && l.host_str() == Some("portal.test")
                && l.path() == "/.portvakt/second"
        })
}

/// `page` is a redirect (`status`) to `https://portal.test/.portvakt/second?rd=…`.
pub fn assert_sent_to_second(page: &Page, status: u16) {
    assert!(
        page.status == status && is_sent_to_second(page),
        "expected a {status} to https://portal.test/.portvakt/second, got {}",
        page.describe()
    );
    let loc = page.location().unwrap();
    assert!(
        loc.query_pairs().any(|(k, v)| k == "rd" && !v.is_empty()),
        "the second step does not know where to return: {loc}"
    );
}

/// Follow a redirect to the choice page and read it.
pub async fn open_choice(b: &Client, redirect: &Page) -> ChoicePage {
    let loc = redirect
        .location()
        .unwrap_or_else(|| panic!("no Location: {}", redirect.describe()));
    let page = b.get(loc.as_str()).await;
    assert_eq!(page.status, 200, "choice page: {}", page.describe());
    ChoicePage::parse(page)
}

/// POST the choice page with `method` (`sms:0`, `email`, `totp`, `token`).
pub async fn choose(b: &Client, choice: &ChoicePage, method: &str) -> Page {
    b.post_form(
        &portal_url(&choice.page, "/.portvakt/second"),
        &[
            ("csrf", choice.csrf.as_str()),
            ("rd", choice.rd.as_str()),
            ("method", method),
        ],
    )
    .await
}

/// POST `code` on the code page.
pub async fn enter_code(b: &Client, form: &CodePage, code: &str) -> Page {
    b.post_form(
        &portal_url(&form.page, "/.portvakt/code"),
        &[
            ("csrf", form.csrf.as_str()),
            ("rd", form.rd.as_str()),
            ("method", form.method.as_str()),
            ("code", code),
        ],
    )
    .await
}

/// Ask for the code again (the code page's resend form).
pub async fn ask_again(b: &Client, form: &CodePage) -> Page {
    b.post_form(
        &portal_url(&form.page, "/.portvakt/code"),
        &[
            ("csrf", form.csrf.as_str()),
            ("rd", form.rd.as_str()),
            ("method", form.method.as_str()),
            ("resend", "1"),
        ],
    )
    .await
}

/// Off the network: password for `url`, sent to the choice page, choose
/// `method`; returns the code page (the code, if any, is on its way).
pub async fn code_page_for(b: &Client, url: &str, user: &User, method: &str) -> CodePage {
    let posted = password_step(b, url, user, None).await;
    assert_sent_to_second(&posted, 303);
    let choice = open_choice(b, &posted).await;
    let page = choose(b, &choice, method).await;
    assert_eq!(
        page.status,
        200,
        "choosing {method} should show the code page: {}",
        page.describe()
    );
    CodePage::parse(page)
}

/// After an accepted code (303), follow to the app and insist on arriving as
/// `user` with two factors.
pub async fn arrive(b: &Client, accepted: Page, user: &User) -> Whoami {
    assert_eq!(
        accepted.status,
        303,
        "expected the code to be accepted (303), got {}",
        accepted.describe()
    );
    let journey = b.follow_from(accepted).await;
    assert!(
        journey.end.status == 200 && journey.end.is_whoami(),
        "{} did not arrive at the app after the code:\n{}",
        user.name,
        journey.describe()
    );
    let who = journey.end.whoami();
    assert_eq!(
        who.one("remote-user"),
        Some(user.name),
        "arrived as someone else"
    );
    assert_eq!(
        who.one("remote-auth-level"),
        Some("2"),
        "not a two-factor session"
    );
    who
}

/// The code page after a refused code: status and error text.
pub fn assert_refused(page: Page, status: u16, error_contains: &str) -> CodePage {
    assert_eq!(
        page.status,
        status,
        "expected {status} with {error_contains:?}, got {}",
        page.describe()
    );
    let form = CodePage::parse(page);
    let error = form.error().unwrap_or_default();
    assert!(
        error.contains(error_contains),
        "expected the error {error_contains:?}, the page says {error:?}:\n{}",
        form.page.describe()
    );
    form
}

// ---------------------------------------------------------------- audit

/// Auth-log lines of `event` (`code_sent`, `second_factor`, `login`, …).
pub fn events<'a>(lines: &'a [serde_json::Value], event: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|l| l["event"] == event).collect()
}
