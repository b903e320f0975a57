//! `POST /usage/events`: usage events as NDJSON (one JSON object per line: `id`, `meter`,
//! `value`, optional `key` and `timestamp`), with an API key whose scope allows writing
//! (`Authorization: Bearer tk_…`; the key's tenant is the events' tenant). Each line gets its
//! fate in the answer, in order: counted, duplicate, or refused with the reason (a line that
//! is not a usage event is refused on its own; the other lines are recorded). Like a
//! mutation, it answers once the usage read model shows what it wrote (bounded by the
//! consistency timeout).

use crate::AppState;
use crate::auth::{Principal, authenticate, grant};
use crate::error::ApiError;
use crate::http::RequestId;
use crate::http::bearer;
use crate::services::RequestMeta;
use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use commands::metering::{UsageFate, UsageInput, record_usage};
use domain::access::Permission;
use domain::event::Position;
use serde_json::{Value, json};
use std::net::SocketAddr;

/// Largest NDJSON body accepted.
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// Most lines one request carries.
pub const MAX_LINES: usize = 10_000;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    id: String,
    meter: String,
    #[serde(default = "one")]
    value: i64,
    key: Option<String>,
    timestamp: Option<DateTime<Utc>>,
}

fn one() -> i64 {
    1
}

fn refuse(status: StatusCode, error: &ApiError) -> Response {
    (
        status,
        axum::Json(json!({"error": error.to_string(), "code": error.code()})),
    )
        .into_response()
}

pub async fn usage_events(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(RequestId(request_id)): axum::Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let services = &state.services;
    let principal = match authenticate(services, bearer(&headers)).await {
        Ok(principal) => principal,
        Err(e) => return refuse(StatusCode::UNAUTHORIZED, &e),
    };
    let Principal::ApiKey { tenant, .. } = principal else {
        let e = ApiError::Unauthenticated("send an API key: `Authorization: Bearer tk_…`".into());
        return refuse(StatusCode::UNAUTHORIZED, &e);
    };
    if let Err(e) = grant(services, &principal, tenant, Permission::Write).await {
        return refuse(StatusCode::FORBIDDEN, &e);
    }
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        let e = ApiError::bad_input("body", format!("the body is over {MAX_BODY} bytes"));
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, &e);
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            &ApiError::bad_input("body", "the body is not UTF-8"),
        );
    };
    let now = Utc::now();
    // Each line: parsed into an input, or refused with why.
    // The events (with their line numbers), and the lines that are not events.
    let (mut lines, mut inputs, mut unreadable) = (0, Vec::new(), Vec::new());
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        lines += 1;
        match serde_json::from_str::<Line>(line) {
            Ok(l) => inputs.push((
                index + 1,
                UsageInput {
                    id: l.id,
                    meter: l.meter,
                    value: l.value,
                    key: l.key,
                    timestamp: l.timestamp.unwrap_or(now),
                },
            )),
            Err(e) => unreadable.push((index + 1, format!("not a usage event: {e}"))),
        }
    }
    if lines == 0 || lines > MAX_LINES {
        let e = ApiError::bad_input(
            "body",
            format!("1 to {MAX_LINES} events per request, got {lines}"),
        );
        return refuse(StatusCode::BAD_REQUEST, &e);
    }
    let (numbers, inputs): (Vec<usize>, Vec<UsageInput>) = inputs.into_iter().unzip();
    let meta = RequestMeta {
        ip: Some(services.config.trusted_proxies.client(peer.ip(), &headers)),
        request_id,
        operation: "usageEvents".into(),
        fingerprint: None,
    };
    let ctx = match services
        .context(
            principal.actor(),
            principal.caller_id(),
            None,
            principal.subject(),
            &meta,
        )
        .await
    {
        Ok(ctx) => ctx,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let fates = match record_usage(
        &services.executor,
        &ctx,
        now,
        tenant,
        services.config.usage_rules,
        &inputs,
    )
    .await
    {
        Ok(fates) => fates,
        Err(e) => {
            let e = ApiError::from(e);
            tracing::error!(error = %e, "usage events not recorded");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, &e);
        }
    };
    services.metrics.command("usage_event", "ok");
    let last = fates
        .iter()
        .filter_map(UsageFate::position)
        .max()
        .unwrap_or(0);
    let count = |wanted: fn(&UsageFate) -> bool| fates.iter().filter(|f| wanted(f)).count();
    let counted = count(|f| matches!(f, UsageFate::Counted { .. }));
    let duplicates = count(|f| matches!(f, UsageFate::Duplicate { .. }));
    let refused = count(|f| matches!(f, UsageFate::Refused(_))) + unreadable.len();
    let mut results: Vec<(usize, Value)> = unreadable
        .into_iter()
        .map(|(line, reason)| {
            (
                line,
                json!({"line": line, "status": "refused", "code": "UNREADABLE", "reason": reason}),
            )
        })
        .collect();
    results.extend(
        numbers
            .into_iter()
            .zip(&inputs)
            .zip(&fates)
            .map(|((line, input), fate)| {
                let mut answer = match fate {
                    UsageFate::Counted { position } => {
                        json!({"status": "counted", "position": position.to_string()})
                    }
                    UsageFate::Duplicate { position } => {
                        json!({"status": "duplicate", "position": position.to_string()})
                    }
                    UsageFate::Refused(reason) => {
                        json!({"status": "refused", "code": reason.code(), "reason": reason.to_string()})
                    }
                };
                answer["line"] = json!(line);
                answer["id"] = json!(input.id);
                (line, answer)
            }),
    );
    results.sort_by_key(|(line, _)| *line);
    let results: Vec<Value> = results.into_iter().map(|(_, answer)| answer).collect();
    // Like a mutation, the answer comes once the usage read model shows what it wrote.
    if let Err(e) = services
        .written(Position(last), &[projections::usage::UsageReadModel::NAME])
        .await
    {
        tracing::warn!(error = %e, "usage written, read model behind");
    }
    (
        StatusCode::OK,
        axum::Json(json!({
            "counted": counted,
            "duplicates": duplicates,
            "refused": refused,
            "position": Position(last).0.to_string(),
            "results": results,
        })),
    )
        .into_response()
}
