//! Several gateways' chains: each record and head names its gateway, a
//! gateway never continues another's chain, and verify checks each chain
//! on its own and says which gateway's is broken.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::*;
use crate::audit::chain::{seal, Appender};
use crate::audit::verify::Problem;
use crate::config::model::LogTarget;

fn event(user: &str) -> Map<String, Value> {
    match json!({"time": "2026-11-23T10:00:00.000Z", "event": "login", "result": "success",
                 "user": user, "client_ip": "10.0.0.1"})
    {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn paths(dir: &Path, gw: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("auth-{gw}.jsonl")),
        dir.join(format!("auth-{gw}.head")),
    )
}

/// `n` logins in gateway `gw`'s own files in `dir`.
fn written(dir: &Path, gw: &str, n: usize) -> (PathBuf, PathBuf) {
    let (log, head) = paths(dir, gw);
    let mut a = Appender::new(&LogTarget::File(log.clone()), &head, gw);
    for i in 0..n {
        a.append(vec![event(&format!("user{i}"))], "2026-11-23T10:00:00.000Z")
            .expect("append");
    }
    (log, head)
}

fn records(path: &Path) -> Vec<Map<String, Value>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn verify_dir(dir: &Path) -> (Vec<ChainReport>, Vec<Orphan>, String, bool) {
    let args = VerifyArgs {
        files: vec![dir.to_path_buf()],
        ..VerifyArgs::default()
    };
    let c = cluster(&args)
        .map_err(|(m, _)| m)
        .expect("usable arguments");
    let (reports, orphans) = verify_cluster(&c);
    let (text, ok) = render(&reports, &orphans);
    (reports, orphans, text, ok)
}

#[test]
fn every_record_and_the_chain_head_name_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let (log, head) = written(dir.path(), "gw-a", 2);
    let all = records(&log);
    assert_eq!(all.len(), 3, "anchor and two logins");
    for r in &all {
        assert_eq!(r["gateway"], "gw-a", "{r:?}");
    }
    let h = read_head(&head).unwrap().unwrap();
    assert_eq!(h.gateway.as_deref(), Some("gw-a"));
    assert_eq!(h.seq, 3);
    // The name is sealed in: changing it shows as an edit.
    let mut l = lines(&log);
    l[1] = l[1].replace("\"gw-a\"", "\"gw-b\"");
    write_lines(&log, &l);
    let f = crate::audit::verify::verify(&[log], None).unwrap_err();
    assert_eq!((f.line, f.problem), (2, Problem::Edited));
}

#[test]
fn a_gateway_refuses_to_continue_another_gateways_chain_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (log_a, head_a) = written(dir.path(), "gw-a", 1);
    let before = std::fs::read(&log_a).unwrap();

    // gw-b configured with gw-a's chain head and log.
    let mut b = Appender::new(&LogTarget::File(log_a.clone()), &head_a, "gw-b");
    let e = b
        .append(vec![event("mallory")], "t")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with(&head_a.display().to_string()), "{e}");
    assert!(e.contains("belongs to gateway \"gw-a\""), "{e}");
    assert!(e.contains("this gateway is \"gw-b\" (audit.gateway"), "{e}");
    assert!(e.contains("audit.chain_head"), "{e}");
    assert_eq!(std::fs::read(&log_a).unwrap(), before, "nothing written");

    // Its own head, but gw-a's log: the log's last record names gw-a.
    let own_head = dir.path().join("auth-gw-b.head");
    let mut b = Appender::new(&LogTarget::File(log_a.clone()), &own_head, "gw-b");
    let e = b
        .append(vec![event("mallory")], "t")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with(&log_a.display().to_string()), "{e}");
    assert!(e.contains("the last record of this auth log"), "{e}");
    assert_eq!(std::fs::read(&log_a).unwrap(), before, "nothing written");

    // The start-up check says the same before anything runs.
    let e = crate::audit::LogWriter::preflight_chained(&LogTarget::File(log_a), &head_a, "gw-b")
        .unwrap_err()
        .to_string();
    assert!(e.contains("belongs to gateway \"gw-a\""), "{e}");
    let e = crate::audit::LogWriter::preflight_chained(&LogTarget::Stdout, &head_a, "gw-b")
        .unwrap_err()
        .to_string();
    assert!(e.contains("belongs to gateway \"gw-a\""), "{e}");
}

