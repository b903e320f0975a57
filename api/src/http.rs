//! GraphQL over HTTP: `POST /graphql` (single or batched requests), `GET /graphql`
//! (GraphiQL), `GET /metrics`, and the request-id middleware every route runs under.
//!
//! Requests are checked before they run: body size, JSON shape, batch size, alias count, then
//! the schema's depth and complexity limits. Every error comes back as a GraphQL error with
//! `extensions.code`.

use crate::AppState;
use crate::auth::authenticate;
use crate::error::ApiError;
use crate::services::{ApiConfig, RequestMeta};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{BatchRequest, BatchResponse, Request, Response, ServerError};
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// The request's id: the caller's `X-Request-Id` if it is sane, else a new one.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub const REQUEST_ID: &str = "x-request-id";
/// A query may ask to be served only once the read models reached this position.
pub const CONSISTENCY_HEADER: &str = "x-consistency-position";

/// Gives every request an id (echoed in `X-Request-Id`), a span carrying it, and one log line.
pub async fn request_id(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map_or_else(|| uuid::Uuid::now_v7().simple().to_string(), str::to_owned);
    request.extensions_mut().insert(RequestId(id.clone()));
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let span =
        tracing::info_span!("request", request.id = %id, http.method = %method, http.path = %path);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            http.status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request finished"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// A request-level error (no position in the query).
pub fn server_error(error: ApiError) -> ServerError {
    let error = error.into_graphql();
    let mut server_error = ServerError::new(error.message, None);
    server_error.extensions = error.extensions;
    server_error
}

fn error_body(status: StatusCode, error: ApiError) -> axum::response::Response {
    let response = Response::from_errors(vec![server_error(error)]);
    (status, axum::Json(response)).into_response()
}

pub async fn graphiql() -> Html<String> {
    Html(
        async_graphql::http::GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("Tenantry GraphQL")
            .finish(),
    )
}

pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> axum::response::Response {
    let services = &state.services;
    if let crate::services::MetricsAccess::Token(hash) = &services.config.metrics {
        let allowed = bearer(&headers)
            .is_some_and(|token| services.credentials.token_matches(token.trim(), hash));
        if !allowed {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "metrics need the metrics token: Authorization: Bearer <token>\n",
            )
                .into_response();
        }
    }
    let mut lag = Vec::new();
    if let (Ok(head), Ok(checkpoints)) = (
        services.executor.store().head().await,
        projections::runner::checkpoints(&services.read_db).await,
    ) {
        for cp in checkpoints {
            lag.push((cp.name.clone(), head.0.saturating_sub(cp.position().0)));
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        services.metrics.render(&lag),
    )
        .into_response()
}

/// The bearer token of `Authorization`, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or(v)
        })
}

