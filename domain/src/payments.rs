//! The Payments port (the payment provider, Stripe, as Tenantry uses it) and the record of
//! what the provider told us ([`ProviderNotice`]).
//!
//! Outbound: every call that changes something at the provider carries an idempotency key
//! derived from the event that caused it, and the calls that create a chargeable object
//! (a subscription, an invoice item) also tag it with that key and look for a tagged object
//! before creating one, so a retry after a crash or a lost answer never charges twice, also
//! after the provider forgot the key (Stripe keeps keys for 24 hours) or with a provider that
//! ignores keys. The adapter's answers name only what Tenantry reads.
//!
//! Inbound: each provider event (a webhook) is recorded once on its own stream
//! (`provider_notice-<UUIDv5 of the provider's event id>`), whatever its type: a second
//! delivery of the same event finds the record and changes nothing.

use crate::aggregate::Aggregate;
use crate::ids::TenantId;
use crate::plan::{PlanRef, Price};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentsError {
    /// Worth retrying: the provider could not be reached, timed out, or failed on its side.
    #[error("the payment provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request; retrying the same request will not help.
    #[error("the payment provider refused the request: {0}")]
    Refused(String),
}

/// A subscription at the provider, as created for ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSubscription {
    pub id: String,
    /// The subscription's one item (what a plan change replaces).
    pub item: String,
}

/// What a new provider subscription mirrors.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionRequest {
    pub tenant: TenantId,
    pub customer: String,
    pub plan: PlanRef,
    /// The plan's display name (the provider's product name).
    pub plan_name: String,
    pub price: Price,
    pub trial_end: Option<DateTime<Utc>>,
}

/// A charge for a closed period beyond the plan's allowance, or any one-off line.
#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceLine {
    pub customer: String,
    pub subscription: Option<String>,
    /// In minor units of `currency`.
    pub amount: i64,
    pub currency: String,
    pub description: String,
    /// The end of the period the line bills. Stripe drafts a subscription's renewal invoice
    /// when the period ends and finalizes it about an hour later; a draft of the
    /// subscription's made since this moment takes the line, so that the overage is on the
    /// invoice of the period it is for. Without one (or without a time) the line is left
    /// pending: it goes on the next invoice Stripe drafts.
    pub draft_since: Option<DateTime<Utc>>,
}

/// The key that makes an outbound call idempotent: derived from the causing event and the
/// call (`<event id>/<call>`), never random.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(pub String);

impl IdempotencyKey {
    pub fn caused_by(event_id: Uuid, call: &str) -> Self {
        Self(format!("tenantry-{event_id}-{call}"))
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[async_trait]
pub trait Payments: Send + Sync + std::fmt::Debug + 'static {
    /// A customer for `tenant` (named `name`, tagged with the tenant id); its id.
    async fn create_customer(
        &self,
        tenant: TenantId,
        name: &str,
        key: &IdempotencyKey,
    ) -> Result<String, PaymentsError>;

    /// A subscription mirroring ours, or the one created earlier under the same key.
    async fn create_subscription(
        &self,
        request: &SubscriptionRequest,
        key: &IdempotencyKey,
    ) -> Result<ProviderSubscription, PaymentsError>;

    /// Moves `subscription` to `plan` at `price` (prorated by the provider's default rules).
    async fn change_plan(
        &self,
        subscription: &ProviderSubscription,
        (plan, plan_name, price): (&PlanRef, &str, &Price),
        key: &IdempotencyKey,
    ) -> Result<(), PaymentsError>;

    /// Schedules (`true`) or withdraws (`false`) a cancellation at the period's end.
    async fn cancel_at_period_end(
        &self,
        subscription: &str,
        cancel: bool,
        key: &IdempotencyKey,
    ) -> Result<(), PaymentsError>;

    /// Ends `subscription` now; one that is already ended is not an error.
    async fn cancel_now(
        &self,
        subscription: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PaymentsError>;

    /// Adds `line` to the subscription's renewal draft (see [`InvoiceLine::draft_since`]) or
    /// else the customer's next invoice, unless a line under `key` is there already; the
    /// line's id at the provider.
    async fn add_invoice_line(
        &self,
        line: &InvoiceLine,
        key: &IdempotencyKey,
    ) -> Result<String, PaymentsError>;

    /// A SetupIntent for `customer`: the client secret Stripe.js confirms a card with.
    async fn set_up_payment_method(
        &self,
        customer: &str,
        key: &IdempotencyKey,
    ) -> Result<String, PaymentsError>;
}

/// What a provider event means for a tenant's subscription (the adapter reads it from the
/// provider's event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeAction {
    /// An invoice's payment failed.
    PaymentFailed,
    /// An invoice was paid: a past-due subscription recovers, a trial converts.
    InvoicePaid,
    /// The provider's subscription `0` ended.
    SubscriptionEnded(String),
    /// The provider's subscription `0` is now in status `1` (the provider's names).
    SubscriptionStatus(String, String),
    /// The tenant's customer was deleted at the provider.
    CustomerDeleted,
    /// Of a known type, but nothing to act on (the reason says why).
    Nothing(String),
    /// A type Tenantry does not act on.
    Unhandled,
}

/// What Tenantry did with a provider event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeOutcome {
    /// Translated into a change of the tenant's subscription (`changed`: whether it changed
    /// anything: an older event after a newer one changes nothing).
    Applied { changed: bool },
    /// Of a known type, but about nothing of ours (no tenant found, another subscription).
    Ignored { reason: String },
    /// A type Tenantry does not act on: acknowledged and kept.
    Unhandled,
}

/// One provider event, once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderNotice {
    pub received: bool,
}

impl ProviderNotice {
    /// The notice stream's id for the provider's event id.
    pub fn id_of(provider: &str, event_id: &str) -> Uuid {
        Uuid::new_v5(
            &Uuid::NAMESPACE_URL,
            format!("tenantry:{provider}-event:{event_id}").as_bytes(),
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordNotice(pub NoticeEvent);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NoticeEvent {
    NoticeReceived {
        provider: String,
        event_id: String,
        event_type: String,
        /// The provider object the event is about (`sub_…`, `in_…`, `cus_…`).
        object_id: Option<String>,
        tenant_id: Option<TenantId>,
        /// When the provider says the event happened.
        created: DateTime<Utc>,
        outcome: NoticeOutcome,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoticeError {}

impl Aggregate for ProviderNotice {
    const CATEGORY: &'static str = "provider_notice";
    type Command = RecordNotice;
    type Event = NoticeEvent;
    type Error = NoticeError;

    fn decide(&self, command: &RecordNotice) -> Result<Vec<NoticeEvent>, NoticeError> {
        Ok(if self.received {
            vec![]
        } else {
            vec![command.0.clone()]
        })
    }

    fn evolve(&mut self, _event: &NoticeEvent) {
        self.received = true;
    }
}
