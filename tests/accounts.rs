//! Account attacks through the real server: wrong passwords from one client do not lock the
//! owner out from another, and password hashing is capped instead of queued.
#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use serde_json::json;
use support::graphql::{Backend, PASSWORD, code, platform};

const LOG_IN: &str =
    "mutation($e: String!, $p: String!) { logIn(input: {email: $e, password: $p}) { token } }";

async fn wrong_passwords_from_one_client_do_not_lock_the_owner_out(backend: Backend) {
    let p = platform(backend, &[]).await;
    p.person("ada@example.com").await;
    let attacker = p.api.at_ip([127, 0, 0, 2]);
    let owner = p.api.at_ip([127, 0, 0, 3]);
    let wrong = json!({"e": "ada@example.com", "p": "not the password"});
    for _ in 0..3 {
        let answer = attacker.gql(None, LOG_IN, wrong.clone()).await;
        assert_eq!(code(&answer), Some("UNAUTHENTICATED"), "{answer}");
    }
    // The attacker now waits, longer with every failure...
    let held = attacker.gql(None, LOG_IN, wrong.clone()).await;
    assert_eq!(code(&held), Some("RATE_LIMITED"), "{held}");
    assert!(
        held["errors"][0]["extensions"]["retryAfterSeconds"]
            .as_u64()
            .unwrap()
            >= 1
    );
    // ... even with the right password, until the wait is over ...
    let right = json!({"e": "ada@example.com", "p": PASSWORD});
    let held = attacker.gql(None, LOG_IN, right.clone()).await;
    assert_eq!(code(&held), Some("RATE_LIMITED"), "{held}");
    // ... while the owner, on another client, logs in at once.
    let data = owner.ok(None, LOG_IN, right.clone()).await;
    assert!(data["logIn"]["token"].is_string());
    // After the wait, the attacker's next wrong password doubles it.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let answer = attacker.gql(None, LOG_IN, wrong.clone()).await;
    assert_eq!(code(&answer), Some("UNAUTHENTICATED"), "{answer}");
    let held = attacker.gql(None, LOG_IN, wrong).await;
    assert_eq!(code(&held), Some("RATE_LIMITED"), "{held}");
    assert!(
        held["errors"][0]["extensions"]["retryAfterSeconds"]
            .as_u64()
            .unwrap()
            >= 2
    );
}

/// Many log-ins at once: password hashing has a slot per core; a request that finds none is
/// answered RATE_LIMITED at once rather than waiting behind the others.
async fn password_hashing_is_capped_not_queued(backend: Backend) {
    let p = platform(backend, &[]).await;
    p.person("ada@example.com").await;
    let right = json!({"e": "ada@example.com", "p": PASSWORD});
    let attempts: Vec<_> = (0..24u8)
        .map(|n| {
            let api = p.api.at_ip([127, 0, 1, n + 1]);
            let vars = right.clone();
            tokio::spawn(async move { api.gql(None, LOG_IN, vars).await })
        })
        .collect();
    let mut codes = Vec::new();
    for attempt in attempts {
        let answer = attempt.await.unwrap();
        codes.push(code(&answer).unwrap_or("OK").to_owned());
    }
    assert!(codes.iter().any(|c| c == "OK"), "{codes:?}");
    assert!(codes.iter().any(|c| c == "RATE_LIMITED"), "{codes:?}");
    assert!(
        codes.iter().all(|c| c == "OK" || c == "RATE_LIMITED"),
        "{codes:?}"
    );
}

