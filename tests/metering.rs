//! Usage metering through the real server: GraphQL `recordUsage` and `POST /usage/events`
//! (NDJSON with an API key) each report every event's fate; a duplicate is never counted
//! twice, across the two paths and across a restart; usage, series, explanations and the
//! entitlements' period allowance agree.

#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use support::graphql::{Backend, code, platform};

const RECORD: &str = "mutation($t: ID!, $e: [UsageEventInput!]!) { recordUsage(tenantId: $t, events: $e) { counted duplicates refused results { id status reason position } } }";
const USAGE: &str = "query($t: ID!, $from: DateTime!, $to: DateTime!, $id: String!) { tenant(id: $t) { usage(meter: \"bandwidth.bytes\") { total unit aggregation } calls: usage(meter: \"api.calls\") { total } usageSeries(meter: \"bandwidth.bytes\", from: $from, to: $to, bucket: HOUR) { start total } usageEvent(id: $id) { counted reason meter value hour periodStart periodEnd } entitlements { key used limit } } }";

const EXPLAIN: &str = "query($t: ID!, $id: String!) { tenant(id: $t) { usageEvent(id: $id) { counted code reason meter value occurredAt periodEnd refusedAt lateBySeconds position } } }";

async fn ndjson(p: &support::graphql::Platform, key: Option<&str>, body: &str) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/usage/events", p.api.base))
        .header("Content-Type", "application/x-ndjson")
        .body(body.to_owned());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn statuses(results: &Value) -> Vec<String> {
    results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .collect()
}

