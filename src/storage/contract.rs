//! The shared contract tests of [`EnrolmentStore`]: behaviour every backend
//! must show. Each backend's tests call these with a fresh, empty store.

use std::sync::Arc;

use super::*;
use crate::factors::token::Hotp;
use crate::factors::totp::{code_at, PERIOD};

/// The RFC 4226 / 6238 test secret.
pub const RFC: &[u8] = b"12345678901234567890";
/// A fixed "now" in Unix seconds.
pub const NOW: u64 = 1_700_000_000;

/// The realm the single-realm contract tests use.
pub const REALM: &str = "adm";

/// `name` of realm [`REALM`].
pub fn u(name: &str) -> UserRef {
    UserRef::new(REALM, name)
}

/// An HOTP token and a TOTP token with the RFC secret.
pub fn two_tokens() -> Vec<TokenRecord> {
    let t = |serial: &str, digits, mode| TokenRecord {
        serial: serial.into(),
        secret: RFC.to_vec(),
        digits,
        mode,
    };
    vec![
        t("T1", 6, TokenMode::Hotp { counter: 0 }),
        t("T2", 8, TokenMode::Totp { period: 60 }),
    ]
}

fn by(v: &Verify) -> String {
    match v {
        Verify::Accepted { by, resynced } => {
            format!("accepted {by}{}", if *resynced { " resynced" } else { "" })
        }
        Verify::Replay { by } => format!("replay {by}"),
        Verify::NeedsNextCode { by } => format!("next {by}"),
        Verify::Rejected => "rejected".into(),
    }
}

/// At most two numbers, E.164 only, replace and remove.
pub async fn sms(s: &dyn EnrolmentStore) {
    s.set_sms_number(&u("alice"), 1, "+46701234567", 5)
        .await
        .expect("set 1");
    s.set_sms_number(&u("alice"), 0, "+46709999999", 6)
        .await
        .expect("set 0");
    assert!(matches!(
        s.set_sms_number(&u("alice"), 2, "+46701111111", 7).await,
        Err(StorageError::InvalidPosition(2))
    ));
    assert!(matches!(
        s.set_sms_number(&u("alice"), 0, "0701234567", 7).await,
        Err(StorageError::InvalidNumber(_))
    ));
    s.set_sms_number(&u("alice"), 0, "+46708888888", 8)
        .await
        .expect("replace");
    let n = s.sms_numbers(&u("alice")).await.expect("list");
    let got: Vec<(u8, &str, u64)> = n
        .iter()
        .map(|n| (n.position, n.e164.as_str(), n.added_ms))
        .collect();
    assert_eq!(got, vec![(0, "+46708888888", 8), (1, "+46701234567", 5)]);
    assert!(s.remove_sms_number(&u("alice"), 1).await.expect("remove"));
    assert!(!s
        .remove_sms_number(&u("alice"), 1)
        .await
        .expect("remove again"));
    assert!(s.sms_numbers(&u("bob")).await.expect("none").is_empty());
}

