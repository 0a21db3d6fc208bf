//! The auth log is tamper-evident: an auditor runs `portvakt audit verify`
//! on the gateway's real log and finds the line where a record was edited,
//! deleted, moved or cut off. Rotation (logrotate + SIGUSR1) and admin
//! commands run beside the gateway continue the one chain.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::*;

/// `portvakt audit verify ARGS…`: (exit code, stdout + stderr).
fn verify(args: &[&str]) -> (i32, String) {
    let out = Command::new(portvakt_bin())
        .args(["audit", "verify"])
        .args(args)
        .output()
        .expect("run portvakt audit verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A gateway whose auth log holds a few real decisions: alice's and bob's
/// logins, one wrong password.
async fn gateway_with_history(upstream: &Upstream) -> Gateway {
    let gw = GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await;
    gw.client().must_login("https://app.test/", &ALICE).await;
    gw.client()
        .login_as("https://app.test/", BOB.name, "not bobs password")
        .await;
    gw.client().must_login("https://app.test/", &BOB).await;
    gw.wait_auth_log("three login events", |l| {
        l.iter().filter(|e| e["event"] == "login").count() >= 3
    })
    .await;
    gw
}

/// The auth log's lines, as text.
fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read auth log")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A copy of the gateway's auth log with `change` applied.
fn tampered(gw: &Gateway, name: &str, change: impl FnOnce(&mut Vec<String>)) -> PathBuf {
    let mut l = lines(&gw.dir().join("auth.jsonl"));
    change(&mut l);
    let path = gw.dir().join(name);
    let mut text = l.join("\n");
    text.push('\n');
    std::fs::write(&path, text).expect("write tampered copy");
    path
}

/// 1-based line of the first record about `user` with `result`.
fn line_of(gw: &Gateway, user: &str, result: &str) -> usize {
    let all = gw.auth_log_lines();
    all.iter()
        .position(|e| e["user"] == user && e["result"] == result && e["event"] == "login")
        .unwrap_or_else(|| panic!("no {result} login of {user} in {all:#?}"))
        + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_auth_log_is_one_intact_chain_starting_with_an_anchor() {
    let upstream = Upstream::start().await;
    let gw = gateway_with_history(&upstream).await;
    let all = gw.auth_log_lines();
    assert_eq!(all[0]["event"], "chain_anchor", "{all:#?}");
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e["seq"], (i + 1) as u64, "seq of line {}", i + 1);
        assert_eq!(e["hash"].as_str().map(str::len), Some(64), "{e}");
        if i > 0 {
            assert_eq!(e["prev"], all[i - 1]["hash"], "line {} links back", i + 1);
        }
    }
    let (code, out) = verify(&["--config", s(&gw.config_path())]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("chain intact"), "{out}");
    assert!(out.contains("matches the chain head"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_finds_the_line_where_a_record_was_edited_deleted_moved_or_cut() {
    let upstream = Upstream::start().await;
    let gw = gateway_with_history(&upstream).await;
    let failure = line_of(&gw, "bob", "failure");
    let head = gw.dir().join("auth-chain.head");

    // Someone turns bob's failed login into a success.
    let edited = tampered(&gw, "edited.jsonl", |l| {
        l[failure - 1] = l[failure - 1].replace("\"failure\"", "\"success\"");
    });
    let (code, out) = verify(&[s(&edited)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("edited.jsonl:{failure}: record edited")),
        "{out}"
    );

    // Someone deletes it.
    let deleted = tampered(&gw, "deleted.jsonl", |l| {
        l.remove(failure - 1);
    });
    let (code, out) = verify(&[s(&deleted)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("deleted.jsonl:{failure}: record missing")),
        "{out}"
    );

    // Someone moves it after the next record.
    let moved = tampered(&gw, "moved.jsonl", |l| l.swap(failure - 1, failure));
    let (code, out) = verify(&[s(&moved)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("moved.jsonl:{failure}: records out of order")),
        "{out}"
    );
    assert!(
        out.contains(&format!("moved.jsonl:{}", failure + 1)),
        "{out}"
    );

    // A crash or an editor cuts the last record in half.
    let n = lines(&gw.dir().join("auth.jsonl")).len();
    let cut = gw.dir().join("cut.jsonl");
    let text = std::fs::read_to_string(gw.dir().join("auth.jsonl")).unwrap();
    std::fs::write(&cut, &text[..text.len() - 30]).unwrap();
    let (code, out) = verify(&[s(&cut)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("cut.jsonl:{n}: truncated record")),
        "{out}"
    );

    // Whole records removed from the end: only the chain head shows it.
    let shorter = tampered(&gw, "shorter.jsonl", |l| l.truncate(l.len() - 1));
    let (code, out) = verify(&[s(&shorter)]);
    assert_eq!(code, 0, "a shorter chain is consistent on its own: {out}");
    let (code, out) = verify(&["--head", s(&head), s(&shorter)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("records missing at the end"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logrotate_and_sigusr1_continue_the_chain_in_a_new_file() {
    let upstream = Upstream::start().await;
    let gw = gateway_with_history(&upstream).await;
    let dir = gw.dir().to_path_buf();
    let before = lines(&dir.join("auth.jsonl")).len();

    // What logrotate's `create` does, then its postrotate.
    std::fs::rename(dir.join("auth.jsonl"), dir.join("auth.jsonl.1")).unwrap();
    std::fs::rename(dir.join("access.jsonl"), dir.join("access.jsonl.1")).unwrap();
    gw.signal("USR1");
    gw.client()
        .must_login("https://app.test/after-rotation", &ALICE)
        .await;

    let new_auth = gw
        .wait_auth_log("alice's login in the new file", |l| {
            l.iter()
                .any(|e| e["event"] == "login" && e["user"] == "alice")
        })
        .await;
    assert_eq!(new_auth[0]["event"], "chain_anchor", "{new_auth:#?}");
    assert_eq!(new_auth[0]["seq"], (before + 1) as u64);
    let old_last: Value =
        serde_json::from_str(lines(&dir.join("auth.jsonl.1")).last().unwrap()).unwrap();
    assert_eq!(new_auth[0]["prev"], old_last["hash"]);
    gw.wait_access_log("requests in the new access log", |l| {
        l.iter().any(|e| e["path"] == "/after-rotation")
    })
    .await;

    // Verify finds the rotated file by itself and orders the two.
    let (code, out) = verify(&["--config", s(&gw.config_path())]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("in 2 files"), "{out}");

    // Losing the rotated file shows as a gap at the new file's anchor.
    let (code, out) = verify(&[s(&dir.join("auth.jsonl"))]);
    assert_eq!(
        code, 0,
        "the newest file alone verifies from its anchor: {out}"
    );
    std::fs::copy(dir.join("auth.jsonl"), dir.join("auth.jsonl.9")).unwrap();
    std::fs::remove_file(dir.join("auth.jsonl.1")).unwrap();
    let (code, out) = verify(&[s(&dir.join("auth.jsonl.9")), s(&dir.join("auth.jsonl"))]);
    assert_eq!(code, 1, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_command_run_beside_the_gateway_joins_the_same_chain() {
    let upstream = Upstream::start().await;
    let gw = gateway_with_history(&upstream).await;
    let out = gw.run_cli(&["enrolments", "list", "alice"]);
    assert!(out.status.success(), "{out:?}");
    gw.client().must_login("https://app.test/later", &BOB).await;
    let all = gw
        .wait_auth_log("the admin event and bob's later login", |l| {
            l.iter().any(|e| e["event"] == "admin")
                && l.iter()
                    .filter(|e| e["user"] == "bob" && e["result"] == "success")
                    .count()
                    >= 2
        })
        .await;
    let admin = all.iter().position(|e| e["event"] == "admin").unwrap();
    assert!(
        admin + 1 < all.len(),
        "the gateway wrote after the admin command"
    );
    let (code, out) = verify(&["--config", s(&gw.config_path())]);
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_logrotate_config_rotates_and_compresses_without_breaking_the_chain() {
    let upstream = Upstream::start().await;
    let gw = gateway_with_history(&upstream).await;
    let dir = gw.dir().to_path_buf();
    // systemd/portvakt.logrotate, pointed at this gateway's files and pid.
    let shipped = std::fs::read_to_string(repo_dir().join("systemd/portvakt.logrotate"))
        .expect("systemd/portvakt.logrotate");
    let mut conf = shipped.clone();
    for (from, to) in [
        (
            "/var/log/portvakt/".to_owned(),
            format!("{}/", dir.display()),
        ),
        (
            "create 0640 portvakt portvakt".to_owned(),
            "create 0640".to_owned(),
        ),
        (
            "systemctl kill --signal=USR1 --kill-whom=main portvakt.service".to_owned(),
            format!("kill -USR1 {}", gw.pid()),
        ),
    ] {
        assert!(conf.contains(&from), "the shipped config changed: {from:?}");
        conf = conf.replace(&from, &to);
    }
    std::fs::write(dir.join("logrotate.conf"), conf).unwrap();
    let rotate = || {
        let out = Command::new("logrotate")
            .arg("-f")
            .arg("-s")
            .arg(dir.join("logrotate.state"))
            .arg(dir.join("logrotate.conf"))
            .output()
            .expect("run logrotate (Debian package logrotate)");
        assert!(out.status.success(), "logrotate: {out:?}");
    };

    rotate();
    gw.client()
        .must_login("https://app.test/day-2", &ALICE)
        .await;
    gw.wait_auth_log("a login in the second file", |l| {
        l.iter().any(|e| e["event"] == "login")
    })
    .await;
    rotate();
    gw.client().must_login("https://app.test/day-3", &BOB).await;
    gw.wait_auth_log("a login in the third file", |l| {
        l.iter().any(|e| e["event"] == "login")
    })
    .await;

    assert!(dir.join("auth.jsonl.1").is_file());
    assert!(
        dir.join("auth.jsonl.2.gz").is_file(),
        "compressed on the second run"
    );
    let (code, out) = verify(&["--config", s(&gw.config_path())]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("in 3 files"), "{out}");
    assert!(out.contains("matches the chain head"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_will_not_start_without_an_auth_log_it_can_write() {
    let upstream = Upstream::start().await;
    let mut gw = GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await;
    gw.signal("KILL");
    gw.wait_exit(std::time::Duration::from_secs(10))
        .expect("the gateway stops");
    // auth.jsonl exists as a file, so nothing can be created under it.
    let broken = gw
        .config_text()
        .replace("auth_log: auth.jsonl", "auth_log: auth.jsonl/inside.jsonl");
    assert!(broken.contains("auth.jsonl/inside.jsonl"));
    gw.write_config_text(&broken);
    let mut serve = Command::new(portvakt_bin())
        .args(["serve", "--config"])
        .arg(gw.config_path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn portvakt serve");
    let mut status = None;
    for _ in 0..100 {
        if let Ok(Some(s)) = serve.try_wait() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let Some(status) = status else {
        let _ = serve.kill();
        panic!("portvakt serve kept running with an unwritable auth log");
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut serve.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains("cannot write the auth log"), "{err}");
}
