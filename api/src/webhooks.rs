//! `POST /webhooks/stripe`: Stripe's events about payments and subscriptions.
//!
//! The signature is checked over the raw body before anything is parsed
//! (`infra::stripe::verify_webhook`: timestamp tolerance, every `v1` signature against every
//! configured secret); a refused request is answered 400 and writes nothing. A verified
//! event is found its tenant (`metadata.tenant_id` of the object, else the tenant whose
//! customer it is, from the billing read model) and taken once
//! (`commands::payments::record_provider_notice`): 200 for an event taken now or before
//! (also of a type Tenantry does not act on), 500 when it could not be stored, so that Stripe
//! delivers it again.

use crate::AppState;
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use commands::payments::{Notice, NoticeReceipt, record_provider_notice};
use domain::ids::TenantId;
use domain::payments::NoticeOutcome;
use projections::billing::BillingReadModel;
use serde_json::json;

/// Largest webhook body accepted (Stripe's events are far smaller).
const MAX_BODY: usize = 1024 * 1024;

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

pub async fn stripe(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let services = &state.services;
    let config = &services.config.stripe_webhook;
    if config.secrets.is_empty() {
        return answer(
            StatusCode::NOT_FOUND,
            json!({"error": "no Stripe webhook secret is configured"}),
        );
    }
    let Ok(payload) = to_bytes(body, MAX_BODY).await else {
        return answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"error": "the body is too large"}),
        );
    };
    let Some(signature) = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"error": "the Stripe-Signature header is missing"}),
        );
    };
    let now = chrono::Utc::now();
    if let Err(e) =
        infra::stripe::verify_webhook(&payload, signature, &config.secrets, now, config.tolerance)
    {
        tracing::warn!(webhook = "stripe", error = %e, "webhook refused");
        return answer(StatusCode::BAD_REQUEST, json!({"error": e.to_string()}));
    }
    let event = match infra::stripe::parse_webhook(&payload) {
        Ok(event) => event,
        Err(e) => return answer(StatusCode::BAD_REQUEST, json!({"error": e.to_string()})),
    };
    let tenant = match (event.tenant, &event.customer) {
        (Some(tenant), _) => Some(tenant),
        (None, Some(customer)) => {
            match BillingReadModel::tenant_of_customer(&services.read_db, customer).await {
                Ok(tenant) => tenant,
                Err(e) => {
                    tracing::error!(webhook = "stripe", error = %e, "the billing read model could not be read");
                    return answer(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        json!({"error": "try again"}),
                    );
                }
            }
        }
        (None, None) => None,
    };
    let notice = Notice {
        provider: "stripe",
        event_id: event.id.clone(),
        event_type: event.event_type.clone(),
        object_id: event.object_id.clone(),
        tenant: tenant.map(TenantId::from_uuid),
        created: event.created,
        action: event.action,
    };
    let grace = chrono::Duration::from_std(services.config.payment_grace)
        .unwrap_or(chrono::Duration::days(7));
    match record_provider_notice(&services.executor, now, &notice, grace).await {
        Ok(receipt) => {
            let (duplicate, outcome) = match &receipt {
                NoticeReceipt::Duplicate => (true, None),
                NoticeReceipt::Recorded(outcome) => (false, Some(outcome)),
            };
            let outcome = outcome.map(|o| match o {
                NoticeOutcome::Applied { changed: true } => "applied",
                NoticeOutcome::Applied { changed: false } => "unchanged",
                NoticeOutcome::Ignored { .. } => "ignored",
                NoticeOutcome::Unhandled => "unhandled",
            });
            tracing::info!(
                webhook = "stripe",
                stripe.event = %notice.event_id,
                stripe.event_type = %notice.event_type,
                tenant.id = ?notice.tenant,
                duplicate,
                outcome = outcome.unwrap_or("duplicate"),
                "webhook taken"
            );
            answer(
                StatusCode::OK,
                json!({"received": true, "duplicate": duplicate, "outcome": outcome}),
            )
        }
        Err(e) => {
            tracing::error!(webhook = "stripe", stripe.event = %notice.event_id, error = %e, "webhook not stored");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "not stored; deliver it again"}),
            )
        }
    }
}