/// ±1 step, ±2 rejected, replays rejected, devices independent.
pub async fn totp(s: &dyn EnrolmentStore) {
    assert!(matches!(
        s.add_totp_device(&u("alice"), "short", &[1; 16], 1).await,
        Err(StorageError::WeakSecret { bits: 128, .. })
    ));
    assert!(matches!(
        s.add_totp_device(&u("alice"), "", RFC, 1).await,
        Err(StorageError::InvalidDescription)
    ));
    let one = s
        .add_totp_device(&u("alice"), "Jobbmobil", RFC, 1)
        .await
        .expect("add");
    let two = s
        .add_totp_device(&u("alice"), "Surfplatta", &[5; 20], 2)
        .await
        .expect("add");
    assert!(two > one);
    let step = NOW / PERIOD;
    let check = |code: String| async move {
        by(&s
            .verify_totp(&u("alice"), &code, NOW)
            .await
            .expect("verify"))
    };
    assert_eq!(check(code_at(RFC, step - 2)).await, "rejected");
    assert_eq!(check(code_at(RFC, step + 2)).await, "rejected");
    assert_eq!(
        check(code_at(RFC, step - 1)).await,
        format!("accepted totp:{one}")
    );
    assert_eq!(
        check(code_at(RFC, step - 1)).await,
        format!("replay totp:{one}")
    );
    assert_eq!(
        check(code_at(RFC, step)).await,
        format!("accepted totp:{one}")
    );
    assert_eq!(
        check(code_at(RFC, step + 1)).await,
        format!("accepted totp:{one}")
    );
    assert_eq!(
        check(code_at(RFC, step)).await,
        format!("replay totp:{one}")
    );
    assert_eq!(
        check(code_at(&[5; 20], step)).await,
        format!("accepted totp:{two}")
    );
    assert_eq!(check("abc".into()).await, "rejected");
    let code = code_at(RFC, step);
    assert_eq!(
        by(&s.verify_totp(&u("bob"), &code, NOW).await.expect("bob")),
        "rejected"
    );
    let devices = s.totp_devices(&u("alice")).await.expect("list");
    assert_eq!(devices[0].description, "Jobbmobil");
    assert_eq!(devices[0].last_used_secs, Some((step + 1) * PERIOD));
    assert!(!s
        .remove_totp_device(&u("bob"), one)
        .await
        .expect("not bob's"));
    assert!(s
        .remove_totp_device(&u("alice"), one)
        .await
        .expect("remove"));
    assert_eq!(s.totp_devices(&u("alice")).await.expect("list").len(), 1);
}

/// HOTP window, replay, far code → next code → resync; TOTP tokens.
pub async fn tokens(s: &dyn EnrolmentStore) {
    assert_eq!(s.import_tokens(two_tokens(), 1).await.expect("import"), 2);
    assert_eq!(
        by(&s.verify_token(&u("alice"), "755224", NOW).await.expect("v")),
        "rejected"
    );
    s.assign_token("T1", &u("alice"), 2).await.expect("assign");
    s.assign_token("T1", &u("alice"), 2)
        .await
        .expect("same user again");
    s.assign_token("T2", &u("alice"), 3).await.expect("assign");
    assert!(matches!(
        s.assign_token("T1", &u("bob"), 4).await,
        Err(StorageError::AlreadyAssigned { .. })
    ));
    assert!(matches!(
        s.assign_token("T9", &u("bob"), 4).await,
        Err(StorageError::UnknownToken(_))
    ));
    let h = Hotp::new(RFC, 6);
    let check = |c: u64| {
        let code = h.code(c);
        async move {
            by(&s
                .verify_token(&u("alice"), &code, NOW)
                .await
                .expect("verify"))
        }
    };
    assert_eq!(check(0).await, "accepted token:T1");
    assert_eq!(check(0).await, "replay token:T1");
    assert_eq!(
        check(10).await,
        "accepted token:T1",
        "counter 1 + 9 is in the window"
    );
    assert_eq!(check(5).await, "replay token:T1");
    assert_eq!(
        check(21).await,
        "next token:T1",
        "counter 11 + 10 is beyond it"
    );
    assert_eq!(check(22).await, "accepted token:T1 resynced");
    assert_eq!(check(22).await, "replay token:T1");
    assert_eq!(check(200).await, "next token:T1");
    assert_eq!(
        check(202).await,
        "next token:T1",
        "not consecutive: no resync"
    );
    assert_eq!(check(204).await, "next token:T1");
    assert_eq!(check(205).await, "accepted token:T1 resynced");
    let t2 = Hotp::new(RFC, 8).code(NOW / 60);
    assert_eq!(
        by(&s.verify_token(&u("alice"), &t2, NOW).await.expect("v")),
        "accepted token:T2"
    );
    assert_eq!(
        by(&s.verify_token(&u("alice"), &t2, NOW).await.expect("v")),
        "replay token:T2"
    );
    let info = s.tokens_of(&u("alice")).await.expect("list");
    let got: Vec<_> = info
        .iter()
        .map(|t| (t.serial.as_str(), t.kind, t.digits, t.period))
        .collect();
    assert_eq!(
        got,
        vec![
            ("T1", TokenKind::Hotp, 6, None),
            ("T2", TokenKind::Totp, 8, Some(60))
        ]
    );
    assert_eq!(
        s.unassign_token("T2").await.expect("unassign"),
        Some(u("alice")),
        "says whose it was"
    );
    assert_eq!(
        s.unassign_token("T2").await.expect("again"),
        None,
        "already free"
    );
    let t2 = Hotp::new(RFC, 8).code(NOW / 60 + 1);
    assert_eq!(
        by(&s.verify_token(&u("alice"), &t2, NOW).await.expect("v")),
        "rejected"
    );
    // Admin resync: two consecutive codes far ahead.
    assert_eq!(
        s.resync_token("T1", &h.code(5000), &h.code(5002))
            .await
            .expect("r"),
        None
    );
    assert_eq!(
        s.resync_token("T1", &h.code(5000), &h.code(5001))
            .await
            .expect("r"),
        Some(5002)
    );
    assert_eq!(check(5002).await, "accepted token:T1");
    assert!(matches!(
        s.resync_token("T2", "1", "2").await,
        Err(StorageError::NotHotp(_))
    ));
}

