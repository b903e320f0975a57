//! The Payments port over Stripe (async-stripe 1.0): its request builders, with answers read
//! into types of our own that name only the fields Tenantry reads (`localstripe`, the test
//! server, leaves out fields the crate's typed models require, so those fail to decode).
//!
//! - Plans are Stripe's legacy Plans (localstripe has no Prices), one per plan version,
//!   interval and currency, with an id of ours (`tenantry_<key>_v<version>_<interval>_<currency>`):
//!   created when first needed, "already exists" taken as done.
//! - Every call that changes something carries the idempotency key it is given.
//! - A subscription and an invoice item are tagged with their key (`metadata.tenantry_key`),
//!   and the customer's subscriptions and newest invoice items are searched for the key before
//!   one is created: a retry after a lost answer finds the first one even where the key is not
//!   honoured (localstripe ignores `Idempotency-Key`; Stripe forgets keys after 24 hours).
//! - Customers and subscriptions carry `metadata.tenant_id`, which the webhook endpoint uses
//!   to find the tenant of an event.

use async_trait::async_trait;
use domain::ids::TenantId;
use domain::payments::{
    IdempotencyKey, InvoiceLine, NoticeAction, Payments, PaymentsError, ProviderSubscription,
    SubscriptionRequest,
};
use domain::plan::{Interval, PlanRef, Price};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use stripe::{Client, ClientBuilder, RequestStrategy, StripeError, StripeRequest};
use stripe_billing::invoice::ListInvoice;
use stripe_billing::invoice_item::{CreateInvoiceItem, ListInvoiceItem};
use stripe_billing::plan::{CreatePlan, CreatePlanInlineProductParams, CreatePlanProduct};
use stripe_billing::subscription::{
    CancelSubscription, CreateSubscription, CreateSubscriptionItems, CreateSubscriptionTrialEnd,
    ListSubscription, ListSubscriptionStatus, UpdateSubscription, UpdateSubscriptionItems,
};
use stripe_core::customer::CreateCustomer;
use stripe_core::setup_intent::CreateSetupIntent;
use stripe_shared::PlanInterval;

/// The metadata key that tags what Tenantry created with the idempotency key that created it.
pub const KEY_TAG: &str = "tenantry_key";
/// The metadata key naming the tenant an object belongs to.
pub const TENANT_TAG: &str = "tenant_id";

/// How long one attempt may take; the reactor that called retries with growing pauses.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);

/// A Stripe account (or a Stripe-compatible server at `api_base`).
pub struct StripePayments {
    client: Client,
}

impl std::fmt::Debug for StripePayments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client holds the secret key: never printed.
        f.debug_struct("StripePayments").finish_non_exhaustive()
    }
}

impl StripePayments {
    /// A client with `secret_key`, talking to `api_base` (Stripe's own when `None`).
    pub fn new(secret_key: &str, api_base: Option<&str>) -> Result<Self, PaymentsError> {
        let mut builder = ClientBuilder::new(secret_key)
            .timeout(ATTEMPT_TIMEOUT)
            .app_info("tenantry", Some(env!("CARGO_PKG_VERSION").to_owned()), None);
        if let Some(base) = api_base {
            // The client joins paths onto the base: it must end with a slash.
            let base = if base.ends_with('/') {
                base.to_owned()
            } else {
                format!("{base}/")
            };
            builder = builder.url(base);
        }
        let client = builder
            .build()
            .map_err(|e| PaymentsError::Refused(format!("the Stripe client: {e}")))?;
        Ok(Self { client })
    }
}

