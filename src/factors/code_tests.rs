//! Unit tests of [`super`]: the code alphabet and normalisation, and the
//! challenge rules (validity, tries, resends, budgets, sweeping).

use super::*;

const IP: &str = "192.0.2.1";
const MIN: u64 = 60_000;

fn ip() -> IpAddr {
    IP.parse().unwrap()
}

fn key(n: u8) -> [u8; 32] {
    [n; 32]
}

/// A wrong code of the right shape: differs from `code` in its first character.
fn wrong(code: &str) -> String {
    let first = if code.starts_with('A') { 'B' } else { 'A' };
    format!("{first}{}", &code[1..])
}

fn challenges() -> Challenges {
    let clock = crate::clock::ManualClock::starting_at(0);
    let state = std::sync::Arc::new(crate::state::memory::MemoryBackend::new(clock));
    Challenges::new(state, [7; 32])
}

/// `name` of the realm `adm`.
fn u(name: &str) -> UserRef {
    UserRef::new("adm", name)
}

fn rules() -> CodeRules {
    CodeRules::default()
}

#[tokio::test]
async fn default_codes_have_at_least_twenty_bits() {
    assert!(entropy_bits(CodeRules::default().length) >= 20.0);
    assert!(entropy_bits(6) > 29.0);
}

#[tokio::test]
async fn codes_use_only_the_unambiguous_alphabet() {
    for b in b"0O1IL" {
        assert!(!ALPHABET.contains(b), "{} is ambiguous", char::from(*b));
    }
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let code = generate(6);
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|b| ALPHABET.contains(&b)), "{code}");
        seen.insert(code);
    }
    // 200 draws from ~887 million: a repeat means the generator is broken.
    assert_eq!(seen.len(), 200);
}

#[tokio::test]
async fn channels_round_trip_by_name() {
    for c in [Channel::Sms, Channel::Email] {
        assert_eq!(Channel::parse(c.as_str()), Some(c));
    }
    assert_eq!(Channel::parse("totp"), None);
}

#[tokio::test]
async fn normalising_drops_spaces_and_dashes_and_upper_cases() {
    assert_eq!(normalise(" ab3-k7 p\t"), "AB3K7P");
    assert_eq!(normalise(" - "), "");
}

#[tokio::test]
async fn the_right_code_is_accepted_once_in_any_case() {
    let c = challenges();
    let code = c
        .issue(key(1), &u("alice"), ip(), Channel::Sms, 0, &rules())
        .await
        .unwrap();
    let typed = format!("{}-{}", &code[..3], &code[3..]).to_lowercase();
    assert_eq!(
        c.verify(key(1), &typed, 1000).await,
        CodeVerdict::Accepted {
            channel: Channel::Sms
        }
    );
    assert_eq!(
        c.verify(key(1), &code, 2000).await,
        CodeVerdict::NoChallenge
    );
}

#[tokio::test]
async fn a_code_is_bound_to_its_key() {
    let c = challenges();
    let code = c
        .issue(key(1), &u("alice"), ip(), Channel::Email, 0, &rules())
        .await
        .unwrap();
    assert_eq!(c.verify(key(2), &code, 1).await, CodeVerdict::NoChallenge);
    assert!(matches!(
        c.verify(key(1), &code, 2).await,
        CodeVerdict::Accepted { .. }
    ));
}

#[tokio::test]
async fn a_code_expires_after_five_minutes() {
    let c = challenges();
    let code = c
        .issue(key(1), &u("alice"), ip(), Channel::Sms, 0, &rules())
        .await
        .unwrap();
    assert_eq!(c.verify(key(1), &code, 5 * MIN).await, CodeVerdict::Expired);
    assert_eq!(
        c.verify(key(1), &code, 5 * MIN + 1).await,
        CodeVerdict::NoChallenge
    );

    let code = c
        .issue(key(2), &u("bob"), ip(), Channel::Sms, 0, &rules())
        .await
        .unwrap();
    assert!(matches!(
        c.verify(key(2), &code, 5 * MIN - 1).await,
        CodeVerdict::Accepted { .. }
    ));
}

