//! A real browser for the journey tests: Debian's headless Chromium, driven
//! over WebDriver (`chromedriver` as a child process, `fantoccini` as the
//! client).
//!
//! # How it works
//! - [`Browser::launch`] starts `chromedriver` on a free loopback port (in its
//!   own process group, so Chromium goes with it), then a Chromium session
//!   with a fresh profile directory, the flags TESTING-NOTES.md asks for,
//!   `--host-resolver-rules=MAP *.test 127.0.0.1` (every test host is the
//!   gateway, or a [`super::forwarder::Forwarder`] in front of it) and the
//!   size and language of [`BrowserOptions`]. A phone is Chromium's device
//!   emulation (390×844, touch, the page's meta viewport honoured), since a
//!   real window is never narrower than 500 px; a desktop is a 1280×900 window.
//! - Certificates: the browser accepts exactly the test gateway's key
//!   (`--ignore-certificate-errors-spki-list` with the SHA-256 of the `main`
//!   leaf's public key), not any certificate; `acceptInsecureCerts` stays off.
//! - Every wait is bounded: elements [`ELEMENT_WAIT`], page loads and
//!   navigations [`NAVIGATION_WAIT`], WebDriver commands [`COMMAND_WAIT`].
//! - Screenshots go to `target/browser-screenshots/<test>/NN-<step>.png` (the
//!   whole page, not only the first screen). [`Browser::snap`] takes one on
//!   purpose; when a test panics, dropping the browser saves `failure.png`,
//!   `failure.html` and the URL before Chromium is closed.
//! - [`decode_qr_png`] is the phone camera: it reads a QR code from a PNG.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::pki::Pki;
use super::wait::{free_addr, tcp_ready, Readiness};

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Where Debian's `chromium-driver` puts the driver (also looked up in `PATH`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Longest wait for an element to appear.
pub const ELEMENT_WAIT: Duration = Duration::from_secs(10);
/// Longest wait for a page to load after a click or `open`.
pub const NAVIGATION_WAIT: Duration = Duration::from_secs(20);
/// Longest wait for any single WebDriver command.
pub const COMMAND_WAIT: Duration = Duration::from_secs(30);

/// Window size and language of a browser.
#[derive(Clone, Debug)]
pub struct BrowserOptions {
    width: u32,
    height: u32,
    /// Emulate a phone (Chromium's windows are never narrower than 500 px,
    /// so a phone's 390 px needs its device emulation).
    phone: bool,
    /// `Accept-Language`, most wanted first, e.g. `sv-SE,sv`.
    languages: String,
}

impl BrowserOptions {
    /// A phone held upright (390×844), in Swedish.
    pub fn phone() -> BrowserOptions {
        BrowserOptions {
            width: 390,
            height: 844,
            phone: true,
            languages: "sv-SE,sv".into(),
        }
    }

    /// A desktop window (1280×900), in Swedish.
    pub fn desktop() -> BrowserOptions {
        BrowserOptions {
            width: 1280,
            height: 900,
            phone: false,
            languages: "sv-SE,sv".into(),
        }
    }

    /// Ask for English pages.
    pub fn english(mut self) -> BrowserOptions {
        self.languages = "en-US,en".into();
        self
    }
}

