//! Tenant webhooks end to end, against a real HTTP server the test runs: an admin sets the
//! endpoint (and gets the signing secret), a test message arrives signed; usage crossing 80%
//! and 100% of an allowance posts one message each, signed the Standard Webhooks way, with
//! a 503 retried and a 400 given up on and recorded; members cannot see or change it; a bad
//! URL is refused and writes nothing.
#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::time::Duration;
use support::graphql::{Backend, code, platform};
use support::receiver::{Received, Receiver};

const SET: &str = "mutation($t: ID!, $u: String!, $r: Boolean = false) { setWebhookEndpoint(tenantId: $t, url: $u, rotateSecret: $r) { endpoint { url secret } position } }";
const ENDPOINT: &str = "query($t: ID!) { tenant(id: $t) { webhookEndpoint { url secret deliveries { webhookId eventType status httpStatus reason attempts } } } }";
const RECORD: &str = "mutation($t: ID!, $e: [UsageEventInput!]!) { recordUsage(tenantId: $t, events: $e) { counted } }";

/// Checks `webhook-signature` the way a receiver following Standard Webhooks does.
fn verify(secret: &str, message: &Received) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(
        format!(
            "{}.{}.{}",
            message.header("webhook-id"),
            message.header("webhook-timestamp"),
            message.body
        )
        .as_bytes(),
    );
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    let timestamp: i64 = message.header("webhook-timestamp").parse().unwrap();
    (chrono::Utc::now().timestamp() - timestamp).abs() < 300
        && message
            .header("webhook-signature")
            .split(' ')
            .any(|s| s == expected)
}

