//! Two gateways, one audit: gw-a and gw-b write their logs into one shared
//! directory (as on an NFS share or a log host), each its own files and
//! hash chain. An auditor asks one question of the whole cluster —
//! `portvakt audit verify|report|query` over that directory — and gets
//! each chain checked on its own and the records merged in time order.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::gateway::json_lines;
use crate::support::wait::until;
use crate::support::*;

/// The `audit:` block of gateway `name` writing into `shared`.
fn audit_block(shared: &Path, name: &str) -> String {
    let d = shared.display();
    format!(
        "audit:\n  gateway: {name}\n  access_log: {d}/access-{name}.jsonl\n  auth_log: {d}/auth-{name}.jsonl\n  chain_head: {d}/auth-{name}.head\n"
    )
}

fn auth_log(shared: &Path, name: &str) -> PathBuf {
    shared.join(format!("auth-{name}.jsonl"))
}

fn access_log(shared: &Path, name: &str) -> PathBuf {
    shared.join(format!("access-{name}.jsonl"))
}

async fn gateway(shared: &Path, name: &str, upstream: &Upstream) -> Gateway {
    GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .audit(&audit_block(shared, name))
        .start()
        .await
}

/// Wait (at most 5 s) until `path` holds `n` lines satisfying `pred`.
async fn wait_lines(path: &Path, n: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    until(
        &format!("{n} matching lines in {}", path.display()),
        Duration::from_secs(5),
        Duration::from_millis(100),
        || {
            let lines = json_lines(path);
            let ok = lines.iter().filter(|l| pred(l)).count() >= n;
            async move { ok.then_some(lines) }
        },
    )
    .await
}

fn logins(l: &Value) -> bool {
    l["event"] == "login"
}

