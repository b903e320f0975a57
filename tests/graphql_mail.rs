//! E-mail as users meet it, through the outbox: a request queues its mail with its write and
//! answers; the outbox sends it. A retried mutation (same `idempotencyKey`) queues nothing
//! again; a mail system that is down gets the mail once it is back, exactly once; one that
//! refuses a message for good does not hold back the mail after it; a restart sends nothing
//! twice; and mail goes out over STARTTLS or implicit TLS with authentication.

mod support;

use serde_json::json;
use support::graphql::{Backend, PASSWORD, Smtp, SmtpSecurity, platform, platform_with};

const SIGN_UP: &str = "mutation($e: String!, $p: String!, $k: ID) { signUp(input: {email: $e, password: $p}, idempotencyKey: $k) { accepted position } }";
const RESEND: &str = "mutation($e: String!, $k: ID) { resendVerificationEmail(email: $e, idempotencyKey: $k) { accepted } }";
const RESET: &str = "mutation($e: String!, $k: ID) { requestPasswordReset(email: $e, idempotencyKey: $k) { accepted } }";
const INVITE: &str = "mutation($t: ID!, $e: String!, $k: ID) { inviteMember(tenantId: $t, email: $e, role: MEMBER, idempotencyKey: $k) { invite { id } } }";

fn key() -> String {
    uuid::Uuid::now_v7().to_string()
}

async fn a_replayed_mutation_sends_no_second_email(backend: Backend) {
    let p = platform(backend, &[]).await;
    let api = &p.api;
    let ada = p.person("ada@example.com").await;
    let tenant = p.tenant(&ada, "acme").await;

    // Sign-up: the retry is the same request, answered the same.
    let vars = json!({"e": "eve@example.com", "p": PASSWORD, "k": key()});
    let first = api.ok(None, SIGN_UP, vars.clone()).await;
    let again = api.ok(None, SIGN_UP, vars).await;
    assert_eq!(first, again);

    // A resent verification, a reset and an invite: once each, however often retried.
    let vars = json!({"e": "eve@example.com", "k": key()});
    for _ in 0..2 {
        api.ok(None, RESEND, vars.clone()).await;
    }
    let vars = json!({"e": ada.email, "k": key()});
    for _ in 0..2 {
        api.ok(None, RESET, vars.clone()).await;
    }
    let vars = json!({"t": tenant, "e": "bob@example.com", "k": key()});
    let first = api.ok(Some(&ada.token), INVITE, vars.clone()).await;
    let again = api.ok(Some(&ada.token), INVITE, vars).await;
    assert_eq!(first, again);
    p.mail_settled().await;
    assert_eq!(p.smtp.count("eve@example.com", "Verify"), 2);
    assert_eq!(p.smtp.count(&ada.email, "Reset"), 1);
    assert_eq!(p.smtp.count("bob@example.com", "invited"), 1);

    // Without a key, each request is a request of its own: the count does move.
    api.ok(None, RESET, json!({"e": ada.email})).await;
    p.mail_settled().await;
    assert_eq!(p.smtp.count(&ada.email, "Reset"), 2);
}

async fn a_mail_system_that_is_down_gets_the_mail_once_it_is_back(backend: Backend) {
    let p = platform(backend, &[]).await;
    let api = &p.api;
    let ada = p.person("ada@example.com").await;
    let tenant = p.tenant(&ada, "acme").await;

    p.smtp.set_failing(true);
    // The requests answer at once: no mail server on their path.
    let started = std::time::Instant::now();
    api.ok(
        None,
        SIGN_UP,
        json!({"e": "eve@example.com", "p": PASSWORD, "k": null}),
    )
    .await;
    let invited = api
        .ok(
            Some(&ada.token),
            INVITE,
            json!({"t": tenant, "e": "bob@example.com", "k": null}),
        )
        .await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The invite stands and is listed.
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
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(p.smtp.count("eve@example.com", "Verify"), 0);
    assert_eq!(p.smtp.count("bob@example.com", "invited"), 0);

    // Back up: the queued mails arrive without anyone asking again, once each.
    p.smtp.set_failing(false);
    let token = p.smtp.token("eve@example.com", "Verify").await;
    p.smtp.message("bob@example.com", "invited").await;
    p.mail_settled().await;
    assert_eq!(p.smtp.count("eve@example.com", "Verify"), 1);
    assert_eq!(p.smtp.count("bob@example.com", "invited"), 1);
    api.ok(
        None,
        "mutation($t: String!, $p: String!) { verifyEmail(token: $t, password: $p) { position } }",
        json!({"t": token, "p": PASSWORD}),
    )
    .await;
    p.log_in("eve@example.com", PASSWORD).await;

    // The failures are logged, without the addresses.
    let (_, logs) = p.server.terminate();
    assert!(
        logs.iter()
            .any(|l| l.contains("e-mail not sent; will retry")),
        "{logs:#?}"
    );
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("eve@example.com") || l.contains("bob@example.com")),
        "{logs:#?}"
    );
}

async fn a_refused_mail_does_not_hold_back_the_mail_after_it(backend: Backend) {
    let p = platform(backend, &[]).await;
    let ada = p.person("ada@example.com").await;
    p.smtp.set_refusing(true);
    p.api
        .ok(None, RESET, json!({"e": ada.email, "k": null}))
        .await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    p.smtp.set_refusing(false);
    // Later mail flows; the refused one is recorded as given up, not retried.
    p.mail_settled().await;
    assert_eq!(p.smtp.count(&ada.email, "Reset"), 0);
    let (_, logs) = p.server.terminate();
    assert!(
        logs.iter().any(|l| l.contains("refused for good")),
        "{logs:#?}"
    );
}

async fn a_restarted_server_sends_nothing_twice(backend: Backend) {
    let mut p = platform(backend, &[]).await;
    let ada = p.person("ada@example.com").await;
    p.api
        .ok(None, RESET, json!({"e": ada.email, "k": null}))
        .await;
    p.mail_settled().await;
    assert_eq!(p.smtp.count(&ada.email, "Reset"), 1);
    p.restart();
    p.mail_settled().await;
    assert_eq!(p.smtp.count(&ada.email, "Reset"), 1);
    assert_eq!(p.smtp.count(&ada.email, "Verify"), 1);
}

/// Mail over TLS with authentication: the server requires STARTTLS (or speaks TLS from the
/// first byte) and a password, and trusts only the CA given with `--smtp-ca-file`.
async fn mail_goes_out_over_tls_with_authentication(security: SmtpSecurity) {
    let p = platform_with(Backend::Sqlite, Smtp::start_secured(security), &[]).await;
    // Signing up needs the verification mail: its arrival is the proof.
    let ada = p.person("ada@example.com").await;
    p.api
        .ok(None, RESET, json!({"e": ada.email, "k": null}))
        .await;
    p.smtp.message(&ada.email, "Reset").await;
    let (_, logs) = p.server.terminate();
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("p@ss") || l.contains("p%40ss")),
        "the SMTP password must not be logged: {logs:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_goes_out_over_starttls() {
    mail_goes_out_over_tls_with_authentication(SmtpSecurity::StartTls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_goes_out_over_implicit_tls() {
    mail_goes_out_over_tls_with_authentication(SmtpSecurity::Implicit).await;
}

on_both!(
    a_replayed_mutation_sends_no_second_email,
    a_mail_system_that_is_down_gets_the_mail_once_it_is_back,
    a_refused_mail_does_not_hold_back_the_mail_after_it,
    a_restarted_server_sends_nothing_twice,
);
