//! The login flow's outcomes that matter, against a real runtime with a
//! scripted directory (see [`crate::testutil::gateway`]).

use std::sync::Arc;

use super::handoff::{self, HandoffOutcome};
use super::password::{login, Next, PasswordLogin, PasswordOutcome};
use super::reauth::{reauth, ReauthOutcome};
use super::second::{check_code, CodeOutcome};
use super::Client;
use crate::audit::Reason;
use crate::clock::Clock;
use crate::session::handoff::{binding, new_nonce};
use crate::session::{Method, Session, SessionId};
use crate::testutil::{gateway, FakeDirectory, TestGateway};

const INSIDE: Client<'static> = Client {
    ip: std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3)),
    request_id: "r1",
    host: "portal.test",
};
const OUTSIDE: Client<'static> = Client {
    ip: std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7)),
    request_id: "r2",
    host: "portal.test",
};

fn typed<'a>(username: &'a str, password: &'a str) -> PasswordLogin<'a> {
    PasswordLogin {
        username,
        password,
        previous: None,
        second_step: false,
    }
}

async fn password(
    t: &TestGateway,
    client: &Client<'_>,
    input: PasswordLogin<'_>,
) -> PasswordOutcome {
    let realm = t.rt.config.realm("staff").expect("realm staff");
    login(&t.gw, &t.rt, realm, client, input).await
}

fn refused(outcome: &PasswordOutcome) -> Option<Reason> {
    match outcome {
        PasswordOutcome::Refused { reason } => Some(*reason),
        _ => None,
    }
}

/// A one-factor session for alice, stored.
async fn alice(
    t: &TestGateway,
    client: &Client<'_>,
    second_step: bool,
) -> (SessionId, Arc<Session>) {
    let input = PasswordLogin {
        second_step,
        ..typed("alice", FakeDirectory::PASSWORD)
    };
    match password(t, client, input).await {
        PasswordOutcome::Session { id, session, .. } => (id, session),
        other => panic!("alice's password was refused: {other:?}"),
    }
}

async fn code(t: &TestGateway, id: &SessionId, s: &Arc<Session>, input: &str) -> CodeOutcome {
    let realm = t.rt.config.realm("staff").expect("realm staff");
    check_code(&t.gw, &t.rt, realm, &OUTSIDE, id, s, Method::Email, input).await
}

#[tokio::test]
async fn wrong_password_unknown_user_disabled_and_locked_are_one_refusal() {
    let t = gateway(3);
    let wrong = password(&t, &INSIDE, typed("alice", "guess")).await;
    let unknown = password(&t, &INSIDE, typed("mallory", "guess")).await;
    let disabled = password(&t, &INSIDE, typed("carol", "anything")).await;
    let empty = password(&t, &INSIDE, typed("alice", "")).await;
    assert_eq!(refused(&wrong), Some(Reason::WrongPassword));
    assert_eq!(refused(&unknown), Some(Reason::UnknownUser));
    assert_eq!(refused(&disabled), Some(Reason::Disabled));
    assert_eq!(refused(&empty), Some(Reason::EmptyOrInvalidInput));
    for _ in 0..2 {
        password(&t, &INSIDE, typed("alice", "guess")).await;
    }
    // Locked now: the right password is refused the same way.
    let locked = password(&t, &INSIDE, typed("alice", FakeDirectory::PASSWORD)).await;
    assert_eq!(refused(&locked), Some(Reason::Locked));
}

#[tokio::test]
async fn a_locked_user_never_reaches_the_directory_however_the_name_is_spelt() {
    let t = gateway(3);
    for _ in 0..3 {
        password(&t, &INSIDE, typed("alice", "guess")).await;
    }
    let asked = t.directory.calls();
    assert_eq!(asked, 3);
    for name in ["alice", "alice", "ALICE"] {
        let outcome = password(&t, &INSIDE, typed(name, FakeDirectory::PASSWORD)).await;
        assert_eq!(refused(&outcome), Some(Reason::Locked), "{name}");
    }
    assert_eq!(
        t.directory.calls(),
        asked,
        "a locked user made us ask the directory"
    );
}