/// `portvakt audit ARGS…`: (exit code, stdout, stderr).
fn audit(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(portvakt_bin())
        .arg("audit")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run portvakt audit");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_verifies_reports_and_queries_two_gateways_as_one_cluster() {
    let upstream = Upstream::start().await;
    let shared = tempfile::tempdir().expect("shared log directory");
    let dir = shared.path();
    let a = gateway(dir, "gw-a", &upstream).await;
    let b = gateway(dir, "gw-b", &upstream).await;

    // alice logs in on gw-a, bob on gw-b (after one wrong password there),
    // then alice again on gw-b: three logins, one failure.
    a.client().must_login("https://app.test/a1", &ALICE).await;
    b.client()
        .login_as("https://app.test/", BOB.name, "not bobs password")
        .await;
    b.client().must_login("https://app.test/b1", &BOB).await;
    b.client().must_login("https://app.test/b2", &ALICE).await;
    let auth_a = wait_lines(&auth_log(dir, "gw-a"), 1, logins).await;
    let auth_b = wait_lines(&auth_log(dir, "gw-b"), 3, logins).await;
    for (name, lines) in [("gw-a", &auth_a), ("gw-b", &auth_b)] {
        for l in lines {
            assert_eq!(l["gateway"], name, "{l}");
        }
    }
    let access_a = wait_lines(&access_log(dir, "gw-a"), 1, |l| l["path"] == "/a1").await;
    let access_b = wait_lines(&access_log(dir, "gw-b"), 1, |l| l["path"] == "/b2").await;
    for (name, lines) in [("gw-a", &access_a), ("gw-b", &access_b)] {
        for l in lines {
            assert_eq!(l["gateway"], name, "{l}");
        }
    }

    // Request ids: never the same on two gateways; each gateway's own prefix.
    let ids = |lines: &[Value]| -> Vec<String> {
        lines
            .iter()
            .map(|l| l["request_id"].as_str().expect("request_id").to_owned())
            .collect()
    };
    let (ids_a, ids_b) = (ids(&access_a), ids(&access_b));
    let all: HashSet<&String> = ids_a.iter().chain(&ids_b).collect();
    assert_eq!(all.len(), ids_a.len() + ids_b.len(), "{ids_a:?} {ids_b:?}");
    let prefixes =
        |ids: &[String]| -> HashSet<String> { ids.iter().map(|i| i[..16].to_owned()).collect() };
    assert_eq!(prefixes(&ids_a).len(), 1, "{ids_a:?}");
    assert!(prefixes(&ids_a).is_disjoint(&prefixes(&ids_b)));

    // verify over the directory: one chain per gateway, each with its head.
    let (code, out, err) = audit(&["verify", s(dir)]);
    assert_eq!(code, 0, "{out}{err}");
    for name in ["gw-a", "gw-b"] {
        assert!(
            out.contains(&format!("gateway {name}: chain intact")),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "matches the chain head in {}",
                s(&dir.join(format!("auth-{name}.head")))
            )),
            "{out}"
        );
    }
    assert!(out.ends_with("2 gateways: all chains intact\n"), "{out}");
    // The same from the two configurations.
    let (code, out, err) = audit(&[
        "verify",
        "-c",
        s(&a.config_path()),
        "-c",
        s(&b.config_path()),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 gateways: all chains intact"), "{out}");

    // report: every login counted once, each gateway's share shown.
    let (code, out, err) = audit(&["report", s(dir), "--json"]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).expect("report JSON");
    assert_eq!(report["totals"]["logins_succeeded"], 3, "{out}");
    assert_eq!(report["totals"]["logins_failed"], 1, "{out}");
    assert_eq!(report["totals"]["users"], 2, "{out}");
    let share = |name: &str| {
        report["gateways"]
            .as_array()
            .expect("gateways")
            .iter()
            .find(|g| g["gateway"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    };
    assert_eq!(share("gw-a")["logins_succeeded"], 1);
    assert_eq!(share("gw-b")["logins_succeeded"], 2);
    assert_eq!(share("gw-b")["logins_failed"], 1);
    let (code, text, err) = audit(&["report", s(dir)]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("\nGateways\nGATEWAY"), "{text}");

    // query: alice's lines from both gateways, in time order.
    let (code, out, err) = audit(&["query", s(dir), "--user", "alice", "--json"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let gateways: HashSet<&str> = lines.iter().filter_map(|l| l["gateway"].as_str()).collect();
    assert_eq!(gateways, HashSet::from(["gw-a", "gw-b"]), "{out}");
    assert!(lines.iter().all(|l| l["user"] == "alice"), "{out}");
    let times: Vec<&str> = lines.iter().filter_map(|l| l["time"].as_str()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "in time order: {out}");
    let (code, table, _) = audit(&["query", s(dir), "--user", "alice", "--log", "auth"]);
    assert_eq!(code, 0);
    let first = table.lines().next().unwrap_or_default();
    assert!(first.starts_with("TIME"), "{table}");
    assert!(first.contains("GATEWAY"), "{table}");
    assert!(table.contains("gw-a") && table.contains("gw-b"), "{table}");

    // A record edited in gw-b's copy: gw-b is named broken, gw-a still intact.
    let copy = tempfile::tempdir().expect("auditor's copy");
    for name in ["gw-a", "gw-b"] {
        for file in [format!("auth-{name}.jsonl"), format!("auth-{name}.head")] {
            std::fs::copy(dir.join(&file), copy.path().join(&file)).expect("copy");
        }
    }
    let victim = copy.path().join("auth-gw-b.jsonl");
    let text = std::fs::read_to_string(&victim).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("\"failure\""))
        .expect("bob's failure")
        + 1;
    std::fs::write(&victim, text.replacen("\"failure\"", "\"success\"", 1)).unwrap();
    let (code, out, _) = audit(&["verify", s(copy.path())]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("gateway gw-a: chain intact"), "{out}");
    assert!(
        out.contains(&format!(
            "gateway gw-b: chain BROKEN at {}:{line}: record edited",
            s(&victim)
        )),
        "{out}"
    );
    assert!(
        out.contains("1 intact, 1 BROKEN or missing (gw-b)"),
        "{out}"
    );

    // gw-b's log lost entirely: its chain head still tells.
    std::fs::remove_file(&victim).unwrap();
    let (code, out, _) = audit(&["verify", s(copy.path())]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("gateway gw-b: chain MISSING"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_will_not_start_on_another_gateways_chain_but_restarts_on_its_own() {
    let upstream = Upstream::start().await;
    let shared = tempfile::tempdir().expect("shared log directory");
    let dir = shared.path();
    let mut a = gateway(dir, "gw-a", &upstream).await;
    a.client().must_login("https://app.test/", &ALICE).await;
    let before = wait_lines(&auth_log(dir, "gw-a"), 1, logins).await;
    // gw-b's configuration copied from gw-a's without changing the files.
    let mut b = gateway(dir, "gw-b", &upstream).await;
    b.signal("KILL");
    b.wait_exit(Duration::from_secs(10)).expect("gw-b stops");
    let wrong = b
        .config_text()
        .replace("auth-gw-b.head", "auth-gw-a.head")
        .replace("auth-gw-b.jsonl", "auth-gw-a.jsonl");
    b.write_config_text(&wrong);
    let mut serve = Command::new(portvakt_bin())
        .args(["serve", "--config"])
        .arg(b.config_path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn portvakt serve");
    let mut status = None;
    for _ in 0..100 {
        if let Ok(Some(st)) = serve.try_wait() {
            status = Some(st);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(status) = status else {
        let _ = serve.kill();
        let _ = serve.wait();
        panic!("gw-b kept running on gw-a's chain");
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut serve.stderr.take().expect("stderr"), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    assert!(
        err.contains(s(&dir.join("auth-gw-a.head"))),
        "names the file: {err}"
    );
    assert!(
        err.contains("belongs to gateway \"gw-a\", but this gateway is \"gw-b\" (audit.gateway"),
        "names the key: {err}"
    );
    assert_eq!(
        json_lines(&auth_log(dir, "gw-a")),
        before,
        "nothing of gw-b's in gw-a's chain"
    );

    // gw-a itself restarts (a crash) and continues its own chain.
    let prefix = |l: &Value| l["request_id"].as_str().map(|i| i[..16].to_owned());
    let earlier: HashSet<String> = json_lines(&access_log(dir, "gw-a"))
        .iter()
        .filter_map(prefix)
        .collect();
    assert_eq!(earlier.len(), 1, "one process, one prefix: {earlier:?}");
    a.restart().await;
    a.client().must_login("https://app.test/again", &BOB).await;
    wait_lines(&auth_log(dir, "gw-a"), 2, logins).await;
    let access = wait_lines(&access_log(dir, "gw-a"), 1, |l| l["path"] == "/again").await;
    let (code, out, err) = audit(&["verify", "-c", s(&a.config_path())]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("gateway gw-a: chain intact"), "{out}");
    assert!(out.contains("matches the chain head"), "{out}");

    // Ids after the restart are new ones: a new prefix, no repeats.
    let all: Vec<&str> = access
        .iter()
        .filter_map(|l| l["request_id"].as_str())
        .collect();
    let unique: HashSet<&&str> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "{all:?}");
    let again = access
        .iter()
        .find(|l| l["path"] == "/again")
        .and_then(prefix)
        .expect("the request after the restart");
    assert!(!earlier.contains(&again), "{again} reused: {all:?}");

    // Renaming it in the config and reloading (SIGHUP) keeps the name until
    // a restart: the running chain stays one gateway's.
    let renamed = a.config_text().replace("gateway: gw-a", "gateway: gw-c");
    a.write_config_text(&renamed);
    a.reload();
    until(
        "the reload warning",
        Duration::from_secs(5),
        Duration::from_millis(100),
        || {
            let warned = a.logs().contains("audit.gateway changed");
            async move { warned.then_some(()) }
        },
    )
    .await;
    a.client()
        .must_login("https://app.test/renamed", &ALICE)
        .await;
    let after = wait_lines(&auth_log(dir, "gw-a"), 3, logins).await;
    assert!(after.iter().all(|l| l["gateway"] == "gw-a"), "{after:#?}");
    let (code, out, err) = audit(&["verify", s(dir)]);
    assert_eq!(code, 0, "{out}{err}");
}