/// `chromedriver` as a child process in its own process group; the group
/// (driver and the Chromium it started) is killed on drop.
struct Driver {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Driver {
    fn log(&self) -> String {
        tail(&self.log, 4000)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The driver is the leader of its own group: this reaches Chromium
        // too if closing the session did not.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium with one window. Closed (and killed) on drop.
pub struct Browser {
    client: Client,
    shots: PathBuf,
    step: AtomicUsize,
    // Dropped in this order: the driver first (it uses the profile), then
    // the profile directory.
    driver: Driver,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Start Chromium for the test `test` (its name names the screenshot
    /// directory), trusting the gateway certificate of `pki`.
    pub async fn launch(test: &str, pki: &Pki, options: BrowserOptions) -> Browser {
        let chromedriver = find_chromedriver();
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: the browser tests need Debian's `chromium` and \
             `chromium-driver` packages (`apt-get install chromium chromium-driver`; \
             tests/install-deps.sh installs them)"
        );
        let profile = tempfile::Builder::new()
            .prefix("portvakt-chromium-")
            .tempdir()
            .expect("browser profile tempdir");
        let shots = screenshot_root().join(test);
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).expect("create the screenshot directory");

        let driver = start_driver(&chromedriver, profile.path()).await;
        let capabilities = capabilities(pki, &options, &profile.path().join("chromium"));
        // Both ring and aws-lc-rs are linked in; the WebDriver connection
        // (plain HTTP, but built with rustls) needs one chosen.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let connect = async {
            ClientBuilder::rustls()
                .expect("rustls for the WebDriver connection")
                .capabilities(capabilities)
                .connect(&driver.url)
                .await
        };
        let client = match tokio::time::timeout(Duration::from_secs(60), connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => panic!(
                "Chromium did not start through chromedriver: {e}\n--- chromedriver log ---\n{}",
                driver.log()
            ),
            Err(_) => panic!(
                "Chromium did not start within 60 s\n--- chromedriver log ---\n{}",
                driver.log()
            ),
        };
        Browser {
            client,
            shots,
            step: AtomicUsize::new(0),
            driver,
            _profile: profile,
        }
    }

    /// The WebDriver client, for anything the helpers below do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Where this test's screenshots go.
    pub fn screenshot_dir(&self) -> &Path {
        &self.shots
    }

    /// Type `url` into the address bar and wait for the page to load.
    pub async fn open(&self, url: &str) {
        match tokio::time::timeout(NAVIGATION_WAIT, self.client.goto(url)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("could not open {url}: {e}"),
            Err(_) => panic!("{url} did not load within {NAVIGATION_WAIT:?}"),
        }
        self.wait_loaded().await;
    }

    /// The address bar.
    pub async fn url(&self) -> url::Url {
        bounded("read the URL", self.client.current_url()).await
    }

    /// The element matching `css`, waiting for it at most [`ELEMENT_WAIT`].
    pub async fn find(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(ELEMENT_WAIT)
            .every(Duration::from_millis(100))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => panic!(
                "no element {css:?} on {} within {ELEMENT_WAIT:?} ({e})\n--- page text ---\n{}",
                self.url_text().await,
                self.page_text().await
            ),
        }
    }