pub async fn graphql(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(RequestId(request_id)): axum::Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> axum::response::Response {
    let services = &state.services;
    let config = &services.config;
    let Ok(bytes) = axum::body::to_bytes(body, config.max_body_bytes).await else {
        return error_body(
            StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::bad_input(
                "body",
                format!("the request body is over {} bytes", config.max_body_bytes),
            ),
        );
    };
    let not_a_request = |e: &dyn std::fmt::Display| {
        error_body(
            StatusCode::BAD_REQUEST,
            ApiError::bad_input(
                "body",
                format!("the body is not a GraphQL request in JSON: {e}"),
            ),
        )
    };
    let json: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(json) => json,
        Err(e) => return not_a_request(&e),
    };
    let is_batch = json.is_array();
    if json
        .as_array()
        .is_some_and(|a| a.is_empty() || a.len() > config.max_batch)
    {
        return error_body(
            StatusCode::BAD_REQUEST,
            ApiError::bad_input(
                "body",
                format!("a batch holds 1 to {} requests", config.max_batch),
            ),
        );
    }
    let requests: Vec<Request> = match serde_json::from_value(json) {
        Ok(BatchRequest::Single(request)) => vec![request],
        Ok(BatchRequest::Batch(requests)) => requests,
        Err(e) => return not_a_request(&e),
    };
    // Mutations are counted across the whole batch, aliases included: ten requests of thirty
    // aliased `logIn`s would otherwise be 300 password checks in one HTTP request.
    let mutations: usize = requests
        .iter()
        .map(|r| mutation_fields(&state.documents, config, r))
        .sum();
    if mutations > config.max_mutations {
        return error_body(
            StatusCode::BAD_REQUEST,
            ApiError::bad_input(
                "body",
                format!(
                    "the request holds {mutations} mutations; at most {} are allowed per HTTP request (batch included)",
                    config.max_mutations
                ),
            ),
        );
    }
    let principal = match authenticate(services, bearer(&headers)).await {
        Ok(principal) => principal,
        Err(error) => return error_body(StatusCode::UNAUTHORIZED, error),
    };
    if let Some(position) = headers.get(CONSISTENCY_HEADER) {
        let waited =
            match crate::graphql::position_arg("X-Consistency-Position", position.to_str().ok()) {
                Ok(Some(position)) => services.reached(position, crate::areas::READ_MODELS).await,
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
        if let Err(error) = waited {
            return error_body(StatusCode::OK, error);
        }
    }
    let meta = RequestMeta {
        ip: Some(config.trusted_proxies.client(peer.ip(), &headers)),
        request_id,
        operation: String::new(),
        fingerprint: None,
    };
    let mut responses = Vec::with_capacity(requests.len());
    for request in requests {
        let started = Instant::now();
        let mut request = request;
        let verdict = state.documents.prepare(&mut request, config);
        let name = operation_label(&mut request);
        let tenants = tenant_arguments(&state.documents, config, &request);
        let response = match verdict {
            Some(error) => Response::from_errors(vec![error]),
            None => {
                let request = crate::areas::with_loaders(request, services)
                    .data(principal)
                    .data(meta.clone());
                state.schema.execute(request).await
            }
        };
        let response = with_codes(response);
        record_security_refusals(services, &principal, meta.ip, &tenants, &response);
        services
            .metrics
            .operation(&name, response.errors.is_empty(), started.elapsed());
        responses.push(response);
    }
    let body = if !is_batch && responses.len() == 1 {
        BatchResponse::Single(responses.remove(0))
    } else {
        BatchResponse::Batch(responses)
    };
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// How many mutation fields `request` runs (aliases count; a document that does not parse
/// counts nothing, the executor refuses it).
fn mutation_fields(documents: &Documents, config: &ApiConfig, request: &Request) -> usize {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let Some(document) = documents.parsed(&request.query, config) else {
        return 0;
    };
    let count = |op: &async_graphql::parser::types::OperationDefinition| {
        if op.ty == OperationType::Mutation {
            op.selection_set.node.items.len()
        } else {
            0
        }
    };
    match (&document.operations, &request.operation_name) {
        (DocumentOperations::Single(op), _) => count(&op.node),
        (DocumentOperations::Multiple(ops), Some(name)) => {
            ops.get(name.as_str()).map_or(0, |op| count(&op.node))
        }
        (DocumentOperations::Multiple(ops), None) => ops.values().map(|op| count(&op.node)).sum(),
    }
}

/// Bounds how long a request may take (the body's upload included) and how many run at
/// once; beyond either, the answer is immediate: 503 with `Retry-After` when full, 408 when
/// too slow. A slow client cannot hold a request slot for longer than the timeout.
pub async fn limits(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let config = &state.services.config;
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        let mut response = error_body(
            StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited {
                retry_after_secs: 1,
            },
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    match tokio::time::timeout(config.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error_body(
            StatusCode::REQUEST_TIMEOUT,
            ApiError::bad_input(
                "body",
                format!(
                    "the request took longer than {} s (a slow upload counts)",
                    config.request_timeout.as_secs()
                ),
            ),
        ),
    }
}

/// The name a request's metrics are counted under: the operation the document defines and
/// the request runs (`anonymous` for an unnamed one), or `unknown` when the request names an
/// operation its document does not have, or the document does not parse. A name a client
/// merely sends never becomes a label; `Metrics` also bounds how many names it tracks.
fn operation_label(request: &mut Request) -> String {
    use async_graphql::parser::types::DocumentOperations;
    let wanted = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else {
        return "unknown".into();
    };
    match (&document.operations, wanted) {
        (DocumentOperations::Single(_), None) => "anonymous".into(),
        (DocumentOperations::Multiple(operations), Some(name))
            if operations.contains_key(name.as_str()) =>
        {
            name
        }
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => operations
            .keys()
            .next()
            .map_or_else(|| "unknown".into(), ToString::to_string),
        _ => "unknown".into(),
    }
}

/// Errors raised by the parser, the validator and the limits carry no code: they are the
/// caller's bad input.
/// Each top-level field of `request` by its response key (an alias or its name): its name,
/// and the tenant it names (its `tenantId` argument, or `id` on `tenant`).
fn tenant_arguments(
    documents: &Documents,
    config: &ApiConfig,
    request: &Request,
) -> HashMap<String, (String, Option<domain::ids::TenantId>)> {
    use async_graphql::parser::types::DocumentOperations;
    let mut tenants = HashMap::new();
    let Some(document) = documents.parsed(&request.query, config) else {
        return tenants;
    };
    let operation = match (&document.operations, &request.operation_name) {
        (DocumentOperations::Single(op), _) => Some(&op.node),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name.as_str()).map(|o| &o.node),
        (DocumentOperations::Multiple(_), None) => None,
    };
    let Some(operation) = operation else {
        return tenants;
    };
    for item in &operation.selection_set.node.items {
        let Selection::Field(field) = &item.node else {
            continue;
        };
        let field = &field.node;
        let name = field.name.node.as_str();
        let key = field.alias.as_ref().map_or(name, |a| a.node.as_str());
        tenants.insert(key.to_owned(), (name.to_owned(), None));
        let Some(value) = field.arguments.iter().find_map(|(arg, value)| {
            (arg.node == "tenantId" || (name == "tenant" && arg.node == "id"))
                .then_some(&value.node)
        }) else {
            continue;
        };
        let resolved = value
            .clone()
            .into_const_with(|name| request.variables.get(&name).cloned().ok_or(()));
        let text = match resolved {
            Ok(async_graphql::Value::String(s)) => Some(s),
            _ => None,
        };
        if let Some(tenant) = text.and_then(|t| uuid::Uuid::parse_str(&t).ok()) {
            tenants.insert(
                key.to_owned(),
                (
                    name.to_owned(),
                    Some(domain::ids::TenantId::from_uuid(tenant)),
                ),
            );
        }
    }
    tenants
}

/// Puts the refusals that matter to security into the audit trails: a member refused
/// (FORBIDDEN) into the tenant's, someone probing a tenant that is not theirs (NOT_FOUND on
/// a tenant argument), a rate limit hit and a refused log-in into the platform's (a known
/// account's failed log-ins are also on its own stream).
fn record_security_refusals(
    services: &crate::services::Services,
    principal: &crate::auth::Principal,
    from: Option<std::net::IpAddr>,
    tenants: &HashMap<String, (String, Option<domain::ids::TenantId>)>,
    response: &Response,
) {
    for error in &response.errors {
        let code = error
            .extensions
            .as_ref()
            .and_then(|e| e.get("code"))
            .and_then(|c| match c {
                async_graphql::Value::String(s) => Some(s.as_str()),
                _ => None,
            });
        let key = match error.path.first() {
            Some(async_graphql::PathSegment::Field(name)) => name.as_str(),
            _ => "",
        };
        // Recorded under the field's name, never the caller's alias (aliases would defeat
        // the once-per-10-s rule).
        let (field, tenant) = tenants
            .get(key)
            .map_or(("", None), |(name, tenant)| (name.as_str(), *tenant));
        match (code, field) {
            (Some("FORBIDDEN"), _) => {
                services.record_refusal(principal.actor(), from, tenant, "FORBIDDEN", field);
            }
            (Some("NOT_FOUND"), _) if tenant.is_some() => {
                services.record_refusal(principal.actor(), from, None, "NOT_FOUND", field);
            }
            (Some("RATE_LIMITED"), _) => {
                services.record_refusal(principal.actor(), from, None, "RATE_LIMITED", field);
            }
            (Some("UNAUTHENTICATED"), "logIn") => {
                services.record_refusal(principal.actor(), from, None, "UNAUTHENTICATED", field);
            }
            _ => {}
        }
    }
}

pub fn with_codes(mut response: Response) -> Response {
    for error in &mut response.errors {
        let has_code = error
            .extensions
            .as_ref()
            .is_some_and(|e| e.get("code").is_some());
        if !has_code {
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", "BAD_USER_INPUT");
        }
    }
    response
}

/// Parsed GraphQL documents by query text, each with what [`precheck`] said of it. Clients
/// send the same few documents over and over; parsing one (a PEG parser) cost about a tenth of
/// the server's CPU per dashboard request, three times over (the alias count, the
/// introspection check and execution each parsed it). Now a document is parsed once per
/// process and handed to the executor already parsed. Bounded: when full, an arbitrary entry
/// makes room, so a client sending ever new documents only costs itself the parsing.
#[derive(Default)]
pub struct Documents {
    entries: std::sync::Mutex<HashMap<String, Prepared>>,
}

type Prepared = (Arc<ExecutableDocument>, Option<ServerError>);

impl std::fmt::Debug for Documents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = self.entries.lock().map_or(0, |e| e.len());
        f.debug_struct("Documents").field("kept", &kept).finish()
    }
}

