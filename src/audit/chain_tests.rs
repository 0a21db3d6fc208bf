//! The hash chain: what sealing writes and what verify finds when a record
//! is edited, deleted, moved or cut off.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::audit::chain::{canonical, record_hash, Appender, Head};
use crate::audit::verify::{verify, Problem};
use crate::config::model::LogTarget;

fn event(n: u64) -> Map<String, Value> {
    match json!({"time": format!("2026-11-23T10:00:{:02}.000Z", n % 60), "event": "login",
                 "result": "success", "user": format!("user{n}"), "client_ip": "10.0.0.1"})
    {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// A log with `n` events (plus its anchor) written by the real appender.
fn written(dir: &Path, n: u64) -> (PathBuf, PathBuf) {
    let log = dir.join("auth.jsonl");
    let head = dir.join("auth-chain.head");
    let mut a = Appender::new(&LogTarget::File(log.clone()), &head, "gw-test");
    for i in 1..=n {
        a.append(vec![event(i)], "2026-11-23T10:00:00.000Z")
            .expect("append");
    }
    (log, head)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).expect("write");
}

fn head(path: &Path) -> Head {
    crate::audit::chain::read_head(path)
        .expect("read head")
        .expect("a head")
}

fn problem_at(files: &[PathBuf], head: Option<&Head>) -> (u64, Problem) {
    let f = verify(files, head).expect_err("verify should fail");
    (f.line, f.problem)
}

#[test]
fn canonical_json_sorts_keys_and_has_no_whitespace() {
    let mut out = String::new();
    canonical(
        &json!({"b": 1, "a": {"d": [true, null], "c": "å\"\n"}}),
        &mut out,
    );
    assert_eq!(out, r#"{"a":{"c":"å\"\n","d":[true,null]},"b":1}"#);
}

#[test]
fn the_hash_does_not_depend_on_key_order() {
    let a: Map<String, Value> = serde_json::from_str(r#"{"x":1,"y":"z"}"#).unwrap();
    let b: Map<String, Value> = serde_json::from_str(r#"{"y":"z","x":1}"#).unwrap();
    assert_eq!(record_hash(&a), record_hash(&b));
    // Known answer: SHA-256 of {"x":1,"y":"z"}.
    // SHA-256 of the canonical text, as any tool computes it.
    use sha2::Digest;
    let expected = sha2::Sha256::digest(br#"{"x":1,"y":"z"}"#);
    let hex: String = expected.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(record_hash(&a), hex);
}

#[test]
fn a_written_log_starts_with_an_anchor_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (log, head_path) = written(dir.path(), 5);
    let l = lines(&log);
    assert_eq!(l.len(), 6);
    let first: Value = serde_json::from_str(&l[0]).unwrap();
    assert_eq!(first["event"], "chain_anchor");
    assert_eq!(first["seq"], 1);
    assert_eq!(first["prev"], crate::audit::chain::GENESIS);
    let v = verify(std::slice::from_ref(&log), Some(&head(&head_path))).expect("intact");
    assert_eq!((v.records, v.first_seq, v.last.seq), (6, 1, 6));
    assert!(v.head_checked);
}

#[test]
fn an_edited_record_is_found_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = written(dir.path(), 5);
    let mut l = lines(&log);
    l[3] = l[3].replace("user3", "mallory");
    write_lines(&log, &l);
    assert_eq!(problem_at(&[log], None), (4, Problem::Edited));
}

#[test]
fn an_edited_and_rehashed_record_breaks_the_link_of_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = written(dir.path(), 5);
    let mut l = lines(&log);
    let mut rec: Map<String, Value> = serde_json::from_str(&l[3]).unwrap();
    rec.insert("user".into(), "mallory".into());
    let h = record_hash(&rec);
    rec.insert("hash".into(), h.into());
    l[3] = serde_json::to_string(&rec).unwrap();
    write_lines(&log, &l);
    assert_eq!(problem_at(&[log], None), (5, Problem::Unlinked));
}

#[test]
fn a_deleted_record_is_reported_where_it_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = written(dir.path(), 5);
    let mut l = lines(&log);
    l.remove(2); // seq 3
    write_lines(&log, &l);
    assert_eq!(
        problem_at(&[log], None),
        (
            3,
            Problem::Missing {
                expected: 3,
                found: 4
            }
        )
    );
}

#[test]
fn swapped_records_are_reported_as_reordered() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = written(dir.path(), 5);
    let mut l = lines(&log);
    l.swap(2, 3);
    write_lines(&log, &l);
    let (line, problem) = problem_at(std::slice::from_ref(&log), None);
    assert_eq!(line, 3);
    assert_eq!(
        problem,
        Problem::Reordered {
            expected: 3,
            found: 4,
            at: format!("{}:4", log.display())
        }
    );
}