impl StripePayments {
    /// The newest draft invoice of `subscription` made at or after `since` (the renewal
    /// invoice Stripe drafts when a period ends), if there is one. Filtered here, not by
    /// `status=draft` in the request: localstripe refuses that filter.
    async fn draft_since(
        &self,
        subscription: &str,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<String>, PaymentsError> {
        let invoices = ListInvoice::new()
            .subscription(subscription)
            .limit(10)
            .build()
            .customize::<InvoiceList>()
            .send(&self.client)
            .await
            .map_err(failure)?;
        let after = since.timestamp() - CLOCK_SLACK_SECONDS;
        Ok(invoices
            .data
            .into_iter()
            .filter(|i| i.status.as_deref() == Some("draft") && i.created >= after)
            .max_by_key(|i| i.created)
            .map(|i| i.id))
    }
}

// What Tenantry reads of Stripe's answers.

#[derive(miniserde::Deserialize)]
struct Created {
    id: String,
}

#[derive(miniserde::Deserialize)]
struct Tagged {
    id: String,
    metadata: Option<BTreeMap<String, String>>,
}

/// Whether `metadata` tags its object as created under `key`.
fn tagged_with(metadata: Option<&BTreeMap<String, String>>, key: &IdempotencyKey) -> bool {
    metadata
        .and_then(|m| m.get(KEY_TAG))
        .is_some_and(|k| *k == key.0)
}

#[derive(miniserde::Deserialize)]
struct SubscriptionAnswer {
    id: String,
    metadata: Option<BTreeMap<String, String>>,
    items: ItemList,
}

#[derive(miniserde::Deserialize)]
struct ItemList {
    data: Vec<Created>,
}

#[derive(miniserde::Deserialize)]
struct SubscriptionList {
    data: Vec<SubscriptionAnswer>,
}

#[derive(miniserde::Deserialize)]
struct TaggedList {
    data: Vec<Tagged>,
}

#[derive(miniserde::Deserialize)]
struct InvoiceAnswer {
    id: String,
    status: Option<String>,
    created: i64,
}

#[derive(miniserde::Deserialize)]
struct InvoiceList {
    data: Vec<InvoiceAnswer>,
}

/// How far Stripe's clock may be behind ours when a draft is matched to a closed period.
const CLOCK_SLACK_SECONDS: i64 = 300;

#[derive(miniserde::Deserialize)]
struct SetupIntentAnswer {
    client_secret: Option<String>,
}

impl SubscriptionAnswer {
    fn into_provider(self) -> Result<ProviderSubscription, PaymentsError> {
        let item = self
            .items
            .data
            .into_iter()
            .next()
            .ok_or_else(|| PaymentsError::Refused("a subscription without items".into()))?;
        Ok(ProviderSubscription {
            id: self.id,
            item: item.id,
        })
    }
}

fn key_of(key: &IdempotencyKey) -> Result<RequestStrategy, StripeError> {
    let key = stripe::IdempotencyKey::new(&key.0)
        .map_err(|e| StripeError::ConfigError(format!("idempotency key: {e}")))?;
    Ok(RequestStrategy::Idempotent(key))
}

/// Transient failures (no answer, a time-out, 409/429/5xx) are worth retrying; other
/// refusals are not. Stripe's message is kept: it names the parameter, never a secret.
fn failure(error: StripeError) -> PaymentsError {
    match error {
        StripeError::Stripe(errors, status) => {
            let message = errors.message.clone().unwrap_or_default();
            if status == 409 || status == 429 || status >= 500 {
                PaymentsError::Unavailable(format!("HTTP {status}: {message}"))
            } else {
                PaymentsError::Refused(format!("HTTP {status}: {message}"))
            }
        }
        StripeError::Timeout => PaymentsError::Unavailable("timed out".into()),
        StripeError::ClientError(e) => PaymentsError::Unavailable(e),
        StripeError::JSONDeserialize(e) => PaymentsError::Unavailable(format!("an answer: {e}")),
        StripeError::ConfigError(e) => PaymentsError::Refused(e),
    }
}

fn already_exists(error: &StripeError) -> bool {
    match error {
        StripeError::Stripe(errors, status) => {
            *status == 409
                || errors
                    .code
                    .as_ref()
                    .is_some_and(|c| c.as_str() == "resource_already_exists")
        }
        _ => false,
    }
}

fn tags(tenant: TenantId, key: Option<&IdempotencyKey>) -> HashMap<String, String> {
    let mut tags = HashMap::from([(TENANT_TAG.to_owned(), tenant.to_string())]);
    if let Some(key) = key {
        tags.insert(KEY_TAG.to_owned(), key.0.clone());
    }
    tags
}

fn currency(price: &Price) -> Result<stripe_types::Currency, PaymentsError> {
    price
        .currency
        .as_str()
        .parse()
        .map_err(|_| PaymentsError::Refused(format!("currency {}", price.currency.as_str())))
}

/// The Stripe plan id of a plan version at a price.
pub fn plan_id(plan: &PlanRef, price: &Price) -> String {
    format!(
        "tenantry_{}_v{}_{}_{}",
        plan.key.as_str(),
        plan.version,
        price.interval.as_str(),
        price.currency.as_str()
    )
}

impl StripePayments {
    /// Sends `request` under the idempotency key `key`, reading the answer as `T`.
    async fn keyed<T: miniserde::Deserialize>(
        &self,
        request: &(impl StripeRequest + Sync),
        key: &IdempotencyKey,
    ) -> Result<T, StripeError> {
        let strategy = key_of(key)?;
        request
            .build()
            .customize::<T>()
            .request_strategy(strategy)
            .send(&self.client)
            .await
    }