/// An idempotency key replays its first result only for the same arguments; with other
/// arguments it is an error that says so, and nothing is written.
async fn an_idempotency_key_with_other_arguments_is_refused(backend: Backend) {
    let p = platform(backend, &[]).await;
    let ada = p.person("ada@example.com").await;
    let create = "mutation($n: String!, $s: String!, $k: ID) { createTenant(input: {name: $n, slug: $s}, idempotencyKey: $k) { tenant { id } } }";
    let key = uuid::Uuid::now_v7().to_string();
    let first = p
        .api
        .ok(
            Some(&ada.token),
            create,
            json!({"n": "Acme", "s": "acme", "k": key}),
        )
        .await;
    // The same request again: the first result, nothing written.
    let head = p.api.head().await;
    let again = p
        .api
        .ok(
            Some(&ada.token),
            create,
            json!({"n": "Acme", "s": "acme", "k": key}),
        )
        .await;
    assert_eq!(again, first);
    // Argument order and whitespace do not matter; values do.
    let reordered = "mutation($k: ID, $s: String!, $n: String!) { createTenant(idempotencyKey: $k, input: {slug: $s, name: $n}) { tenant { id } } }";
    let same = p
        .api
        .ok(
            Some(&ada.token),
            reordered,
            json!({"n": "Acme", "s": "acme", "k": key}),
        )
        .await;
    assert_eq!(same, first);
    let other = p
        .api
        .gql(
            Some(&ada.token),
            create,
            json!({"n": "Other Co", "s": "other", "k": key}),
        )
        .await;
    assert_eq!(code(&other), Some("BAD_USER_INPUT"), "{other}");
    assert_eq!(other["errors"][0]["extensions"]["field"], "idempotencyKey");
    assert!(
        other["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("other arguments"),
        "{other}"
    );
    assert_eq!(p.api.head().await, head, "nothing was written");
}

/// Mails to one address and invitations are capped per hour, across client addresses: an
/// attacker cannot mail-bomb an address or spam invitations by spreading requests.
async fn mails_and_invitations_have_hourly_quotas(backend: Backend) {
    let p = platform(backend, &[]).await;
    let ada = p.person("ada@example.com").await;
    let reset = "mutation($e: String!) { requestPasswordReset(email: $e) { accepted } }";
    let sent_before = p.smtp.count("ada@example.com", "Reset");
    // Five mails an hour: the sign-up's verification mail was the first.
    for n in 0..4u8 {
        let from = p.api.at_ip([127, 0, 2, n + 1]);
        from.ok(None, reset, json!({"e": "ada@example.com"})).await;
    }
    let sixth = p
        .api
        .at_ip([127, 0, 2, 9])
        .gql(None, reset, json!({"e": "ada@example.com"}))
        .await;
    assert_eq!(code(&sixth), Some("RATE_LIMITED"), "{sixth}");
    // An address with no account is capped alike (the answer must not tell them apart).
    for n in 0..5u8 {
        let from = p.api.at_ip([127, 0, 3, n + 1]);
        from.ok(None, reset, json!({"e": "nobody@example.com"}))
            .await;
    }
    let sixth = p
        .api
        .gql(None, reset, json!({"e": "nobody@example.com"}))
        .await;
    assert_eq!(code(&sixth), Some("RATE_LIMITED"), "{sixth}");
    support::wait_until(
        "four reset mails",
        std::time::Duration::from_secs(10),
        || (p.smtp.count("ada@example.com", "Reset") == sent_before + 4).then_some(()),
    );

    let tenant = p.tenant(&ada, "quota").await;
    let invite = "mutation($t: ID!, $e: String!) { inviteMember(tenantId: $t, email: $e, role: MEMBER) { position } }";
    for n in 0..10 {
        p.api
            .ok(
                Some(&ada.token),
                invite,
                json!({"t": tenant, "e": format!("guest{n}@example.com")}),
            )
            .await;
    }
    let eleventh = p
        .api
        .gql(
            Some(&ada.token),
            invite,
            json!({"t": tenant, "e": "guest10@example.com"}),
        )
        .await;
    assert_eq!(code(&eleventh), Some("RATE_LIMITED"), "{eleventh}");
}

/// Slugs are unique across the platform: another user cannot take one (before, two tenants
/// could share a slug).
async fn a_slug_names_one_tenant_across_the_platform(backend: Backend) {
    let p = platform(backend, &[]).await;
    let ada = p.person("ada@example.com").await;
    let bob = p.person("bob@example.com").await;
    p.tenant(&ada, "acme").await;
    let create = "mutation($s: String!) { createTenant(input: {name: \"Mine\", slug: $s}) { tenant { id } } }";
    let taken = p
        .api
        .gql(Some(&bob.token), create, json!({"s": "acme"}))
        .await;
    assert_eq!(code(&taken), Some("CONFLICT"), "{taken}");
    assert!(
        taken["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("slug"),
        "{taken}"
    );
    p.api
        .ok(Some(&bob.token), create, json!({"s": "acme-bob"}))
        .await;
}

/// Pre-registration takeover: someone signs up first with another person's address and a
/// password of their own. The mail goes to the real owner, who verifies with *their*
/// password: from then on only theirs works, and the early bird's is worthless.
async fn signing_up_first_with_someone_elses_address_takes_nothing_over(backend: Backend) {
    let p = platform(backend, &[]).await;
    let sign_up = "mutation($e: String!, $p: String!) { signUp(input: {email: $e, password: $p}) { accepted } }";
    let attacker_password = "the attacker's own password";
    p.api
        .ok(
            None,
            sign_up,
            json!({"e": "victim@example.com", "p": attacker_password}),
        )
        .await;
    // The verification mail reaches the real owner, who sets their own password with it.
    let token = p.smtp.token("victim@example.com", "Verify").await;
    let verify =
        "mutation($t: String!, $p: String!) { verifyEmail(token: $t, password: $p) { position } }";
    let weak = p
        .api
        .gql(None, verify, json!({"t": token, "p": "short"}))
        .await;
    assert_eq!(code(&weak), Some("BAD_USER_INPUT"), "{weak}");
    p.api
        .ok(None, verify, json!({"t": token, "p": PASSWORD}))
        .await;
    let attacker = p
        .api
        .gql(
            None,
            LOG_IN,
            json!({"e": "victim@example.com", "p": attacker_password}),
        )
        .await;
    assert_eq!(code(&attacker), Some("UNAUTHENTICATED"), "{attacker}");
    let owner = p
        .api
        .ok(
            None,
            LOG_IN,
            json!({"e": "victim@example.com", "p": PASSWORD}),
        )
        .await;
    assert!(owner["logIn"]["token"].is_string());
}

/// A second sign-up for an address that is not verified yet replaces the pending password
/// and mails a new token (the first one stops working): whichever of the two signed up
/// first, only the mailbox holder can verify, and only with a password they set.
async fn a_second_sign_up_replaces_pending_credentials(backend: Backend) {
    let p = platform(backend, &[]).await;
    let sign_up = "mutation($e: String!, $p: String!) { signUp(input: {email: $e, password: $p}) { accepted } }";
    let verify =
        "mutation($t: String!, $p: String!) { verifyEmail(token: $t, password: $p) { position } }";
    let attacker_password = "the attacker's own password";
    p.api
        .ok(
            None,
            sign_up,
            json!({"e": "victim@example.com", "p": attacker_password}),
        )
        .await;
    let first = p.smtp.token("victim@example.com", "Verify").await;
    // The owner signs up too, with their own password: answered the same as any sign-up.
    p.api
        .ok(
            None,
            sign_up,
            json!({"e": "victim@example.com", "p": PASSWORD}),
        )
        .await;
    let second = p.smtp.token("victim@example.com", "Verify").await;
    let stale = p
        .api
        .gql(None, verify, json!({"t": first, "p": PASSWORD}))
        .await;
    assert_eq!(code(&stale), Some("BAD_USER_INPUT"), "{stale}");
    p.api
        .ok(None, verify, json!({"t": second, "p": PASSWORD}))
        .await;
    let attacker = p
        .api
        .gql(
            None,
            LOG_IN,
            json!({"e": "victim@example.com", "p": attacker_password}),
        )
        .await;
    assert_eq!(code(&attacker), Some("UNAUTHENTICATED"), "{attacker}");
    p.log_in("victim@example.com", PASSWORD).await;
}

/// Enumeration: sign-up, reset and resend answer alike, in the same time, whether or not an
/// address has an account; the owner of a taken address is told by mail instead.
async fn nobody_learns_which_addresses_have_accounts(backend: Backend) {
    let p = platform(backend, &[]).await;
    let ada = p.person("ada@example.com").await;
    let floor = std::time::Duration::from_millis(400);
    let timed = async |query: &str, vars: serde_json::Value| {
        let started = std::time::Instant::now();
        let answer = p.api.gql(None, query, vars).await;
        (answer, started.elapsed())
    };
    let sign_up = "mutation($e: String!, $p: String!) { signUp(input: {email: $e, password: $p}) { accepted position } }";
    let (taken, taken_time) = timed(
        sign_up,
        json!({"e": "ada@example.com", "p": "someone else's password"}),
    )
    .await;
    let (fresh, fresh_time) = timed(sign_up, json!({"e": "new@example.com", "p": PASSWORD})).await;
    let shape = |v: &serde_json::Value| {
        assert!(v.get("errors").is_none(), "{v}");
        assert_eq!(v["data"]["signUp"]["accepted"], true, "{v}");
        assert!(v["data"]["signUp"]["position"].is_string(), "{v}");
        v["data"]["signUp"]
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
    };
    assert_eq!(shape(&taken), shape(&fresh));
    assert!(
        taken_time >= floor && fresh_time >= floor,
        "{taken_time:?} {fresh_time:?}"
    );
    // The owner hears of it; nothing of theirs changed.
    let notice = p.smtp.message("ada@example.com", "Sign-up attempt").await;
    assert!(notice.contains("already has one"), "{notice}");
    p.smtp.message("new@example.com", "Verify").await;
    p.log_in("ada@example.com", PASSWORD).await;
    let other = p
        .api
        .gql(
            None,
            LOG_IN,
            json!({"e": "ada@example.com", "p": "someone else's password"}),
        )
        .await;
    assert_eq!(code(&other), Some("UNAUTHENTICATED"), "{other}");

    // Reset and resend: one answer for an account, a pending account and no account.
    for query in [
        "mutation($e: String!) { requestPasswordReset(email: $e) { accepted } }",
        "mutation($e: String!) { resendVerificationEmail(email: $e) { accepted } }",
    ] {
        let mut answers = Vec::new();
        for email in [&ada.email, "new@example.com", "nobody@example.com"] {
            let (answer, took) = timed(query, json!({"e": email})).await;
            assert!(took >= floor, "{query} for {email}: {took:?}");
            answers.push(answer);
        }
        assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    }
    p.mail_settled().await;
    assert_eq!(p.smtp.count("nobody@example.com", ""), 0);
    assert_eq!(p.smtp.count(&ada.email, "Reset"), 1);
    assert_eq!(
        p.smtp.count(&ada.email, "Verify"),
        1,
        "verified: no new token"
    );
    assert_eq!(p.smtp.count("new@example.com", "Verify"), 2);
}

/// A user owns at most `--max-tenants-per-user` open tenants: one more is refused and writes
/// nothing, a retried creation is still answered, and closing one makes room.
async fn a_user_owns_a_bounded_number_of_tenants(backend: Backend) {
    let p = platform(backend, &["--max-tenants-per-user", "2"]).await;
    let ada = p.person("ada@example.com").await;
    let bob = p.person("bob@example.com").await;
    let create = "mutation($s: String!, $k: ID) { createTenant(input: {name: \"T\", slug: $s}, idempotencyKey: $k) { tenant { id } } }";
    let key = uuid::Uuid::now_v7().to_string();
    let first = p
        .api
        .ok(Some(&ada.token), create, json!({"s": "ada-one", "k": key}))
        .await;
    p.api
        .ok(Some(&ada.token), create, json!({"s": "ada-two", "k": null}))
        .await;
    let head = p.api.head().await;
    let third = p
        .api
        .gql(
            Some(&ada.token),
            create,
            json!({"s": "ada-three", "k": null}),
        )
        .await;
    assert_eq!(code(&third), Some("PLAN_LIMIT_EXCEEDED"), "{third}");
    assert_eq!(
        p.api.head().await,
        head,
        "the refused creation wrote nothing"
    );
    // A retry of a creation that happened is answered as before.
    let again = p
        .api
        .ok(Some(&ada.token), create, json!({"s": "ada-one", "k": key}))
        .await;
    assert_eq!(again, first);
    // Another user's quota is their own.
    p.api
        .ok(Some(&bob.token), create, json!({"s": "bob-one", "k": null}))
        .await;
    // Closing a tenant makes room.
    p.api
        .ok(
            Some(&ada.token),
            "mutation($t: ID!) { closeTenant(tenantId: $t) { position } }",
            json!({"t": first["createTenant"]["tenant"]["id"]}),
        )
        .await;
    p.api
        .ok(
            Some(&ada.token),
            create,
            json!({"s": "ada-three", "k": null}),
        )
        .await;
}

on_both!(
    a_user_owns_a_bounded_number_of_tenants,
    a_second_sign_up_replaces_pending_credentials,
    nobody_learns_which_addresses_have_accounts,
    signing_up_first_with_someone_elses_address_takes_nothing_over,
    a_slug_names_one_tenant_across_the_platform,
    mails_and_invitations_have_hourly_quotas,
    wrong_passwords_from_one_client_do_not_lock_the_owner_out,
    password_hashing_is_capped_not_queued,
    an_idempotency_key_with_other_arguments_is_refused,
);
