//! Keyboard only (WCAG 2.1.1, 2.4.3, 2.4.7): Alice logs in at work,
//! connects her authenticator app under Mina inställningar and logs out,
//! then from home logs in with a code from the app, choosing it among the
//! methods with the arrow keys. No click and no element targeted: only key
//! presses (Tab, Shift+Tab, arrows, Enter, Space, typing) through
//! WebDriver's key input source; the address bar is the only other input.
//! Every element the focus lands on must show a focus indicator it does
//! not have unfocused (`support/a11y.rs`, [`Keyboard`]).

use fantoccini::key::Key;

use crate::a11y::{gateway, path};
use crate::support::a11y::Keyboard;
use crate::support::browser::{Browser, BrowserOptions};
use crate::support::enrol::{now_secs, totp_code};
use crate::support::forwarder::Forwarder;
use crate::support::*;

/// The login form's own submit button (not "Logga in med säkerhetsnyckel").
const LOGIN_BUTTON: &str = "form button[type=submit]:not([name=via])";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_and_authenticator_enrolment_work_with_the_keyboard_alone() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let home = Forwarder::offsite(gw.https_addr()).await;
    let b = Browser::launch(
        "login_and_authenticator_enrolment_work_with_the_keyboard_alone",
        gw.pki(),
        BrowserOptions::desktop(),
    )
    .await;
    let work = format!("https://portal.test:{}", gw.https_port());

    // Login at work: the page puts the focus in the username field.
    b.open(&format!("{work}/.portvakt/login?realm=staff")).await;
    let mut k = Keyboard::on(&b).await;
    assert!(
        k.focused_is("#username").await,
        "the login page does not focus the username"
    );
    k.type_text(ALICE.name).await;
    k.tab_to("#password").await;
    k.type_text(ALICE.password).await;
    k.tab_to(LOGIN_BUTTON).await;
    k.press_and_wait(Key::Space, "Space on Logga in").await;
    assert_eq!(path(&b).await, "/", "not at the portal");

    // Mina inställningar → Authenticator, step 1: the description.
    k.tab_to("a[href='/.portvakt/settings']").await;
    k.press_and_wait(Key::Enter, "Enter on Mina inställningar")
        .await;
    k.tab_to("a[href='/.portvakt/settings/authenticator']")
        .await;
    k.press_and_wait(Key::Enter, "Enter on the authenticator link")
        .await;
    assert!(
        k.focused_is("#description").await,
        "step 1 does not focus its field"
    );
    k.type_text("Jobbtelefonen").await;
    k.tab_to("button[type=submit]").await;
    k.press_and_wait(Key::Space, "Space on Fortsätt").await;

    // Steps 2 and 3: the key as the app holds it, its code typed, Enter.
    let secret: String = b.text_of("code#secret").await.split_whitespace().collect();
    k.tab_to("#code").await;
    let enrolled_step = now_secs() / 30;
    k.type_text(&totp_code(&secret, enrolled_step * 30)).await;
    k.press_and_wait(Key::Enter, "Enter in the code field")
        .await;
    assert_eq!(
        path(&b).await,
        "/.portvakt/settings",
        "the code was refused"
    );
    assert!(b.text_of(".devices__item").await.contains("Jobbtelefonen"));

    // Back to the portal and out.
    k.tab_to(".actions a[href='/']").await;
    k.press_and_wait(Key::Enter, "Enter on Tillbaka till portalen")
        .await;
    k.tab_to("form.account__logout button").await;
    k.press_and_wait(Key::Space, "Space on Logga ut").await;
    assert!(!b.has("form.account__logout").await, "still logged in");

    // From home: the service's login; the app is chosen with the arrows.
    b.open(&format!("https://app.test:{}/", home.port())).await;
    k.page_loaded().await;
    assert!(k.focused_is("#username").await);
    k.type_text(ALICE.name).await;
    k.tab_to("#password").await;
    k.type_text(ALICE.password).await;
    k.shift_tab_to("input[name=method]:checked").await;
    let order: Vec<String> = b
        .choices("method")
        .await
        .into_iter()
        .map(|c| c.value)
        .collect();
    let chosen = b.chosen("method").await;
    let from = order
        .iter()
        .position(|v| Some(v.as_str()) == chosen.as_deref());
    let to = order
        .iter()
        .position(|v| v == "totp")
        .expect("the app is offered");
    let from = from.expect("a method is chosen");
    assert!(
        from <= to,
        "the app comes before the chosen method: {order:?}"
    );
    for _ in from..to {
        k.press(Key::Down).await;
    }
    assert_eq!(
        b.chosen("method").await.as_deref(),
        Some("totp"),
        "the arrows did not choose the app"
    );
    assert!(k.focused_is("input[value=totp]").await);
    k.tab_to(LOGIN_BUTTON).await;
    k.press_and_wait(Key::Space, "Space on Logga in").await;
    assert!(b.has("#code").await, "no code page after the password");
    assert!(
        k.focused_is("#code").await,
        "the code page does not focus its field"
    );
    let step = (now_secs() / 30).max(enrolled_step + 1);
    k.type_text(&totp_code(&secret, step * 30)).await;
    k.press_and_wait(Key::Enter, "Enter in the code field")
        .await;
    assert_eq!(
        b.url().await.host_str(),
        Some("app.test"),
        "not at the service"
    );

    // The check itself: with the focus styles taken away (through the
    // CSSOM, as the CSP allows), the next element focused is reported.
    b.open(&format!("{work}/.portvakt/login?realm=staff")).await;
    b.script(
        "const sheet = document.styleSheets[0];
         sheet.insertRule('*:focus, *:focus-visible { outline: none !important; box-shadow: none !important; }', sheet.cssRules.length);
         return null;",
    )
    .await;
    k.page_loaded().await;
    let judged = k.tab_and_judge().await;
    assert!(
        judged.iter().any(Result::is_err),
        "a focus without any indicator was not noticed: {judged:?}"
    );

    // What was checked covers every kind of control the journey met.
    let checked = k.checked.join("\n");
    for (kind, seen) in [
        (
            "username field",
            k.checked.iter().any(|c| c.starts_with("input#username")),
        ),
        (
            "password field",
            k.checked.iter().any(|c| c.starts_with("input#password")),
        ),
        (
            "code field",
            k.checked.iter().any(|c| c.starts_with("input#code")),
        ),
        (
            "radio button",
            k.checked.iter().any(|c| c.contains("[type=radio]")),
        ),
        ("button", k.checked.iter().any(|c| c.starts_with("button"))),
        ("link", k.checked.iter().any(|c| c.starts_with("a"))),
    ] {
        assert!(
            seen,
            "no focus indicator of a {kind} was checked:\n{checked}"
        );
    }
    eprintln!(
        "keyboard only: {} focus indicators checked",
        k.checked.len()
    );
}
