//! End-to-end: the flow an SPA builds (sign up → verify → log in → create tenant → invite →
//! accept → manage keys), role checks, sessions, password reset, TOTP, operators, rate
//! limits — against the real server, a real SMTP server, on SQLite and PostgreSQL.
#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use serde_json::json;
use support::graphql::{Backend, OPERATOR, PASSWORD, code, platform};

const MEMBERS: &str =
    "query($t: ID!) { tenant(id: $t) { name members { edges { node { userId email role } } } } }";

async fn the_readme_flow_with_roles_and_keys(backend: Backend) {
    let p = platform(backend, &[]).await;
    let api = &p.api;
    let ada = p.person("ada@example.com").await;
    let tenant = p.tenant(&ada, "acme").await;
    let bob = p.person("bob@example.com").await;

    // Invite, accept: bob is a member and sees the tenant among his own.
    p.join(&ada, &tenant, &bob, "MEMBER").await;
    let data = api
        .ok(Some(&ada.token), MEMBERS, json!({"t": tenant}))
        .await;
    let members = data["tenant"]["members"]["edges"].as_array().unwrap();
    assert_eq!(members.len(), 2, "{data}");
    assert_eq!(members[1]["node"]["email"], "bob@example.com");
    assert_eq!(members[1]["node"]["role"], "MEMBER");
    let mine = api
        .ok(
            Some(&bob.token),
            "{ me { email tenants { edges { node { id myRole } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        mine["me"]["tenants"]["edges"][0]["node"]["id"],
        tenant.as_str()
    );
    assert_eq!(
        mine["me"]["tenants"]["edges"][0]["node"]["myRole"],
        "MEMBER"
    );

    // A member cannot manage members or keys, nor see them.
    let invite = "mutation($t: ID!) { inviteMember(tenantId: $t, email: \"eve@example.com\", role: VIEWER) { invite { id } } }";
    assert_eq!(
        api.fails(Some(&bob.token), invite, json!({"t": tenant}))
            .await,
        "FORBIDDEN"
    );
    let key = "mutation($t: ID!) { createApiKey(tenantId: $t, name: \"k\", scope: READ_ONLY) { secret } }";
    assert_eq!(
        api.fails(Some(&bob.token), key, json!({"t": tenant})).await,
        "FORBIDDEN"
    );
    let keys = "query($t: ID!) { tenant(id: $t) { apiKeys { edges { node { id } } } } }";
    assert_eq!(
        api.fails(Some(&bob.token), keys, json!({"t": tenant}))
            .await,
        "FORBIDDEN"
    );

    // A viewer cannot mutate at all.
    let role = "mutation($t: ID!, $u: ID!, $r: Role!) { changeMemberRole(tenantId: $t, userId: $u, role: $r) { member { role } position } }";
    let changed = api
        .ok(
            Some(&ada.token),
            role,
            json!({"t": tenant, "u": bob.user_id, "r": "VIEWER"}),
        )
        .await;
    assert_eq!(changed["changeMemberRole"]["member"]["role"], "VIEWER");
    let rename = "mutation($t: ID!, $n: String!) { renameTenant(tenantId: $t, name: $n) { tenant { name } position } }";
    assert_eq!(
        api.fails(Some(&bob.token), rename, json!({"t": tenant, "n": "Bob's"}))
            .await,
        "FORBIDDEN"
    );

    // The last owner can be neither demoted nor removed; bob cannot remove ada.
    let demote = api
        .gql(
            Some(&ada.token),
            role,
            json!({"t": tenant, "u": ada.user_id, "r": "ADMIN"}),
        )
        .await;
    assert_eq!(code(&demote), Some("CONFLICT"), "{demote}");
    assert!(
        demote["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("owner")
    );
    let remove =
        "mutation($t: ID!, $u: ID!) { removeMember(tenantId: $t, userId: $u) { id position } }";
    assert_eq!(
        api.fails(
            Some(&ada.token),
            remove,
            json!({"t": tenant, "u": ada.user_id})
        )
        .await,
        "CONFLICT"
    );
    assert_eq!(
        api.fails(
            Some(&bob.token),
            remove,
            json!({"t": tenant, "u": ada.user_id})
        )
        .await,
        "FORBIDDEN"
    );

    // Keys: shown once, act within their scope, tracked, revocable.
    let (read_id, read_key) = p.api_key(&ada, &tenant, "READ_ONLY").await;
    let (_, write_key) = p.api_key(&ada, &tenant, "READ_WRITE").await;
    let as_key = api
        .ok(
            Some(&read_key),
            "query($t: ID!) { tenant(id: $t) { name } }",
            json!({"t": tenant}),
        )
        .await;
    assert_eq!(as_key["tenant"]["name"], "Tenant acme");
    assert_eq!(
        api.fails(Some(&read_key), rename, json!({"t": tenant, "n": "x"}))
            .await,
        "FORBIDDEN"
    );
    assert_eq!(
        api.fails(Some(&write_key), key, json!({"t": tenant})).await,
        "FORBIDDEN",
        "read-write keys do not manage keys"
    );
    assert_eq!(
        api.fails(Some(&read_key), "{ me { id } }", json!({})).await,
        "FORBIDDEN",
        "keys are not users"
    );
    let listed = api
        .ok(Some(&ada.token), "query($t: ID!) { tenant(id: $t) { apiKeys { edges { node { id name scope lastUsedAt revokedAt } } } } }", json!({"t": tenant}))
        .await;
    let row = listed["tenant"]["apiKeys"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["id"] == read_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["node"]["scope"], "READ_ONLY");
    assert!(
        row["node"]["lastUsedAt"].is_string(),
        "last use is tracked: {row}"
    );
    assert!(
        !listed
            .to_string()
            .contains(read_key.rsplit('.').next().unwrap()),
        "the secret is never shown again"
    );
    let revoke = "mutation($t: ID!, $k: ID!) { revokeApiKey(tenantId: $t, apiKeyId: $k) { apiKey { revokedAt } } }";
    let revoked = api
        .ok(Some(&ada.token), revoke, json!({"t": tenant, "k": read_id}))
        .await;
    assert!(revoked["revokeApiKey"]["apiKey"]["revokedAt"].is_string());
    let after = api
        .gql(
            Some(&read_key),
            "query($t: ID!) { tenant(id: $t) { name } }",
            json!({"t": tenant}),
        )
        .await;
    assert_eq!(
        code(&after),
        Some("UNAUTHENTICATED"),
        "a revoked key stops at once: {after}"
    );

    // The owner renames; another member reads with the position. (The mutation already
    // waited for the read models, so this shows only that the argument is accepted; that
    // atPosition and X-Consistency-Position make a read wait is in graphql_consistency.rs.)
    let renamed = api
        .ok(
            Some(&ada.token),
            rename,
            json!({"t": tenant, "n": "Acme Corp"}),
        )
        .await;
    let position = renamed["renameTenant"]["position"].as_str().unwrap();
    let read = api
        .ok(
            Some(&bob.token),
            "query($t: ID!, $p: String) { tenant(id: $t, atPosition: $p) { name } }",
            json!({"t": tenant, "p": position}),
        )
        .await;
    assert_eq!(read["tenant"]["name"], "Acme Corp");

    // Removal: bob loses access at once.
    api.ok(
        Some(&ada.token),
        remove,
        json!({"t": tenant, "u": bob.user_id}),
    )
    .await;
    assert_eq!(
        api.fails(Some(&bob.token), MEMBERS, json!({"t": tenant}))
            .await,
        "NOT_FOUND"
    );

    // Logging out ends the session.
    api.ok(
        Some(&ada.token),
        "mutation { logOut { position } }",
        json!({}),
    )
    .await;
    assert_eq!(
        api.fails(Some(&ada.token), "{ me { id } }", json!({}))
            .await,
        "UNAUTHENTICATED"
    );
}

async fn passwords_resets_and_totp(backend: Backend) {
    let p = platform(backend, &[]).await;
    let api = &p.api;
    let ada = p.person("ada@example.com").await;
    let second = p.log_in("ada@example.com", PASSWORD).await;

    // logIn takes no idempotency key: a stored result must never stand in for a factor the
    // request did not pass. A retried log-in is a new log-in, with a session of its own.
    let keyed = "mutation($e: String!, $p: String!, $k: ID) { logIn(input: {email: $e, password: $p}, idempotencyKey: $k) { token } }";
    let key = uuid::Uuid::now_v7().to_string();
    let vars = json!({"e": "ada@example.com", "p": PASSWORD, "k": key});
    assert_eq!(api.fails(None, keyed, vars).await, "BAD_USER_INPUT");
    let plain =
        "mutation($e: String!, $p: String!) { logIn(input: {email: $e, password: $p}) { token } }";
    let vars = json!({"e": "ada@example.com", "p": PASSWORD});
    let first = api.ok(None, plain, vars.clone()).await;
    let again = api.ok(None, plain, vars).await;
    let (first, again) = (
        first["logIn"]["token"].as_str().unwrap(),
        again["logIn"]["token"].as_str().unwrap(),
    );
    assert_ne!(first, again, "each log-in starts its own session");
    api.ok(Some(first), "mutation { logOut { position } }", json!({}))
        .await;
    api.ok(Some(again), "{ me { id } }", json!({})).await;

    // Wrong password, unknown account: the same answer.
    let log_in =
        "mutation($e: String!, $p: String!) { logIn(input: {email: $e, password: $p}) { token } }";
    let wrong = api
        .gql(
            None,
            log_in,
            json!({"e": "ada@example.com", "p": "not the password"}),
        )
        .await;
    let unknown = api
        .gql(
            None,
            log_in,
            json!({"e": "nobody@example.com", "p": "not the password"}),
        )
        .await;
    assert_eq!(code(&wrong), Some("UNAUTHENTICATED"));
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );

    // Changing the password ends the other sessions, keeps this one.
    let change = "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) { user { id } } }";
    assert_eq!(
        api.fails(
            Some(&ada.token),
            change,
            json!({"c": "wrong one!", "n": "another good passphrase"})
        )
        .await,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        api.fails(
            Some(&ada.token),
            change,
            json!({"c": PASSWORD, "n": "short"})
        )
        .await,
        "BAD_USER_INPUT"
    );
    api.ok(
        Some(&ada.token),
        change,
        json!({"c": PASSWORD, "n": "another good passphrase"}),
    )
    .await;
    api.ok(Some(&ada.token), "{ me { id } }", json!({})).await;
    assert_eq!(
        api.fails(Some(&second), "{ me { id } }", json!({})).await,
        "UNAUTHENTICATED"
    );

    // Reset by e-mailed token: every session ends; the token works once.
    let request = "mutation($e: String!) { requestPasswordReset(email: $e) { accepted } }";
    let nobody = api
        .ok(None, request, json!({"e": "nobody@example.com"}))
        .await;
    assert_eq!(
        nobody["requestPasswordReset"]["accepted"], true,
        "no account enumeration"
    );
    api.ok(None, request, json!({"e": "ada@example.com"})).await;
    let token = p.smtp.token("ada@example.com", "Reset").await;
    let reset = "mutation($t: String!, $n: String!) { resetPassword(token: $t, newPassword: $n) { position } }";
    api.ok(
        None,
        reset,
        json!({"t": token, "n": "third good passphrase"}),
    )
    .await;
    assert_eq!(
        api.fails(
            None,
            reset,
            json!({"t": token, "n": "fourth good passphrase"})
        )
        .await,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        api.fails(Some(&ada.token), "{ me { id } }", json!({}))
            .await,
        "UNAUTHENTICATED"
    );
    let token = p.log_in("ada@example.com", "third good passphrase").await;

    // TOTP: enroll, confirm with a code, then log-in needs a code or a recovery code.
    // Enrolling needs the current password: a stolen session alone cannot bind the account
    // to an attacker's authenticator.
    let enroll = "mutation($p: String!) { enrollTotp(currentPassword: $p) { secret otpauthUri } }";
    assert_eq!(
        api.fails(
            Some(&token),
            "mutation { enrollTotp { secret } }",
            json!({})
        )
        .await,
        "BAD_USER_INPUT"
    );
    let wrong = api
        .gql(Some(&token), enroll, json!({"p": "not the password"}))
        .await;
    assert_eq!(code(&wrong), Some("BAD_USER_INPUT"), "{wrong}");
    assert_eq!(wrong["errors"][0]["extensions"]["field"], "currentPassword");
    let enrolled = api
        .ok(Some(&token), enroll, json!({"p": "third good passphrase"}))
        .await;
    let secret = enrolled["enrollTotp"]["secret"].as_str().unwrap();
    assert!(
        enrolled["enrollTotp"]["otpauthUri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Tenantry:ada%40example.com?secret=")
    );
    let totp = infra::crypto::Totp::from_base32(secret).unwrap();
    assert_eq!(
        api.fails(
            Some(&token),
            "mutation { confirmTotp(code: \"000000\") { recoveryCodes } }",
            json!({})
        )
        .await,
        "BAD_USER_INPUT"
    );
    let code_now = totp.code_at(chrono::Utc::now());
    let confirmed = api
        .ok(
            Some(&token),
            "mutation($c: String!) { confirmTotp(code: $c) { recoveryCodes } }",
            json!({"c": code_now}),
        )
        .await;
    let recovery = confirmed["confirmTotp"]["recoveryCodes"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let me = api
        .ok(Some(&token), "{ me { totpEnabled } }", json!({}))
        .await;
    assert_eq!(me["me"]["totpEnabled"], true);
    let with = "mutation($e: String!, $p: String!, $c: String, $r: String) { logIn(input: {email: $e, password: $p, totpCode: $c, recoveryCode: $r}) { token } }";
    let args = |c: Option<&str>, r: Option<&str>| json!({"e": "ada@example.com", "p": "third good passphrase", "c": c, "r": r});
    assert_eq!(
        api.fails(None, with, args(None, None)).await,
        "UNAUTHENTICATED"
    );
    assert_eq!(
        api.fails(None, with, args(Some("123456"), None)).await,
        "UNAUTHENTICATED"
    );
    let code_once = totp.code_at(chrono::Utc::now());
    api.ok(None, with, args(Some(&code_once), None)).await;
    let replayed = api.gql(None, with, args(Some(&code_once), None)).await;
    assert_eq!(
        code(&replayed),
        Some("UNAUTHENTICATED"),
        "a TOTP code works once: {replayed}"
    );
    api.ok(None, with, args(None, Some(&recovery))).await;
    assert_eq!(
        api.fails(None, with, args(None, Some(&recovery))).await,
        "UNAUTHENTICATED",
        "a recovery code works once"
    );
    // The attack on retries: the exact body of a log-in that succeeded (with its TOTP code),
    // then the same body with the second factor wrong or missing. Every factor is checked on
    // every request; nothing comes back from the first one.
    let spare = confirmed["confirmTotp"]["recoveryCodes"][1]
        .as_str()
        .unwrap()
        .to_owned();
    let succeeded = api.ok(None, with, args(None, Some(&spare))).await;
    assert!(succeeded["logIn"]["token"].is_string());
    for (c, r) in [
        (Some("000000"), None),
        (None, None),
        (None, Some("not-a-recovery-code")),
        (None, Some(spare.as_str())),
        (Some(code_once.as_str()), None),
    ] {
        let answer = api.gql(None, with, args(c, r)).await;
        assert_eq!(
            code(&answer),
            Some("UNAUTHENTICATED"),
            "{c:?} {r:?}: {answer}"
        );
    }

    // A password reset proves control of the mailbox only: TOTP stays on, and log-in still
    // needs the second factor afterwards.
    api.ok(None, request, json!({"e": "ada@example.com"})).await;
    let token = p.smtp.token("ada@example.com", "Reset").await;
    api.ok(
        None,
        "mutation($t: String!, $n: String!) { resetPassword(token: $t, newPassword: $n) { position } }",
        json!({"t": token, "n": "fourth good passphrase"}),
    )
    .await;
    let after_reset = |c: Option<&str>, r: Option<&str>| json!({"e": "ada@example.com", "p": "fourth good passphrase", "c": c, "r": r});
    assert_eq!(
        api.fails(None, with, after_reset(None, None)).await,
        "UNAUTHENTICATED"
    );
    let third = confirmed["confirmTotp"]["recoveryCodes"][2]
        .as_str()
        .unwrap()
        .to_owned();
    let session = api.ok(None, with, after_reset(None, Some(&third))).await;
    let session = session["logIn"]["token"].as_str().unwrap().to_owned();

    // Turning TOTP off needs the password and a code; a used recovery code does not do.
    let disable = "mutation($p: String!, $c: String, $r: String) { disableTotp(currentPassword: $p, totpCode: $c, recoveryCode: $r) { user { totpEnabled } } }";
    for vars in [
        json!({"p": "not the password", "r": third}),
        json!({"p": "fourth good passphrase"}),
        json!({"p": "fourth good passphrase", "c": "000000"}),
        json!({"p": "fourth good passphrase", "r": third}),
    ] {
        assert_eq!(
            api.fails(Some(&session), disable, vars.clone()).await,
            "BAD_USER_INPUT",
            "{vars}"
        );
    }
    let fourth = confirmed["confirmTotp"]["recoveryCodes"][3]
        .as_str()
        .unwrap()
        .to_owned();
    let off = api
        .ok(
            Some(&session),
            disable,
            json!({"p": "fourth good passphrase", "r": fourth}),
        )
        .await;
    assert_eq!(off["disableTotp"]["user"]["totpEnabled"], false);
    api.ok(None, with, after_reset(None, None)).await;
    assert_eq!(
        api.fails(
            Some(&session),
            disable,
            json!({"p": "fourth good passphrase", "r": fourth})
        )
        .await,
        "CONFLICT",
        "already off"
    );
}

async fn operators_see_every_tenant_and_nobody_else_does(backend: Backend) {
    let p = platform(backend, &[]).await;
    let api = &p.api;
    let ada = p.person("ada@example.com").await;
    let a = p.tenant(&ada, "alpha").await;
    let op = p.person(OPERATOR).await;
    let list =
        "{ allTenants(first: 10) { edges { node { id name status } } pageInfo { hasNextPage } } }";
    assert_eq!(
        api.fails(Some(&ada.token), list, json!({})).await,
        "FORBIDDEN"
    );
    assert_eq!(api.fails(None, list, json!({})).await, "UNAUTHENTICATED");
    let all = api.ok(Some(&op.token), list, json!({})).await;
    assert_eq!(all["allTenants"]["edges"][0]["node"]["id"], a.as_str());
    let me = api
        .ok(Some(&op.token), "{ me { isOperator } }", json!({}))
        .await;
    assert_eq!(me["me"]["isOperator"], true);

    let (key_id, _) = p.api_key(&ada, &a, "READ_ONLY").await;
    let suspend =
        "mutation($t: ID!) { suspendTenant(tenantId: $t, reason: \"unpaid\") { position } }";
    assert_eq!(
        api.fails(Some(&ada.token), suspend, json!({"t": a})).await,
        "FORBIDDEN"
    );
    let done = api.ok(Some(&op.token), suspend, json!({"t": a})).await;
    let at = done["suspendTenant"]["position"].as_str().unwrap();
    let seen = api
        .ok(
            Some(&ada.token),
            "query($t: ID!, $p: String) { tenant(id: $t, atPosition: $p) { status } }",
            json!({"t": a, "p": at}),
        )
        .await;
    assert_eq!(seen["tenant"]["status"], "SUSPENDED");
    // A suspended tenant's access cannot grow; it can shrink.
    let invite = "mutation($t: ID!) { inviteMember(tenantId: $t, email: \"eve@example.com\", role: ADMIN) { position } }";
    assert_eq!(
        api.fails(Some(&ada.token), invite, json!({"t": a})).await,
        "CONFLICT"
    );
    let create =
        "mutation($t: ID!) { createApiKey(tenantId: $t, name: \"k\", scope: ADMIN) { secret } }";
    assert_eq!(
        api.fails(Some(&ada.token), create, json!({"t": a})).await,
        "CONFLICT"
    );
    let revoke = "mutation($t: ID!, $k: ID!) { revokeApiKey(tenantId: $t, apiKeyId: $k) { apiKey { revokedAt } } }";
    api.ok(Some(&ada.token), revoke, json!({"t": a, "k": key_id}))
        .await;
    let reactivate = "mutation($t: ID!) { reactivateTenant(tenantId: $t) { position } }";
    api.ok(Some(&op.token), reactivate, json!({"t": a})).await;
    api.ok(Some(&ada.token), create, json!({"t": a})).await;
}

/// (The limits themselves, one counter at a time, are in `graphql_limits.rs`.)
async fn failed_log_ins_are_recorded_without_the_password_or_personal_data(backend: Backend) {
    let p = platform(backend, &[]).await;
    let api = &p.api;
    let ada = p.person("ada@example.com").await;
    let log_in =
        "mutation($e: String!, $p: String!) { logIn(input: {email: $e, password: $p}) { token } }";
    let head = api.head().await;
    for guess in ["guess number one", "guess number two"] {
        assert_eq!(
            api.fails(None, log_in, json!({"e": ada.email, "p": guess}))
                .await,
            "UNAUTHENTICATED"
        );
    }
    // The two failures are events on the account (and the refusal is in the platform's
    // audit trail); the guesses appear nowhere in the log.
    let written = support::graphql::written_since(&p.database_url, head).await;
    assert_eq!(
        written
            .iter()
            .filter(|e| !support::graphql::is_refusal_record(e))
            .count(),
        2,
        "{written:?}"
    );
    let events = support::graphql::events(&p.database_url).await;
    let failed: Vec<_> = events
        .iter()
        .filter(|(t, _, _)| t == "LoginFailed")
        .collect();
    assert_eq!(failed.len(), 2);
    for (_, payload, metadata) in &events {
        assert!(!payload.contains("guess number"), "{payload}");
        assert!(!payload.contains(PASSWORD) && !metadata.contains(PASSWORD));
        assert!(
            !payload.contains("ada@example.com"),
            "personal data is sealed: {payload}"
        );
        assert!(
            !metadata.contains("127.0.0.1"),
            "IP addresses are sealed: {metadata}"
        );
    }
    assert!(
        events.iter().any(|(_, _, m)| m.contains("pd1:")),
        "sealed IPs are recorded"
    );
}

on_both!(
    the_readme_flow_with_roles_and_keys,
    passwords_resets_and_totp,
    operators_see_every_tenant_and_nobody_else_does,
    failed_log_ins_are_recorded_without_the_password_or_personal_data,
);
