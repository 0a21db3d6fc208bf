//! Unit tests of [`super`]: RFC 4226 vectors, the look-ahead and
//! resynchronisation rules, and the CSV import.

use super::*;

const RFC: &[u8] = b"12345678901234567890";
const RFC4226: [&str; 10] = [
    "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
    "520489",
];

#[test]
fn rfc4226_vectors() {
    let h = Hotp::new(RFC, 6);
    for (c, want) in RFC4226.iter().enumerate() {
        assert_eq!(h.code(c as u64), *want, "counter {c}");
    }
    assert!(h.matches(1, "287082") && !h.matches(1, "287083"));
}

#[test]
fn codes_are_cleaned() {
    assert_eq!(clean_code(" 287 082 ", 6).as_deref(), Some("287082"));
    assert_eq!(clean_code("28708", 6), None);
    assert_eq!(clean_code("28708a", 6), None);
    assert_eq!(clean_code("２８７０８２", 6), None, "only ASCII digits");
}

#[test]
fn window_then_replay() {
    let h = Hotp::new(RFC, 6);
    assert_eq!(
        check_hotp(&h, RFC4226[0], 0, None),
        HotpCheck::Accepted {
            counter: 0,
            resynced: false
        }
    );
    assert_eq!(
        check_hotp(&h, RFC4226[9], 0, None),
        HotpCheck::Accepted {
            counter: 9,
            resynced: false
        }
    );
    assert_eq!(
        check_hotp(&h, RFC4226[3], 5, None),
        HotpCheck::Replay { counter: 3 }
    );
    assert_eq!(check_hotp(&h, "000000", 0, None), HotpCheck::NoMatch);
}

#[test]
fn far_code_needs_the_next_one() {
    let h = Hotp::new(RFC, 6);
    let far = h.code(500);
    assert_eq!(
        check_hotp(&h, &far, 0, None),
        HotpCheck::NeedsNextCode { candidate: 500 }
    );
    let next = h.code(501);
    assert_eq!(
        check_hotp(&h, &next, 0, Some(500)),
        HotpCheck::Accepted {
            counter: 501,
            resynced: true
        }
    );
    // Not consecutive: 502 after candidate 500 only starts another round.
    let skip = h.code(502);
    assert_eq!(
        check_hotp(&h, &skip, 0, Some(500)),
        HotpCheck::NeedsNextCode { candidate: 502 }
    );
    // Beyond the look-ahead: nothing.
    assert_eq!(check_hotp(&h, &h.code(5000), 0, None), HotpCheck::NoMatch);
}

#[test]
fn token_state_moves_and_candidates_expire() {
    let h = Hotp::new(RFC, 6);
    let start = TokenState {
        counter: 0,
        last_step: None,
        pending: None,
    };
    let (c, s) = check_token(&h, None, start, &h.code(3), 1000);
    assert_eq!(
        (c, s.counter),
        (TokenCheck::Accepted { resynced: false }, 4)
    );
    let (c, s) = check_token(&h, None, s, &h.code(300), 1000);
    assert_eq!(
        (c, s.pending),
        (TokenCheck::NeedsNextCode, Some((300, 1000)))
    );
    // Too late for the candidate: 301 starts a new round instead.
    let (c, late) = check_token(
        &h,
        None,
        s,
        &h.code(301),
        1000 + HOTP_RESYNC_PENDING_SECS + 1,
    );
    assert_eq!(c, TokenCheck::NeedsNextCode);
    assert_eq!(late.counter, 4);
    let (c, s) = check_token(&h, None, s, &h.code(301), 1010);
    assert_eq!(
        (c, s.counter, s.pending),
        (TokenCheck::Accepted { resynced: true }, 302, None)
    );
    // A wrong code drops a candidate.
    let (_, s) = check_token(&h, None, s, &h.code(600), 1020);
    let (c, s) = check_token(&h, None, s, "000000", 1021);
    assert_eq!((c, s.pending), (TokenCheck::NoMatch, None));
    // TOTP tokens keep the last step.
    let (c, s) = check_token(&h, Some(60), start, &h.code(1000 / 60), 1000);
    assert_eq!(
        (c, s.last_step),
        (TokenCheck::Accepted { resynced: false }, Some(16))
    );
    assert_eq!(
        check_token(&h, Some(60), s, &h.code(16), 1000).0,
        TokenCheck::Replay
    );
}

