//! Plans, subscriptions and entitlements through the real server, in local mode (no payment
//! provider): operators publish plans, owners subscribe and change plans, admins read,
//! members and API keys are held to the plan's limits exactly, operators override a limit.

#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use serde_json::{Value, json};
use support::graphql::{Backend, OPERATOR, Person, Platform, code, platform};

const PUBLISH: &str = "mutation($i: PlanInput!) { publishPlan(input: $i) { plan { key version name trialDays retired limits { key limit } } position } }";
const SUBSCRIBE: &str = "mutation($t: ID!, $p: String!) { subscribe(tenantId: $t, plan: $p) { subscription { plan status trialEndsAt currentPeriodEnd cancelAt } } }";
const BILLING: &str = "query($t: ID!) { tenant(id: $t) { plan features subscription { plan status trialEndsAt currentPeriodEnd cancelAt scheduledPlan } entitlements { key limit used percent overridden } } }";

fn plan(key: &str, amount: i64, members: u64, api_keys: u64) -> Value {
    json!({
        "key": key,
        "name": key.to_uppercase(),
        "prices": [{"interval": "MONTH", "amount": amount, "currency": "eur"}],
        "trialDays": 14,
        "limits": [
            {"key": "MEMBERS", "limit": members},
            {"key": "API_KEYS", "limit": api_keys},
            {"key": "SOURCES", "limit": 10}
        ],
        "features": ["audit_export"],
    })
}

async fn operator(p: &Platform) -> Person {
    p.person(OPERATOR).await
}

fn entitlement<'a>(data: &'a Value, key: &str) -> &'a Value {
    data["tenant"]["entitlements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == key)
        .unwrap()
}