#[tokio::test]
async fn three_wrong_tries_kill_the_code() {
    let c = challenges();
    let code = c
        .issue(key(1), &u("alice"), ip(), Channel::Sms, 0, &rules())
        .await
        .unwrap();
    let bad = wrong(&code);
    assert_eq!(
        c.verify(key(1), &bad, 1).await,
        CodeVerdict::Wrong { tries_left: 2 }
    );
    assert_eq!(
        c.verify(key(1), &bad, 2).await,
        CodeVerdict::Wrong { tries_left: 1 }
    );
    assert_eq!(c.verify(key(1), &bad, 3).await, CodeVerdict::TooManyTries);
    // Even the right code is refused now.
    assert_eq!(c.verify(key(1), &code, 4).await, CodeVerdict::TooManyTries);
    // A new code (after the cooldown) has its own three tries.
    let code = c
        .issue(key(1), &u("alice"), ip(), Channel::Sms, MIN, &rules())
        .await
        .unwrap();
    assert_eq!(
        c.verify(key(1), &wrong(&code), MIN + 1).await,
        CodeVerdict::Wrong { tries_left: 2 }
    );
    assert!(matches!(
        c.verify(key(1), &code, MIN + 2).await,
        CodeVerdict::Accepted { .. }
    ));
}

#[tokio::test]
async fn an_empty_entry_costs_no_try() {
    let c = challenges();
    c.issue(key(1), &u("alice"), ip(), Channel::Sms, 0, &rules())
        .await
        .unwrap();
    assert_eq!(
        c.verify(key(1), " - ", 1).await,
        CodeVerdict::Wrong { tries_left: 3 }
    );
    assert_eq!(
        c.verify(key(1), "", 2).await,
        CodeVerdict::Wrong { tries_left: 3 }
    );
}

#[tokio::test]
async fn resending_waits_thirty_seconds() {
    let c = challenges();
    c.issue(key(1), &u("alice"), ip(), Channel::Sms, 0, &rules())
        .await
        .unwrap();
    assert_eq!(
        c.issue(key(1), &u("alice"), ip(), Channel::Sms, 10_500, &rules())
            .await,
        Err(Refusal::Cooldown { wait_secs: 20 })
    );
    assert_eq!(c.resend_wait_secs(&key(1), 29_999).await, 1);
    assert_eq!(c.resend_wait_secs(&key(1), 30_000).await, 0);
    assert!(c
        .issue(key(1), &u("alice"), ip(), Channel::Sms, 30_000, &rules())
        .await
        .is_ok());
    // Another login of the same user is not held up by this one's cooldown.
    assert!(c
        .issue(key(2), &u("alice"), ip(), Channel::Sms, 30_001, &rules())
        .await
        .is_ok());
}

#[tokio::test]
async fn a_resend_replaces_the_code_but_keeps_the_failures() {
    let c = challenges();
    let first = c
        .issue(key(1), &u("alice"), ip(), Channel::Sms, 0, &rules())
        .await
        .unwrap();
    c.verify(key(1), &wrong(&first), 1).await;
    c.verify(key(1), &wrong(&first), 2).await;
    let second = c
        .issue(key(1), &u("alice"), ip(), Channel::Email, 30_000, &rules())
        .await
        .unwrap();
    if first != second {
        assert_eq!(
            c.verify(key(1), &first, 30_001).await,
            CodeVerdict::TooManyTries
        );
    } else {
        // One in 887 million: the same code twice; it is simply right.
        assert!(matches!(
            c.verify(key(1), &first, 30_001).await,
            CodeVerdict::Accepted { .. }
        ));
    }
}

#[tokio::test]
async fn a_resend_gets_the_new_validity_and_channel() {
    let c = challenges();
    c.issue(key(1), &u("alice"), ip(), Channel::Sms, 0, &rules())
        .await
        .unwrap();
    let code = c
        .issue(key(1), &u("alice"), ip(), Channel::Email, 4 * MIN, &rules())
        .await
        .unwrap();
    assert_eq!(
        c.verify(key(1), &code, 8 * MIN).await,
        CodeVerdict::Accepted {
            channel: Channel::Email
        }
    );
}