/// Most documents kept.
const DOCUMENTS: usize = 512;
/// Longer query texts are parsed every time rather than kept.
const CACHED_QUERY_BYTES: usize = 16 * 1024;

impl Documents {
    /// The parsed document for `query` with its [`precheck`] verdict: from the cache, or
    /// parsed and checked now (and kept). `None` when it does not parse.
    fn prepared(&self, query: &str, config: &ApiConfig) -> Option<Prepared> {
        if let Some(prepared) = self
            .entries
            .lock()
            .ok()
            .and_then(|entries| entries.get(query).cloned())
        {
            return Some(prepared);
        }
        let document = Arc::new(async_graphql::parser::parse_query(query).ok()?);
        let verdict = precheck(&document, config);
        if query.len() <= CACHED_QUERY_BYTES
            && let Ok(mut entries) = self.entries.lock()
        {
            if entries.len() >= DOCUMENTS {
                let victim = entries.keys().next().cloned();
                if let Some(victim) = victim {
                    entries.remove(&victim);
                }
            }
            entries.insert(query.to_owned(), (document.clone(), verdict.clone()));
        }
        Some((document, verdict))
    }

    /// The parsed document for `query`, if it parses.
    pub fn parsed(&self, query: &str, config: &ApiConfig) -> Option<Arc<ExecutableDocument>> {
        self.prepared(query, config).map(|(document, _)| document)
    }

