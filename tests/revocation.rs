//! Revocation stays exact although sessions, API keys and tenant access are checked from
//! cached states (`Executor::load_current`, kept current by the log watch): a revoked key, an
//! ended session or a removed member is refused on the very next request by the server that
//! made the change, and within one second by another server on the same database.

mod support;

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::graphql::{Api, Backend, MASTER_KEY, Person, Platform, code, log_in_via, platform};
use support::{Server, tenantry};

const TENANT: &str = "query($t: ID!) { tenant(id: $t) { id name } }";
const ME: &str = "query { me { id } }";
const REVOKE_KEY: &str =
    "mutation($t: ID!, $k: ID!) { revokeApiKey(tenantId: $t, apiKeyId: $k) { position } }";
const REMOVE_MEMBER: &str =
    "mutation($t: ID!, $u: ID!) { removeMember(tenantId: $t, userId: $u) { position } }";
const LOG_OUT: &str = "mutation { logOut { position } }";
const CHANGE_PASSWORD: &str = "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) { position } }";

/// Everything a test revokes: a key, a member, and two extra sessions of the owner.
struct Granted {
    tenant: String,
    owner: Person,
    member: Person,
    key_id: String,
    key: String,
    /// Ended by logging out.
    session: String,
    /// Ended by the owner changing the password from `owner.token`.
    other_session: String,
}

async fn grant_everything(p: &Platform, slug: &str) -> Granted {
    let owner = p.person(&format!("owner@{slug}.example")).await;
    let member = p.person(&format!("member@{slug}.example")).await;
    let tenant = p.tenant(&owner, slug).await;
    p.join(&owner, &tenant, &member, "MEMBER").await;
    let (key_id, key) = p.api_key(&owner, &tenant, "READ_ONLY").await;
    let session = p.log_in(&owner.email, support::graphql::PASSWORD).await;
    let other_session = p.log_in(&owner.email, support::graphql::PASSWORD).await;
    Granted {
        tenant,
        owner,
        member,
        key_id,
        key,
        session,
        other_session,
    }
}

/// Uses every grant on `api` until each answer came from a trusted cached state (the log
/// watch polls every 50 ms), so that a later refusal shows the cache was brought up to date.
async fn use_everything(api: &Api, g: &Granted) {
    for _ in 0..3 {
        for token in [&g.key, &g.member.token] {
            api.ok(Some(token), TENANT, json!({"t": g.tenant})).await;
        }
        for token in [&g.session, &g.other_session] {
            api.ok(Some(token), ME, json!({})).await;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

fn refused(response: &Value, expected: &str) -> bool {
    code(response) == Some(expected)
}

async fn revoked_on_the_next_request_in_the_same_process(backend: Backend) {
    let p = platform(backend, &[]).await;
    let g = grant_everything(&p, "same").await;
    use_everything(&p.api, &g).await;
    let api = &p.api;

    api.ok(
        Some(&g.owner.token),
        REVOKE_KEY,
        json!({"t": g.tenant, "k": g.key_id}),
    )
    .await;
    let answer = api.gql(Some(&g.key), TENANT, json!({"t": g.tenant})).await;
    assert!(refused(&answer, "UNAUTHENTICATED"), "{answer}");

    api.ok(
        Some(&g.owner.token),
        REMOVE_MEMBER,
        json!({"t": g.tenant, "u": g.member.user_id}),
    )
    .await;
    let answer = api
        .gql(Some(&g.member.token), TENANT, json!({"t": g.tenant}))
        .await;
    assert!(refused(&answer, "NOT_FOUND"), "{answer}");

    api.ok(Some(&g.session), LOG_OUT, json!({})).await;
    let answer = api.gql(Some(&g.session), ME, json!({})).await;
    assert!(refused(&answer, "UNAUTHENTICATED"), "{answer}");

    api.ok(
        Some(&g.owner.token),
        CHANGE_PASSWORD,
        json!({"c": support::graphql::PASSWORD, "n": "a brand new password 42"}),
    )
    .await;
    let answer = api.gql(Some(&g.other_session), ME, json!({})).await;
    assert!(refused(&answer, "UNAUTHENTICATED"), "{answer}");
}

/// Polls `api` with `token` until `expected` is answered; how long that took after `since`.
async fn refused_after(
    api: &Api,
    token: &str,
    query: &str,
    variables: Value,
    expected: &str,
    since: Instant,
) -> Duration {
    loop {
        let answer = api.gql(Some(token), query, variables.clone()).await;
        if refused(&answer, expected) {
            return since.elapsed();
        }
        assert!(
            answer.get("errors").is_none(),
            "unexpected answer while waiting for {expected}: {answer}"
        );
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "still not refused after 5 s: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Two servers on one PostgreSQL database: what one revokes, the other refuses within a
/// second, although it had the granted states cached and trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_within_a_second_in_another_process() {
    let p = platform(Backend::Postgres, &[]).await;
    let mut cmd = tenantry(&p.dir);
    cmd.env("TENANTRY_MASTER_KEY", MASTER_KEY)
        .args(["--database-url", &p.database_url])
        .args(["serve", "--smtp", &format!("127.0.0.1:{}", p.smtp.port)])
        .args(["--auth-attempts-per-minute", "1000"]);
    let other = Server::start_configured(cmd);
    let b = Api {
        base: other.base.clone(),
        client: reqwest::Client::new(),
    };
    let g = grant_everything(&p, "other").await;
    // The other server's first answers read the streams; later ones come from its cache.
    use_everything(&b, &g).await;
    let a = &p.api;
    let bound = Duration::from_secs(1);

    let began = Instant::now();
    a.ok(
        Some(&g.owner.token),
        REVOKE_KEY,
        json!({"t": g.tenant, "k": g.key_id}),
    )
    .await;
    let took = refused_after(
        &b,
        &g.key,
        TENANT,
        json!({"t": g.tenant}),
        "UNAUTHENTICATED",
        began,
    )
    .await;
    assert!(took < bound, "the revoked key worked for {took:?}");

    let began = Instant::now();
    a.ok(
        Some(&g.owner.token),
        REMOVE_MEMBER,
        json!({"t": g.tenant, "u": g.member.user_id}),
    )
    .await;
    let took = refused_after(
        &b,
        &g.member.token,
        TENANT,
        json!({"t": g.tenant}),
        "NOT_FOUND",
        began,
    )
    .await;
    assert!(took < bound, "the removed member kept access for {took:?}");

    let began = Instant::now();
    a.ok(Some(&g.session), LOG_OUT, json!({})).await;
    let took = refused_after(&b, &g.session, ME, json!({}), "UNAUTHENTICATED", began).await;
    assert!(took < bound, "the ended session worked for {took:?}");

    // And the other way round: a session started on one server works on the other at once.
    let fresh = log_in_via(a, &g.owner.email, support::graphql::PASSWORD).await;
    b.ok(Some(&fresh), ME, json!({})).await;
}

on_both!(revoked_on_the_next_request_in_the_same_process);
