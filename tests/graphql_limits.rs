//! Rate limits, one counter at a time: each test trips a single counter (per IP address or
//! per account) while the other stays under its limit, so removing either counter fails a
//! test. Clients take other IP addresses by binding to other loopback addresses.
#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use serde_json::{Value, json};
use support::graphql::{Api, Backend, PASSWORD, Platform, code, platform};

/// Attempts per minute on every limited action in these tests.
const LIMIT: &str = "3";

async fn limited_platform(backend: Backend) -> Platform {
    platform(backend, &["--auth-attempts-per-minute", LIMIT]).await
}

/// A client at 127.0.0.`n` (the set-up runs at 127.0.0.1).
fn at(p: &Platform, n: u8) -> Api {
    p.api.at_ip([127, 0, 0, n])
}

fn assert_limited(response: &Value) {
    assert_eq!(code(response), Some("RATE_LIMITED"), "{response}");
    let retry = response["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_u64()
        .unwrap_or_else(|| panic!("no retryAfterSeconds: {response}"));
    assert!((1..=60).contains(&retry), "{response}");
}

const LOG_IN: &str =
    "mutation($e: String!, $p: String!) { logIn(input: {email: $e, password: $p}) { token } }";
const SIGN_UP: &str =
    "mutation($e: String!, $p: String!) { signUp(input: {email: $e, password: $p}) { accepted } }";
const VERIFY: &str = "mutation($t: String!, $p: String! = \"correct horse battery\") { verifyEmail(token: $t, password: $p) { position } }";
const REQUEST_RESET: &str =
    "mutation($e: String!) { requestPasswordReset(email: $e) { accepted } }";
const RESET: &str =
    "mutation($t: String!, $n: String!) { resetPassword(token: $t, newPassword: $n) { position } }";
const CHANGE: &str = "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) { position } }";

fn bad_user_token() -> String {
    format!("{}.not-a-token", uuid::Uuid::now_v7().simple())
}

async fn log_ins_are_limited_per_ip(backend: Backend) {
    let p = limited_platform(backend).await;
    let ada = p.person("ada@example.com").await;
    // One address guesses at three accounts, once each: no account reaches its limit...
    let attacker = at(&p, 10);
    for n in 1..=3 {
        let vars = json!({"e": format!("victim{n}@example.com"), "p": "a guess at it"});
        assert_eq!(
            code(&attacker.gql(None, LOG_IN, vars).await),
            Some("UNAUTHENTICATED")
        );
    }
    // ...but the address did: even the right password is refused from it.
    let vars = json!({"e": ada.email, "p": PASSWORD});
    assert_limited(&attacker.gql(None, LOG_IN, vars.clone()).await);
    // From another address the same log-in goes through.
    at(&p, 11).ok(None, LOG_IN, vars).await;
}

async fn log_ins_are_limited_per_account(backend: Backend) {
    let p = limited_platform(backend).await;
    let ada = p.person("ada@example.com").await;
    for n in [10, 11] {
        let vars = json!({"e": ada.email, "p": "a guess at it"});
        assert_eq!(
            code(&at(&p, n).gql(None, LOG_IN, vars).await),
            Some("UNAUTHENTICATED")
        );
    }
    // Failures count per client and account (tests/accounts.rs): other addresses' wrong
    // guesses never lock the owner out, so the right password from a fresh address works.
    let fresh = at(&p, 12);
    let vars = json!({"e": ada.email, "p": PASSWORD});
    fresh.ok(None, LOG_IN, vars).await;
    // That address is not limited for other accounts.
    let other = json!({"e": "someone@example.com", "p": "a guess at it"});
    assert_eq!(
        code(&fresh.gql(None, LOG_IN, other).await),
        Some("UNAUTHENTICATED")
    );
}

async fn sign_ups_are_limited_per_ip_and_per_account(backend: Backend) {
    let p = limited_platform(backend).await;
    // Per IP: three refused sign-ups from one address use up its attempts.
    let one = at(&p, 10);
    for n in 1..=3 {
        let vars = json!({"e": format!("weak{n}@example.com"), "p": "short"});
        assert_eq!(
            code(&one.gql(None, SIGN_UP, vars).await),
            Some("BAD_USER_INPUT")
        );
    }
    let vars = json!({"e": "eve@example.com", "p": PASSWORD});
    assert_limited(&one.gql(None, SIGN_UP, vars.clone()).await);
    at(&p, 11).ok(None, SIGN_UP, vars).await;
    // Per account: one address tried from three others (the first signs up, the others are
    // answered alike); a fourth address is refused for it.
    let vars = json!({"e": "zed@example.com", "p": PASSWORD});
    for n in [20, 21, 22] {
        at(&p, n).ok(None, SIGN_UP, vars.clone()).await;
    }
    assert_limited(&at(&p, 23).gql(None, SIGN_UP, vars).await);
}

async fn verifications_are_limited_per_ip(backend: Backend) {
    let p = limited_platform(backend).await;
    let vars = json!({"e": "ada@example.com", "p": PASSWORD});
    p.api.ok(None, SIGN_UP, vars).await;
    let token = p.smtp.token("ada@example.com", "Verify").await;
    let guesser = at(&p, 10);
    for _ in 0..3 {
        let vars = json!({"t": bad_user_token()});
        assert_eq!(
            code(&guesser.gql(None, VERIFY, vars).await),
            Some("BAD_USER_INPUT")
        );
    }
    assert_limited(&guesser.gql(None, VERIFY, json!({"t": token})).await);
    at(&p, 11).ok(None, VERIFY, json!({"t": token})).await;
}

async fn password_resets_are_limited_per_ip_and_per_account(backend: Backend) {
    let p = limited_platform(backend).await;
    let ada = p.person("ada@example.com").await;
    // Requests, per IP: three addresses from one IP, then ada's is refused from it.
    let one = at(&p, 10);
    for n in 1..=3 {
        let vars = json!({"e": format!("someone{n}@example.com")});
        one.ok(None, REQUEST_RESET, vars).await;
    }
    assert_limited(&one.gql(None, REQUEST_RESET, json!({"e": ada.email})).await);
    // Requests, per account: ada's address from three IPs, then a fourth is refused.
    for n in [20, 21, 22] {
        at(&p, n)
            .ok(None, REQUEST_RESET, json!({"e": ada.email}))
            .await;
    }
    assert_limited(
        &at(&p, 23)
            .gql(None, REQUEST_RESET, json!({"e": ada.email}))
            .await,
    );
    p.mail_settled().await;
    assert_eq!(
        p.smtp.count(&ada.email, "Reset"),
        3,
        "no e-mail for refused requests"
    );
    // Redeeming, per IP: three wrong tokens from one IP, then a real one (the last sent: each
    // request replaces the one before) is refused from it.
    let mut token = String::new();
    for _ in 0..3 {
        token = p.smtp.token(&ada.email, "Reset").await;
    }
    let guesser = at(&p, 30);
    for _ in 0..3 {
        let vars = json!({"t": bad_user_token(), "n": "another good passphrase"});
        assert_eq!(
            code(&guesser.gql(None, RESET, vars).await),
            Some("BAD_USER_INPUT")
        );
    }
    let vars = json!({"t": token, "n": "another good passphrase"});
    assert_limited(&guesser.gql(None, RESET, vars.clone()).await);
    at(&p, 31).ok(None, RESET, vars).await;
}

async fn password_changes_and_totp_checks_are_limited_per_account(backend: Backend) {
    let p = limited_platform(backend).await;
    let ada = p.person("ada@example.com").await;
    // Wrong current passwords from three IPs: the account's limit, not any IP's.
    for n in [10, 11, 12] {
        let vars = json!({"c": "not the password", "n": "another good passphrase"});
        let response = at(&p, n).gql(Some(&ada.token), CHANGE, vars).await;
        assert_eq!(code(&response), Some("BAD_USER_INPUT"), "{response}");
    }
    let vars = json!({"c": PASSWORD, "n": "another good passphrase"});
    assert_limited(&at(&p, 13).gql(Some(&ada.token), CHANGE, vars).await);

    // TOTP confirmation: three wrong codes from three IPs, then the right one is refused.
    let bob = p.person_via(&at(&p, 2), "bob@example.com").await;
    let enrolled = p
        .api
        .ok(
            Some(&bob.token),
            "mutation($p: String!) { enrollTotp(currentPassword: $p) { secret } }",
            json!({"p": PASSWORD}),
        )
        .await;
    let totp = infra::crypto::Totp::from_base32(enrolled["enrollTotp"]["secret"].as_str().unwrap())
        .unwrap();
    let confirm = "mutation($c: String!) { confirmTotp(code: $c) { recoveryCodes } }";
    for n in [20, 21, 22] {
        let response = at(&p, n)
            .gql(Some(&bob.token), confirm, json!({"c": "000000"}))
            .await;
        assert_eq!(code(&response), Some("BAD_USER_INPUT"), "{response}");
    }
    let right = totp.code_at(chrono::Utc::now());
    assert_limited(
        &at(&p, 23)
            .gql(Some(&bob.token), confirm, json!({"c": right}))
            .await,
    );
}

on_both!(
    log_ins_are_limited_per_ip,
    log_ins_are_limited_per_account,
    sign_ups_are_limited_per_ip_and_per_account,
    verifications_are_limited_per_ip,
    password_resets_are_limited_per_ip_and_per_account,
    password_changes_and_totp_checks_are_limited_per_account,
);
