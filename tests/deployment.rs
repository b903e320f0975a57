//! Running the server in production: what `/metrics` exposes and to whom, and that clients
//! cannot make it grow.

#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use serde_json::json;
use std::time::Duration;
use support::graphql::MASTER_KEY;
use support::{Server, temp_dir, tenantry};

fn server(extra: &[&str], env: &[(&str, &str)]) -> Server {
    let dir = temp_dir();
    let mut cmd = tenantry(&dir);
    cmd.env("TENANTRY_MASTER_KEY", MASTER_KEY)
        .args([
            "--database-url",
            &format!("sqlite://{}", dir.join("t.db").display()),
        ])
        .arg("serve")
        .args(extra);
    for (key, value) in env {
        cmd.env(key, value);
    }
    Server::start_configured(cmd)
}

async fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("GET");
    (
        response.status().as_u16(),
        response.text().await.expect("body"),
    )
}

fn operation_series(metrics: &str) -> usize {
    metrics
        .lines()
        .filter(|l| l.starts_with("tenantry_graphql_operations_total{"))
        .count()
}

/// Fifty requests, each naming an operation its document does not have: before, each name
/// became a new series (750 lines for 50 requests). Now they count under `unknown`.
#[tokio::test]
async fn operation_names_a_client_sends_do_not_become_labels() {
    let s = server(&[], &[]);
    let client = reqwest::Client::new();
    let post = |body: serde_json::Value| client.post(s.url("/graphql")).json(&body).send();
    post(json!({"query": "query Named { __typename }", "operationName": "Named"}))
        .await
        .unwrap();
    post(json!({"query": "{ __typename }"})).await.unwrap();
    let (_, before) = get(&s.url("/metrics"), None).await;
    for n in 0..50 {
        post(json!({"query": "{ __typename }", "operationName": format!("Invented{n}")}))
            .await
            .unwrap();
        post(json!({"query": "query Named { __typename }", "operationName": format!("Other{n}")}))
            .await
            .unwrap();
    }
    let (_, after) = get(&s.url("/metrics"), None).await;
    assert!(!after.contains("Invented"), "{after}");
    assert!(!after.contains("Other"), "{after}");
    assert!(
        after.contains(
            "tenantry_graphql_operations_total{operation=\"unknown\",outcome=\"error\"} 100"
        ),
        "{after}"
    );
    assert!(after.contains("operation=\"Named\""), "{after}");
    assert!(after.contains("operation=\"anonymous\""), "{after}");
    assert!(
        operation_series(&after) <= operation_series(&before) + 1,
        "{before}\n---\n{after}"
    );
}

/// With `TENANTRY_METRICS_TOKEN`, `/metrics` answers only with the token.
#[tokio::test]
async fn metrics_behind_a_token() {
    let token = "a-long-metrics-token-0123456789";
    let s = server(&[], &[("TENANTRY_METRICS_TOKEN", token)]);
    let (status, body) = get(&s.url("/metrics"), None).await;
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains("tenantry_"), "{body}");
    let (status, _) = get(&s.url("/metrics"), Some("a-wrong-token-of-some-length")).await;
    assert_eq!(status, 401);
    let (status, body) = get(&s.url("/metrics"), Some(token)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("tenantry_read_model_queries_total"), "{body}");
}

/// With `--metrics-listen`, `/metrics` is only on that listener.
#[tokio::test]
async fn metrics_on_a_listener_of_their_own() {
    let s = server(&["--metrics-listen", "127.0.0.1:0"], &[]);
    let mut address = None;
    while let Ok(line) = s.logs.recv_timeout(Duration::from_secs(10)) {
        if let Some(at) = line.find("metrics on http://") {
            address = line[at + "metrics on ".len()..]
                .split_whitespace()
                .next()
                .map(str::to_owned);
            break;
        }
    }
    let metrics = address.expect("the server says where metrics are");
    let (status, _) = get(&s.url("/metrics"), None).await;
    assert_eq!(status, 404, "not on the API's listener");
    let (status, body) = get(&metrics, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("tenantry_read_model_queries_total"), "{body}");
    let (status, _) = get(&metrics.replace("/metrics", "/graphql"), None).await;
    assert_eq!(status, 404, "only metrics on the metrics listener");
}

