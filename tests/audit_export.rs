//! An auditor's flow from the CLI: export a tenant's trail (JSONL and CSV, to a file and to
//! S3), verify it against the platform's public key, and see every kind of tampering named
//! at the first bad entry with a non-zero exit.
#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use support::graphql::{Backend, MASTER_KEY, Platform, platform};

fn cli(p: &Platform, args: &[&str]) -> Output {
    support::tenantry(&p.dir)
        .env("TENANTRY_MASTER_KEY", MASTER_KEY)
        .args(["--database-url", &p.database_url])
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

fn digest_of(file: &Path) -> PathBuf {
    PathBuf::from(format!("{}.digest.json", file.display()))
}

/// Verifying `file` (with `digest`, default beside it) fails, and the first finding says
/// `first`.
fn refused(p: &Platform, file: &Path, digest: Option<&Path>, first: &str) {
    let mut args = vec![
        "audit".to_owned(),
        "verify".to_owned(),
        file.display().to_string(),
    ];
    if let Some(d) = digest {
        args.extend(["--digest".to_owned(), d.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cli(p, &args);
    assert!(!out.status.success(), "verified: {}", stdout(&out));
    let text = stdout(&out);
    let finding = text.lines().nth(1).unwrap_or_default().trim();
    assert!(finding.contains(first), "expected {first:?}, got:\n{text}");
}

/// A copy of `file`'s lines, changed by `edit`, written beside it under `name` (its digest
/// copied beside it too).
fn tampered(file: &Path, name: &str, edit: impl FnOnce(&mut Vec<String>)) -> PathBuf {
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    edit(&mut lines);
    let copy = file.with_file_name(name);
    std::fs::write(&copy, lines.join("\n") + "\n").unwrap();
    std::fs::copy(digest_of(file), digest_of(&copy)).unwrap();
    copy
}

async fn an_auditor_exports_the_trail_and_every_tampering_is_named(backend: Backend) {
    let p = platform(backend, &[]).await;
    let ada = p.person("ada@example.com").await;
    let tenant = p.tenant(&ada, "acme").await;
    for name in ["Acme Two", "Acme Three", "Acme Four"] {
        p.api
            .ok(
                Some(&ada.token),
                "mutation($t: ID!, $n: String!) { renameTenant(tenantId: $t, name: $n) { position } }",
                json!({"t": tenant, "n": name}),
            )
            .await;
    }
    support::eventually("the renames in the trail", Duration::from_secs(20), || async {
        let log = p
            .api
            .ok(
                Some(&ada.token),
                "query($t: ID!) { tenant(id: $t) { auditLog(filter: {action: \"TenantRenamed\"}, first: 10) { edges { node { seq } } } } }",
                json!({"t": tenant}),
            )
            .await;
        (log["tenant"]["auditLog"]["edges"].as_array().unwrap().len() == 3).then_some(())
    })
    .await;

    // Export and verify, JSONL then CSV.
    let file = p.dir.join("trail.jsonl");
    let exported = ok(cli(
        &p,
        &[
            "audit",
            "export",
            "--tenant",
            &tenant,
            "--out",
            file.to_str().unwrap(),
        ],
    ));
    assert!(exported.starts_with("exported "), "{exported}");
    let verified = ok(cli(&p, &["audit", "verify", file.to_str().unwrap()]));
    assert!(verified.starts_with("OK: "), "{verified}");
    let text = std::fs::read_to_string(&file).unwrap();
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(entries.len() >= 5, "{text}");
    assert!(entries.iter().all(|e| e["tenant_id"] == json!(tenant)));
    let renamed: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "TenantRenamed")
        .collect();
    assert_eq!(renamed.len(), 3);
    assert_eq!(renamed[0]["actor_id"], json!(ada.user_id));
    assert_eq!(renamed[0]["actor_email"], "ada@example.com");

    let csv = p.dir.join("trail.csv");
    ok(cli(
        &p,
        &[
            "audit",
            "export",
            "--tenant",
            &tenant,
            "--format",
            "csv",
            "--out",
            csv.to_str().unwrap(),
        ],
    ));
    let verified = ok(cli(&p, &["audit", "verify", csv.to_str().unwrap()]));
    assert!(verified.starts_with("OK: "), "{verified}");

    // Another tenant's genuine export is refused when the tenant is named.
    let other_tenant = cli(
        &p,
        &[
            "audit",
            "verify",
            file.to_str().unwrap(),
            "--tenant",
            "01900000-0000-7000-8000-000000000001",
        ],
    );
    assert!(!other_tenant.status.success(), "{}", stdout(&other_tenant));
    assert!(stdout(&other_tenant).contains("the export is of tenant"));
    let own_tenant = cli(
        &p,
        &[
            "audit",
            "verify",
            file.to_str().unwrap(),
            "--tenant",
            &tenant,
        ],
    );
    assert!(own_tenant.status.success(), "{}", stdout(&own_tenant));

    // The public key printed by the CLI verifies it; another key does not.
    let key = ok(cli(&p, &["audit", "public-key"]));
    let key = key.trim();
    let pinned = cli(
        &p,
        &[
            "audit",
            "verify",
            file.to_str().unwrap(),
            "--public-key",
            key,
        ],
    );
    assert!(pinned.status.success(), "{}", stdout(&pinned));
    let other = cli(
        &p,
        &[
            "audit",
            "verify",
            file.to_str().unwrap(),
            "--public-key",
            "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=",
        ],
    );
    assert!(!other.status.success());
    assert!(
        stdout(&other).contains("signed by another key"),
        "{}",
        stdout(&other)
    );

    // Each digest names the one before it (the CSV export followed the JSONL one).
    let first_digest = std::fs::read(digest_of(&file)).unwrap();
    let second: Value = serde_json::from_slice(&std::fs::read(digest_of(&csv)).unwrap()).unwrap();
    let first_sha: String = Sha256::digest(&first_digest)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(second["previous_digest_sha256"], json!(first_sha));

    // One byte changed in the third entry.
    let changed = tampered(&file, "changed.jsonl", |lines| {
        lines[2] = lines[2].replacen("\"action\":\"", "\"action\":\"X", 1);
    });
    refused(
        &p,
        &changed,
        None,
        "entry seq 3 (line 3): its hash does not match",
    );
    // The second entry removed.
    let removed = tampered(&file, "removed.jsonl", |lines| {
        lines.remove(1);
    });
    refused(&p, &removed, None, "entry seq 3 (line 2): out of sequence");
    // The second and third swapped.
    let moved = tampered(&file, "moved.jsonl", |lines| lines.swap(1, 2));
    refused(&p, &moved, None, "entry seq 3 (line 2): out of sequence");
    // An entry inserted (the second, again).
    let inserted = tampered(&file, "inserted.jsonl", |lines| {
        let copy = lines[1].clone();
        lines.insert(2, copy);
    });
    refused(&p, &inserted, None, "entry seq 2 (line 3): out of sequence");
    // The last entry cut off: every entry left links, the digest's count and head do not.
    let cut = tampered(&file, "cut.jsonl", |lines| {
        lines.pop();
    });
    refused(&p, &cut, None, "the digest says");
    // Another export's digest (a genuine, signed one, taken after one more change) with
    // this file.
    p.api
        .ok(
            Some(&ada.token),
            "mutation($t: ID!) { renameTenant(tenantId: $t, name: \"Acme Five\") { position } }",
            json!({"t": tenant}),
        )
        .await;
    let later = p.dir.join("later.jsonl");
    support::eventually("a longer export", Duration::from_secs(20), || async {
        ok(cli(
            &p,
            &[
                "audit",
                "export",
                "--tenant",
                &tenant,
                "--out",
                later.to_str().unwrap(),
            ],
        ));
        let n = std::fs::read_to_string(&later).unwrap().lines().count();
        (n > entries.len()).then_some(())
    })
    .await;
    refused(&p, &file, Some(&digest_of(&later)), "the digest says");
    // The digest itself altered: its signature no longer holds.
    let mut digest: Value = serde_json::from_slice(&first_digest).unwrap();
    digest["entry_count"] = json!(1);
    let altered = p.dir.join("altered.digest.json");
    std::fs::write(&altered, serde_json::to_vec_pretty(&digest).unwrap()).unwrap();
    refused(
        &p,
        &file,
        Some(&altered),
        "the digest's signature does not verify",
    );
}

on_both!(an_auditor_exports_the_trail_and_every_tampering_is_named);

/// An export to S3 (moto, path-style), read back and verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_to_s3_arrives_whole_and_verifies() {
    let p = platform(Backend::Sqlite, &[]).await;
    let ada = p.person("ada@example.com").await;
    let tenant = p.tenant(&ada, "acme").await;
    support::eventually("the tenant in the trail", Duration::from_secs(20), || async {
        let log = p
            .api
            .ok(
                Some(&ada.token),
                "query($t: ID!) { tenant(id: $t) { auditLog(first: 10) { edges { node { seq } } } } }",
                json!({"t": tenant}),
            )
            .await;
        (!log["tenant"]["auditLog"]["edges"].as_array().unwrap().is_empty()).then_some(())
    })
    .await;
    let moto = infra::testing::Moto::start().await;
    let client = moto.bucket("compliance").await;
    let out = support::tenantry(&p.dir)
        .env("TENANTRY_MASTER_KEY", MASTER_KEY)
        .env("AWS_ACCESS_KEY_ID", infra::testing::MOTO_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", infra::testing::MOTO_SECRET)
        .args(["--database-url", &p.database_url])
        .args([
            "audit",
            "export",
            "--tenant",
            &tenant,
            "--out",
            "s3://compliance/acme/",
        ])
        .args(["--s3-endpoint", &moto.url()])
        .output()
        .unwrap();
    let printed = ok(out);
    let listed = client
        .list_objects_v2()
        .bucket("compliance")
        .prefix("acme/")
        .send()
        .await
        .unwrap();
    let keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let data_key = keys.iter().find(|k| k.ends_with(".jsonl")).unwrap();
    assert!(
        printed.contains(&format!("s3://compliance/{data_key}")),
        "{printed}"
    );
    for key in &keys {
        let body = client
            .get_object()
            .bucket("compliance")
            .key(key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        let local = p.dir.join(key.rsplit('/').next().unwrap());
        std::fs::write(local, body).unwrap();
    }
    let local = p.dir.join(data_key.rsplit('/').next().unwrap());
    let verified = ok(cli(&p, &["audit", "verify", local.to_str().unwrap()]));
    assert!(verified.starts_with("OK: "), "{verified}");
}

const EXPORTS: &str = "query($t: ID!) { tenant(id: $t) { auditExports { id status format entryCount digestSha256 downloadUrl error progress { done total } } } }";

/// The same flow through GraphQL: an owner asks for an export, follows the job, downloads
/// the entries and the digest, and they verify against the key GraphQL publishes. Members
/// can do none of it; every read of the trail is itself in the trail; operators read any
/// tenant's trail.
async fn an_owner_exports_through_graphql_and_downloads(backend: Backend) {
    let p = platform(backend, &[]).await;
    let ada = p.person("ada@example.com").await;
    let bob = p.person("bob@example.com").await;
    let tenant = p.tenant(&ada, "acme").await;
    p.join(&ada, &tenant, &bob, "MEMBER").await;

    let asked = p
        .api
        .ok(
            Some(&ada.token),
            "mutation($t: ID!) { exportAuditLog(tenantId: $t, format: CSV) { export { id status } position } }",
            json!({"t": tenant}),
        )
        .await;
    let id = asked["exportAuditLog"]["export"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = support::eventually("the export done", Duration::from_secs(30), || async {
        let exports = p
            .api
            .ok(Some(&ada.token), EXPORTS, json!({"t": tenant}))
            .await;
        let export = exports["tenant"]["auditExports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == json!(id))
            .cloned()
            .unwrap();
        assert_ne!(export["status"], "FAILED", "{export}");
        (export["status"] == "DONE").then_some(export)
    })
    .await;
    assert_eq!(done["format"], "CSV");
    assert!(done["entryCount"].as_u64().unwrap() >= 3, "{done}");
    let path = format!("/audit/exports/{tenant}/{id}");
    assert!(
        done["downloadUrl"].as_str().unwrap().ends_with(&path),
        "{done}"
    );

    // Downloaded with the owner's session: entries and digest verify against the key
    // GraphQL publishes.
    let client = reqwest::Client::new();
    let fetch = async |token: &str, suffix: &str| {
        client
            .get(format!("{}{path}{suffix}", p.server.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    };
    let entries = fetch(&ada.token, "").await;
    assert_eq!(entries.status(), 200);
    let entries = entries.bytes().await.unwrap();
    let digest = fetch(&ada.token, "/digest").await.bytes().await.unwrap();
    let file = p.dir.join("downloaded.csv");
    std::fs::write(&file, &entries).unwrap();
    std::fs::write(digest_of(&file), &digest).unwrap();
    let key = p.api.ok(None, "{ auditPublicKey }", json!({})).await["auditPublicKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let verified = support::tenantry(&p.dir)
        .args([
            "audit",
            "verify",
            file.to_str().unwrap(),
            "--public-key",
            &key,
        ])
        .output()
        .unwrap();
    assert!(verified.status.success(), "{}", stdout(&verified));
    let digest: Value = serde_json::from_slice(&digest).unwrap();
    assert_eq!(digest["public_key"], json!(key));
    let text = String::from_utf8_lossy(&entries);
    assert!(
        text.contains("ada@example.com"),
        "the actor's e-mail is shown"
    );

    // A member can neither ask for an export nor download one.
    let refused = p
        .api
        .gql(
            Some(&bob.token),
            "mutation($t: ID!) { exportAuditLog(tenantId: $t) { position } }",
            json!({"t": tenant}),
        )
        .await;
    assert_eq!(support::graphql::code(&refused), Some("FORBIDDEN"));
    assert_eq!(fetch(&bob.token, "").await.status(), 403);
    assert_eq!(fetch("not-a-token", "").await.status(), 401);

    // Reading the trail is recorded in it, with who read it; entries show the actor's
    // e-mail.
    let log = "query($t: ID!) { tenant(id: $t) { auditLog(filter: {action: \"LogRead\"}, first: 5) { edges { node { actorId actorEmail } } } } }";
    let reads = support::eventually("the read in the trail", Duration::from_secs(20), || async {
        let data = p.api.ok(Some(&ada.token), log, json!({"t": tenant})).await;
        let edges = data["tenant"]["auditLog"]["edges"]
            .as_array()
            .unwrap()
            .clone();
        (!edges.is_empty()).then_some(edges)
    })
    .await;
    assert_eq!(reads[0]["node"]["actorId"], json!(ada.user_id));
    assert_eq!(reads[0]["node"]["actorEmail"], "ada@example.com");

    // Operators read any tenant's trail (and the platform's own); others are refused.
    let operator = p.person(support::graphql::OPERATOR).await;
    let platform_log =
        "query($t: ID) { platformAuditLog(tenantId: $t, first: 50) { edges { node { action } } } }";
    let seen = p
        .api
        .ok(Some(&operator.token), platform_log, json!({"t": tenant}))
        .await;
    let actions: Vec<&str> = seen["platformAuditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"TenantProvisioned"), "{actions:?}");
    p.api
        .ok(Some(&operator.token), platform_log, json!({"t": null}))
        .await;
    let refused = p
        .api
        .gql(Some(&ada.token), platform_log, json!({"t": tenant}))
        .await;
    assert_eq!(support::graphql::code(&refused), Some("FORBIDDEN"));
}

mod graphql_flow {
    use super::*;
    on_both!(an_owner_exports_through_graphql_and_downloads);
}

/// Retention: entries older than the tenant's setting (bounded by the plan) are archived
/// with a signed digest and cut from the trail; the archive and what remains both verify,
/// and the remainder's digest continues the archive's chain.
async fn entries_beyond_retention_are_archived_and_the_rest_still_verifies(backend: Backend) {
    // A retention "day" of 2 s, checked every second.
    let p = platform(
        backend,
        &[
            "--audit-retention-day-seconds",
            "2",
            "--audit-archive-check-seconds",
            "1",
        ],
    )
    .await;
    let ada = p.person("ada@example.com").await;
    let tenant = p.tenant(&ada, "acme").await;
    let set = "mutation($t: ID!, $d: Int) { setAuditRetention(tenantId: $t, days: $d) { retention { days archivedUpTo } } }";
    // The free plan keeps entries 7 days at most.
    for days in [json!(30), Value::Null] {
        let refused = p
            .api
            .gql(Some(&ada.token), set, json!({"t": tenant, "d": days}))
            .await;
        assert_eq!(
            support::graphql::code(&refused),
            Some("PLAN_LIMIT_EXCEEDED"),
            "{refused}"
        );
    }
    let zero = p
        .api
        .gql(Some(&ada.token), set, json!({"t": tenant, "d": 0}))
        .await;
    assert_eq!(support::graphql::code(&zero), Some("BAD_USER_INPUT"));
    let set_one = p
        .api
        .ok(Some(&ada.token), set, json!({"t": tenant, "d": 1}))
        .await;
    assert_eq!(set_one["setAuditRetention"]["retention"]["days"], 1);

    let retention = "query($t: ID!) { tenant(id: $t) { auditRetention { days archivedUpTo } } }";
    let archived_up_to = support::eventually("an archive", Duration::from_secs(30), || async {
        let data = p
            .api
            .ok(Some(&ada.token), retention, json!({"t": tenant}))
            .await;
        let up_to = data["tenant"]["auditRetention"]["archivedUpTo"]
            .as_i64()
            .unwrap();
        (up_to > 0).then_some(up_to)
    })
    .await;

    // The trail starts after the cut (once the read model has applied it).
    support::eventually("the cut in the trail", Duration::from_secs(20), || async {
        let oldest = p
            .api
            .ok(
                Some(&ada.token),
                "query($t: ID!) { tenant(id: $t) { auditLog(first: 100) { edges { node { seq } } } } }",
                json!({"t": tenant}),
            )
            .await;
        let seqs: Vec<i64> = oldest["tenant"]["auditLog"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["seq"].as_i64().unwrap())
            .collect();
        (!seqs.is_empty() && seqs.iter().all(|s| *s > archived_up_to)).then_some(())
    })
    .await;

    // The archive is an export: download it and verify it.
    let exports = p
        .api
        .ok(Some(&ada.token), EXPORTS, json!({"t": tenant}))
        .await;
    let archive = exports["tenant"]["auditExports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["status"] == "DONE")
        .cloned()
        .unwrap();
    let url = archive["downloadUrl"].as_str().unwrap();
    let path = &url[url.find("/audit/exports/").unwrap()..];
    let client = reqwest::Client::new();
    let get = async |suffix: &str| {
        client
            .get(format!("{}{path}{suffix}", p.server.base))
            .bearer_auth(&ada.token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    };
    let archived = p.dir.join("archive.jsonl");
    std::fs::write(&archived, get("").await).unwrap();
    let archive_digest_bytes = get("/digest").await;
    std::fs::write(digest_of(&archived), &archive_digest_bytes).unwrap();
    let verified = ok(cli(&p, &["audit", "verify", archived.to_str().unwrap()]));
    assert!(verified.starts_with("OK: "), "{verified}");
    let archive_digest: Value = serde_json::from_slice(&archive_digest_bytes).unwrap();
    assert_eq!(archive_digest["last_seq"], json!(archived_up_to));

    // What remains exports and verifies, and continues the archive's chain.
    let rest = p.dir.join("rest.jsonl");
    ok(cli(
        &p,
        &[
            "audit",
            "export",
            "--tenant",
            &tenant,
            "--out",
            rest.to_str().unwrap(),
        ],
    ));
    let verified = ok(cli(&p, &["audit", "verify", rest.to_str().unwrap()]));
    assert!(verified.starts_with("OK: "), "{verified}");
    let rest_digest: Value =
        serde_json::from_slice(&std::fs::read(digest_of(&rest)).unwrap()).unwrap();
    assert_eq!(rest_digest["first_seq"], json!(archived_up_to + 1));
    assert_eq!(rest_digest["chain_prev"], archive_digest["chain_head"]);
}

mod retention {
    use super::*;
    on_both!(entries_beyond_retention_are_archived_and_the_rest_still_verifies);
}
