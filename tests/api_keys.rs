//! API keys as an attacker would try them: a key inherits its creator's current rights (a
//! demoted or removed creator narrows or stops it), keys cannot create keys, and a suspended
//! or closed tenant's keys are refused with a clear code.
#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use serde_json::json;
use support::graphql::{Backend, OPERATOR, code, platform};

const READ: &str = "query($t: ID!) { tenant(id: $t) { id name } }";
const WRITE: &str = "mutation($t: ID!, $v: String!) { changeTenantSettings(tenantId: $t, settings: [{key: \"theme\", value: $v}]) { position } }";
const CREATE_KEY: &str = "mutation($t: ID!) { createApiKey(tenantId: $t, name: \"minted\", scope: READ_ONLY) { secret } }";
const ROLE: &str = "mutation($t: ID!, $u: ID!, $r: Role!) { changeMemberRole(tenantId: $t, userId: $u, role: $r) { member { role } } }";
const REMOVE: &str =
    "mutation($t: ID!, $u: ID!) { removeMember(tenantId: $t, userId: $u) { position } }";

async fn keys_inherit_their_creators_rights(backend: Backend) {
    let p = platform(backend, &[]).await;
    let api = &p.api;
    let alice = p.person("alice@example.com").await;
    let bob = p.person("bob@example.com").await;
    let tenant = p.tenant(&alice, "inherit").await;
    p.join(&alice, &tenant, &bob, "ADMIN").await;
    let (_, key) = p.api_key(&bob, &tenant, "ADMIN").await;
    let t = json!({"t": tenant});
    let w = |v: &str| json!({"t": tenant, "v": v});

    api.ok(Some(&key), READ, t.clone()).await;
    api.ok(Some(&key), WRITE, w("one")).await;

    // Keys cannot create keys, whatever their scope.
    let minted = api.gql(Some(&key), CREATE_KEY, t.clone()).await;
    assert_eq!(code(&minted), Some("FORBIDDEN"), "{minted}");
    assert!(
        minted["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("cannot create"),
        "{minted}"
    );

    // The creator demoted to member: the admin-scoped key can read, no longer change the
    // tenant's settings (an admin's right).
    api.ok(
        Some(&alice.token),
        ROLE,
        json!({"t": tenant, "u": bob.user_id, "r": "MEMBER"}),
    )
    .await;
    assert_eq!(api.fails(Some(&key), WRITE, w("two")).await, "FORBIDDEN");
    api.ok(Some(&key), READ, t.clone()).await;

    // The creator removed: the key stops.
    api.ok(
        Some(&alice.token),
        REMOVE,
        json!({"t": tenant, "u": bob.user_id}),
    )
    .await;
    let stopped = api.gql(Some(&key), READ, t.clone()).await;
    assert_eq!(code(&stopped), Some("UNAUTHENTICATED"), "{stopped}");
}

async fn a_suspended_or_closed_tenants_keys_are_refused(backend: Backend) {
    let p = platform(backend, &[]).await;
    let api = &p.api;
    let alice = p.person("alice@example.com").await;
    let operator = p.person(OPERATOR).await;
    let tenant = p.tenant(&alice, "paused").await;
    let (_, key) = p.api_key(&alice, &tenant, "READ_ONLY").await;
    let t = json!({"t": tenant});
    api.ok(Some(&key), READ, t.clone()).await;

    api.ok(
        Some(&operator.token),
        "mutation($t: ID!) { suspendTenant(tenantId: $t, reason: \"unpaid\") { position } }",
        t.clone(),
    )
    .await;
    let refused = api.gql(Some(&key), READ, t.clone()).await;
    assert_eq!(code(&refused), Some("FORBIDDEN"), "{refused}");
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("suspended"),
        "{refused}"
    );

    api.ok(
        Some(&operator.token),
        "mutation($t: ID!) { reactivateTenant(tenantId: $t) { position } }",
        t.clone(),
    )
    .await;
    api.ok(Some(&key), READ, t.clone()).await;

    api.ok(
        Some(&alice.token),
        "mutation($t: ID!) { closeTenant(tenantId: $t) { position } }",
        t.clone(),
    )
    .await;
    let closed = api.gql(Some(&key), READ, t).await;
    assert_eq!(code(&closed), Some("FORBIDDEN"), "{closed}");
    assert!(
        closed["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("closed"),
        "{closed}"
    );
}

on_both!(
    keys_inherit_their_creators_rights,
    a_suspended_or_closed_tenants_keys_are_refused
);