/// Log-in attempts for unknown addresses from `forwarded_for`; the error code of each.
async fn log_in_codes(s: &Server, forwarded_for: &str, attempts: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut codes = Vec::new();
    for n in 0..attempts {
        let body: serde_json::Value = client
            .post(s.url("/graphql"))
            .header("x-forwarded-for", forwarded_for)
            .json(&json!({
                "query": "mutation($e: String!) { logIn(input: {email: $e, password: \"wrong password\"}) { token } }",
                "variables": {"e": format!("nobody{n}.{forwarded_for}@example.com")}
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        codes.push(
            body["errors"][0]["extensions"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    codes
}

/// Behind a trusted proxy, rate limits count per client address from `X-Forwarded-For`
/// (read from the right); without `--trusted-proxies` the header is ignored, so a client
/// cannot pick a fresh address per request to escape its limit.
#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let limit = ["--auth-attempts-per-minute", "3"];
    let behind = server(
        &[&limit[..], &["--trusted-proxies", "10.0.0.0/8,127.0.0.1"]].concat(),
        &[],
    );
    assert_eq!(
        log_in_codes(&behind, "203.0.113.1", 4).await,
        [
            "UNAUTHENTICATED",
            "UNAUTHENTICATED",
            "UNAUTHENTICATED",
            "RATE_LIMITED"
        ]
    );
    // Another client behind the same proxy is not held back by the first one's failures,
    // and a forged leftmost entry does not make the first client someone else.
    assert_eq!(
        log_in_codes(&behind, "203.0.113.2", 1).await,
        ["UNAUTHENTICATED"]
    );
    assert_eq!(
        log_in_codes(&behind, "198.51.100.50, 203.0.113.1", 1).await,
        ["RATE_LIMITED"]
    );

    let direct = server(&limit, &[]);
    let codes = log_in_codes(&direct, "203.0.113.1", 3).await;
    assert_eq!(codes, ["UNAUTHENTICATED"; 3]);
    assert_eq!(
        log_in_codes(&direct, "203.0.113.2", 1).await,
        ["RATE_LIMITED"],
        "without trusted proxies the header must not give a fresh address"
    );
}

/// Mutations are counted across a batch and its aliases: 300 `logIn`s in one HTTP request
/// would be 300 password checks. Over the cap, nothing runs.
#[tokio::test]
async fn mutations_are_counted_across_a_whole_batch() {
    let s = server(&[], &[]);
    let client = reqwest::Client::new();
    let reset = |n: usize| {
        (0..n)
            .map(|i| {
                format!("r{i}: requestPasswordReset(email: \"x{i}@example.com\") {{ accepted }}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let post = |body: serde_json::Value| client.post(s.url("/graphql")).json(&body).send();
    let one = json!({"query": format!("mutation {{ {} }}", reset(11))});
    let answer: serde_json::Value = post(one).await.unwrap().json().await.unwrap();
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{answer}"
    );
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("11 mutations")
    );
    let batch = json!([
        {"query": format!("mutation {{ {} }}", reset(6))},
        {"query": format!("mutation {{ {} }}", reset(6))},
    ]);
    let answer: serde_json::Value = post(batch).await.unwrap().json().await.unwrap();
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{answer}"
    );
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("12 mutations")
    );
    let fine = json!([
        {"query": format!("mutation {{ {} }}", reset(5))},
        {"query": format!("mutation {{ {} }}", reset(5))},
    ]);
    let answer: serde_json::Value = post(fine).await.unwrap().json().await.unwrap();
    assert_eq!(answer[1]["data"]["r4"]["accepted"], true, "{answer}");
}

/// A client that uploads its body slowly holds a request slot for the timeout at most; with
/// every slot taken, the next request is answered 503 with `Retry-After` at once.
#[tokio::test]
async fn slow_clients_time_out_and_a_full_server_answers_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = server(
        &[
            "--request-timeout-seconds",
            "1",
            "--max-concurrent-requests",
            "1",
        ],
        &[],
    );
    let address = s.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"qu",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The only slot is taken: the next request is refused at once.
    let started = std::time::Instant::now();
    let response = reqwest::Client::new()
        .post(s.url("/graphql"))
        .json(&json!({"query": "{ __typename }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(started.elapsed() < Duration::from_millis(500));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");

    // The slow upload is cut off after the timeout, and frees its slot.
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut answer))
        .await
        .expect("the server answers the slow client")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let (status, _) = get(&s.url("/healthz"), None).await;
    assert_eq!(status, 200);
    let response = reqwest::Client::new()
        .post(s.url("/graphql"))
        .json(&json!({"query": "{ __typename }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

/// A client that sends its request headers slowly (or opens a connection and says nothing)
/// is disconnected after `--header-read-timeout-seconds`, while others are served meanwhile.
#[tokio::test]
async fn slow_headers_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = server(&["--header-read-timeout-seconds", "1"], &[]);
    let address = s.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"POST /graphql HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    let started = std::time::Instant::now();
    let (status, _) = get(&s.url("/healthz"), None).await;
    assert_eq!(status, 200, "others are served meanwhile");
    for (what, connection) in [("half a header", &mut slow), ("nothing", &mut silent)] {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), connection.read_to_end(&mut rest))
            .await
            .unwrap_or_else(|_| panic!("a client that sent {what} is still connected after 5 s"))
            .ok();
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "{what}: cut off too early ({:?})",
            started.elapsed()
        );
    }
}