    /// The legacy Plan for `plan` at `price`, created if it is not there yet.
    async fn ensure_plan(
        &self,
        plan: &PlanRef,
        name: &str,
        price: &Price,
    ) -> Result<String, PaymentsError> {
        let id = plan_id(plan, price);
        let interval = match price.interval {
            Interval::Month => PlanInterval::Month,
            Interval::Year => PlanInterval::Year,
        };
        let created = CreatePlan::new(currency(price)?, interval)
            .id(id.clone())
            .amount(price.amount)
            .nickname(format!("{name} (v{})", plan.version))
            .product(CreatePlanProduct::InlineProductParams(
                CreatePlanInlineProductParams::new(name),
            ))
            .build()
            .customize::<Created>()
            .send(&self.client)
            .await;
        match created {
            Ok(_) => Ok(id),
            Err(e) if already_exists(&e) => Ok(id),
            Err(e) => Err(failure(e)),
        }
    }

    /// The customer's subscription tagged with `key`, if one was created already.
    async fn subscription_tagged(
        &self,
        customer: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<SubscriptionAnswer>, PaymentsError> {
        let list = ListSubscription::new()
            .customer(customer)
            .status(ListSubscriptionStatus::All)
            .limit(100)
            .build()
            .customize::<SubscriptionList>()
            .send(&self.client)
            .await
            .map_err(failure)?;
        Ok(list
            .data
            .into_iter()
            .find(|s| tagged_with(s.metadata.as_ref(), key)))
    }
}

#[async_trait]
impl Payments for StripePayments {
    async fn create_customer(
        &self,
        tenant: TenantId,
        name: &str,
        key: &IdempotencyKey,
    ) -> Result<String, PaymentsError> {
        let request = CreateCustomer::new()
            .name(name)
            .metadata(tags(tenant, Some(key)));
        let created: Created = self.keyed(&request, key).await.map_err(failure)?;
        Ok(created.id)
    }

    async fn create_subscription(
        &self,
        request: &SubscriptionRequest,
        key: &IdempotencyKey,
    ) -> Result<ProviderSubscription, PaymentsError> {
        if let Some(earlier) = self.subscription_tagged(&request.customer, key).await? {
            return earlier.into_provider();
        }
        let plan = self
            .ensure_plan(&request.plan, &request.plan_name, &request.price)
            .await?;
        let mut item = CreateSubscriptionItems::new();
        item.plan = Some(plan);
        let mut create = CreateSubscription::new()
            .customer(request.customer.clone())
            .items(vec![item])
            .metadata(tags(request.tenant, Some(key)));
        if let Some(end) = request.trial_end {
            create = create.trial_end(CreateSubscriptionTrialEnd::Timestamp(end.timestamp()));
        }
        self.keyed::<SubscriptionAnswer>(&create, key)
            .await
            .map_err(failure)?
            .into_provider()
    }

