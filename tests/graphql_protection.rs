//! Bad input and protection: malformed bodies, invalid GraphQL, limits, weak input, bad
//! tokens — each gets its code, writes nothing, and the server keeps serving. Also: request
//! ids, metrics, bounded query counts (DataLoaders) and the introspection switch.
#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use support::graphql::{Backend, MASTER_KEY, PASSWORD, assert_refused, code, platform};

async fn bad_input_gets_its_code_writes_nothing_and_the_server_serves_on(backend: Backend) {
    let p = platform(backend, &[]).await;
    let api = &p.api;
    let ada = p.person("ada@example.com").await;
    let tenant = p.tenant(&ada, "acme").await;
    let head = api.head().await;
    let raw = |body: &'static str| {
        let client = api.client.clone();
        let url = format!("{}/graphql", api.base);
        async move {
            let response = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };

    // Malformed JSON, a body that is not a request, invalid GraphQL, unknown fields.
    let (status, body) = raw("{\"query\": ").await;
    assert_eq!(
        (status, code(&body)),
        (400, Some("BAD_USER_INPUT")),
        "{body}"
    );
    let (status, body) = raw("[]").await;
    assert_eq!(
        (status, code(&body)),
        (400, Some("BAD_USER_INPUT")),
        "{body}"
    );
    let invalid = api.gql(None, "{ me { id }", json!({})).await;
    assert_eq!(code(&invalid), Some("BAD_USER_INPUT"), "{invalid}");
    let unknown = api
        .gql(Some(&ada.token), "{ me { password } }", json!({}))
        .await;
    assert_eq!(code(&unknown), Some("BAD_USER_INPUT"), "{unknown}");
    let wrong_type = api
        .gql(
            Some(&ada.token),
            "query($t: ID!) { tenant(id: $t) { name } }",
            json!({"t": 5}),
        )
        .await;
    assert_eq!(code(&wrong_type), Some("BAD_USER_INPUT"), "{wrong_type}");
    let not_an_id = api
        .gql(
            Some(&ada.token),
            "{ tenant(id: \"nope\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&not_an_id), Some("BAD_USER_INPUT"), "{not_an_id}");
    assert_eq!(not_an_id["errors"][0]["extensions"]["field"], "id");
    let future = api
        .gql(
            Some(&ada.token),
            "query($t: ID!) { tenant(id: $t, atPosition: \"999999999\") { name } }",
            json!({"t": tenant}),
        )
        .await;
    assert_eq!(
        code(&future),
        Some("BAD_USER_INPUT"),
        "a position never written is refused at once: {future}"
    );
    let header = api
        .client
        .post(format!("{}/graphql", api.base))
        .header("x-consistency-position", "soon")
        .json(&json!({"query": "{ __typename }"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(code(&header), Some("BAD_USER_INPUT"), "{header}");

    // Oversized bodies, over-deep and over-complex queries, too many aliases, big batches.
    let huge = json!({"query": format!("{{ me {{ id }} }} #{}", "x".repeat(70_000))});
    let (status, body) = api.post(None, &huge).await;
    assert_eq!(
        (status, code(&body)),
        (413, Some("BAD_USER_INPUT")),
        "{body}"
    );
    let deep = "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } }";
    let response = api.gql(None, deep, json!({})).await;
    assert_refused(&response, "BAD_USER_INPUT", "nested");
    let complex = "{ me { tenants(first: 100) { edges { node { members(first: 100) { edges { node { email } } } apiKeys(first: 100) { edges { node { name } } } } } } } }";
    let response = api.gql(Some(&ada.token), complex, json!({})).await;
    assert_refused(&response, "BAD_USER_INPUT", "complex");
    let aliases: String = (0..40).map(|i| format!("a{i}: __typename ")).collect();
    let response = api.gql(None, &format!("{{ {aliases} }}"), json!({})).await;
    assert_refused(&response, "BAD_USER_INPUT", "aliases");
    let batch: Vec<Value> = (0..11)
        .map(|_| json!({"query": "{ __typename }"}))
        .collect();
    let (status, body) = api.post(None, &Value::Array(batch)).await;
    assert_eq!(
        (status, code(&body)),
        (400, Some("BAD_USER_INPUT")),
        "{body}"
    );
    let small: Vec<Value> = (0..2).map(|_| json!({"query": "{ __typename }"})).collect();
    let (status, body) = api.post(None, &Value::Array(small)).await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().unwrap().len(), 2, "batches of up to 10 run");

    // Invalid e-mail addresses, weak passwords, bad names: the field at fault is named.
    let sign_up = "mutation($e: String!, $p: String!) { signUp(input: {email: $e, password: $p}) { accepted } }";
    for (email, password, field) in [
        ("not-an-email", PASSWORD, "email"),
        ("eve@example", PASSWORD, "email"),
        ("eve@example.com", "short", "password"),
        ("eve@example.com", "aaaaaaaaaaaaaaa", "password"),
        ("eve@example.com", "password123", "password"),
    ] {
        let response = api
            .gql(None, sign_up, json!({"e": email, "p": password}))
            .await;
        assert_eq!(
            code(&response),
            Some("BAD_USER_INPUT"),
            "{email} {password}: {response}"
        );
        assert_eq!(
            response["errors"][0]["extensions"]["field"], field,
            "{response}"
        );
    }
    assert_eq!(api.head().await, head, "refused input wrote nothing");
    // A sign-up key is scoped by its address: reusing it with another address never
    // answers with someone else's account.
    let keyed = "mutation($e: String!, $p: String!, $k: ID) { signUp(input: {email: $e, password: $p}, idempotencyKey: $k) { accepted position } }";
    let key = uuid::Uuid::now_v7().to_string();
    let eve = api
        .ok(
            None,
            keyed,
            json!({"e": "eve@example.com", "p": PASSWORD, "k": key}),
        )
        .await;
    p.mail_settled().await;
    let head_after_eve = api.head().await;
    let eve_again = api
        .ok(
            None,
            keyed,
            json!({"e": "eve@example.com", "p": PASSWORD, "k": key}),
        )
        .await;
    assert_eq!(eve, eve_again, "a retried sign-up is the same account");
    assert_eq!(api.head().await, head_after_eve, "and writes nothing");
    let mallory = api
        .ok(
            None,
            keyed,
            json!({"e": "mallory@example.com", "p": PASSWORD, "k": key}),
        )
        .await;
    assert_ne!(mallory["signUp"]["position"], eve["signUp"]["position"]);
    let head = api.head().await;
    let rename =
        "mutation($t: ID!, $n: String!) { renameTenant(tenantId: $t, name: $n) { position } }";
    let response = api
        .gql(Some(&ada.token), rename, json!({"t": tenant, "n": "   "}))
        .await;
    assert_eq!(code(&response), Some("BAD_USER_INPUT"), "{response}");
    assert_eq!(api.head().await, head, "refused input wrote nothing");
    let reused = uuid::Uuid::now_v7().to_string();
    let create = "mutation($k: ID) { createTenant(input: {name: \"Once\", slug: \"once\"}, idempotencyKey: $k) { tenant { id } position } }";
    let first = api.ok(Some(&ada.token), create, json!({"k": reused})).await;
    let head_after_create = api.head().await;
    let again = api.ok(Some(&ada.token), create, json!({"k": reused})).await;
    assert_eq!(first, again, "a retried mutation returns the first result");
    assert_eq!(api.head().await, head_after_create, "and writes nothing");
    // The same key on another mutation is another request: it runs, and writes.
    let keyed_rename = "mutation($t: ID!, $n: String!, $k: ID) { renameTenant(tenantId: $t, name: $n, idempotencyKey: $k) { tenant { name } position } }";
    let other_use = api
        .ok(
            Some(&ada.token),
            keyed_rename,
            json!({"t": tenant, "n": "Renamed with a used key", "k": reused}),
        )
        .await;
    assert_eq!(
        other_use["renameTenant"]["tenant"]["name"], "Renamed with a used key",
        "{other_use}"
    );
    assert!(api.head().await > head_after_create, "the rename wrote");
    let head = api.head().await;

    // Tampered, expired and garbage tokens.
    let mut tampered = ada.token.clone().into_bytes();
    let at = tampered.len() - 5;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let signer = infra::crypto::SessionSigner::new(
        &infra::crypto::MasterKey::from_base64(MASTER_KEY).unwrap(),
    );
    let expired = domain::session_token::SessionTokens::sign(
        &signer,
        &infra::crypto::SessionClaims {
            user: domain::ids::UserId::from_uuid(uuid::Uuid::parse_str(&ada.user_id).unwrap()),
            session: domain::ids::SessionId::new_v7(),
            expires_at: Utc::now() - Duration::minutes(1),
        },
    );
    for token in [tampered.as_str(), expired.as_str(), "garbage", "tk1.x.y.z"] {
        let (status, body) = api
            .post(Some(token), &json!({"query": "{ me { id } }"}))
            .await;
        assert_eq!(
            (status, code(&body)),
            (401, Some("UNAUTHENTICATED")),
            "{token}: {body}"
        );
    }
    let (_, body) = api
        .post(Some(&expired), &json!({"query": "{ me { id } }"}))
        .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );

    assert_eq!(api.head().await, head, "bad input wrote nothing");
    api.ok(Some(&ada.token), "{ me { email } }", json!({}))
        .await;
    let (status, _) = support::get_json(&p.server.url("/healthz")).await;
    assert_eq!(status, 200, "the server serves on");
}

async fn nested_lists_cost_a_bounded_number_of_queries(backend: Backend) {
    let p = platform(backend, &[]).await;
    let api = &p.api;
    let ada = p.person("ada@example.com").await;
    let query = "{ me { tenants(first: 10) { edges { node { name members { edges { node { email role } } } \
                 invites { edges { node { role } } } apiKeys { edges { node { name } } } } } } } }";
    let mut costs = Vec::new();
    for n in 1..=6 {
        let tenant = p.tenant(&ada, &format!("tenant-{n}")).await;
        p.api_key(&ada, &tenant, "READ_ONLY").await;
        let before = api.metric("tenantry_read_model_queries_total").await;
        let data = api.ok(Some(&ada.token), query, json!({})).await;
        let after = api.metric("tenantry_read_model_queries_total").await;
        let edges = data["me"]["tenants"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), n);
        assert!(
            edges
                .iter()
                .all(|e| e["node"]["apiKeys"]["edges"].as_array().unwrap().len() == 1)
        );
        costs.push(after - before);
    }
    // Memberships, tenants, members, invites, API keys: one query each, however many tenants
    // (an N+1 resolver would cost 2 + 3N). A DataLoader batches what arrives within 1 ms, so
    // a stalled machine may split a batch in two: allow that, never growth with N.
    assert!(
        costs.iter().all(|c| (5.0..=7.0).contains(c)),
        "queries per request: {costs:?}"
    );
    assert!(
        costs.iter().filter(|c| **c == 5.0).count() >= 4,
        "mostly exactly one per list: {costs:?}"
    );
}

async fn requests_carry_ids_and_metrics_tell_what_happened(backend: Backend) {
    let p = platform(backend, &["--log-format", "json"]).await;
    let api = &p.api;
    let ada = p.person("ada@example.com").await;
    p.tenant(&ada, "acme").await;
    let response = api
        .client
        .post(format!("{}/graphql", api.base))
        .header("x-request-id", "trace-me-123")
        .json(&json!({"query": "query Dashboard { __typename }", "operationName": "Dashboard"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-123");
    let generated = api
        .client
        .get(format!("{}/healthz", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        generated.headers()["x-request-id"].len(),
        32,
        "a fresh id when none is given"
    );

    let text = api
        .client
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            "tenantry_graphql_operations_total{operation=\"Dashboard\",outcome=\"ok\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "tenantry_graphql_operation_seconds_bucket{operation=\"Dashboard\",le=\"+Inf\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("tenantry_commands_total{aggregate=\"tenant\",outcome=\"ok\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("tenantry_projection_lag_events{projection=\"tenant_directory\"}"),
        "{text}"
    );
    assert!(
        text.contains("tenantry_projection_lag_events{projection=\"tenant_access\"}"),
        "{text}"
    );
    assert!(!text.contains("ada@example.com"));

    // The server's own logs carry the request id and never a password or a token.
    let (_, logs) = p.server.terminate();
    assert!(logs.iter().any(|l| l.contains("trace-me-123")), "{logs:#?}");
    // `--log-format json`: one JSON object per line, the request id among its span fields.
    for line in logs.iter().filter(|l| !l.trim().is_empty()) {
        let parsed: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(parsed["level"].is_string(), "{line}");
    }
    let traced = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["span"]["request.id"] == "trace-me-123")
        .unwrap_or_else(|| panic!("no log line carries request.id trace-me-123: {logs:#?}"));
    assert_eq!(traced["span"]["http.path"], "/graphql", "{traced}");
    for line in &logs {
        assert!(
            !line.contains(PASSWORD) && !line.contains(&ada.token),
            "{line}"
        );
    }
}

async fn introspection_can_be_switched_off(backend: Backend) {
    let p = platform(backend, &["--introspection", "false"]).await;
    let response = p
        .api
        .gql(None, "{ __schema { types { name } } }", json!({}))
        .await;
    assert_refused(&response, "FORBIDDEN", "introspection");
    let typed = p.api.gql(None, "{ __typename }", json!({})).await;
    assert!(typed.get("errors").is_none(), "{typed}");
    let page = p
        .api
        .client
        .get(format!("{}/graphql", p.api.base))
        .send()
        .await
        .unwrap();
    assert!(
        page.text().await.unwrap().contains("graphiql"),
        "GraphiQL is served on GET /graphql"
    );
}

/// Walks a connection page by page (`first`, `after`), checking `hasNextPage`; the ids seen.
async fn walk(
    api: &support::graphql::Api,
    token: &str,
    query: &str,
    tenant: &str,
    list: &[&str],
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut after = Value::Null;
    let mut pages = 0;
    loop {
        let data = api
            .ok(Some(token), query, json!({"t": tenant, "f": 2, "a": after}))
            .await;
        let connection = list.iter().fold(&data, |value, key| &value[key]);
        let edges = connection["edges"].as_array().unwrap();
        seen.extend(
            edges
                .iter()
                .map(|e| e["node"]["id"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        let info = &connection["pageInfo"];
        if info["hasNextPage"] == false {
            assert!(edges.len() <= 2, "{data}");
            return seen;
        }
        assert_eq!(edges.len(), 2, "a full page before the last: {data}");
        assert!(pages < 10, "the pages do not end: {data}");
        after = info["endCursor"].clone();
    }
}

async fn lists_page_with_after_and_refuse_pages_over_100(backend: Backend) {
    let p = platform(backend, &[]).await;
    let api = &p.api;
    let ada = p.person("ada@example.com").await;
    let mut tenants = Vec::new();
    for slug in ["one", "two", "three"] {
        tenants.push(p.tenant(&ada, slug).await);
    }
    let mut keys = Vec::new();
    for _ in 0..5 {
        keys.push(p.api_key(&ada, &tenants[0], "READ_ONLY").await.0);
    }
    let mine = "query($f: Int, $a: String) { me { tenants(first: $f, after: $a) { edges { node { id } } pageInfo { hasNextPage endCursor } } } }";
    let key_list = "query($t: ID!, $f: Int, $a: String) { tenant(id: $t) { apiKeys(first: $f, after: $a) { edges { node { id } } pageInfo { hasNextPage endCursor } } } }";
    let mut seen = walk(api, &ada.token, mine, &tenants[0], &["me", "tenants"]).await;
    seen.sort();
    tenants.sort();
    assert_eq!(seen, tenants, "every tenant once, over two pages");
    let mut seen = walk(
        api,
        &ada.token,
        key_list,
        &tenants[0],
        &["tenant", "apiKeys"],
    )
    .await;
    seen.sort();
    keys.sort();
    assert_eq!(seen, keys, "every key once, over three pages");

    // Pages of 1 to 100; a cursor must be one the API issued.
    for (first, ok) in [(100, true), (101, false), (0, false)] {
        let response = api
            .gql(Some(&ada.token), mine, json!({"f": first, "a": null}))
            .await;
        if ok {
            assert!(response.get("errors").is_none(), "{response}");
        } else {
            assert_refused(&response, "BAD_USER_INPUT", "first");
            assert_eq!(response["errors"][0]["extensions"]["field"], "first");
        }
    }
    let response = api
        .gql(
            Some(&ada.token),
            key_list,
            json!({"t": tenants[0], "f": 2, "a": "not a cursor!"}),
        )
        .await;
    assert_eq!(code(&response), Some("BAD_USER_INPUT"), "{response}");
    assert_eq!(response["errors"][0]["extensions"]["field"], "after");
}

on_both!(
    lists_page_with_after_and_refuse_pages_over_100,
    bad_input_gets_its_code_writes_nothing_and_the_server_serves_on,
    nested_lists_cost_a_bounded_number_of_queries,
    requests_carry_ids_and_metrics_tell_what_happened,
    introspection_can_be_switched_off,
);
