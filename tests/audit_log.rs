//! The audit trail through the server: an owner's changes appear in `auditLog` with who
//! made them, newest first, hash-linked, filterable and paged; members cannot read it.
#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::graphql::{Backend, code, platform};

const LOG: &str = "query($t: ID!, $f: AuditLogFilter, $n: Int, $a: String) { tenant(id: $t) { auditLog(filter: $f, first: $n, after: $a) { pageInfo { hasNextPage endCursor } edges { node { seq action actorKind actorId targetKind targetId sourceIp outcome prevHash hash } } } } }";

async fn an_owners_changes_are_in_the_trail_with_who_made_them(backend: Backend) {
    let p = platform(backend, &[]).await;
    let ada = p.person("ada@example.com").await;
    let bob = p.person("bob@example.com").await;
    let tenant = p.tenant(&ada, "acme").await;
    p.join(&ada, &tenant, &bob, "MEMBER").await;
    p.api
        .ok(
            Some(&ada.token),
            "mutation($t: ID!) { renameTenant(tenantId: $t, name: \"Acme Two\") { position } }",
            json!({"t": tenant}),
        )
        .await;
    let log = async |filter: Value, first: i64, after: Value| {
        p.api
            .ok(
                Some(&ada.token),
                LOG,
                json!({"t": tenant, "f": filter, "n": first, "a": after}),
            )
            .await["tenant"]["auditLog"]
            .clone()
    };
    let renamed = support::eventually(
        "the rename in the trail",
        Duration::from_secs(20),
        || async {
            let page = log(json!({"action": "TenantRenamed"}), 10, Value::Null).await;
            let edges = page["edges"].as_array().unwrap().clone();
            (!edges.is_empty()).then_some(edges)
        },
    )
    .await;
    let entry = &renamed[0]["node"];
    assert_eq!(entry["actorKind"], "user");
    assert_eq!(entry["actorId"], json!(ada.user_id));
    assert_eq!(entry["targetKind"], "tenant");
    assert_eq!(entry["targetId"], json!(tenant));
    assert_eq!(entry["outcome"], "ok");
    assert_eq!(
        entry["sourceIp"], "127.0.0.1",
        "opened from its sealed form"
    );

    // The whole trail, newest first, two at a time: each entry links to the one before.
    let mut all = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = log(Value::Null, 2, after.clone()).await;
        all.extend(
            page["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"].clone()),
        );
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    let seqs: Vec<i64> = all.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    let n = i64::try_from(all.len()).unwrap();
    assert_eq!(
        seqs,
        (1..=n).rev().collect::<Vec<_>>(),
        "every entry once, newest first"
    );
    for pair in all.windows(2) {
        assert_eq!(pair[0]["prevHash"], pair[1]["hash"]);
    }
    assert!(
        all.iter().any(|e| e["action"] == "TenantProvisioned"),
        "{all:?}"
    );

    // Members do not read it; a bad range is refused.
    let refused = p.api.gql(Some(&bob.token), LOG, json!({"t": tenant})).await;
    assert_eq!(code(&refused), Some("FORBIDDEN"));
    let bad = p
        .api
        .gql(
            Some(&ada.token),
            LOG,
            json!({"t": tenant, "f": {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}}),
        )
        .await;
    assert_eq!(code(&bad), Some("BAD_USER_INPUT"));
}

on_both!(an_owners_changes_are_in_the_trail_with_who_made_them);

/// Refusals that matter to security are entries: a member refused in the tenant's trail, a
/// failed log-in and a rate limit hit in the platform's (operators read it).
async fn refusals_that_matter_to_security_are_entries(backend: Backend) {
    let p = platform(backend, &["--auth-attempts-per-minute", "12"]).await;
    let ada = p.person("ada@example.com").await;
    let bob = p.person("bob@example.com").await;
    let operator = p.person(support::graphql::OPERATOR).await;
    let tenant = p.tenant(&ada, "acme").await;
    p.join(&ada, &tenant, &bob, "MEMBER").await;
    let refused = p
        .api
        .gql(
            Some(&bob.token),
            "mutation($t: ID!) { renameTenant(tenantId: $t, name: \"Mine\") { position } }",
            json!({"t": tenant}),
        )
        .await;
    assert_eq!(code(&refused), Some("FORBIDDEN"));
    let log = "query($t: ID!) { tenant(id: $t) { auditLog(filter: {action: \"RequestRefused\"}, first: 10) { edges { node { actorId outcome } } } } }";
    let entries = support::eventually(
        "the refusal in the trail",
        Duration::from_secs(20),
        || async {
            let data = p.api.ok(Some(&ada.token), log, json!({"t": tenant})).await;
            let edges = data["tenant"]["auditLog"]["edges"]
                .as_array()
                .unwrap()
                .clone();
            (!edges.is_empty()).then_some(edges)
        },
    )
    .await;
    assert_eq!(entries[0]["node"]["actorId"], json!(bob.user_id));
    assert_eq!(entries[0]["node"]["outcome"], "refused");

    // Failed log-ins until the limit: both in the platform's trail.
    let mut limited = false;
    for _ in 0..20 {
        let answer = p
            .api
            .gql(
                None,
                "mutation { logIn(input: {email: \"ada@example.com\", password: \"wrong wrong wrong\"}) { token } }",
                json!({}),
            )
            .await;
        if code(&answer) == Some("RATE_LIMITED") {
            limited = true;
            break;
        }
    }
    assert!(limited, "the log-in limit was never reached");
    let platform_log = "{ platformAuditLog(filter: {action: \"RequestRefused\"}, first: 50) { edges { node { outcome actorKind } } } }";
    support::eventually(
        "the platform's refusals",
        Duration::from_secs(20),
        || async {
            let data = p
                .api
                .ok(Some(&operator.token), platform_log, json!({}))
                .await;
            let edges = data["platformAuditLog"]["edges"]
                .as_array()
                .unwrap()
                .clone();
            (edges.len() >= 2 && edges.iter().all(|e| e["node"]["outcome"] == "refused"))
                .then_some(())
        },
    )
    .await;
}

mod refusals {
    use super::*;
    on_both!(refusals_that_matter_to_security_are_entries);
}