#[test]
fn a_gateway_continues_its_own_chain_beside_another_in_one_directory() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path(), "gw-a", 1);
    written(dir.path(), "gw-b", 2);
    // A restart of gw-a: a new appender on the same files.
    let (log_a, _) = written(dir.path(), "gw-a", 2);
    assert_eq!(records(&log_a).len(), 4, "one anchor, three logins");
    let (reports, orphans, text, ok) = verify_dir(dir.path());
    assert!(ok, "{text}");
    assert!(orphans.is_empty());
    let names: Vec<_> = reports.iter().map(|r| r.gateway.as_deref()).collect();
    assert_eq!(names, [Some("gw-a"), Some("gw-b")]);
    assert!(
        text.contains("gateway gw-a: chain intact: 4 records (seq 1–4) in 1 file"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "  matches the chain head in {}",
            dir.path().join("auth-gw-b.head").display()
        )),
        "{text}"
    );
    assert!(text.ends_with("2 gateways: all chains intact\n"), "{text}");
}

#[test]
fn a_chain_from_before_names_is_continued_by_a_named_gateway_and_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (log, head) = paths(dir.path(), "old");
    // What an older portvakt wrote: no gateway field, a head without one.
    let mut h = Head::genesis();
    let mut text = String::new();
    let mut anchor = crate::audit::chain::anchor("t", crate::audit::Reason::NewChain);
    anchor.remove("gateway");
    for r in [anchor, event("alice")] {
        let (line, next) = seal(r, &h);
        text.push_str(&line);
        text.push('\n');
        h = next;
    }
    std::fs::write(&log, text).unwrap();
    std::fs::write(&head, serde_json::to_string(&h).unwrap()).unwrap();
    assert!(!std::fs::read_to_string(&head).unwrap().contains("gateway"));

    let mut a = Appender::new(&LogTarget::File(log.clone()), &head, "gw-a");
    a.append(vec![event("bob")], "t").unwrap();
    let all = records(&log);
    assert!(all[1].get("gateway").is_none());
    assert_eq!(all[2]["gateway"], "gw-a");
    let h = read_head(&head).unwrap().unwrap();
    assert_eq!(h.gateway.as_deref(), Some("gw-a"), "the head is now gw-a's");

    let (reports, _, text, ok) = verify_dir(dir.path());
    assert!(ok, "{text}");
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].gateway.as_deref(), Some("gw-a"));
    assert!(text.contains("matches the chain head"), "{text}");

    // But no unnamed record may follow a named one.
    let mut l = lines(&log);
    let (line, _) = seal(event("eve"), &read_head(&head).unwrap().unwrap());
    l.push(line);
    write_lines(&log, &l);
    let f = crate::audit::verify::verify(&[log], None).unwrap_err();
    assert_eq!(
        (f.line, f.problem),
        (
            4,
            Problem::Unnamed {
                chain: "gw-a".into()
            }
        )
    );
}

#[test]
fn a_record_moved_from_another_gateways_chain_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let (log_a, _) = written(dir.path(), "gw-a", 2);
    let (log_b, _) = written(dir.path(), "gw-b", 2);
    let mut a = lines(&log_a);
    a[2] = lines(&log_b)[2].clone();
    write_lines(&log_a, &a);
    let f = crate::audit::verify::verify(&[log_a], None).unwrap_err();
    assert_eq!(f.line, 3);
    assert_eq!(
        f.problem,
        Problem::OtherGateway {
            chain: "gw-a".into(),
            found: "gw-b".into()
        }
    );
}

#[test]
fn one_tampered_chain_is_named_and_the_other_still_reported_intact() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path(), "gw-a", 3);
    let (log_b, _) = written(dir.path(), "gw-b", 3);
    let mut b = lines(&log_b);
    b[2] = b[2].replace("\"user1\"", "\"someone-else\"");
    write_lines(&log_b, &b);

    let (reports, _, text, ok) = verify_dir(dir.path());
    assert!(!ok, "{text}");
    assert!(reports[0].result.is_ok(), "gw-a intact: {text}");
    let f = reports[1].result.as_ref().unwrap_err();
    assert_eq!((f.file.as_path(), f.line), (log_b.as_path(), 3));
    assert!(
        text.contains("gateway gw-a: chain intact: 4 records"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "gateway gw-b: chain BROKEN at {}:3: record edited",
            log_b.display()
        )),
        "{text}"
    );
    assert!(
        text.ends_with("2 gateways: 1 intact, 1 BROKEN or missing (gw-b)\n"),
        "{text}"
    );
}