    /// Every element matching `css` now (no waiting).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        bounded(
            &format!("find {css}"),
            self.client.find_all(Locator::Css(css)),
        )
        .await
    }

    /// Whether an element matches `css` now (no waiting).
    pub async fn has(&self, css: &str) -> bool {
        !self.find_all(css).await.is_empty()
    }

    /// The visible text of the element matching `css`.
    pub async fn text_of(&self, css: &str) -> String {
        let e = self.find(css).await;
        bounded(&format!("text of {css}"), e.text()).await
    }

    /// The page's main heading.
    pub async fn heading(&self) -> String {
        self.text_of("h1").await
    }

    /// All text the page shows (empty if there is no page to read).
    pub async fn page_text(&self) -> String {
        let read = async {
            let body = self.client.find(Locator::Css("body")).await?;
            body.text().await
        };
        match tokio::time::timeout(COMMAND_WAIT, read).await {
            Ok(Ok(t)) => t,
            _ => String::new(),
        }
    }

    /// Attribute `name` of the element matching `css`.
    pub async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let e = self.find(css).await;
        bounded(&format!("attribute {name} of {css}"), e.attr(name)).await
    }

    /// Click into the field matching `css`, empty it and type `text`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        bounded(&format!("click {css}"), field.click()).await;
        bounded(&format!("clear {css}"), field.clear()).await;
        bounded(&format!("type into {css}"), field.send_keys(text)).await;
    }

    /// Pick the radio button `name` = `value` by clicking its label, as a
    /// person would; panics if it is missing, disabled or does not get checked.
    pub async fn choose(&self, name: &str, value: &str) {
        let css = format!("input[type=radio][name=\"{name}\"][value=\"{value}\"]");
        let radio = self.find(&css).await;
        assert!(
            bounded("is the radio enabled", radio.is_enabled()).await,
            "the choice {value} is greyed out on {}",
            self.url_text().await
        );
        let id = bounded("radio id", radio.attr("id"))
            .await
            .unwrap_or_else(|| panic!("the radio {css} has no id for its label"));
        let label = self.find(&format!("label[for=\"{id}\"]")).await;
        bounded(&format!("click the label of {value}"), label.click()).await;
        assert!(
            bounded("is the radio checked", radio.is_selected()).await,
            "clicking the label of {value} did not choose it"
        );
    }

    /// Which radio button `name` is checked, if any.
    pub async fn chosen(&self, name: &str) -> Option<String> {
        for radio in self
            .find_all(&format!("input[type=radio][name=\"{name}\"]"))
            .await
        {
            if bounded("is checked", radio.is_selected()).await {
                return bounded("radio value", radio.attr("value")).await;
            }
        }
        None
    }

    /// The labels of the radio buttons `name`, in page order, with their
    /// values and whether they can be chosen.
    pub async fn choices(&self, name: &str) -> Vec<Choice> {
        let mut out = Vec::new();
        for radio in self
            .find_all(&format!("input[type=radio][name=\"{name}\"]"))
            .await
        {
            let value = bounded("radio value", radio.attr("value"))
                .await
                .unwrap_or_default();
            let enabled = bounded("radio enabled", radio.is_enabled()).await;
            let id = bounded("radio id", radio.attr("id"))
                .await
                .unwrap_or_default();
            let label = self.text_of(&format!("label[for=\"{id}\"]")).await;
            out.push(Choice {
                value,
                label,
                enabled,
            });
        }
        out
    }

    /// Press the button whose text is `text` (the first one, if several)
    /// and wait for the next page.
    pub async fn press(&self, text: &str) {
        let xpath = format!("//button[normalize-space(.)={}]", xpath_literal(text));
        let button = match self
            .client
            .wait()
            .at_most(ELEMENT_WAIT)
            .for_element(Locator::XPath(&xpath))
            .await
        {
            Ok(b) => b,
            Err(e) => panic!(
                "no button {text:?} on {} ({e})\n--- page text ---\n{}",
                self.url_text().await,
                self.page_text().await
            ),
        };
        self.click_and_wait(&button, &format!("the button {text:?}"))
            .await;
    }

    /// Press the submit button of the form that holds the field `css` (for
    /// pages with one form per row, each with the same button text).
    pub async fn press_for(&self, css: &str) {
        let field = self.find(css).await;
        let button = bounded(
            &format!("the button of the form with {css}"),
            field.find(Locator::XPath("ancestor::form//button[@type='submit']")),
        )
        .await;
        self.click_and_wait(&button, &format!("the button of the form with {css}"))
            .await;
    }

    /// Follow the link whose text is `text` and wait for the next page.
    pub async fn follow_link(&self, text: &str) {
        let link = match self
            .client
            .wait()
            .at_most(ELEMENT_WAIT)
            .for_element(Locator::LinkText(text))
            .await
        {
            Ok(l) => l,
            Err(e) => panic!(
                "no link {text:?} on {} ({e})\n--- page text ---\n{}",
                self.url_text().await,
                self.page_text().await
            ),
        };
        self.click_and_wait(&link, &format!("the link {text:?}"))
            .await;
    }

    /// Click `element` and wait until another document has loaded.
    pub async fn click_and_wait(&self, element: &Element, what: &str) {
        self.mark_page().await;
        bounded(&format!("click {what}"), element.click()).await;
        self.wait_new_page(&format!("clicking {what}")).await;
    }

    /// Put a mark on the current document, gone once another one has
    /// loaded: [`Browser::wait_new_page`] waits for that.
    pub async fn mark_page(&self) {
        self.script("document.documentElement.dataset.portvaktTestOld = '1'; return null;")
            .await;
    }

    /// Wait until the document marked by [`Browser::mark_page`] has been
    /// replaced by another one that has finished loading (`what` led there).
    pub async fn wait_new_page(&self, what: &str) {
        let start = Instant::now();
        loop {
            let state = self
                .try_script(
                    "return document.documentElement.dataset.portvaktTestOld === undefined \
                     && document.readyState === 'complete';",
                )
                .await;
            if state == Some(Value::Bool(true)) {
                return;
            }
            if start.elapsed() > NAVIGATION_WAIT {
                panic!(
                    "{what} did not lead to a new page within {NAVIGATION_WAIT:?} (still on {})",
                    self.url_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait until the current document has finished loading.
    pub async fn wait_loaded(&self) {
        let start = Instant::now();
        while self
            .try_script("return document.readyState === 'complete';")
            .await
            != Some(Value::Bool(true))
        {
            assert!(
                start.elapsed() < NAVIGATION_WAIT,
                "{} did not finish loading within {NAVIGATION_WAIT:?}",
                self.url_text().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Run `js` in the page (WebDriver scripts are not subject to the CSP).
    pub async fn script(&self, js: &str) -> Value {
        bounded("run a script", self.client.execute(js, vec![])).await
    }

    /// Run `js` in the page and wait for it to call its last argument (the
    /// WebDriver callback) with the answer, at most the session's script
    /// timeout (10 s).
    pub async fn script_async(&self, js: &str) -> Value {
        bounded("run an async script", self.client.execute_async(js, vec![])).await
    }

    /// Press and release each key of `keys` in turn on the keyboard (a
    /// WebDriver key input source: real key events, no element is
    /// clicked or targeted). Special keys are [`fantoccini::key::Key`]s
    /// as chars, e.g. `char::from(Key::Tab)`.
    pub async fn keys(&self, keys: &str) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let mut actions = KeyActions::new("keyboard".into());
        for value in keys.chars() {
            actions = actions
                .then(KeyAction::Down { value })
                .then(KeyAction::Up { value });
        }
        bounded("press keys", self.client.perform_actions(actions)).await;
    }

    /// Press the keys of `chord` together (e.g. Shift and Tab): all down in
    /// order, then up in reverse.
    pub async fn key_chord(&self, chord: &[char]) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let mut actions = KeyActions::new("keyboard".into());
        for &value in chord {
            actions = actions.then(KeyAction::Down { value });
        }
        for &value in chord.iter().rev() {
            actions = actions.then(KeyAction::Up { value });
        }
        bounded("press a key chord", self.client.perform_actions(actions)).await;
    }

    /// A Chrome DevTools Protocol command (`Emulation.…`, `Page.…`) and its answer.
    pub async fn cdp(&self, cmd: &'static str, params: Value) -> Value {
        bounded(cmd, self.client.issue_cmd(Cdp { cmd, params })).await
    }

    async fn try_script(&self, js: &str) -> Option<Value> {
        match tokio::time::timeout(COMMAND_WAIT, self.client.execute(js, vec![])).await {
            Ok(Ok(v)) => Some(v),
            _ => None,
        }
    }

    /// The value of cookie `name` as the browser holds it for the current page's host.
    pub async fn cookie(&self, name: &str) -> Option<String> {
        let all = bounded("read cookies", self.client.get_all_cookies()).await;
        all.iter()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_string())
    }

    /// Save a screenshot of the whole page as `NN-<name>.png` and return its path.
    pub async fn snap(&self, name: &str) -> PathBuf {
        let n = self.step.fetch_add(1, Ordering::SeqCst) + 1;
        let path = self.shots.join(format!("{n:02}-{name}.png"));
        std::fs::write(&path, self.page_png().await).expect("write the screenshot");
        path
    }

    /// The whole page as PNG, as a screenshot shows it.
    pub async fn page_png(&self) -> Vec<u8> {
        match full_page_png(&self.client).await {
            Some(png) => png,
            None => bounded("take a screenshot", self.client.screenshot()).await,
        }
    }

    async fn url_text(&self) -> String {
        match tokio::time::timeout(COMMAND_WAIT, self.client.current_url()).await {
            Ok(Ok(u)) => u.to_string(),
            _ => "(unknown page)".into(),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let client = self.client.clone();
        let failing = std::thread::panicking();
        let shots = self.shots.clone();
        let work = async move {
            if failing {
                save_failure(&client, &shots).await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
        };
        // Screenshots and closing are async; Drop is not. On the multi-thread
        // runtime the tests use, leave the async context for a moment and
        // run them to the end (every step bounded).
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
                tokio::task::block_in_place(|| handle.block_on(work));
            } else if failing {
                eprintln!("browser: no multi-thread runtime, no failure screenshot");
            }
        }
        if failing {
            eprintln!(
                "--- chromedriver log (end) ---\n{}\n------------",
                self.driver.log()
            );
        }
    }
}

/// A radio button as the page shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    pub value: String,
    /// The label's visible text (with its detail line).
    pub label: String,
    pub enabled: bool,
}

/// Read the QR code in a PNG, as a phone camera would; panics if there is
/// none or it does not decode.
pub fn decode_qr_png(png_bytes: &[u8]) -> String {
    let (width, height, grey) = greyscale(png_bytes);
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| grey[y * width + x]);
    let grids = image.detect_grids();
    assert!(
        !grids.is_empty(),
        "no QR code found in the {width}×{height} image"
    );
    let (_meta, text) = grids[0]
        .decode()
        .unwrap_or_else(|e| panic!("the QR code does not decode: {e:?}"));
    text
}

/// Decode a PNG to 8-bit grey pixels (row by row).
fn greyscale(png_bytes: &[u8]) -> (usize, usize, Vec<u8>) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().expect("a PNG header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("PNG pixels");
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => panic!("palette PNG not expanded"),
    };
    let mut grey = Vec::with_capacity(w * h);
    for y in 0..h {
        let row = &buf[y * info.line_size..y * info.line_size + w * channels];
        for px in row.chunks(channels) {
            let g = match channels {
                1 | 2 => px[0],
                _ => ((px[0] as u32 * 299 + px[1] as u32 * 587 + px[2] as u32 * 114) / 1000) as u8,
            };
            // Transparent pixels show the (white) page behind them.
            let alpha = match channels {
                2 => px[1],
                4 => px[3],
                _ => 255,
            } as u32;
            grey.push(((g as u32 * alpha + 255 * (255 - alpha)) / 255) as u8);
        }
    }
    (w, h, grey)
}