#[tokio::test]
async fn five_codes_per_user_per_hour_across_logins() {
    let c = challenges();
    for i in 0..5u8 {
        let now = u64::from(i) * MIN;
        assert!(c
            .issue(key(i), &u("alice"), ip(), Channel::Sms, now, &rules())
            .await
            .is_ok());
    }
    assert_eq!(
        c.issue(key(9), &u("alice"), ip(), Channel::Sms, 10 * MIN, &rules())
            .await,
        Err(Refusal::UserBudget)
    );
    // Another user from the same IP is fine; the refusal used no budget.
    assert!(c
        .issue(key(10), &u("bob"), ip(), Channel::Sms, 10 * MIN, &rules())
        .await
        .is_ok());
    // The first code leaves the window an hour after it was issued.
    assert!(c
        .issue(key(9), &u("alice"), ip(), Channel::Sms, 60 * MIN, &rules())
        .await
        .is_ok());
    assert_eq!(
        c.issue(
            key(11),
            &u("alice"),
            ip(),
            Channel::Sms,
            60 * MIN + 1,
            &rules()
        )
        .await,
        Err(Refusal::UserBudget)
    );
}

#[tokio::test]
async fn resends_count_against_the_user_budget() {
    let c = challenges();
    for i in 0..5u64 {
        assert!(c
            .issue(
                key(1),
                &u("alice"),
                ip(),
                Channel::Sms,
                i * 30_000,
                &rules()
            )
            .await
            .is_ok());
    }
    assert_eq!(
        c.issue(key(1), &u("alice"), ip(), Channel::Sms, 150_000, &rules())
            .await,
        Err(Refusal::UserBudget)
    );
    // Forgetting the challenge does not forget the budget either.
    c.forget(&key(1)).await;
    assert_eq!(
        c.issue(key(2), &u("alice"), ip(), Channel::Sms, 170_000, &rules())
            .await,
        Err(Refusal::UserBudget)
    );
}

#[tokio::test]
async fn twenty_codes_per_ip_per_hour_whoever_asks() {
    let c = challenges();
    for i in 0..20u8 {
        let user = format!("user{i}");
        assert!(c
            .issue(key(i), &u(&user), ip(), Channel::Sms, 0, &rules())
            .await
            .is_ok());
    }
    assert_eq!(
        c.issue(key(20), &u("someone"), ip(), Channel::Sms, 1, &rules())
            .await,
        Err(Refusal::IpBudget)
    );
    let other: IpAddr = "192.0.2.2".parse().unwrap();
    assert!(c
        .issue(key(21), &u("someone"), other, Channel::Sms, 2, &rules())
        .await
        .is_ok());
}

#[tokio::test]
async fn an_ipv6_host_cannot_rotate_through_its_slash_64_for_more_codes() {
    let c = challenges();
    for i in 0..20u8 {
        let from: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
        assert!(c
            .issue(
                key(i),
                &u(&format!("user{i}")),
                from,
                Channel::Sms,
                0,
                &rules()
            )
            .await
            .is_ok());
    }
    let same_64: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
    assert_eq!(
        c.issue(key(20), &u("someone"), same_64, Channel::Sms, 1, &rules())
            .await,
        Err(Refusal::IpBudget)
    );
    let next_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert!(c
        .issue(key(21), &u("someone"), next_64, Channel::Sms, 2, &rules())
        .await
        .is_ok());
}

#[tokio::test]
async fn a_challenge_leaves_the_state_when_its_code_and_cooldown_are_over() {
    let clock = crate::clock::ManualClock::starting_at(0);
    let state = std::sync::Arc::new(crate::state::memory::MemoryBackend::new(clock.clone()));
    let c = Challenges::new(state, [7; 32]);
    c.issue(key(1), &u("alice"), ip(), Channel::Sms, 0, &rules())
        .await
        .unwrap();
    clock.advance_ms(4 * MIN);
    c.issue(key(2), &u("bob"), ip(), Channel::Sms, 4 * MIN, &rules())
        .await
        .unwrap();
    clock.advance_ms(MIN);
    assert_eq!(c.pending_count().await, 1);
    clock.advance_ms(5 * MIN);
    assert_eq!(c.pending_count().await, 0);
}