async fn every_path_reports_each_fate_and_counts_once(backend: Backend) {
    let mut p = platform(backend, &[]).await;
    let ada = p.person("ada@example.com").await;
    let tenant = p.tenant(&ada, "acme").await;
    let now = Utc::now();
    let gb = 1_000_000_000_i64;
    let events = json!([
        {"id": "a", "meter": "bandwidth.bytes", "value": gb},
        {"id": "b", "meter": "bandwidth.bytes", "value": 2 * gb, "timestamp": (now - Duration::minutes(1)).to_rfc3339()},
        {"id": "a", "meter": "bandwidth.bytes", "value": 7 * gb},
        {"id": "c", "meter": "api.calls"},
        {"id": "d", "meter": "no.such.meter", "value": 1},
        {"id": "e", "meter": "bandwidth.bytes", "value": -5},
        {"id": "f", "meter": "bandwidth.bytes", "value": 1, "timestamp": (now + Duration::hours(1)).to_rfc3339()},
        {"id": "g", "meter": "bandwidth.bytes", "value": 1, "timestamp": (now - Duration::days(70)).to_rfc3339()},
        {"id": "", "meter": "bandwidth.bytes", "value": 1},
        {"id": "h", "meter": "active.users"},
        {"id": "l", "meter": "bandwidth.bytes", "value": 1_i64 << 53},
    ]);
    let recorded = p
        .api
        .ok(Some(&ada.token), RECORD, json!({"t": tenant, "e": events}))
        .await;
    let answer = &recorded["recordUsage"];
    assert_eq!(
        statuses(&answer["results"]),
        [
            "COUNTED",
            "COUNTED",
            "DUPLICATE",
            "COUNTED",
            "REFUSED",
            "REFUSED",
            "REFUSED",
            "REFUSED",
            "REFUSED",
            "REFUSED",
            "REFUSED"
        ]
    );
    let reasons: Vec<&str> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["reason"].as_str())
        .collect();
    for (reason, about) in reasons.iter().zip([
        "no meter",
        "negative",
        "ahead",
        "too late",
        "no id",
        "needs a key",
        "over 9007199254740991",
    ]) {
        assert!(reason.contains(about), "{reason:?} should say {about:?}");
    }
    assert_eq!(
        (
            answer["counted"].clone(),
            answer["duplicates"].clone(),
            answer["refused"].clone()
        ),
        (json!(3), json!(1), json!(7))
    );
    // The duplicate points at the original.
    assert_eq!(
        answer["results"][2]["position"],
        answer["results"][0]["position"]
    );

    // NDJSON with a write key: a line that is not an event is refused alone; an id sent
    // through GraphQL before is a duplicate here too.
    let (_, writer) = p.api_key(&ada, &tenant, "READ_WRITE").await;
    let (_, reader) = p.api_key(&ada, &tenant, "READ_ONLY").await;
    let body = format!(
        "{}\n{}\nnot json\n\n{}\n",
        json!({"id": "b", "meter": "bandwidth.bytes", "value": 5}),
        json!({"id": "i", "meter": "bandwidth.bytes", "value": 4 * gb}),
        json!({"id": "j", "meter": "active.users", "key": "user-1"}),
    );
    let (status, answer) = ndjson(&p, Some(&writer), &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        statuses(&answer["results"]),
        ["duplicate", "counted", "refused", "counted"]
    );
    assert_eq!(answer["results"][2]["line"], 3);
    assert!(
        answer["results"][2]["reason"]
            .as_str()
            .unwrap()
            .contains("not a usage event")
    );
    // A too-late line with an id is refused, and remembered.
    let late = json!({"id": "k", "meter": "bandwidth.bytes", "value": 9,
                      "timestamp": (now - Duration::days(80)).to_rfc3339()});
    let (_, answer) = ndjson(&p, Some(&writer), &format!("{late}\n")).await;
    assert_eq!(answer["results"][0]["code"], "TOO_LATE");
    assert_eq!(ndjson(&p, Some(&reader), &body).await.0, 403);
    assert_eq!(ndjson(&p, None, &body).await.0, 401);
    assert_eq!(
        ndjson(&p, Some(&ada.token), &body).await.0,
        401,
        "sessions use GraphQL"
    );
    assert_eq!(ndjson(&p, Some(&writer), "\n").await.0, 400);

    // Totals, series, explanations and the allowance agree: a + b + i = 7 GB.
    let usage = async |p: &support::graphql::Platform| {
        p.api
            .ok(
                Some(&ada.token),
                USAGE,
                json!({
                    "t": tenant,
                    "from": (now - Duration::hours(2)).to_rfc3339(),
                    "to": (now + Duration::hours(1)).to_rfc3339(),
                    "id": "a",
                }),
            )
            .await["tenant"]
            .clone()
    };
    let seen = usage(&p).await;
    assert_eq!(seen["usage"]["total"], 7 * gb);
    assert_eq!(seen["usage"]["unit"], "bytes");
    assert_eq!(seen["calls"]["total"], 1);
    let series_total: i64 = seen["usageSeries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["total"].as_i64().unwrap())
        .sum();
    assert_eq!(series_total, 7 * gb);
    assert_eq!(seen["usageEvent"]["counted"], true);
    assert_eq!(seen["usageEvent"]["value"], gb);
    let bandwidth = seen["entitlements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "BANDWIDTH_BYTES_PER_MONTH")
        .unwrap()
        .clone();
    assert_eq!(bandwidth["used"], 7 * gb);

    // Why did an event not count? Each refusal with an id is explained by its id, whichever
    // path it came through; an id never received says so.
    let explain = async |p: &support::graphql::Platform, id: &str| {
        p.api
            .ok(Some(&ada.token), EXPLAIN, json!({"t": tenant, "id": id}))
            .await["tenant"]["usageEvent"]
            .clone()
    };
    for (id, code, about) in [
        ("d", "UNKNOWN_METER", "no.such.meter"),
        ("e", "NEGATIVE_VALUE", "negative"),
        ("f", "IN_THE_FUTURE", "ahead"),
        ("g", "TOO_LATE", "too late"),
        ("h", "MISSING_KEY", "needs a key"),
        ("l", "TOO_LARGE", "over"),
        ("k", "TOO_LATE", "too late"),
    ] {
        let why = explain(&p, id).await;
        assert_eq!(
            (why["counted"].clone(), why["code"].clone()),
            (json!(false), json!(code)),
            "{id}: {why}"
        );
        assert!(
            why["reason"].as_str().unwrap().contains(about),
            "{id}: {why}"
        );
        assert!(
            why["refusedAt"].is_string() && why["position"].is_null(),
            "{id}: {why}"
        );
    }
    let late = explain(&p, "k").await;
    assert_eq!(late["value"], 9);
    // Its period (the calendar month 80 days ago, on the free plan) ended over 3 days (the
    // grace) before now: late by the rest.
    let period_end: chrono::DateTime<Utc> = late["periodEnd"].as_str().unwrap().parse().unwrap();
    let late_by = late["lateBySeconds"].as_i64().unwrap();
    let expected = (now - (period_end + Duration::days(3))).num_seconds();
    assert!((late_by - expected).abs() <= 60, "{late_by} vs {expected}");
    let never = explain(&p, "never-sent").await;
    assert_eq!(
        (never["counted"].clone(), never["code"].clone()),
        (json!(false), json!("NOT_RECEIVED"))
    );
    // Sent again, corrected, a refused id counts; the explanation follows.
    let fixed = p
        .api
        .ok(
            Some(&ada.token),
            RECORD,
            json!({"t": tenant, "e": [{"id": "d", "meter": "api.calls"}]}),
        )
        .await;
    assert_eq!(statuses(&fixed["recordUsage"]["results"]), ["COUNTED"]);
    let why = explain(&p, "d").await;
    assert_eq!(
        (
            why["counted"].clone(),
            why["code"].clone(),
            why["meter"].clone()
        ),
        (json!(true), Value::Null, json!("api.calls"))
    );
    assert_eq!(usage(&p).await["calls"]["total"], 2);

    // After a restart an old id is still a duplicate.
    p.restart();
    let again = p
        .api
        .ok(
            Some(&ada.token),
            RECORD,
            json!({"t": tenant, "e": [{"id": "i", "meter": "bandwidth.bytes", "value": 1}]}),
        )
        .await;
    assert_eq!(statuses(&again["recordUsage"]["results"]), ["DUPLICATE"]);
    assert_eq!(usage(&p).await["usage"]["total"], 7 * gb);

    // A batch over the cap writes nothing.
    let many: Vec<Value> = (0..1_001)
        .map(|i| json!({"id": format!("x{i}"), "meter": "api.calls"}))
        .collect();
    let refused = p
        .api
        .gql(Some(&ada.token), RECORD, json!({"t": tenant, "e": many}))
        .await;
    assert_eq!(code(&refused), Some("BAD_USER_INPUT"));
    assert_eq!(usage(&p).await["calls"]["total"], 2);
}

/// The free plan allows 5 GB of bandwidth a month: at 80% the owner hears once, at 100% once
/// more, however many requests cross the line at the same time.
async fn thresholds_fire_once_per_period_under_concurrent_ingestion(backend: Backend) {
    let p = platform(backend, &[]).await;
    let ada = p.person("ada@example.com").await;
    let tenant = p.tenant(&ada, "acme").await;
    let gb = 1_000_000_000_i64;
    let record = async |ids: std::ops::Range<i64>, value: i64| {
        let events: Vec<Value> = ids
            .map(|i| json!({"id": format!("e{i}"), "meter": "bandwidth.bytes", "value": value}))
            .collect();
        p.api
            .ok(Some(&ada.token), RECORD, json!({"t": tenant, "e": events}))
            .await
    };
    let thresholds = async || {
        let events = support::graphql::events(&p.database_url).await;
        let count = |kind: &str| events.iter().filter(|(k, _, _)| k == kind).count();
        (count("AllowanceWarned"), count("AllowanceReached"))
    };
    // 3 GB: 60%, nothing.
    record(0..3, gb).await;
    // Then 16 requests at once, 0.25 GB each: past 80% and past 100% (7 GB).
    let many: Vec<_> = (0..16).map(|i| record(100 + i..101 + i, gb / 4)).collect();
    futures_util::future::join_all(many).await;
    support::eventually(
        "both thresholds",
        std::time::Duration::from_secs(20),
        || async { (thresholds().await == (1, 1)).then_some(()) },
    )
    .await;
    // More usage in the same period fires nothing more.
    record(200..204, gb).await;
    p.mail_settled().await;
    assert_eq!(thresholds().await, (1, 1));
    // One mail per threshold (both may report the usage of the moment, past 100%).
    assert_eq!(p.smtp.count(&ada.email, "has used"), 2);
    assert!(p.smtp.count(&ada.email, "has used 100%") >= 1);
}

on_both!(
    every_path_reports_each_fate_and_counts_once,
    thresholds_fire_once_per_period_under_concurrent_ingestion,
);