#[test]
fn admin_resync_finds_two_consecutive_codes() {
    let h = Hotp::new(RFC, 8);
    let (a, b) = (h.code(4321), h.code(4322));
    assert_eq!(
        find_consecutive(&h, &a, &b, 0, ADMIN_RESYNC_LOOKAHEAD),
        Some(4321)
    );
    assert_eq!(
        find_consecutive(&h, &b, &a, 0, ADMIN_RESYNC_LOOKAHEAD),
        None
    );
    assert_eq!(
        find_consecutive(&h, &a, &b, 5000, ADMIN_RESYNC_LOOKAHEAD),
        None
    );
}

#[test]
fn csv_parses_all_forms() {
    let text = "Serial,Type,Secret,Digits,Period_or_counter\n\
                    # a comment\n\
                    \n\
                    A1,hotp,3132333435363738393031323334353637383930,6,7\n\
                    B2, TOTP ,base32:gezdgnbvgy3tqojqgezdgnbvgy3tqojq,8,60\n\
                    C3,totp,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n\
                    D4,hotp,hex:31323334353637383930313233343536\n";
    let recs = parse_csv(text).expect("valid");
    assert_eq!(recs.len(), 4);
    assert_eq!(recs[0].secret, RFC);
    assert_eq!(recs[0].mode, TokenMode::Hotp { counter: 7 });
    assert_eq!(recs[1].secret, RFC);
    assert_eq!(
        (recs[1].digits, recs[1].mode),
        (8, TokenMode::Totp { period: 60 })
    );
    assert_eq!(
        (recs[2].digits, recs[2].mode),
        (6, TokenMode::Totp { period: 30 })
    );
    assert_eq!(recs[3].mode, TokenMode::Hotp { counter: 0 });
    assert!(
        !format!("{:?}", recs[0]).contains("3132"),
        "Debug hides the seed"
    );
}

#[test]
fn csv_errors_name_every_bad_line() {
    let text = "A1,hotp,3132333435363738393031323334353637383930,6,0\n\
                    B2,motp,3132333435363738393031323334353637383930,7,0\n\
                    C3,totp,31323334,6,30\n\
                    A1,hotp,3132333435363738393031323334353637383930\n\
                    D4,hotp\n\
                    E 5,totp,!!!!,6,9999\n";
    let err = parse_csv(text).expect_err("invalid");
    let lines: Vec<u64> = err.problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![2, 3, 4, 5, 6]);
    let msg = err.to_string();
    assert!(
        msg.contains("line 2: type must be hotp or totp, got \"motp\""),
        "{msg}"
    );
    assert!(
        msg.contains("line 3: secret is 32 bits; at least 128 bits are required"),
        "{msg}"
    );
    assert!(
        msg.contains("line 4: serial A1 already appears on line 1"),
        "{msg}"
    );
    assert!(msg.contains("line 5: expected 3 to 5 columns"), "{msg}");
    assert!(msg.contains("serial \"E 5\" may only"), "{msg}");
    assert!(msg.contains("neither hex"), "{msg}");
    assert!(msg.contains("TOTP period must be 10 to 300"), "{msg}");
}

#[test]
fn csv_from_swedish_excel() {
    let text =
        "\u{feff}Serienummer;Typ;Hemlighet\r\nA1;HOTP;3132333435363738393031323334353637383930\r\n";
    let err = parse_csv(text).expect_err("header not recognised: it is not English");
    assert_eq!(err.problems[0].line, 1);
    let text = "\u{feff}serial;type;secret\r\nA1;HOTP;3132333435363738393031323334353637383930\r\n";
    let recs = parse_csv(text).expect("semicolons and BOM");
    assert_eq!(
        (recs[0].serial.as_str(), recs[0].secret.as_slice()),
        ("A1", RFC)
    );
}

#[test]
fn csv_without_tokens_is_refused() {
    let err = parse_csv("# only a comment\n\n").expect_err("empty");
    assert_eq!(err.to_string(), "the file holds no tokens");
}

#[test]
fn secret_rules() {
    // Only hex digits but odd length: base32 is tried instead (and fails here).
    assert!(decode_secret("313233343536373839303132333435363").is_err());
    assert_eq!(
        decode_base32("GEZDGNBVGY3TQOJQ GEZDGNBVGY3TQOJQ====").as_deref(),
        Some(RFC)
    );
    assert_eq!(decode_base32("A"), None);
}