/// All or nothing, naming the serials already present.
pub async fn import(s: &dyn EnrolmentStore) {
    s.import_tokens(two_tokens(), 1).await.expect("import");
    let mut more = two_tokens();
    more[1].serial = "T3".into();
    match s.import_tokens(more, 2).await {
        Err(StorageError::DuplicateSerials(d)) => assert_eq!(d, vec!["T1".to_string()]),
        other => panic!("expected duplicates, got {other:?}"),
    }
    assert!(
        matches!(
            s.assign_token("T3", &u("bob"), 3).await,
            Err(StorageError::UnknownToken(_))
        ),
        "T3 rolled back"
    );
    let mut weak = two_tokens();
    weak[0].secret.truncate(10);
    weak[0].serial = "T4".into();
    assert!(matches!(
        s.import_tokens(weak, 4).await,
        Err(StorageError::WeakSecret { .. })
    ));
}

/// Reset removes everything of one user and nothing of another.
pub async fn reset(s: &dyn EnrolmentStore) {
    s.import_tokens(two_tokens(), 1).await.expect("import");
    s.assign_token("T1", &u("alice"), 2).await.expect("assign");
    s.assign_token("T2", &u("bob"), 2).await.expect("assign");
    s.set_sms_number(&u("alice"), 0, "+46701234567", 3)
        .await
        .expect("sms");
    s.add_totp_device(&u("alice"), "Jobbmobil", RFC, 4)
        .await
        .expect("totp");
    s.add_totp_device(&u("bob"), "Mobil", RFC, 4)
        .await
        .expect("totp");
    let had = s.reset_user(&u("alice")).await.expect("reset");
    assert_eq!((had.sms.len(), had.totp.len(), had.tokens.len()), (1, 1, 1));
    assert!(s.enrolments(&u("alice")).await.expect("e").is_empty());
    let bob = s.enrolments(&u("bob")).await.expect("e");
    assert_eq!((bob.totp.len(), bob.tokens.len()), (1, 1));
    s.assign_token("T1", &u("carol"), 5)
        .await
        .expect("T1 is free again");
}