async fn webhooks_carry_thresholds_signed_once_each(backend: Backend) {
    let receiver = Receiver::start().await;
    let p = platform(backend, &["--webhooks-allow-http"]).await;
    let ada = p.person("ada@example.com").await;
    let bob = p.person("bob@example.com").await;
    let tenant = p.tenant(&ada, "acme").await;
    p.join(&ada, &tenant, &bob, "MEMBER").await;

    // Refused, writing nothing: a URL that is not one, and a member.
    let head = p.api.head().await;
    let bad = p
        .api
        .gql(
            Some(&ada.token),
            SET,
            json!({"t": tenant, "u": "ftp://hooks.example.com/"}),
        )
        .await;
    assert_eq!(code(&bad), Some("BAD_USER_INPUT"));
    let member = p
        .api
        .gql(
            Some(&bob.token),
            SET,
            json!({"t": tenant, "u": receiver.url}),
        )
        .await;
    assert_eq!(code(&member), Some("FORBIDDEN"));
    support::graphql::assert_only_refusals_recorded(&p.database_url, head).await;
    let hidden = p
        .api
        .gql(Some(&bob.token), ENDPOINT, json!({"t": tenant}))
        .await;
    assert_eq!(code(&hidden), Some("FORBIDDEN"));

    // Set: the answer carries the secret; setting the same URL again keeps it.
    let set = p
        .api
        .ok(
            Some(&ada.token),
            SET,
            json!({"t": tenant, "u": receiver.url}),
        )
        .await;
    let secret = set["setWebhookEndpoint"]["endpoint"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    let again = p
        .api
        .ok(
            Some(&ada.token),
            SET,
            json!({"t": tenant, "u": receiver.url}),
        )
        .await;
    assert_eq!(again["setWebhookEndpoint"]["endpoint"]["secret"], secret);

    // A test message, signed with that secret.
    let test = p
        .api
        .ok(
            Some(&ada.token),
            "mutation($t: ID!) { testWebhookEndpoint(tenantId: $t) { delivered httpStatus } }",
            json!({"t": tenant}),
        )
        .await;
    assert_eq!(
        test["testWebhookEndpoint"],
        json!({"delivered": true, "httpStatus": 200})
    );
    let first = receiver.received()[0].clone();
    assert_eq!(first.json()["type"], "webhook.test");
    assert!(verify(&secret, &first), "{:?}", first.headers);
    assert!(!verify("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &first));

    // Usage past 80% (the free plan allows 5 GB a month): the endpoint answers 503 once,
    // and the retry delivers it.
    receiver.answer_with(&[503]);
    let gb = 1_000_000_000_i64;
    let usage =
        |id: &str, value: i64| json!([{"id": id, "meter": "bandwidth.bytes", "value": value}]);
    p.api
        .ok(
            Some(&ada.token),
            RECORD,
            json!({"t": tenant, "e": usage("u1", 4 * gb + gb / 2)}),
        )
        .await;
    let warned = support::eventually("the warning", Duration::from_secs(30), || async {
        let got: Vec<Received> = receiver
            .received()
            .into_iter()
            .filter(|r| r.json()["type"] == "usage.allowance_warning")
            .collect();
        (got.len() == 2).then_some(got)
    })
    .await;
    // The retry is the same message: same id, verified, with the figures.
    assert_eq!(
        warned[0].header("webhook-id"),
        warned[1].header("webhook-id")
    );
    assert!(verify(&secret, &warned[1]));
    let data = &warned[1].json()["data"];
    assert_eq!(data["tenant_id"], json!(tenant));
    assert_eq!(data["threshold_percent"], 80);
    assert_eq!(data["used"], 4 * gb + gb / 2);
    assert_eq!(data["limit"], 5 * gb);

    // Past 100%, the endpoint refuses for good (400): given up after one attempt, recorded.
    receiver.answer_with(&[400]);
    p.api
        .ok(
            Some(&ada.token),
            RECORD,
            json!({"t": tenant, "e": usage("u2", gb)}),
        )
        .await;
    let deliveries = support::eventually("both recorded", Duration::from_secs(30), || async {
        let seen = p
            .api
            .ok(Some(&ada.token), ENDPOINT, json!({"t": tenant}))
            .await;
        let deliveries = seen["tenant"]["webhookEndpoint"]["deliveries"].clone();
        (deliveries.as_array().unwrap().len() == 2).then_some(deliveries)
    })
    .await;
    assert_eq!(
        deliveries,
        json!([
            {"webhookId": deliveries[0]["webhookId"], "eventType": "usage.allowance_reached",
             "status": "FAILED", "httpStatus": null,
             "reason": "the endpoint answered 400 Bad Request", "attempts": 1},
            {"webhookId": warned[0].header("webhook-id"), "eventType": "usage.allowance_warning",
             "status": "DELIVERED", "httpStatus": 200, "reason": null, "attempts": 2},
        ])
    );
    // More usage in the period: nothing more is sent.
    p.api
        .ok(
            Some(&ada.token),
            RECORD,
            json!({"t": tenant, "e": usage("u3", gb)}),
        )
        .await;
    p.mail_settled().await;
    let thresholds = |r: &Received| r.json()["type"].as_str().unwrap().starts_with("usage.");
    assert_eq!(
        receiver.received().iter().filter(|r| thresholds(r)).count(),
        3
    );

    // Rotated: a new secret; removed: nothing is set.
    let rotated = p
        .api
        .ok(
            Some(&ada.token),
            SET,
            json!({"t": tenant, "u": receiver.url, "r": true}),
        )
        .await;
    assert_ne!(
        rotated["setWebhookEndpoint"]["endpoint"]["secret"],
        json!(secret)
    );
    p.api
        .ok(
            Some(&ada.token),
            "mutation($t: ID!) { removeWebhookEndpoint(tenantId: $t) { position } }",
            json!({"t": tenant}),
        )
        .await;
    let gone: Value = p
        .api
        .ok(Some(&ada.token), ENDPOINT, json!({"t": tenant}))
        .await;
    assert_eq!(gone["tenant"]["webhookEndpoint"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_endpoints_are_refused_unless_allowed() {
    let p = platform(Backend::Sqlite, &[]).await;
    let ada = p.person("ada@example.com").await;
    let tenant = p.tenant(&ada, "acme").await;
    let refused = p
        .api
        .gql(
            Some(&ada.token),
            SET,
            json!({"t": tenant, "u": "http://127.0.0.1:9/hooks"}),
        )
        .await;
    assert_eq!(code(&refused), Some("BAD_USER_INPUT"));
    assert!(refused.to_string().contains("https://"), "{refused}");
}

on_both!(webhooks_carry_thresholds_signed_once_each);