    async fn change_plan(
        &self,
        subscription: &ProviderSubscription,
        (plan, plan_name, price): (&PlanRef, &str, &Price),
        key: &IdempotencyKey,
    ) -> Result<(), PaymentsError> {
        let plan = self.ensure_plan(plan, plan_name, price).await?;
        let mut item = UpdateSubscriptionItems::new();
        item.id = Some(subscription.item.clone());
        item.plan = Some(plan);
        let request = UpdateSubscription::new(subscription.id.as_str()).items(vec![item]);
        self.keyed::<Created>(&request, key)
            .await
            .map_err(failure)?;
        Ok(())
    }

    async fn cancel_at_period_end(
        &self,
        subscription: &str,
        cancel: bool,
        key: &IdempotencyKey,
    ) -> Result<(), PaymentsError> {
        let request = UpdateSubscription::new(subscription).cancel_at_period_end(cancel);
        self.keyed::<Created>(&request, key)
            .await
            .map_err(failure)?;
        Ok(())
    }

    async fn cancel_now(
        &self,
        subscription: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PaymentsError> {
        let cancelled = self
            .keyed::<Created>(&CancelSubscription::new(subscription), key)
            .await;
        match cancelled {
            Ok(_) => Ok(()),
            // Gone already (ended by Stripe, or by an earlier attempt).
            Err(StripeError::Stripe(_, 404)) => Ok(()),
            Err(e) => Err(failure(e)),
        }
    }

    async fn add_invoice_line(
        &self,
        line: &InvoiceLine,
        key: &IdempotencyKey,
    ) -> Result<String, PaymentsError> {
        // The customer's newest items, invoiced or not (localstripe fails on `pending`; an
        // item already invoiced under the key is done too).
        let pending = ListInvoiceItem::new()
            .customer(line.customer.clone())
            .limit(100)
            .build()
            .customize::<TaggedList>()
            .send(&self.client)
            .await
            .map_err(failure)?;
        if let Some(item) = pending
            .data
            .into_iter()
            .find(|item| tagged_with(item.metadata.as_ref(), key))
        {
            return Ok(item.id);
        }
        let currency = line
            .currency
            .parse::<stripe_types::Currency>()
            .map_err(|_| PaymentsError::Refused(format!("currency {}", line.currency)))?;
        let mut create = CreateInvoiceItem::new()
            .customer(line.customer.clone())
            .amount(line.amount)
            .currency(currency)
            .description(line.description.clone())
            .metadata(HashMap::from([(KEY_TAG.to_owned(), key.0.clone())]));
        if let Some(subscription) = &line.subscription {
            create = create.subscription(subscription.clone());
            if let Some(since) = line.draft_since
                && let Some(draft) = self.draft_since(subscription, since).await?
            {
                create = create.invoice(draft);
            }
        }
        let created: Tagged = self.keyed(&create, key).await.map_err(failure)?;
        tracing::debug!(stripe.invoice_item = %created.id, "invoice item added");
        Ok(created.id)
    }

    async fn set_up_payment_method(
        &self,
        customer: &str,
        key: &IdempotencyKey,
    ) -> Result<String, PaymentsError> {
        let intent: SetupIntentAnswer = self
            .keyed(&CreateSetupIntent::new().customer(customer), key)
            .await
            .map_err(failure)?;
        intent
            .client_secret
            .ok_or_else(|| PaymentsError::Refused("a SetupIntent without a client secret".into()))
    }
}

/// Why a webhook was refused (answered 400: Stripe shows it in the endpoint's log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the Stripe-Signature header is missing or malformed")]
    MalformedSignature,
    #[error("the signed timestamp is {0} seconds away from now, beyond the tolerance")]
    OutsideTolerance(i64),
    #[error("no signature matches the payload")]
    NoMatch,
    #[error("the payload is not a Stripe event: {0}")]
    NotAnEvent(String),
}

/// Checks a `Stripe-Signature` header (`t=<unix time>,v1=<hex>[,v1=<hex>…]`) over the raw
/// `payload`: the timestamp must be within `tolerance` of `now`, and one `v1` signature must
/// equal HMAC-SHA256 of `"<t>.<payload>"` under one of `secrets` (every pair is tried, for
/// secret rotation; the comparison is constant-time, after a length check).
pub fn verify_webhook(
    payload: &[u8],
    header: &str,
    secrets: &[String],
    now: chrono::DateTime<chrono::Utc>,
    tolerance: Duration,
) -> Result<(), WebhookError> {
    use hmac::{Hmac, Mac};
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let Some((name, value)) = part.trim().split_once('=') else {
            return Err(WebhookError::MalformedSignature);
        };
        match name {
            "t" => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| WebhookError::MalformedSignature)?,
                );
            }
            "v1" => signatures.push(hex(value).ok_or(WebhookError::MalformedSignature)?),
            // Other schemes (v0: test mode's unsigned scheme) are not accepted.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(WebhookError::MalformedSignature)?;
    if signatures.is_empty() {
        return Err(WebhookError::MalformedSignature);
    }
    let skew = now.timestamp() - timestamp;
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if skew.abs() > tolerance {
        return Err(WebhookError::OutsideTolerance(skew));
    }
    for secret in secrets {
        for signature in &signatures {
            let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
                continue;
            };
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(payload);
            // `verify_slice` compares in constant time and refuses another length.
            if mac.verify_slice(signature).is_ok() {
                return Ok(());
            }
        }
    }
    Err(WebhookError::NoMatch)
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What Tenantry reads of a Stripe event.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    pub id: String,
    pub event_type: String,
    pub created: chrono::DateTime<chrono::Utc>,
    pub object_id: Option<String>,
    /// `metadata.tenant_id` of the object (set on what Tenantry created).
    pub tenant: Option<uuid::Uuid>,
    /// The customer the object belongs to (or is).
    pub customer: Option<String>,
    pub action: NoticeAction,
}