#[test]
fn a_record_cut_in_the_middle_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = written(dir.path(), 5);
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, &text[..text.len() - 20]).unwrap();
    assert_eq!(problem_at(&[log], None), (6, Problem::Truncated));
}

#[test]
fn whole_records_cut_off_the_end_are_found_with_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let (log, head_path) = written(dir.path(), 5);
    let mut l = lines(&log);
    l.truncate(4);
    write_lines(&log, &l);
    // Without the head the shorter chain is consistent...
    assert!(verify(std::slice::from_ref(&log), None).is_ok());
    // ...with it, the missing end shows.
    let f = verify(&[log], Some(&head(&head_path))).unwrap_err();
    assert_eq!(f.problem, Problem::TailMissing { last: 4, head: 6 });
}

#[test]
fn a_file_whose_first_records_were_removed_has_no_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = written(dir.path(), 5);
    let mut l = lines(&log);
    l.remove(0);
    write_lines(&log, &l);
    assert_eq!(problem_at(&[log], None), (1, Problem::NoAnchor));
}

#[test]
fn rotation_continues_the_chain_into_the_next_file_in_any_argument_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.jsonl");
    let head_path = dir.path().join("auth-chain.head");
    let mut a = Appender::new(&LogTarget::File(log.clone()), &head_path, "gw-test");
    a.append(vec![event(1), event(2)], "t").unwrap();
    // logrotate moves the file away; the gateway is told (SIGUSR1).
    let rotated = dir.path().join("auth.jsonl.1");
    std::fs::rename(&log, &rotated).unwrap();
    a.reopen();
    a.append(vec![event(3)], "t").unwrap();
    let second = lines(&log);
    let anchor: Value = serde_json::from_str(&second[0]).unwrap();
    assert_eq!(anchor["event"], "chain_anchor");
    assert_eq!(anchor["seq"], 4);
    let v = verify(&[log.clone(), rotated.clone()], Some(&head(&head_path))).expect("intact");
    assert_eq!(v.files, vec![rotated.clone(), log.clone()]);
    assert_eq!(v.last.seq, 5);
    // Without the middle file, the gap shows at the newer file's anchor.
    let third = dir.path().join("auth.jsonl.0");
    std::fs::rename(&log, &third).unwrap();
    a.reopen();
    a.append(vec![event(4)], "t").unwrap();
    let (line, problem) = problem_at(&[rotated, log], None);
    assert_eq!(line, 1);
    assert!(
        matches!(problem, Problem::FileGap { expected: 4, .. }),
        "{problem:?}"
    );
}

#[test]
fn a_moved_file_is_noticed_without_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.jsonl");
    let head_path = dir.path().join("auth-chain.head");
    let mut a = Appender::new(&LogTarget::File(log.clone()), &head_path, "gw-test");
    a.append(vec![event(1)], "t").unwrap();
    std::fs::rename(&log, dir.path().join("auth.jsonl.1")).unwrap();
    a.append(vec![event(2)], "t").unwrap();
    assert_eq!(lines(&log).len(), 2, "anchor + event in the new file");
}

#[test]
fn two_appenders_on_one_chain_never_fork_it() {
    // The gateway's writer and an admin command, each with its own state.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.jsonl");
    let head_path = dir.path().join("auth-chain.head");
    let target = LogTarget::File(log.clone());
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let (target, head_path) = (target.clone(), head_path.clone());
            std::thread::spawn(move || {
                let mut a = Appender::new(&target, &head_path, "gw-test");
                for i in 0..50 {
                    a.append(vec![event(t * 100 + i)], "t").unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let v = verify(&[log], Some(&head(&head_path))).expect("one chain");
    assert_eq!(v.records, 101);
}

#[test]
fn a_lost_head_file_is_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (log, head_path) = written(dir.path(), 3);
    std::fs::remove_file(&head_path).unwrap();
    let mut a = Appender::new(&LogTarget::File(log.clone()), &head_path, "gw-test");
    a.append(vec![event(9)], "t").unwrap();
    assert!(verify(&[log], Some(&head(&head_path))).is_ok());
}