/// `target/browser-screenshots` (or under `$CARGO_TARGET_DIR`).
pub fn screenshot_root() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::repo_dir().join("target"));
    target.join("browser-screenshots")
}

fn find_chromedriver() -> PathBuf {
    if Path::new(CHROMEDRIVER).exists() {
        return PathBuf::from(CHROMEDRIVER);
    }
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("chromedriver"))
            .find(|p| p.is_file())
    });
    from_path.unwrap_or_else(|| {
        panic!(
            "chromedriver is missing: the browser tests need Debian's `chromium` and \
             `chromium-driver` packages (`apt-get install chromium chromium-driver`; \
             tests/install-deps.sh installs them)"
        )
    })
}

/// Start chromedriver on a free port (three tries if the port was taken).
async fn start_driver(program: &Path, dir: &Path) -> Driver {
    use std::os::unix::process::CommandExt;
    let mut last = String::new();
    for attempt in 0..3 {
        let addr = free_addr();
        let log = dir.join(format!("chromedriver-{attempt}.log"));
        let out = std::fs::File::create(&log).expect("chromedriver log file");
        let mut child = Command::new(program)
            .arg(format!("--port={}", addr.port()))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file handle"))
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        match tcp_ready(addr, &mut child, Duration::from_secs(20)).await {
            Readiness::Listening => {
                return Driver {
                    child,
                    url: format!("http://{addr}"),
                    log,
                }
            }
            Readiness::Exited(status) => {
                last = format!("chromedriver exited ({status}): {}", tail(&log, 2000));
            }
            Readiness::TimedOut => {
                let _ = child.kill();
                let _ = child.wait();
                last = format!(
                    "chromedriver did not listen on {addr} within 20 s: {}",
                    tail(&log, 2000)
                );
            }
        }
    }
    panic!("could not start chromedriver in 3 tries: {last}");
}