/// Two realms whose directories both hold `anna`: two people. Nothing one
/// enrols is seen, used or removed by the other, for every kind of enrolment.
pub async fn realms_apart(s: &dyn EnrolmentStore) {
    let adm = UserRef::new("adm", "anna");
    let school = UserRef::new("school", "anna");

    // SMS numbers: one each in the same position, neither overwrites the other.
    s.set_sms_number(&adm, 0, "+46701111111", 1)
        .await
        .expect("adm");
    s.set_sms_number(&school, 0, "+46702222222", 2)
        .await
        .expect("school");
    let numbers = |who: UserRef| async move {
        s.sms_numbers(&who)
            .await
            .expect("list")
            .into_iter()
            .map(|n| n.e164)
            .collect::<Vec<_>>()
    };
    assert_eq!(numbers(adm.clone()).await, vec!["+46701111111"]);
    assert_eq!(numbers(school.clone()).await, vec!["+46702222222"]);
    assert!(s.remove_sms_number(&school, 0).await.expect("remove"));
    assert_eq!(
        numbers(adm.clone()).await,
        vec!["+46701111111"],
        "untouched"
    );

    // Authenticator devices: adm's anna's code is no code for school's anna,
    // and school's anna cannot see or remove adm's device.
    let device = s
        .add_totp_device(&adm, "Jobbmobil", RFC, 3)
        .await
        .expect("add");
    let step = NOW / PERIOD;
    let code = code_at(RFC, step);
    assert_eq!(
        by(&s.verify_totp(&school, &code, NOW).await.expect("v")),
        "rejected",
        "the other anna's authenticator logs no one else in"
    );
    assert!(s.totp_devices(&school).await.expect("list").is_empty());
    assert!(!s
        .remove_totp_device(&school, device)
        .await
        .expect("not hers"));
    // Replay marks are the credential's: school's anna enrols the same
    // secret (a shared seed, say); each device has its own mark.
    let other = s
        .add_totp_device(&school, "Skolmobil", RFC, 4)
        .await
        .expect("add");
    assert_eq!(
        by(&s.verify_totp(&adm, &code, NOW).await.expect("v")),
        format!("accepted totp:{device}")
    );
    assert_eq!(
        by(&s.verify_totp(&adm, &code, NOW).await.expect("v")),
        format!("replay totp:{device}")
    );
    assert_eq!(
        by(&s.verify_totp(&school, &code, NOW).await.expect("v")),
        format!("accepted totp:{other}"),
        "adm's use of the step does not use up school's device"
    );
    assert_eq!(s.totp_devices(&adm).await.expect("list").len(), 1);

    // Tokens: assigned to one (realm, user); the other anna can neither use
    // it nor take it over, and a reset of one leaves the other's.
    s.import_tokens(two_tokens(), 5).await.expect("import");
    s.assign_token("T1", &adm, 6).await.expect("assign");
    match s.assign_token("T1", &school, 7).await {
        Err(StorageError::AlreadyAssigned { owner, .. }) => assert_eq!(owner, adm),
        other => panic!("expected AlreadyAssigned to adm's anna, got {other:?}"),
    }
    let h = Hotp::new(RFC, 6);
    assert_eq!(
        by(&s.verify_token(&school, &h.code(0), NOW).await.expect("v")),
        "rejected"
    );
    assert!(s.tokens_of(&school).await.expect("list").is_empty());
    assert_eq!(
        by(&s.verify_token(&adm, &h.code(0), NOW).await.expect("v")),
        "accepted token:T1"
    );

    // Reset of school's anna removes hers only.
    let had = s.reset_user(&school).await.expect("reset");
    assert_eq!((had.sms.len(), had.totp.len(), had.tokens.len()), (0, 1, 0));
    let kept = s.enrolments(&adm).await.expect("e");
    assert_eq!(
        (kept.sms.len(), kept.totp.len(), kept.tokens.len()),
        (1, 1, 1)
    );
    assert!(s.enrolments(&school).await.expect("e").is_empty());

    // Realm ids the configuration could not have are refused, not stored.
    assert!(matches!(
        s.set_sms_number(&UserRef::new("a:b", "anna"), 0, "+46701111111", 8)
            .await,
        Err(StorageError::InvalidRealm(_))
    ));
    assert!(matches!(
        s.add_totp_device(&UserRef::new("", "anna"), "x", RFC, 8)
            .await,
        Err(StorageError::InvalidRealm(_))
    ));
}

/// A credential id as a browser reports it (base64url, no padding).
pub const CRED: &str = "AAECAwQFBgcICQoLDA0ODw";