async fn plans_are_published_by_operators_and_read_by_everyone(backend: Backend) {
    let p = platform(backend, &[]).await;
    let op = operator(&p).await;
    let ada = p.person("ada@example.com").await;
    let published = p
        .api
        .ok(
            Some(&op.token),
            PUBLISH,
            json!({"i": plan("pro", 2_900, 3, 5)}),
        )
        .await;
    assert_eq!(published["publishPlan"]["plan"]["version"], 1);
    // The same content again: nothing new; a change: version 2, version 1 unchanged.
    let again = p
        .api
        .ok(
            Some(&op.token),
            PUBLISH,
            json!({"i": plan("pro", 2_900, 3, 5)}),
        )
        .await;
    assert_eq!(again["publishPlan"]["plan"]["version"], 1);
    let changed = p
        .api
        .ok(
            Some(&op.token),
            PUBLISH,
            json!({"i": plan("pro", 3_900, 3, 5)}),
        )
        .await;
    assert_eq!(changed["publishPlan"]["plan"]["version"], 2);

    // Anyone reads the catalog, with the free plan every platform has.
    let plans = p
        .api
        .ok(
            None,
            "{ plans { key version prices { amount currency interval } } }",
            json!({}),
        )
        .await;
    let keys: Vec<&str> = plans["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["free", "pro"]);

    // Not an operator: FORBIDDEN, nothing written. Bad drafts: the field named.
    let head = p.api.head().await;
    let forbidden = p
        .api
        .gql(
            Some(&ada.token),
            PUBLISH,
            json!({"i": plan("mine", 0, 1, 1)}),
        )
        .await;
    assert_eq!(code(&forbidden), Some("FORBIDDEN"), "{forbidden}");
    let retire = "mutation { retirePlan(plan: \"pro\") { plan { retired } } }";
    assert_eq!(
        code(&p.api.gql(Some(&ada.token), retire, json!({})).await),
        Some("FORBIDDEN")
    );
    let mut negative = plan("cheap", -1, 1, 1);
    negative["prices"][0]["amount"] = json!(-1);
    let mut mixed = plan("mixed", 100, 1, 1);
    mixed["prices"]
        .as_array_mut()
        .unwrap()
        .push(json!({"interval": "YEAR", "amount": 1000, "currency": "usd"}));
    for (draft, field) in [
        (negative, "prices"),
        (mixed, "prices"),
        (plan("Bad Key", 100, 1, 1), "key"),
    ] {
        let refused = p
            .api
            .gql(Some(&op.token), PUBLISH, json!({"i": draft}))
            .await;
        assert_eq!(code(&refused), Some("BAD_USER_INPUT"), "{refused}");
        assert_eq!(
            refused["errors"][0]["extensions"]["field"], field,
            "{refused}"
        );
    }
    support::graphql::assert_only_refusals_recorded(&p.database_url, head).await;

    // Retired: listed as such, and takes no new subscriptions.
    let retired = p.api.ok(Some(&op.token), retire, json!({})).await;
    assert_eq!(retired["retirePlan"]["plan"]["retired"], true);
    let tenant = p.tenant(&ada, "acme").await;
    let refused = p
        .api
        .gql(
            Some(&ada.token),
            SUBSCRIBE,
            json!({"t": tenant, "p": "pro"}),
        )
        .await;
    assert_eq!(code(&refused), Some("BAD_USER_INPUT"), "{refused}");
}

async fn owners_subscribe_admins_read_and_limits_follow_the_plan(backend: Backend) {
    let p = platform(backend, &[]).await;
    let op = operator(&p).await;
    // A free plan of two members (a new version of the one every platform starts with).
    for (key, amount, members) in [("free", 0, 2), ("pro", 2_900, 3), ("business", 9_900, 50)] {
        p.api
            .ok(
                Some(&op.token),
                PUBLISH,
                json!({"i": plan(key, amount, members, 5)}),
            )
            .await;
    }
    let ada = p.person("ada@example.com").await;
    let bob = p.person("bob@example.com").await;
    let carol = p.person("carol@example.com").await;
    let dave = p.person("dave@example.com").await;
    let tenant = p.tenant(&ada, "acme").await;

    // Free until subscribed: the free plan's limits, one member used.
    let before = p
        .api
        .ok(Some(&ada.token), BILLING, json!({"t": tenant}))
        .await;
    assert_eq!(before["tenant"]["plan"], "free");
    assert_eq!(before["tenant"]["subscription"], Value::Null);
    let members = entitlement(&before, "MEMBERS");
    assert_eq!(
        (members["limit"].clone(), members["used"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(members["percent"], 50.0);

    let subscribed = p
        .api
        .ok(
            Some(&ada.token),
            SUBSCRIBE,
            json!({"t": tenant, "p": "pro"}),
        )
        .await;
    let subscription = &subscribed["subscribe"]["subscription"];
    assert_eq!(subscription["status"], "TRIALING");
    assert_eq!(subscription["plan"], "pro");
    assert_eq!(
        subscription["trialEndsAt"],
        subscription["currentPeriodEnd"]
    );
    let again = p
        .api
        .gql(
            Some(&ada.token),
            SUBSCRIBE,
            json!({"t": tenant, "p": "pro"}),
        )
        .await;
    assert_eq!(code(&again), Some("CONFLICT"), "{again}");

    // Bob (admin) reads billing but cannot manage it; carol (member) cannot read it.
    p.join(&ada, &tenant, &bob, "ADMIN").await;
    let read = p
        .api
        .ok(Some(&bob.token), BILLING, json!({"t": tenant}))
        .await;
    assert_eq!(read["tenant"]["subscription"]["plan"], "pro");
    assert_eq!(read["tenant"]["features"], json!(["audit_export"]));
    let cancel = "mutation($t: ID!) { cancelSubscription(tenantId: $t) { subscription { cancelAt status } } }";
    assert_eq!(
        code(
            &p.api
                .gql(Some(&bob.token), cancel, json!({"t": tenant}))
                .await
        ),
        Some("FORBIDDEN")
    );
    p.join(&ada, &tenant, &carol, "MEMBER").await;
    let members_view = p
        .api
        .gql(Some(&carol.token), BILLING, json!({"t": tenant}))
        .await;
    assert_eq!(code(&members_view), Some("FORBIDDEN"), "{members_view}");

    // Pro allows 3 members: the fourth acceptance is refused, saying what would allow it.
    p.api
        .ok(
            Some(&ada.token),
            "mutation($t: ID!, $e: String!) { inviteMember(tenantId: $t, email: $e, role: MEMBER) { position } }",
            json!({"t": tenant, "e": dave.email}),
        )
        .await;
    let token = p.smtp.token(&dave.email, "invited").await;
    let accept = "mutation($t: String!) { acceptInvite(token: $t) { tenant { id } } }";
    let refused = p
        .api
        .gql(Some(&dave.token), accept, json!({"t": token}))
        .await;
    assert_eq!(code(&refused), Some("PLAN_LIMIT_EXCEEDED"), "{refused}");
    let extensions = &refused["errors"][0]["extensions"];
    assert_eq!(extensions["limit"], "members");
    assert_eq!(extensions["max"], 3);
    assert_eq!(extensions["used"], 3);
    assert_eq!(extensions["cheapestPlan"], "business");

    // An operator's override lets dave in.
    let set = "mutation($t: ID!, $i: LimitOverrideInput!) { setLimitOverride(tenantId: $t, input: $i) { position } }";
    p.api
        .ok(
            Some(&op.token),
            set,
            json!({"t": tenant, "i": {"key": "MEMBERS", "limit": 10}}),
        )
        .await;
    p.api
        .ok(Some(&dave.token), accept, json!({"t": token}))
        .await;
    let after = p
        .api
        .ok(Some(&ada.token), BILLING, json!({"t": tenant}))
        .await;
    let members = entitlement(&after, "MEMBERS");
    assert_eq!(members["limit"], 10);
    assert_eq!(members["used"], 4);
    assert_eq!(members["overridden"], true);

    // Time travel: where the log stood, and when, before the changes below.
    let before_changes = p.api.head().await;
    let before_changes_at = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    // During the trial a change is at once; cancel at period end, resume, cancel at once.
    let change = "mutation($t: ID!) { changePlan(tenantId: $t, plan: \"business\") { subscription { plan status } } }";
    let changed = p
        .api
        .ok(Some(&ada.token), change, json!({"t": tenant}))
        .await;
    assert_eq!(changed["changePlan"]["subscription"]["plan"], "business");
    let cancelling = p
        .api
        .ok(Some(&ada.token), cancel, json!({"t": tenant}))
        .await;
    assert_eq!(
        cancelling["cancelSubscription"]["subscription"]["cancelAt"],
        subscription["currentPeriodEnd"]
    );
    let resume =
        "mutation($t: ID!) { resumeSubscription(tenantId: $t) { subscription { cancelAt } } }";
    let resumed = p
        .api
        .ok(Some(&ada.token), resume, json!({"t": tenant}))
        .await;
    assert_eq!(
        resumed["resumeSubscription"]["subscription"]["cancelAt"],
        Value::Null
    );
    let now = "mutation($t: ID!) { cancelSubscription(tenantId: $t, atPeriodEnd: false) { subscription { status } } }";
    let cancelled = p.api.ok(Some(&ada.token), now, json!({"t": tenant})).await;

    // The subscription as it was before the changes, by log position and by time, folded
    // from its stream; now it is cancelled; before it began there was none.
    let as_of = "query($t: ID!, $a: DateTime, $p: String) { tenant(id: $t) { subscription(asOf: $a, asOfPosition: $p) { plan status cancelAt } } }";
    let then_by_position = p
        .api
        .ok(
            Some(&ada.token),
            as_of,
            json!({"t": tenant, "p": before_changes.to_string()}),
        )
        .await;
    let then_by_time = p
        .api
        .ok(
            Some(&ada.token),
            as_of,
            json!({"t": tenant, "a": before_changes_at}),
        )
        .await;
    assert_eq!(then_by_position, then_by_time);
    let then = &then_by_position["tenant"]["subscription"];
    assert_eq!(then["plan"], subscription["plan"], "{then}");
    assert_ne!(then["plan"], "business");
    assert_eq!(then["status"], subscription["status"]);
    let today = p
        .api
        .ok(
            Some(&ada.token),
            as_of,
            json!({"t": tenant, "p": p.api.head().await.to_string()}),
        )
        .await;
    assert_eq!(today["tenant"]["subscription"]["status"], "CANCELLED");
    let before = p
        .api
        .ok(Some(&ada.token), as_of, json!({"t": tenant, "p": "1"}))
        .await;
    assert!(before["tenant"]["subscription"].is_null(), "{before}");
    let both = p
        .api
        .gql(
            Some(&ada.token),
            as_of,
            json!({"t": tenant, "p": "1", "a": before_changes_at}),
        )
        .await;
    assert_eq!(code(&both), Some("BAD_USER_INPUT"));
    assert_eq!(
        cancelled["cancelSubscription"]["subscription"]["status"],
        "CANCELLED"
    );
    let end = p
        .api
        .ok(Some(&ada.token), BILLING, json!({"t": tenant}))
        .await;
    assert_eq!(end["tenant"]["plan"], "free");
}

/// 50 concurrent key creations against a plan that allows 5 leave exactly 5.
async fn concurrent_creates_stop_exactly_at_the_limit(backend: Backend) {
    let p = platform(backend, &[]).await;
    let op = operator(&p).await;
    p.api
        .ok(
            Some(&op.token),
            PUBLISH,
            json!({"i": plan("pro", 2_900, 3, 5)}),
        )
        .await;
    let ada = p.person("ada@example.com").await;
    let tenant = p.tenant(&ada, "acme").await;
    p.api
        .ok(
            Some(&ada.token),
            SUBSCRIBE,
            json!({"t": tenant, "p": "pro"}),
        )
        .await;
    let create = "mutation($t: ID!, $n: String!) { createApiKey(tenantId: $t, name: $n, scope: READ_ONLY) { apiKey { id } } }";
    let attempts = (0..50).map(|n| {
        let (api, token, tenant) = (p.api.clone(), ada.token.clone(), tenant.clone());
        tokio::spawn(async move {
            api.gql(
                Some(&token),
                create,
                json!({"t": tenant, "n": format!("key {n}")}),
            )
            .await
        })
    });
    let mut created = 0;
    for attempt in attempts {
        let answer = attempt.await.unwrap();
        match code(&answer) {
            None => created += 1,
            Some("PLAN_LIMIT_EXCEEDED") => {}
            Some(other) => panic!("unexpected {other}: {answer}"),
        }
    }
    assert_eq!(created, 5);
    let data = p
        .api
        .ok(Some(&ada.token), BILLING, json!({"t": tenant}))
        .await;
    assert_eq!(entitlement(&data, "API_KEYS")["used"], 5);
}

on_both!(
    plans_are_published_by_operators_and_read_by_everyone,
    owners_subscribe_admins_read_and_limits_follow_the_plan,
    concurrent_creates_stop_exactly_at_the_limit,
);