#[test]
fn files_are_sorted_into_chains_by_what_they_hold_not_by_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let (log_a, head_a) = written(dir.path(), "gw-a", 1);
    let (log_b, head_b) = written(dir.path(), "gw-b", 1);
    // Someone swaps the two logs' names.
    let tmp = dir.path().join("swap");
    std::fs::rename(&log_a, &tmp).unwrap();
    std::fs::rename(&log_b, &log_a).unwrap();
    std::fs::rename(&tmp, &log_b).unwrap();
    let c = Cluster {
        files: vec![log_a.clone(), log_b.clone()],
        heads: vec![
            (head_a.clone(), read_head(&head_a).unwrap().unwrap()),
            (head_b.clone(), read_head(&head_b).unwrap().unwrap()),
        ],
        config_heads: Vec::new(),
    };
    let (reports, orphans) = verify_cluster(&c);
    let (text, ok) = render(&reports, &orphans);
    assert!(ok, "{text}");
    assert_eq!(
        reports[0].files,
        std::slice::from_ref(&log_b),
        "gw-a's records are in auth-gw-b.jsonl now"
    );
    assert_eq!(reports[0].head.as_deref(), Some(head_a.as_path()));
}

#[test]
fn a_head_named_twice_is_one_head() {
    let dir = tempfile::tempdir().unwrap();
    let (_, head) = written(dir.path(), "gw-a", 1);
    let args = VerifyArgs {
        files: vec![dir.path().to_path_buf()],
        head: vec![head],
        ..VerifyArgs::default()
    };
    let c = cluster(&args).map_err(|(m, _)| m).unwrap();
    let (reports, orphans) = verify_cluster(&c);
    let (text, ok) = render(&reports, &orphans);
    assert!(ok && orphans.is_empty(), "{text}");
}

#[test]
fn a_chain_head_without_its_logs_is_a_missing_chain() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path(), "gw-a", 1);
    let (log_b, _) = written(dir.path(), "gw-b", 2);
    std::fs::remove_file(&log_b).unwrap();
    let (reports, orphans, text, ok) = verify_dir(dir.path());
    assert!(!ok, "{text}");
    assert_eq!(reports.len(), 1);
    assert_eq!(orphans.len(), 1);
    assert!(
        text.contains("gateway gw-b: chain MISSING: the chain head"),
        "{text}"
    );
    assert!(text.contains("says seq 3, but no auth log"), "{text}");
}

#[test]
fn the_directory_form_leaves_access_logs_and_other_files_out() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path(), "gw-a", 1);
    std::fs::write(
        dir.path().join("access-gw-a.jsonl"),
        r#"{"time":"2026-11-23T10:00:00.000Z","status":200,"gateway":"gw-a"}"#.to_owned() + "\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello\n").unwrap();
    std::fs::write(dir.path().join(".hidden.jsonl"), "").unwrap();
    let args = VerifyArgs {
        files: vec![dir.path().to_path_buf()],
        ..VerifyArgs::default()
    };
    let c = cluster(&args).map_err(|(m, _)| m).unwrap();
    assert_eq!(c.files, [dir.path().join("auth-gw-a.jsonl")]);
    assert_eq!(c.heads.len(), 1);
}

#[test]
fn a_forged_gateway_name_cannot_drive_the_auditors_terminal() {
    let dir = tempfile::tempdir().unwrap();
    // Anyone who can write the directory can write a consistent chain of
    // their own (the chain has no secret); its name is shown escaped.
    let evil = dir.path().join("auth-evil.jsonl");
    let mut h = Head::genesis();
    let mut anchor = crate::audit::chain::anchor("t", crate::audit::Reason::NewChain);
    anchor.insert("gateway".into(), json!("x\u{1b}[2Jy"));
    let (line, next) = seal(anchor, &h);
    h = next;
    std::fs::write(&evil, line + "\n").unwrap();
    let (_, _, text, ok) = verify_dir(dir.path());
    assert!(ok, "{text}");
    assert_eq!(h.seq, 1);
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(
        text.contains("gateway x\\u{1b}[2Jy: chain intact"),
        "{text}"
    );
}
