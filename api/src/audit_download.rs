//! `GET /audit/exports/{tenant}/{export}` (the entries) and `.../digest` (the signed
//! digest): a finished export written to this server's disk, for the tenant's admins and
//! owners (`Authorization: Bearer` with a session or an API key). Streamed from the file,
//! never read whole into memory.

use crate::AppState;
use crate::auth::{authenticate, grant};
use crate::error::ApiError;
use crate::http::bearer;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::access::Permission;
use domain::audit::AuditLedger;
use domain::audit::ledger::ExportStatus;
use domain::ids::TenantId;
use tokio::io::AsyncReadExt;
use uuid::Uuid;

fn refuse(status: StatusCode, error: &ApiError) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"error": error.to_string(), "code": error.code()})),
    )
        .into_response()
}

pub async fn entries(
    State(state): State<AppState>,
    Path((tenant, export)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    download(state, &tenant, &export, &headers, false).await
}

pub async fn digest(
    State(state): State<AppState>,
    Path((tenant, export)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    download(state, &tenant, &export, &headers, true).await
}

async fn download(
    state: AppState,
    tenant: &str,
    export: &str,
    headers: &HeaderMap,
    digest: bool,
) -> Response {
    let services = &state.services;
    let principal = match authenticate(services, bearer(headers)).await {
        Ok(p) => p,
        Err(e) => return refuse(StatusCode::UNAUTHORIZED, &e),
    };
    let not_found = || {
        refuse(
            StatusCode::NOT_FOUND,
            &ApiError::NotFound("no such export".into()),
        )
    };
    let (Ok(tenant), Ok(export)) = (Uuid::parse_str(tenant), Uuid::parse_str(export)) else {
        return not_found();
    };
    let tenant = TenantId::from_uuid(tenant);
    if let Err(e) = grant(services, &principal, tenant, Permission::ManageTenant).await {
        let status = if matches!(e, ApiError::Forbidden(_)) {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::NOT_FOUND
        };
        return refuse(status, &e);
    }
    let ledger = match services
        .executor
        .load_current::<AuditLedger>(tenant.as_uuid())
        .await
    {
        Ok(l) => l.state,
        Err(e) => return refuse(StatusCode::SERVICE_UNAVAILABLE, &ApiError::from(e)),
    };
    let Some(record) = ledger.exports.get(&export) else {
        return not_found();
    };
    if !matches!(record.status, ExportStatus::Done { .. }) {
        return refuse(
            StatusCode::CONFLICT,
            &ApiError::Conflict("the export is not finished".into()),
        );
    }
    let Some(mut path) =
        services
            .audit
            .destinations
            .local_file(tenant.as_uuid(), export, record.format)
    else {
        return not_found();
    };
    if digest {
        let mut name = path.into_os_string();
        name.push(".digest.json");
        path = name.into();
    }
    let Ok(file) = tokio::fs::File::open(&path).await else {
        return not_found();
    };
    let stream = futures_util::stream::unfold(file, |mut file| async move {
        let mut buffer = vec![0; 256 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok::<_, std::io::Error>(buffer), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    let (kind, extension) = if digest {
        ("application/json", "digest.json".to_owned())
    } else {
        (
            match record.format {
                domain::audit::export::ExportFormat::Jsonl => "application/x-ndjson",
                domain::audit::export::ExportFormat::Csv => "text/csv",
            },
            record.format.extension().to_owned(),
        )
    };
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Ok(value) = HeaderValue::from_str(&format!(
        "attachment; filename=\"audit-{tenant}-{export}.{extension}\""
    )) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}
