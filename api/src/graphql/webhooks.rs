//! Tenant webhooks: `setWebhookEndpoint`, `removeWebhookEndpoint` and `testWebhookEndpoint`
//! (admins and owners, `Permission::ManageTenant`), and `tenant { webhookEndpoint }` with the
//! latest deliveries. Each calls `commands::webhooks` or reads the endpoint's stream.

use super::tenancy::{request_context, tenant_arg};
use super::{principal, services};
use crate::auth::grant;
use crate::error::{ApiError, GqlResult};
use crate::services::Services;
use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::access::Permission;
use domain::ids::TenantId;
use domain::webhook::{DeliveryStatus, WebhookEndpoint, WebhookMessage, WebhookUrl};
use projections::tenant_access::TenantScope;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum WebhookDeliveryStatus {
    Delivered,
    Failed,
}

#[derive(SimpleObject)]
pub struct WebhookDeliveryObject {
    /// The `webhook-id` header sent (the same on a redelivery).
    pub webhook_id: String,
    /// The message's `type`.
    pub event_type: String,
    pub status: WebhookDeliveryStatus,
    /// The endpoint's answer (a delivered message).
    pub http_status: Option<u16>,
    /// Why it was given up on (a failed message).
    pub reason: Option<String>,
    pub attempts: u32,
    pub at: DateTime<Utc>,
}

#[derive(SimpleObject)]
pub struct WebhookEndpointObject {
    pub url: String,
    pub set_at: Option<DateTime<Utc>>,
    /// The signing secret (`whsec_...`): verify `webhook-signature` with it.
    pub secret: String,
    /// The latest deliveries, newest first (at most 50).
    pub deliveries: Vec<WebhookDeliveryObject>,
}

#[derive(SimpleObject)]
pub struct SetWebhookEndpointPayload {
    pub endpoint: WebhookEndpointObject,
    pub position: String,
}

#[derive(SimpleObject)]
pub struct RemoveWebhookEndpointPayload {
    pub position: String,
}

#[derive(SimpleObject)]
pub struct TestWebhookPayload {
    pub delivered: bool,
    pub http_status: Option<u16>,
    pub reason: Option<String>,
    /// The `webhook-id` of the test message.
    pub webhook_id: String,
}

async fn endpoint_of(
    services: &Services,
    tenant: TenantId,
) -> Result<Option<WebhookEndpointObject>, ApiError> {
    let endpoint = services
        .executor
        .load_current::<WebhookEndpoint>(tenant.as_uuid())
        .await?
        .state;
    let (Some(url), Some(key)) = (endpoint.url, endpoint.key_id) else {
        return Ok(None);
    };
    Ok(Some(WebhookEndpointObject {
        url: url.as_str().to_owned(),
        set_at: endpoint.set_at,
        secret: services.webhooks.secret(tenant, key),
        deliveries: endpoint
            .deliveries
            .into_iter()
            .rev()
            .map(|d| {
                let (status, http_status, reason) = match d.status {
                    DeliveryStatus::Delivered { http_status } => {
                        (WebhookDeliveryStatus::Delivered, Some(http_status), None)
                    }
                    DeliveryStatus::Failed { reason } => {
                        (WebhookDeliveryStatus::Failed, None, Some(reason))
                    }
                };
                WebhookDeliveryObject {
                    webhook_id: d.webhook_id,
                    event_type: d.event_type,
                    status,
                    http_status,
                    reason,
                    attempts: d.attempts,
                    at: d.at,
                }
            })
            .collect(),
    }))
}

/// `tenant { webhookEndpoint }` (admins and owners; null when none is set).
pub(crate) async fn webhook_endpoint_of(
    services: &Services,
    scope: &TenantScope,
) -> Result<Option<WebhookEndpointObject>, ApiError> {
    services.metrics.read_queries(1);
    endpoint_of(services, scope.tenant()).await
}

#[derive(Default)]
pub struct WebhooksMutation;

