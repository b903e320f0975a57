//! GDPR erasure, end to end: a member deletes their account, an operator forgets another
//! person; from then on their e-mail is nowhere (every table of the database, before and
//! after a rebuild of every read model from scratch), entries and exports show `erased`,
//! billing figures do not change; the last owner cannot delete their account; a person's
//! data comes out as one JSON document.
#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::graphql::{Backend, MASTER_KEY, OPERATOR, PASSWORD, Platform, code, platform};

/// Every table's text, for a search: the SQLite database files' bytes, or each PostgreSQL
/// table as text.
async fn everything_stored(p: &Platform) -> String {
    if let Some(path) = p.database_url.strip_prefix("sqlite://") {
        let mut all = Vec::new();
        for suffix in ["", "-wal"] {
            if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                all.extend(bytes);
            }
        }
        return String::from_utf8_lossy(&all).into_owned();
    }
    let pool = sqlx::PgPool::connect(&p.database_url).await.unwrap();
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut all = String::new();
    for (table,) in tables {
        let rows: Vec<(Option<String>,)> = sqlx::query_as(&format!(
            "SELECT string_agg(t::text, ' ') FROM \"{table}\" t"
        ))
        .fetch_all(&pool)
        .await
        .unwrap();
        for (text,) in rows {
            all.push_str(&text.unwrap_or_default());
        }
    }
    all
}

const BILLING: &str = "query($t: ID!) { tenant(id: $t) { plan features subscription { plan status currentPeriodEnd } entitlements { key limit used percent } } }";
const MEMBERS: &str =
    "query($t: ID!) { tenant(id: $t) { members(first: 50) { edges { node { userId email } } } } }";
const BY_ACTOR: &str = "query($t: ID!, $a: String) { tenant(id: $t) { auditLog(filter: {actor: $a}, first: 50) { edges { node { actorEmail sourceIp action } } } } }";

/// The billing figures: plan, features, subscription and entitlements, but for the member
/// count (Bob left: that one moves, and must).
fn figures(billing: &Value) -> Value {
    let mut billing = billing["tenant"].clone();
    billing["entitlements"] = Value::Array(
        billing["entitlements"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["key"] != "MEMBERS")
            .cloned()
            .collect(),
    );
    billing
}

fn cli(p: &Platform, args: &[&str]) -> std::process::Output {
    support::tenantry(&p.dir)
        .env("TENANTRY_MASTER_KEY", MASTER_KEY)
        .args(["--database-url", &p.database_url])
        .args(args)
        .output()
        .unwrap()
}

async fn erased_everywhere(p: &Platform, ada: &str, tenant: &str, bob: &str, carol: &str) {
    // Members: bob left; carol's address reads as erased (null).
    let members = p.api.ok(Some(ada), MEMBERS, json!({"t": tenant})).await;
    let members = members["tenant"]["members"]["edges"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        members.iter().all(|m| m["node"]["userId"] != json!(bob)),
        "{members:?}"
    );
    let carol_row = members
        .iter()
        .find(|m| m["node"]["userId"] == json!(carol))
        .unwrap();
    assert!(carol_row["node"]["email"].is_null(), "{carol_row}");
    // The trail keeps their actions, with the e-mail shown as erased.
    for who in [bob, carol] {
        let log = p
            .api
            .ok(Some(ada), BY_ACTOR, json!({"t": tenant, "a": who}))
            .await;
        let edges = log["tenant"]["auditLog"]["edges"]
            .as_array()
            .unwrap()
            .clone();
        assert!(!edges.is_empty(), "{who}'s actions are still in the trail");
        assert!(
            edges.iter().all(|e| e["node"]["actorEmail"] == "erased"),
            "{edges:?}"
        );
        assert!(
            edges
                .iter()
                .all(|e| e["node"]["sourceIp"].is_null() || e["node"]["sourceIp"] == "erased"),
            "{edges:?}"
        );
    }
    // Nowhere in the database in plain text (a control: the tenant's name is).
    let stored = everything_stored(p).await;
    assert!(
        stored.contains("Erasure Test Co"),
        "the search reads the tables"
    );
    for gone in ["bob@example.com", "carol@example.com"] {
        assert!(!stored.contains(gone), "{gone} is stored somewhere");
    }
}