fn capabilities(
    pki: &Pki,
    options: &BrowserOptions,
    user_data: &Path,
) -> serde_json::Map<String, Value> {
    let first_language = options.languages.split(',').next().unwrap_or("sv-SE");
    let args = vec![
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--no-default-browser-check".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-extensions".into(),
        "--disable-dev-shm-usage".into(),
        "--hide-scrollbars".into(),
        "--force-device-scale-factor=1".into(),
        format!("--user-data-dir={}", user_data.display()),
        format!("--window-size={},{}", options.width, options.height),
        format!("--lang={first_language}"),
        // Every test host name is loopback; nothing else resolves.
        "--host-resolver-rules=MAP *.test 127.0.0.1".into(),
        // Accept the test gateway's key only, not any certificate.
        format!(
            "--ignore-certificate-errors-spki-list={}",
            spki_sha256(&pki.leaf("main").der)
        ),
    ];
    let mut chrome = json!({
        "binary": CHROMIUM,
        "args": args,
        "prefs": { "intl.accept_languages": options.languages },
    });
    if options.phone {
        chrome["mobileEmulation"] = json!({
            "deviceMetrics": {
                "width": options.width,
                "height": options.height,
                "pixelRatio": 1.0,
                "mobile": true,
                "touch": true,
            },
        });
    }
    let caps = json!({
        "browserName": "chrome",
        "acceptInsecureCerts": false,
        "pageLoadStrategy": "normal",
        "timeouts": { "pageLoad": NAVIGATION_WAIT.as_millis() as u64, "script": 10_000, "implicit": 0 },
        "goog:chromeOptions": chrome,
    });
    match caps {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object"),
    }
}