/// Reads a verified payload as a Stripe event.
pub fn parse_webhook(payload: &[u8]) -> Result<WebhookEvent, WebhookError> {
    use NoticeAction as Action;
    let value: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| WebhookError::NotAnEvent(format!("not JSON: {e}")))?;
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    let id = text(&value["id"]).ok_or_else(|| WebhookError::NotAnEvent("no id".into()))?;
    let event_type =
        text(&value["type"]).ok_or_else(|| WebhookError::NotAnEvent("no type".into()))?;
    let created = value["created"]
        .as_i64()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .ok_or_else(|| WebhookError::NotAnEvent("no created time".into()))?;
    let object = &value["data"]["object"];
    let object_id = text(&object["id"]);
    let tenant = object["metadata"][TENANT_TAG]
        .as_str()
        .and_then(|t| uuid::Uuid::parse_str(t).ok());
    let customer = match object["object"].as_str() {
        Some("customer") => object_id.clone(),
        _ => text(&object["customer"]),
    };
    let subscription_id = || object_id.clone().unwrap_or_default();
    let action = match event_type.as_str() {
        "invoice.payment_failed" => Action::PaymentFailed,
        "invoice.paid" | "invoice.payment_succeeded" => {
            // A trial's first invoice is for nothing and paid at once: no payment happened.
            if object["amount_paid"].as_i64().unwrap_or(0) > 0 {
                Action::InvoicePaid
            } else {
                Action::Nothing("an invoice for nothing".into())
            }
        }
        "customer.subscription.deleted" => Action::SubscriptionEnded(subscription_id()),
        "customer.subscription.updated" => Action::SubscriptionStatus(
            subscription_id(),
            text(&object["status"]).unwrap_or_default(),
        ),
        "customer.deleted" => Action::CustomerDeleted,
        _ => Action::Unhandled,
    };
    Ok(WebhookEvent {
        id,
        event_type,
        created,
        object_id,
        tenant,
        customer,
        action,
    })
}