#[tokio::test]
async fn a_directory_that_is_down_is_not_a_refusal() {
    let t = gateway(3);
    t.directory
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let outcome = password(&t, &INSIDE, typed("alice", FakeDirectory::PASSWORD)).await;
    assert!(
        matches!(outcome, PasswordOutcome::DirectoryDown),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_login_ends_the_browsers_old_session_and_says_what_comes_next() {
    let t = gateway(3);
    let (old, _) = alice(&t, &INSIDE, false).await;
    let input = PasswordLogin {
        previous: Some(&old),
        second_step: true,
        ..typed("alice", FakeDirectory::PASSWORD)
    };
    let PasswordOutcome::Session { id, next, .. } = password(&t, &INSIDE, input).await else {
        panic!("refused");
    };
    assert_eq!(next, Next::SecondStep);
    assert_ne!(id.as_str(), old.as_str());
    assert!(
        t.gw.sessions.get(&old.key()).await.unwrap().is_none(),
        "the old session lives on"
    );
    assert!(t.gw.sessions.get(&id.key()).await.unwrap().is_some());
}

#[tokio::test]
async fn the_password_step_of_a_two_factor_login_does_not_clear_code_failures() {
    let t = gateway(5);
    let (id, s) = alice(&t, &OUTSIDE, true).await;
    for _ in 0..4 {
        let outcome = code(&t, &id, &s, "000000").await;
        assert!(matches!(outcome, CodeOutcome::Dead { .. }), "{outcome:?}");
    }
    // Log in again with the password (the way on to another round of codes).
    let (id, s) = alice(&t, &OUTSIDE, true).await;
    // The fifth wrong code locks: the four before still count.
    code(&t, &id, &s, "000000").await;
    let outcome = code(&t, &id, &s, "000000").await;
    assert!(
        matches!(
            outcome,
            CodeOutcome::Refused {
                reason: Reason::Locked
            }
        ),
        "{outcome:?}"
    );
    let outcome = password(&t, &OUTSIDE, typed("alice", FakeDirectory::PASSWORD)).await;
    assert_eq!(refused(&outcome), Some(Reason::Locked));
}

#[tokio::test]
async fn a_handoff_redeemed_in_another_browser_is_refused() {
    let t = gateway(3);
    let (id, _) = alice(&t, &INSIDE, false).await;
    let mine = new_nonce();
    let here = Client {
        host: "app.test",
        ..INSIDE
    };
    let code = handoff::issue(&t.gw, &id, "app.test", binding(&mine))
        .await
        .unwrap();
    let theirs = new_nonce();
    for nonce in [Some(theirs.as_str()), None] {
        let code = handoff::issue(&t.gw, &id, "app.test", binding(&mine))
            .await
            .unwrap();
        let outcome = handoff::redeem(&t.gw, &t.rt, &here, &code, nonce, None).await;
        assert!(
            matches!(outcome, HandoffOutcome::StartOver { expired: false }),
            "{outcome:?}"
        );
    }
    // On another host, the code is nothing.
    let elsewhere = Client {
        host: "other.test",
        ..INSIDE
    };
    let other = handoff::issue(&t.gw, &id, "app.test", binding(&mine))
        .await
        .unwrap();
    let outcome = handoff::redeem(&t.gw, &t.rt, &elsewhere, &other, Some(&mine), None).await;
    assert!(
        matches!(outcome, HandoffOutcome::StartOver { .. }),
        "{outcome:?}"
    );
    // The browser that started the login gets in, once.
    let outcome = handoff::redeem(&t.gw, &t.rt, &here, &code, Some(&mine), None).await;
    assert!(
        matches!(&outcome, HandoffOutcome::Enter { session } if session.as_str() == id.as_str()),
        "{outcome:?}"
    );
    let again = handoff::redeem(&t.gw, &t.rt, &here, &code, Some(&mine), None).await;
    assert!(
        matches!(again, HandoffOutcome::StartOver { .. }),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_handoff_never_replaces_another_users_live_session() {
    let t = gateway(3);
    let (id, _) = alice(&t, &INSIDE, false).await;
    let mut bob = crate::testutil::new_session(t.clock.now_ms());
    bob.user = "bob".into();
    let bob_id = SessionId::generate();
    let bob = Arc::new(bob);
    t.gw.sessions
        .insert(bob_id.key(), bob.clone())
        .await
        .unwrap();
    let nonce = new_nonce();
    let here = Client {
        host: "app.test",
        ..INSIDE
    };
    let code = handoff::issue(&t.gw, &id, "app.test", binding(&nonce))
        .await
        .unwrap();
    let live = Some((&bob_id, bob.as_ref()));
    let outcome = handoff::redeem(&t.gw, &t.rt, &here, &code, Some(&nonce), live).await;
    assert!(
        matches!(&outcome, HandoffOutcome::OtherUser { live_user } if live_user == "bob"),
        "{outcome:?}"
    );
    assert!(
        t.gw.sessions.get(&bob_id.key()).await.unwrap().is_some(),
        "bob was logged out"
    );
}

#[tokio::test]
async fn a_reauth_does_not_bring_back_a_session_that_ended() {
    let t = gateway(3);
    let (id, s) = alice(&t, &INSIDE, false).await;
    let realm = t.rt.config.realm("staff").expect("realm staff");
    t.gw.sessions.remove(&id.key()).await.unwrap();
    let outcome = reauth(
        &t.gw,
        &t.rt,
        realm,
        &INSIDE,
        &id,
        &s,
        FakeDirectory::PASSWORD,
    )
    .await;
    assert_eq!(outcome, ReauthOutcome::SessionEnded);
    assert!(t.gw.sessions.get(&id.key()).await.unwrap().is_none());
    let outcome = reauth(&t.gw, &t.rt, realm, &INSIDE, &id, &s, "guess").await;
    assert_eq!(
        outcome,
        ReauthOutcome::Refused {
            reason: Reason::WrongPassword
        }
    );
}