#[Object]
impl WebhooksMutation {
    /// Sets the tenant's webhook endpoint (admins and owners). The signing secret stays when
    /// the URL changes; `rotateSecret` makes a new one (the old one stops at once).
    async fn set_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        url: String,
        #[graphql(default = false)] rotate_secret: bool,
        idempotency_key: Option<ID>,
    ) -> GqlResult<SetWebhookEndpointPayload> {
        let (services, principal) = (services(ctx), principal(ctx));
        let tenant = tenant_arg(&tenant_id)?;
        grant(services, &principal, tenant, Permission::ManageTenant).await?;
        let url = WebhookUrl::parse(url.trim(), services.config.webhooks_allow_http)
            .map_err(ApiError::from)?;
        let cmd_ctx = request_context(ctx, idempotency_key.as_ref()).await?;
        let outcome = commands::webhooks::set_endpoint(
            &services.executor,
            &cmd_ctx,
            tenant,
            url,
            rotate_secret,
            Utc::now(),
        )
        .await;
        services.metrics.command(
            "webhook_endpoint",
            if outcome.is_ok() { "ok" } else { "error" },
        );
        let outcome = outcome.map_err(ApiError::from)?;
        let endpoint = endpoint_of(services, tenant)
            .await?
            .ok_or_else(|| ApiError::internal("the endpoint was set but reads as unset"))?;
        Ok(SetWebhookEndpointPayload {
            endpoint,
            position: outcome.position.0.to_string(),
        })
    }

    /// Removes the tenant's webhook endpoint (admins and owners): nothing more is sent.
    async fn remove_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        idempotency_key: Option<ID>,
    ) -> GqlResult<RemoveWebhookEndpointPayload> {
        let (services, principal) = (services(ctx), principal(ctx));
        let tenant = tenant_arg(&tenant_id)?;
        grant(services, &principal, tenant, Permission::ManageTenant).await?;
        let cmd_ctx = request_context(ctx, idempotency_key.as_ref()).await?;
        let outcome =
            commands::webhooks::remove_endpoint(&services.executor, &cmd_ctx, tenant, Utc::now())
                .await;
        services.metrics.command(
            "webhook_endpoint",
            if outcome.is_ok() { "ok" } else { "error" },
        );
        let outcome = outcome.map_err(ApiError::from)?;
        Ok(RemoveWebhookEndpointPayload {
            position: outcome.position.0.to_string(),
        })
    }

    /// Posts a `webhook.test` message to the endpoint now, once, and answers what it said
    /// (admins and owners). Nothing is recorded (`idempotencyKey` is taken like on every
    /// mutation, and changes nothing).
    async fn test_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        #[graphql(name = "idempotencyKey")] _idempotency_key: Option<ID>,
    ) -> GqlResult<TestWebhookPayload> {
        let (services, principal) = (services(ctx), principal(ctx));
        let tenant = tenant_arg(&tenant_id)?;
        grant(services, &principal, tenant, Permission::ManageTenant).await?;
        let endpoint = services
            .executor
            .load_current::<WebhookEndpoint>(tenant.as_uuid())
            .await
            .map_err(ApiError::from)?
            .state;
        let (Some(url), Some(key)) = (endpoint.url, endpoint.key_id) else {
            return Err(ApiError::from(domain::webhook::WebhookError::NotSet).into());
        };
        let now = Utc::now();
        let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
        let message = WebhookMessage {
            id: id.clone(),
            event_type: "webhook.test".to_owned(),
            body: serde_json::json!({
                "type": "webhook.test",
                "timestamp": now,
                "data": {"tenant_id": tenant},
            })
            .to_string(),
        };
        let secret = services.webhooks.secret(tenant, key);
        Ok(
            match services.webhooks.post(&url, &secret, &message, now).await {
                Ok(status) => TestWebhookPayload {
                    delivered: true,
                    http_status: Some(status),
                    reason: None,
                    webhook_id: id,
                },
                Err(error) => TestWebhookPayload {
                    delivered: false,
                    http_status: None,
                    reason: Some(error.reason),
                    webhook_id: id,
                },
            },
        )
    }
}