/// Two gateways sharing the state, each given the same right code at once:
/// exactly one accepts it.
#[tokio::test]
async fn of_two_gateways_given_one_code_at_once_one_accepts_it() {
    let clock = crate::clock::ManualClock::starting_at(0);
    let state: SharedState = std::sync::Arc::new(crate::state::memory::MemoryBackend::new(clock));
    let a = std::sync::Arc::new(Challenges::new(state.clone(), [7; 32]));
    let b = std::sync::Arc::new(Challenges::new(state, [7; 32]));
    let code = a
        .issue(key(1), &u("alice"), ip(), Channel::Sms, 0, &rules())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let c = if i % 2 == 0 { a.clone() } else { b.clone() };
        let code = code.clone();
        tasks.push(tokio::spawn(
            async move { c.verify(key(1), &code, 1).await },
        ));
    }
    let mut accepted = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), CodeVerdict::Accepted { .. }) {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 1);
}

/// A gateway with another secret key (so another pepper) cannot accept a
/// code issued by this one.
#[tokio::test]
async fn a_code_only_checks_out_under_the_same_secret() {
    let clock = crate::clock::ManualClock::starting_at(0);
    let state: SharedState = std::sync::Arc::new(crate::state::memory::MemoryBackend::new(clock));
    let a = Challenges::new(state.clone(), [7; 32]);
    let other = Challenges::new(state, [8; 32]);
    let code = a
        .issue(key(1), &u("alice"), ip(), Channel::Sms, 0, &rules())
        .await
        .unwrap();
    assert!(matches!(
        other.verify(key(1), &code, 1).await,
        CodeVerdict::Wrong { .. }
    ));
}

#[tokio::test]
async fn a_code_keeps_the_rules_it_was_issued_under() {
    let c = challenges();
    let code = c
        .issue(key(1), &u("alice"), ip(), Channel::Sms, 0, &rules())
        .await
        .unwrap();
    let strict = CodeRules {
        validity: Duration::from_secs(60),
        max_tries: 1,
        ..rules()
    };
    let newer = c
        .issue(key(2), &u("bob"), ip(), Channel::Sms, 0, &strict)
        .await
        .unwrap();
    assert_eq!(c.verify(key(2), &newer, 60_000).await, CodeVerdict::Expired);
    assert_eq!(
        c.verify(key(1), &wrong(&code), 60_000).await,
        CodeVerdict::Wrong { tries_left: 2 }
    );
}

#[tokio::test]
async fn budgets_are_per_realm_and_user_not_per_name() {
    let c = challenges();
    let school = UserRef::new("school", "anna");
    // anna of the school realm spends her whole hour's budget ...
    for i in 0..5u8 {
        c.issue(
            key(i),
            &school,
            ip(),
            Channel::Sms,
            u64::from(i) * MIN,
            &rules(),
        )
        .await
        .expect("within budget");
    }
    assert_eq!(
        c.issue(key(9), &school, ip(), Channel::Sms, 10 * MIN, &rules())
            .await,
        Err(Refusal::UserBudget)
    );
    // ... and anna of adm, another person, still gets her codes.
    for i in 10..15u8 {
        c.issue(key(i), &u("anna"), ip(), Channel::Sms, 10 * MIN, &rules())
            .await
            .expect("another realm's anna has her own budget");
    }
    assert_eq!(
        c.issue(key(20), &u("anna"), ip(), Channel::Sms, 11 * MIN, &rules())
            .await,
        Err(Refusal::UserBudget)
    );
    // A name spelt to look like realm and user together is its own key.
    c.issue(
        key(21),
        &UserRef::new("school", "anna/x"),
        ip(),
        Channel::Sms,
        11 * MIN,
        &rules(),
    )
    .await
    .expect("not anna's budget");
}