    /// Checks `request`'s document (see [`precheck`]) and, when it passes, hands it to
    /// the request parsed. A document that does not parse is left to the executor, which
    /// reports the syntax error.
    pub fn prepare(&self, request: &mut Request, config: &ApiConfig) -> Option<ServerError> {
        let (document, verdict) = self.prepared(&request.query, config)?;
        if verdict.is_none() {
            request.set_parsed_query((*document).clone());
        }
        verdict
    }
}

/// Checks what the schema's own limits do not: aliases, and introspection when it is off
/// (async-graphql would answer `null` silently).
pub fn precheck(document: &ExecutableDocument, config: &ApiConfig) -> Option<ServerError> {
    if let Some(error) = too_many_aliases(document, config.max_aliases) {
        return Some(error);
    }
    if !config.introspection {
        let introspects = document.operations.iter().any(|(_, op)| {
            op.node.selection_set.node.items.iter().any(|item| {
                matches!(&item.node, Selection::Field(f) if matches!(f.node.name.node.as_str(), "__schema" | "__type"))
            })
        });
        if introspects {
            return Some(server_error(ApiError::Forbidden(
                "introspection is disabled on this server".into(),
            )));
        }
    }
    None
}

/// Refuses a document with more aliases than allowed (aliases multiply the work of one
/// field without deepening the query, so depth and complexity alone do not bound them).
pub fn too_many_aliases(document: &ExecutableDocument, max: usize) -> Option<ServerError> {
    fn count(set: &SelectionSet) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => {
                    usize::from(field.node.alias.is_some()) + count(&field.node.selection_set.node)
                }
                Selection::InlineFragment(fragment) => count(&fragment.node.selection_set.node),
                Selection::FragmentSpread(_) => 0,
            })
            .sum()
    }
    let aliases: usize = document
        .operations
        .iter()
        .map(|(_, op)| count(&op.node.selection_set.node))
        .chain(
            document
                .fragments
                .values()
                .map(|f| count(&f.node.selection_set.node)),
        )
        .sum();
    (aliases > max).then(|| {
        server_error(ApiError::bad_input(
            "query",
            format!("the query uses {aliases} aliases; at most {max} are allowed"),
        ))
    })
}