/// Passkeys: kept per (realm, user), a credential id registered once in the
/// whole store, inputs checked, a use recorded only when the counter moves
/// forward (or stays 0 on an authenticator without one), ids never reused,
/// and a reset removes and reports them.
pub async fn passkeys(s: &dyn EnrolmentStore) {
    use std::mem::discriminant;
    use PasskeyUse::{Gone, Recorded, Regressed};
    let (adm, school) = (UserRef::new("adm", "anna"), UserRef::new("school", "anna"));
    let add = |who: &UserRef, cred: &str, key: &str, counter: u32| {
        let (who, cred, key) = (who.clone(), cred.to_string(), key.to_string());
        async move { s.add_passkey(&who, "Key", &cred, &key, counter, 100).await }
    };
    let list = |who: &UserRef| {
        let who = who.clone();
        async move { s.passkeys(&who).await.expect("list") }
    };

    // Refused inputs store nothing; the longest id and key are kept whole.
    let long_cred = "-_".repeat(MAX_CREDENTIAL_ID / 2);
    let long_key = "k".repeat(MAX_PASSKEY_KEY);
    let (cred_over, key_over) = (format!("{long_cred}A"), format!("{long_key}k"));
    let (realm, nobody) = (UserRef::new("a:b", "anna"), UserRef::new("adm", ""));
    let (id, k) = (
        StorageError::InvalidCredentialId,
        StorageError::InvalidPasskeyKey,
    );
    let realm_e = StorageError::InvalidRealm(String::new());
    let refused = [
        (&adm, "", "{}", &id),
        (&adm, "AAE=", "{}", &id),
        (&adm, "a+b/c", "{}", &id),
        (&adm, "åäö", "{}", &id),
        (&adm, &cred_over, "{}", &id),
        (&adm, CRED, "", &k),
        (&adm, CRED, &key_over, &k),
        (&realm, CRED, "{}", &realm_e),
        (&nobody, CRED, "{}", &StorageError::InvalidUser),
    ];
    for (who, cred, key, want) in refused {
        let got = add(who, cred, key, 0).await.expect_err("refused");
        assert_eq!(discriminant(&got), discriminant(want), "{cred:.9}: {got}");
    }
    assert!(matches!(
        s.add_passkey(&adm, "", CRED, "{}", 0, 1).await,
        Err(StorageError::InvalidDescription)
    ));
    assert!(list(&adm).await.is_empty());
    let long = add(&adm, &long_cred, &long_key, 0).await.expect("limits");
    let stored = &list(&adm).await[0];
    assert_eq!(
        (&stored.credential_id, &stored.key),
        (&long_cred, &long_key)
    );
    assert!(s.remove_passkey(&adm, long).await.expect("remove"));

    let a = add(&adm, CRED, r#"{"k":1}"#, 5).await.expect("add");
    // One credential id, one registration: not again, not for anyone else.
    for who in [&adm, &school, &u("bob")] {
        let dup = add(who, CRED, "{}", 0).await.expect_err("duplicate");
        assert!(matches!(dup, StorageError::DuplicateCredential), "{dup}");
    }
    let b = add(&school, "c2Nob29s", "{}", 0).await.expect("add");
    assert!(b > a);
    let yubikey = Passkey {
        id: a,
        description: "Key".into(),
        credential_id: CRED.into(),
        key: r#"{"k":1}"#.into(),
        counter: 5,
        added_ms: 100,
        last_used_ms: None,
    };
    assert_eq!(list(&adm).await, vec![yubikey.clone()]);
    assert_eq!(list(&school).await.len(), 1);
    let e = s.enrolments(&adm).await.expect("e");
    assert_eq!(e.passkeys, vec![yubikey]);
    assert!(!e.is_empty(), "a passkey is an enrolment");

    // Each use, and after it what is stored: the new counter, key and time
    // when recorded; exactly what was there before otherwise.
    let uses = [
        (&school, a, 9, Gone), // the other anna's passkey is no passkey of hers
        (&adm, a, 6, Recorded),
        (&adm, a, 6, Regressed { stored: 6 }), // the same count again
        (&adm, a, 2, Regressed { stored: 6 }),
        (&adm, a, 0, Regressed { stored: 6 }), // 0 once it counts
        (&adm, a, u32::MAX, Recorded),
        (&adm, a, u32::MAX, Regressed { stored: u32::MAX }),
        (&school, b, 0, Recorded), // no counter: 0 and 0 is a use every time
        (&school, b, 0, Recorded),
        (&school, b, 3, Recorded), // until it starts counting
        (&school, b, 0, Regressed { stored: 3 }),
        (&adm, b, 4, Gone),
    ];
    for (step, (who, id, counter, want)) in (0u64..).zip(uses) {
        let find = |all: Vec<Passkey>| all.into_iter().find(|p| p.id == id);
        let before = find(list(who).await);
        let (key, at) = (format!("{{\"use\":{step}}}"), 1000 + step);
        let got = s
            .use_passkey(who, id, counter, &key, at)
            .await
            .expect("use");
        assert_eq!(got, want, "use {step}: counter {counter}");
        let expected = match got {
            Recorded => before.map(|p| Passkey {
                counter,
                key,
                last_used_ms: Some(at),
                ..p
            }),
            _ => before,
        };
        assert_eq!(find(list(who).await), expected, "use {step}: stored");
    }

    // Removed: gone for use, removal says so, its id never comes back, and
    // its credential id may be registered again.
    let spare = add(&adm, "c3BhcmU", "{}", 0).await.expect("add");
    assert!(s.remove_passkey(&adm, spare).await.expect("remove"));
    assert!(!s.remove_passkey(&adm, spare).await.expect("again"));
    assert!(!s.remove_passkey(&school, a).await.expect("not hers"));
    assert_eq!(
        s.use_passkey(&adm, spare, 1, "{}", 2).await.expect("use"),
        Gone
    );
    let again = add(&adm, "c3BhcmU", "{}", 0).await.expect("re-register");
    assert!(again > spare, "removed {spare}, then issued {again}");

    // Reset of school's anna removes and reports hers only.
    let had = s.reset_user(&school).await.expect("reset");
    let gone: Vec<i64> = had.passkeys.iter().map(|p| p.id).collect();
    assert_eq!(gone, vec![b]);
    assert!(s.enrolments(&school).await.expect("e").is_empty());
    assert_eq!(
        s.use_passkey(&school, b, 9, "{}", 3).await.expect("use"),
        Gone
    );
    let kept: Vec<i64> = list(&adm).await.iter().map(|p| p.id).collect();
    assert_eq!(kept, vec![a, again]);
}

/// Ten uses of one passkey with one counter at once, over two handles on
/// the store (two gateways' pools, or two processes on a file): exactly one
/// is recorded, the others see the counter it saved.
pub async fn passkey_race(a: Arc<dyn EnrolmentStore>, b: Arc<dyn EnrolmentStore>) {
    let alice = u("alice");
    let id = a.add_passkey(&alice, "Key", CRED, "{}", 7, 1).await;
    let id = id.expect("add");
    let tasks = (0..10u64).map(|i| {
        let (s, alice) = (Arc::clone(if i % 2 == 0 { &a } else { &b }), alice.clone());
        tokio::spawn(async move { s.use_passkey(&alice, id, 8, &i.to_string(), i).await })
    });
    let mut recorded = Vec::new();
    for (i, t) in (0..10u64).zip(tasks.collect::<Vec<_>>()) {
        match t.await.expect("task").expect("use") {
            PasskeyUse::Recorded => recorded.push(i),
            PasskeyUse::Regressed { stored: 8 } => {}
            other => panic!("use {i}: {other:?}"),
        }
    }
    assert_eq!(recorded.len(), 1, "recorded by uses {recorded:?}");
    // What is stored is the one recorded use's, whole.
    let p = &b.passkeys(&alice).await.expect("list")[0];
    let i = recorded[0];
    assert_eq!(
        (p.counter, &p.key, p.last_used_ms),
        (8, &i.to_string(), Some(i))
    );
}
