//! E-mail as users meet it: a retried mutation (same `idempotencyKey`) sends nothing again,
//! and a mail system that fails is reported as `emailSent: false` while the write stands.
//! Counting is exact: the server sends mail before it answers.

mod support;

use serde_json::json;
use support::graphql::{Backend, PASSWORD, platform};

const SIGN_UP: &str = "mutation($e: String!, $p: String!, $k: ID) { signUp(input: {email: $e, password: $p}, idempotencyKey: $k) { userId emailSent } }";
const RESEND: &str = "mutation($e: String!, $k: ID) { resendVerificationEmail(email: $e, idempotencyKey: $k) { accepted } }";
const RESET: &str = "mutation($e: String!, $k: ID) { requestPasswordReset(email: $e, idempotencyKey: $k) { accepted } }";
const INVITE: &str = "mutation($t: ID!, $e: String!, $k: ID) { inviteMember(tenantId: $t, email: $e, role: MEMBER, idempotencyKey: $k) { invite { id } emailSent } }";

fn key() -> String {
    uuid::Uuid::now_v7().to_string()
}

async fn a_replayed_mutation_sends_no_second_email(backend: Backend) {
    let p = platform(backend, &[]).await;
    let api = &p.api;
    let ada = p.person("ada@example.com").await;
    let tenant = p.tenant(&ada, "acme").await;

    // Sign-up: the retry is the same account, and says it sent nothing.
    let vars = json!({"e": "eve@example.com", "p": PASSWORD, "k": key()});
    let first = api.ok(None, SIGN_UP, vars.clone()).await;
    let again = api.ok(None, SIGN_UP, vars).await;
    assert_eq!(first["signUp"]["userId"], again["signUp"]["userId"]);
    assert_eq!(first["signUp"]["emailSent"], true);
    assert_eq!(again["signUp"]["emailSent"], false, "{again}");
    assert_eq!(p.smtp.count("eve@example.com", "Verify"), 1);

    // A resent verification, a reset and an invite: once each, however often retried.
    let vars = json!({"e": "eve@example.com", "k": key()});
    for _ in 0..2 {
        api.ok(None, RESEND, vars.clone()).await;
    }
    assert_eq!(p.smtp.count("eve@example.com", "Verify"), 2);
    let vars = json!({"e": ada.email, "k": key()});
    for _ in 0..2 {
        api.ok(None, RESET, vars.clone()).await;
    }
    assert_eq!(p.smtp.count(&ada.email, "Reset"), 1);
    let vars = json!({"t": tenant, "e": "bob@example.com", "k": key()});
    let first = api.ok(Some(&ada.token), INVITE, vars.clone()).await;
    let again = api.ok(Some(&ada.token), INVITE, vars).await;
    assert_eq!(
        first["inviteMember"]["invite"]["id"],
        again["inviteMember"]["invite"]["id"]
    );
    assert_eq!(first["inviteMember"]["emailSent"], true);
    assert_eq!(again["inviteMember"]["emailSent"], false, "{again}");
    assert_eq!(p.smtp.count("bob@example.com", "invited"), 1);

    // Without a key, each request is a request of its own: the count does move.
    api.ok(None, RESET, json!({"e": ada.email})).await;
    assert_eq!(p.smtp.count(&ada.email, "Reset"), 2);
}

async fn a_failing_mail_system_gives_email_sent_false_and_the_write_stands(backend: Backend) {
    let p = platform(backend, &[]).await;
    let api = &p.api;
    let ada = p.person("ada@example.com").await;
    let tenant = p.tenant(&ada, "acme").await;

    p.smtp.set_failing(true);
    let vars = json!({"e": "eve@example.com", "p": PASSWORD, "k": null});
    let signed_up = api.ok(None, SIGN_UP, vars).await;
    assert_eq!(signed_up["signUp"]["emailSent"], false, "{signed_up}");
    let vars = json!({"t": tenant, "e": "bob@example.com", "k": null});
    let invited = api.ok(Some(&ada.token), INVITE, vars).await;
    assert_eq!(invited["inviteMember"]["emailSent"], false, "{invited}");
    assert_eq!(p.smtp.count("eve@example.com", "Verify"), 0);
    assert_eq!(p.smtp.count("bob@example.com", "invited"), 0);

    // Both writes stand: the invite is listed, and the account can be verified with a new
    // e-mail once mail works again, then logs in.
    let invites = api
        .ok(
            Some(&ada.token),
            "query($t: ID!) { tenant(id: $t) { invites { edges { node { id } } } } }",
            json!({"t": tenant}),
        )
        .await;
    assert_eq!(
        invites["tenant"]["invites"]["edges"][0]["node"]["id"],
        invited["inviteMember"]["invite"]["id"]
    );
    p.smtp.set_failing(false);
    api.ok(None, RESEND, json!({"e": "eve@example.com", "k": null}))
        .await;
    let token = p.smtp.token("eve@example.com", "Verify").await;
    api.ok(
        None,
        "mutation($t: String!, $p: String!) { verifyEmail(token: $t, password: $p) { position } }",
        json!({"t": token, "p": PASSWORD}),
    )
    .await;
    p.log_in("eve@example.com", PASSWORD).await;

    // The failure is logged, without the address.
    let (_, logs) = p.server.terminate();
    assert!(
        logs.iter().any(|l| l.contains("e-mail not sent")),
        "{logs:#?}"
    );
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("eve@example.com") || l.contains("bob@example.com")),
        "{logs:#?}"
    );
}

on_both!(
    a_replayed_mutation_sends_no_second_email,
    a_failing_mail_system_gives_email_sent_false_and_the_write_stands,
);