/// Base64 of the SHA-256 of a certificate's SubjectPublicKeyInfo, as
/// `--ignore-certificate-errors-spki-list` wants it.
fn spki_sha256(cert_der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).expect("the test certificate");
    let spki = cert.tbs_certificate.subject_pki.raw;
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(spki))
}

/// A Chrome DevTools command through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// The whole page (beyond the window) as PNG, or `None` if Chromium would not.
async fn full_page_png(client: &Client) -> Option<Vec<u8>> {
    let cmd = Cdp {
        cmd: "Page.captureScreenshot",
        params: json!({ "format": "png", "captureBeyondViewport": true }),
    };
    let answer = tokio::time::timeout(COMMAND_WAIT, client.issue_cmd(cmd))
        .await
        .ok()?
        .ok()?;
    let data = answer
        .get("data")
        .or_else(|| answer.get("value").and_then(|v| v.get("data")))?
        .as_str()?;
    base64::engine::general_purpose::STANDARD.decode(data).ok()
}

/// On a failing test: the page as it looked, its HTML and its URL.
async fn save_failure(client: &Client, dir: &Path) {
    let url = match tokio::time::timeout(Duration::from_secs(10), client.current_url()).await {
        Ok(Ok(u)) => u.to_string(),
        _ => "(unknown)".into(),
    };
    let png = match full_page_png(client).await {
        Some(png) => Some(png),
        None => match tokio::time::timeout(Duration::from_secs(10), client.screenshot()).await {
            Ok(Ok(png)) => Some(png),
            _ => None,
        },
    };
    let shot = dir.join("failure.png");
    match png {
        Some(png) if std::fs::write(&shot, &png).is_ok() => {
            eprintln!(
                "browser: the page at failure ({url}) is in {}",
                shot.display()
            );
        }
        _ => eprintln!("browser: could not take a screenshot of {url}"),
    }
    if let Ok(Ok(html)) = tokio::time::timeout(Duration::from_secs(10), client.source()).await {
        let _ = std::fs::write(dir.join("failure.html"), html);
    }
    let _ = std::fs::write(dir.join("failure-url.txt"), url);
}

/// Await a WebDriver command for at most [`COMMAND_WAIT`]; panic naming `what` otherwise.
async fn bounded<T, E: std::fmt::Display>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> T {
    match tokio::time::timeout(COMMAND_WAIT, fut).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => panic!("browser: {what}: {e}"),
        Err(_) => panic!("browser: {what}: no answer within {COMMAND_WAIT:?}"),
    }
}

/// `text` as an XPath string literal (quotes handled).
fn xpath_literal(text: &str) -> String {
    if !text.contains('\'') {
        format!("'{text}'")
    } else if !text.contains('"') {
        format!("\"{text}\"")
    } else {
        let parts: Vec<String> = text.split('\'').map(|p| format!("'{p}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}

/// The last `max` bytes of a file, as text.
fn tail(path: &Path, max: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let mut bytes = Vec::new();
        let _ = f.read_to_end(&mut bytes);
        let from = bytes.len().saturating_sub(max);
        text = String::from_utf8_lossy(&bytes[from..]).into_owned();
    }
    text
}
