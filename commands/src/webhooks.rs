//! Tenant webhooks (see `domain::webhook`): setting and removing the endpoint, and the
//! `tenant_webhooks` reactor that posts what a tenant's systems may act on.

use crate::{CommandContext, CommandError, CommandOutcome, Executor};
use chrono::{DateTime, Utc};
use domain::aggregate::Aggregate;
use domain::event::{Reads, RecordedEvent};
use domain::ids::TenantId;
use domain::reactor::{ReactionError, Reactor, decoded};
use domain::subscription::{Subscription, SubscriptionEvent};
use domain::webhook::{
    Delivery, DeliveryStatus, PostError, WebhookCommand, WebhookEndpoint, WebhookError,
    WebhookMessage, WebhookUrl, Webhooks,
};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The name of the reactor that posts tenant webhooks.
pub const TENANT_WEBHOOKS: &str = "tenant_webhooks";

/// Sets `tenant`'s endpoint to `url`: a new signing key when there is none yet or `rotate`.
pub async fn set_endpoint(
    exec: &Executor,
    ctx: &CommandContext,
    tenant: TenantId,
    url: WebhookUrl,
    rotate: bool,
    now: DateTime<Utc>,
) -> Result<CommandOutcome, CommandError<WebhookError>> {
    let command = WebhookCommand::Set {
        tenant,
        url,
        new_key: ctx.new_id("webhook-key"),
        rotate,
        at: now,
    };
    exec.execute::<WebhookEndpoint>(tenant.as_uuid(), &command, &ctx.clone().for_tenant(tenant))
        .await
}

pub async fn remove_endpoint(
    exec: &Executor,
    ctx: &CommandContext,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> Result<CommandOutcome, CommandError<WebhookError>> {
    exec.execute::<WebhookEndpoint>(
        tenant.as_uuid(),
        &WebhookCommand::Remove { at: now },
        &ctx.clone().for_tenant(tenant),
    )
    .await
}

/// A message's type, its data, and the start of the period it is about (the caller adds the
/// period's end, which needs the subscription).
type Message = (&'static str, serde_json::Value, DateTime<Utc>);

/// The message a recorded event becomes, if any.
fn message_of(event: &RecordedEvent) -> Result<Option<Message>, ReactionError> {
    let Some(decoded) = decoded::<Subscription>(event)? else {
        return Ok(None);
    };
    let (kind, key, period_start, used, limit, percent) = match decoded {
        SubscriptionEvent::AllowanceWarned {
            key,
            period_start,
            used,
            limit,
            ..
        } => (
            "usage.allowance_warning",
            key,
            period_start,
            used,
            limit,
            80,
        ),
        SubscriptionEvent::AllowanceReached {
            key,
            period_start,
            used,
            limit,
            ..
        } => (
            "usage.allowance_reached",
            key,
            period_start,
            used,
            limit,
            100,
        ),
        _ => return Ok(None),
    };
    Ok(Some((
        kind,
        serde_json::json!({
            "tenant_id": event.tenant_id,
            "allowance": key.as_str(),
            "threshold_percent": percent,
            "used": used,
            "limit": limit,
            "period_start": period_start,
        }),
        period_start,
    )))
}

/// Posts each message to its tenant's endpoint (when one is set), a few times while the
/// failure may pass, then records the delivery or the failure on the endpoint's stream and
/// moves on: one tenant's broken endpoint never holds the others back for long. The
/// `webhook-id` derives from the causing event, so a redelivery after a crash carries the
/// same id (and one already recorded is not posted again).
#[derive(Debug, Clone)]
pub struct TenantWebhooks {
    exec: Executor,
    webhooks: Arc<dyn Webhooks>,
    /// Pauses between attempts.
    pauses: Vec<Duration>,
}

impl TenantWebhooks {
    pub fn new(exec: Executor, webhooks: Arc<dyn Webhooks>) -> Self {
        Self {
            exec,
            webhooks,
            pauses: vec![Duration::from_secs(1), Duration::from_secs(4)],
        }
    }

    /// Shorter pauses (tests).
    pub fn with_pauses(mut self, pauses: Vec<Duration>) -> Self {
        self.pauses = pauses;
        self
    }

    async fn deliver(&self, event: &RecordedEvent) -> Result<(), ReactionError> {
        let Some(tenant) = event.tenant_id else {
            return Ok(());
        };
        // Decoding costs no I/O: the subscription is loaded only for a message.
        let Some((kind, mut data, period_start)) = message_of(event)? else {
            return Ok(());
        };
        let failed = |e: String| ReactionError::at(event, e);
        let subscription = self
            .exec
            .load::<Subscription>(tenant.as_uuid())
            .await
            .map_err(|e| failed(e.to_string()))?
            .state;
        let (_, period_end) = subscription.period_containing(period_start);
        data["period_end"] = serde_json::json!(period_end);
        let endpoint = self
            .exec
            .load::<WebhookEndpoint>(tenant.as_uuid())
            .await
            .map_err(|e| failed(e.to_string()))?
            .state;
        let (Some(url), Some(key)) = (endpoint.url, endpoint.key_id) else {
            return Ok(());
        };
        let id = format!(
            "msg_{}",
            Uuid::new_v5(&event.event_id.as_uuid(), b"tenant-webhook").simple()
        );
        if endpoint.deliveries.iter().any(|d| d.webhook_id == id) {
            return Ok(());
        }
        let message = WebhookMessage {
            id: id.clone(),
            event_type: kind.to_owned(),
            body: serde_json::json!({
                "type": kind,
                "timestamp": event.recorded_at,
                "data": data,
            })
            .to_string(),
        };
        let secret = self.webhooks.secret(tenant, key);
        let mut attempts = 0;
        let status = loop {
            attempts += 1;
            match self
                .webhooks
                .post(&url, &secret, &message, Utc::now())
                .await
            {
                Ok(http_status) => break DeliveryStatus::Delivered { http_status },
                Err(PostError { reason, permanent }) => {
                    match self.pauses.get(attempts as usize - 1) {
                        Some(pause) if !permanent => tokio::time::sleep(*pause).await,
                        _ => break DeliveryStatus::Failed { reason },
                    }
                }
            }
        };
        match &status {
            DeliveryStatus::Delivered { .. } => {
                tracing::info!(reactor = TENANT_WEBHOOKS, tenant.id = %tenant, webhook.id = %id, attempts, "webhook delivered");
            }
            DeliveryStatus::Failed { reason } => {
                tracing::warn!(reactor = TENANT_WEBHOOKS, tenant.id = %tenant, webhook.id = %id, attempts, reason = %reason, "webhook not delivered; given up");
            }
        }
        let delivery = Delivery {
            webhook_id: id,
            event_type: kind.to_owned(),
            status,
            attempts,
            at: Utc::now(),
        };
        let ctx = CommandContext::caused_by(event, TENANT_WEBHOOKS).for_tenant(tenant);
        self.exec
            .execute::<WebhookEndpoint>(tenant.as_uuid(), &WebhookCommand::Record(delivery), &ctx)
            .await
            .map(drop)
            .map_err(|e| failed(e.to_string()))
    }
}

#[async_trait::async_trait]
impl Reactor for TenantWebhooks {
    fn name(&self) -> &'static str {
        TENANT_WEBHOOKS
    }

    fn reads(&self) -> Reads {
        Reads::categories(&[Subscription::CATEGORY])
    }

    async fn react(&self, events: &[RecordedEvent]) -> Result<(), ReactionError> {
        for event in events {
            self.deliver(event).await?;
        }
        Ok(())
    }
}