async fn an_erased_person_is_nowhere_and_no_figure_changes(backend: Backend) {
    let p = platform(backend, &[]).await;
    let ada = p.person("ada@example.com").await;
    let bob = p.person("bob@example.com").await;
    let carol = p.person("carol@example.com").await;
    let operator = p.person(OPERATOR).await;
    let tenant = p.tenant(&ada, "erasure").await;
    p.api
        .ok(
            Some(&ada.token),
            "mutation($t: ID!) { renameTenant(tenantId: $t, name: \"Erasure Test Co\") { position } }",
            json!({"t": tenant}),
        )
        .await;
    p.join(&ada, &tenant, &bob, "ADMIN").await;
    p.join(&ada, &tenant, &carol, "MEMBER").await;
    // Bob acts in the tenant, so the trail holds his actions.
    p.api
        .ok(
            Some(&bob.token),
            "mutation($t: ID!) { setWebhookEndpoint(tenantId: $t, url: \"https://hooks.example.com/x\") { position } }",
            json!({"t": tenant}),
        )
        .await;
    // Usage recorded by Bob (bandwidth and data points): figures erasure must not move.
    p.api
        .ok(
            Some(&bob.token),
            "mutation($t: ID!, $e: [UsageEventInput!]!) { recordUsage(tenantId: $t, events: $e) { counted } }",
            json!({"t": tenant, "e": [
                {"id": "u1", "meter": "bandwidth.bytes", "value": 1_500_000},
                {"id": "u2", "meter": "pipeline.datapoints", "value": 42},
            ]}),
        )
        .await;
    let billing_before =
        support::eventually("the usage counted", Duration::from_secs(20), || async {
            let billing = figures(
                &p.api
                    .ok(Some(&ada.token), BILLING, json!({"t": tenant}))
                    .await,
            );
            billing.to_string().contains("1500000").then_some(billing)
        })
        .await;
    // Before: the addresses are shown.
    let members = p
        .api
        .ok(Some(&ada.token), MEMBERS, json!({"t": tenant}))
        .await;
    assert!(members.to_string().contains("bob@example.com"), "{members}");

    // Bob's own data, as he would ask for it.
    let mine = p
        .api
        .ok(Some(&bob.token), "{ exportSubjectData }", json!({}))
        .await;
    let mine: Value = serde_json::from_str(mine["exportSubjectData"].as_str().unwrap()).unwrap();
    assert_eq!(mine["subject"]["email"], "bob@example.com");
    assert_eq!(mine["memberships"][0]["tenant_id"], json!(tenant));
    assert_eq!(mine["memberships"][0]["role"], "admin");
    assert!(
        !mine["audit_entries_as_actor"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{mine}"
    );
    // Nobody else's: only operators ask for another person's.
    let refused = p
        .api
        .gql(
            Some(&carol.token),
            "query($u: ID) { exportSubjectData(userId: $u) }",
            json!({"u": bob.user_id}),
        )
        .await;
    assert_eq!(code(&refused), Some("FORBIDDEN"));

    // The last owner cannot go; a wrong password deletes nothing.
    let delete = "mutation($p: String!) { deleteAccount(password: $p) { position } }";
    let last = p
        .api
        .gql(Some(&ada.token), delete, json!({"p": PASSWORD}))
        .await;
    assert_eq!(code(&last), Some("CONFLICT"), "{last}");
    assert!(
        last.to_string().contains(&tenant),
        "names the tenant: {last}"
    );
    let wrong = p
        .api
        .gql(Some(&bob.token), delete, json!({"p": "not the password"}))
        .await;
    assert_eq!(code(&wrong), Some("UNAUTHENTICATED"));

    // Bob deletes his account; an operator forgets Carol.
    p.api
        .ok(Some(&bob.token), delete, json!({"p": PASSWORD}))
        .await;
    let after = p
        .api
        .gql(Some(&bob.token), "{ me { id } }", json!({}))
        .await;
    assert_eq!(
        code(&after),
        Some("UNAUTHENTICATED"),
        "his session ended: {after}"
    );
    let forget = "mutation($u: ID!) { forgetSubject(userId: $u) { position } }";
    let not_yours = p
        .api
        .gql(Some(&ada.token), forget, json!({"u": carol.user_id}))
        .await;
    assert_eq!(code(&not_yours), Some("FORBIDDEN"));
    p.api
        .ok(Some(&operator.token), forget, json!({"u": carol.user_id}))
        .await;
    // A forgotten person's account cannot be used any more: sessions ended, no log-in.
    let carol_after = p
        .api
        .gql(Some(&carol.token), "{ me { id } }", json!({}))
        .await;
    assert_eq!(code(&carol_after), Some("UNAUTHENTICATED"), "{carol_after}");
    let log_in = p
        .api
        .gql(
            None,
            "mutation($e: String!, $p: String!) { logIn(input: {email: $e, password: $p}) { token } }",
            json!({"e": "carol@example.com", "p": PASSWORD}),
        )
        .await;
    assert_eq!(code(&log_in), Some("UNAUTHENTICATED"), "{log_in}");

    support::eventually(
        "bob gone from the members",
        Duration::from_secs(20),
        || async {
            let members = p
                .api
                .ok(Some(&ada.token), MEMBERS, json!({"t": tenant}))
                .await;
            (!members.to_string().contains(&bob.user_id)).then_some(())
        },
    )
    .await;
    erased_everywhere(&p, &ada.token, &tenant, &bob.user_id, &carol.user_id).await;
    let billing_after = figures(
        &p.api
            .ok(Some(&ada.token), BILLING, json!({"t": tenant}))
            .await,
    );
    assert_eq!(billing_before, billing_after, "no billing figure changed");

    // What the operator gets for Bob now.
    let theirs = p
        .api
        .ok(
            Some(&operator.token),
            "query($u: ID) { exportSubjectData(userId: $u) }",
            json!({"u": bob.user_id}),
        )
        .await;
    let theirs: Value =
        serde_json::from_str(theirs["exportSubjectData"].as_str().unwrap()).unwrap();
    assert_eq!(theirs["subject"]["email"], "erased");
    assert!(theirs["subject"]["deleted_at"].is_string());

    // An export shows them erased, and still verifies.
    let file = p.dir.join("after-erasure.jsonl");
    let out = cli(
        &p,
        &[
            "audit",
            "export",
            "--tenant",
            &tenant,
            "--out",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("bob@example.com") && !text.contains("carol@example.com"));
    assert!(text.contains("\"actor_email\":\"erased\""), "{text}");
    let verified = cli(&p, &["audit", "verify", file.to_str().unwrap()]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );

    // Every read model rebuilt from the log: the same.
    for model in [
        "tenant_access",
        "audit",
        "billing",
        "usage",
        "tenant_directory",
    ] {
        let out = cli(&p, &["projections", "rebuild", model]);
        assert!(
            out.status.success(),
            "{model}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    erased_everywhere(&p, &ada.token, &tenant, &bob.user_id, &carol.user_id).await;
    let billing_rebuilt = figures(
        &p.api
            .ok(Some(&ada.token), BILLING, json!({"t": tenant}))
            .await,
    );
    assert_eq!(billing_before, billing_rebuilt, "no billing figure changed");

    // Closing the tenant takes its members, invites and keys out of the read models; then
    // its last owner may go.
    p.api
        .ok(
            Some(&ada.token),
            "mutation($t: ID!) { createApiKey(tenantId: $t, name: \"ci\", scope: READ_ONLY) { secret } }",
            json!({"t": tenant}),
        )
        .await;
    p.api
        .ok(
            Some(&ada.token),
            "mutation($t: ID!) { closeTenant(tenantId: $t) { position } }",
            json!({"t": tenant}),
        )
        .await;
    let db = infra::database::Database::open(
        &p.database_url,
        &infra::database::DatabaseOptions::default(),
    )
    .await
    .unwrap()
    .read_db();
    let scope = projections::tenant_access::TenantScope::from(
        &domain::access::Authorized::platform_operator(domain::ids::TenantId::from_uuid(
            uuid::Uuid::parse_str(&tenant).unwrap(),
        )),
    );
    support::eventually(
        "the closed tenant's access gone",
        Duration::from_secs(20),
        || async {
            let members = projections::tenant_access::TenantAccessDirectory::members(&db, &[scope])
                .await
                .unwrap();
            let keys = projections::tenant_access::TenantAccessDirectory::api_keys(&db, &[scope])
                .await
                .unwrap();
            (members.is_empty() && keys.is_empty()).then_some(())
        },
    )
    .await;
    p.api
        .ok(Some(&ada.token), delete, json!({"p": PASSWORD}))
        .await;
}

on_both!(an_erased_person_is_nowhere_and_no_figure_changes);
