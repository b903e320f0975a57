//! The payments reactor against a real Stripe-compatible server (localstripe): a subscription
//! is mirrored by a customer and a Stripe subscription, changes are pushed, and a crash
//! between our event and Stripe's answer is retried without a second subscription or charge.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;
use support::{system, tenant};

use async_trait::async_trait;
use chrono::Utc;
use commands::Executor;
use commands::billing::{change_plan, publish_plan, subscribe};
use commands::payments::PaymentsSync;
use domain::event::Position;
use domain::ids::TenantId;
use domain::payments::{
    IdempotencyKey, InvoiceLine, Payments, PaymentsError, ProviderSubscription, SubscriptionRequest,
};
use domain::plan::{Interval, PlanDraft, PlanKey, PlanName, PlanRef, Price};
use domain::reactor::Reactor;
use domain::subscription::Subscription;
use infra::database::Database;
use infra::stripe::StripePayments;
use infra::testing::{LOCALSTRIPE_KEY, LocalStripe};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

infra::on_both_backends!(
    a_lost_answer_is_retried_without_a_second_subscription_or_charge,
    plan_changes_and_cancellations_reach_stripe,
    a_closed_periods_overage_is_posted_once_as_an_invoice_item,
    the_overage_goes_on_the_renewal_invoice_stripe_drafted,
);

/// The real adapter, except that the answers to the first `lose` calls that create a
/// subscription are lost after Stripe acted on them (a crash, a dropped connection). A new
/// customer gets a card on file, as the owner would give through Stripe.js (localstripe
/// refuses a subscription that must be paid at once from a customer without one).
#[derive(Debug)]
struct LosingAnswers {
    inner: StripePayments,
    stripe: String,
    lose: AtomicU32,
    /// The ids of the invoice items the adapter answered with.
    posted: std::sync::Mutex<Vec<String>>,
}

impl LosingAnswers {
    /// The adapter on `stripe`, losing the answers to the first `lose` subscriptions.
    fn new(stripe: &LocalStripe, lose: u32) -> Self {
        Self {
            inner: StripePayments::new(LOCALSTRIPE_KEY, Some(&stripe.url())).unwrap(),
            stripe: stripe.url(),
            lose: AtomicU32::new(lose),
            posted: std::sync::Mutex::default(),
        }
    }
}

/// Gives `customer` a default card (`4242…`: every charge succeeds).
async fn card_on_file(stripe: &str, customer: &str) {
    let client = reqwest::Client::new();
    let post = async |path: &str, form: &[(&str, &str)]| -> Value {
        client
            .post(format!("{stripe}/v1/{path}"))
            .bearer_auth(LOCALSTRIPE_KEY)
            .form(form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let card = post(
        "payment_methods",
        &[
            ("type", "card"),
            ("card[number]", "4242424242424242"),
            ("card[exp_month]", "12"),
            ("card[exp_year]", "2030"),
            ("card[cvc]", "123"),
        ],
    )
    .await;
    let card = card["id"].as_str().expect("a payment method");
    post(
        &format!("payment_methods/{card}/attach"),
        &[("customer", customer)],
    )
    .await;
    post(
        &format!("customers/{customer}"),
        &[("invoice_settings[default_payment_method]", card)],
    )
    .await;
}

#[async_trait]
impl Payments for LosingAnswers {
    async fn create_customer(
        &self,
        tenant: TenantId,
        name: &str,
        key: &IdempotencyKey,
    ) -> Result<String, PaymentsError> {
        let customer = self.inner.create_customer(tenant, name, key).await?;
        card_on_file(&self.stripe, &customer).await;
        Ok(customer)
    }
    async fn create_subscription(
        &self,
        request: &SubscriptionRequest,
        key: &IdempotencyKey,
    ) -> Result<ProviderSubscription, PaymentsError> {
        let created = self.inner.create_subscription(request, key).await?;
        if self
            .lose
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(PaymentsError::Unavailable("the answer was lost".into()));
        }
        Ok(created)
    }
    async fn change_plan(
        &self,
        subscription: &ProviderSubscription,
        plan: (&PlanRef, &str, &Price),
        key: &IdempotencyKey,
    ) -> Result<(), PaymentsError> {
        self.inner.change_plan(subscription, plan, key).await
    }
    async fn cancel_at_period_end(
        &self,
        subscription: &str,
        cancel: bool,
        key: &IdempotencyKey,
    ) -> Result<(), PaymentsError> {
        self.inner
            .cancel_at_period_end(subscription, cancel, key)
            .await
    }
    async fn cancel_now(
        &self,
        subscription: &str,
        key: &IdempotencyKey,
    ) -> Result<(), PaymentsError> {
        self.inner.cancel_now(subscription, key).await
    }
    async fn add_invoice_line(
        &self,
        line: &InvoiceLine,
        key: &IdempotencyKey,
    ) -> Result<String, PaymentsError> {
        let id = self.inner.add_invoice_line(line, key).await?;
        self.posted.lock().unwrap().push(id.clone());
        Ok(id)
    }
    async fn set_up_payment_method(
        &self,
        customer: &str,
        key: &IdempotencyKey,
    ) -> Result<String, PaymentsError> {
        self.inner.set_up_payment_method(customer, key).await
    }
}

async fn get(stripe: &LocalStripe, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}/v1/{path}", stripe.url()))
        .bearer_auth(LOCALSTRIPE_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn post(stripe: &LocalStripe, path: &str, form: &[(&str, &str)]) -> Value {
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/{path}", stripe.url()))
        .bearer_auth(LOCALSTRIPE_KEY)
        .form(form)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{path}: {}", answer.status());
    answer.json().await.unwrap()
}

async fn publish(exec: &Executor, key: &str, amount: i64) -> PlanKey {
    let mut draft = PlanDraft::free();
    draft.name = PlanName::parse(&key.to_uppercase()).unwrap();
    draft.prices[0].amount = amount;
    draft.trial_days = 0;
    let key = PlanKey::parse(key).unwrap();
    publish_plan(exec, &system(), Utc::now(), key.clone(), draft)
        .await
        .unwrap();
    key
}

/// Hands the reactor every subscription event after `after`, as the runner would.
async fn react(exec: &Executor, reactor: &dyn Reactor, after: Position) -> Result<(), String> {
    let events: Vec<_> = exec
        .store()
        .read_all(after, 1_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| reactor.reads().includes(e))
        .collect();
    reactor.react(&events).await.map_err(|e| e.to_string())
}

async fn linked(exec: &Executor, tenant: TenantId) -> Subscription {
    exec.load::<Subscription>(tenant.as_uuid())
        .await
        .unwrap()
        .state
}

async fn a_lost_answer_is_retried_without_a_second_subscription_or_charge(db: Database) {
    let stripe = LocalStripe::start().await;
    let exec = Executor::new(db.event_store().await.unwrap());
    let pro = publish(&exec, "pro", 2_900).await;
    let acme = tenant(&exec).await;
    let before = exec.store().head().await.unwrap();
    subscribe(&exec, &system(), Utc::now(), acme, (&pro, Interval::Month))
        .await
        .unwrap();
    let payments = LosingAnswers::new(&stripe, 1);
    let reactor = PaymentsSync::new(exec.clone(), Arc::new(payments));

    // Stripe created the subscription (and charged its first invoice), but the answer was lost
    // before Tenantry recorded it: the reaction fails and the runner hands the event over again.
    let failed = react(&exec, &reactor, before).await;
    assert!(failed.unwrap_err().contains("the answer was lost"));
    let customer = linked(&exec, acme).await.provider_customer.unwrap();
    assert_eq!(linked(&exec, acme).await.provider_subscription, None);
    react(&exec, &reactor, before).await.unwrap();
    // And once more, as after a crash before the checkpoint moved.
    react(&exec, &reactor, before).await.unwrap();

    let state = linked(&exec, acme).await;
    assert_eq!(state.provider_customer.as_deref(), Some(customer.as_str()));
    let (subscription, _) = state.provider_subscription.unwrap();
    let subscriptions = get(
        &stripe,
        &format!("subscriptions?customer={customer}&status=all"),
    )
    .await;
    let ids: Vec<&str> = subscriptions["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [subscription.as_str()], "one Stripe subscription");
    let invoices = get(&stripe, &format!("invoices?customer={customer}")).await;
    assert_eq!(
        invoices["data"].as_array().unwrap().len(),
        1,
        "one first invoice: {invoices}"
    );
    let customers = get(&stripe, "customers?limit=100").await;
    let ours: Vec<&Value> = customers["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["metadata"]["tenant_id"] == acme.to_string().as_str())
        .collect();
    assert_eq!(ours.len(), 1, "one customer for the tenant");
    assert_eq!(
        subscriptions["data"][0]["metadata"]["tenant_id"],
        acme.to_string().as_str()
    );
}

async fn plan_changes_and_cancellations_reach_stripe(db: Database) {
    let stripe = LocalStripe::start().await;
    let exec = Executor::new(db.event_store().await.unwrap());
    let pro = publish(&exec, "pro", 2_900).await;
    let business = publish(&exec, "business", 9_900).await;
    let acme = tenant(&exec).await;
    let before = exec.store().head().await.unwrap();
    subscribe(&exec, &system(), Utc::now(), acme, (&pro, Interval::Month))
        .await
        .unwrap();
    let payments = LosingAnswers::new(&stripe, 0);
    let reactor = PaymentsSync::new(exec.clone(), Arc::new(payments));
    react(&exec, &reactor, before).await.unwrap();
    let (subscription, _) = linked(&exec, acme).await.provider_subscription.unwrap();
    let at_stripe = async || get(&stripe, &format!("subscriptions/{subscription}")).await;
    assert_eq!(at_stripe().await["plan"]["id"], "tenantry_pro_v1_month_eur");
    assert_eq!(at_stripe().await["plan"]["amount"], 2_900);

    let mark = exec.store().head().await.unwrap();
    change_plan(
        &exec,
        &system(),
        Utc::now(),
        acme,
        (&business, Interval::Month),
    )
    .await
    .unwrap();
    commands::billing::change_subscription(
        &exec,
        &system(),
        Utc::now(),
        acme,
        commands::billing::SubscriptionChange::Cancel {
            at_period_end: true,
        },
    )
    .await
    .unwrap();
    react(&exec, &reactor, mark).await.unwrap();
    let now = at_stripe().await;
    assert_eq!(now["plan"]["id"], "tenantry_business_v1_month_eur");
    assert_eq!(now["cancel_at_period_end"], true);

    let mark = exec.store().head().await.unwrap();
    commands::billing::change_subscription(
        &exec,
        &system(),
        Utc::now(),
        acme,
        commands::billing::SubscriptionChange::Cancel {
            at_period_end: false,
        },
    )
    .await
    .unwrap();
    react(&exec, &reactor, mark).await.unwrap();
    assert_eq!(at_stripe().await["status"], "canceled");
}

/// Usage as metering will report it: here, a figure the test sets.
#[derive(Debug)]
struct RecordedUsage(u64);

#[async_trait]
impl domain::usage::UsageFigures for RecordedUsage {
    async fn used(
        &self,
        _: TenantId,
        key: domain::plan::LimitKey,
        _: (chrono::DateTime<Utc>, chrono::DateTime<Utc>),
    ) -> Result<u64, domain::usage::UsageError> {
        assert_eq!(key, domain::plan::LimitKey::BandwidthBytesPerMonth);
        Ok(self.0)
    }
}

async fn a_closed_periods_overage_is_posted_once_as_an_invoice_item(db: Database) {
    let (_stripe, item) = overage_posted(db, false).await;
    // No invoice drafted since the period closed: the item waits for the next one.
    assert!(item["invoice"].is_null(), "{item}");
}

/// Stripe drafts the renewal invoice when the period ends and finalizes it about an hour
/// later; an overage posted in between goes on that draft, the invoice of its period.
async fn the_overage_goes_on_the_renewal_invoice_stripe_drafted(db: Database) {
    let (stripe, item) = overage_posted(db, true).await;
    let draft = item["invoice"].as_str().expect("on an invoice");
    let invoice = get(&stripe, &format!("invoices/{draft}")).await;
    assert_eq!(invoice["status"], "draft", "{invoice}");
    assert_eq!(invoice["subscription"], item["subscription"], "{invoice}");
}

/// A business plan's subscription whose month closed with 7.5 GB used against 5 GB
/// included; with `drafted`, Stripe drafted the renewal invoice before the reactor posted the
/// overage. Returns the one invoice item posted (checked for amount and description).
async fn overage_posted(db: Database, drafted: bool) -> (LocalStripe, Value) {
    use domain::plan::{Limit, LimitKey, Overage};
    let stripe = LocalStripe::start().await;
    let exec = Executor::new(db.event_store().await.unwrap());
    // 5 GB a month included, 10 cents per started GB beyond.
    let mut draft = PlanDraft::free();
    draft.name = PlanName::parse("Business").unwrap();
    draft.prices[0].amount = 9_900;
    draft.trial_days = 0;
    draft
        .limits
        .insert(LimitKey::BandwidthBytesPerMonth, Limit::At(5_000_000_000));
    draft.overage = vec![Overage::parse("bandwidth.bytes", 10, 1_000_000_000).unwrap()];
    let business = PlanKey::parse("business").unwrap();
    let start = Utc::now() - chrono::Duration::days(40);
    publish_plan(&exec, &system(), start, business.clone(), draft)
        .await
        .unwrap();
    let acme = tenant(&exec).await;
    let before = exec.store().head().await.unwrap();
    subscribe(&exec, &system(), start, acme, (&business, Interval::Month))
        .await
        .unwrap();
    let payments = Arc::new(LosingAnswers::new(&stripe, 0));
    // 7.5 GB used: 2.5 GB beyond, three started GB, 30 cents.
    let reactor = PaymentsSync::new(exec.clone(), payments.clone())
        .with_usage(Arc::new(RecordedUsage(7_500_000_000)));
    react(&exec, &reactor, before).await.unwrap();
    let customer = linked(&exec, acme).await.provider_customer.unwrap();

    let (subscription, _) = linked(&exec, acme).await.provider_subscription.unwrap();
    if drafted {
        post(
            &stripe,
            "invoices",
            &[("customer", &customer), ("subscription", &subscription)],
        )
        .await;
    }

    let mark = exec.store().head().await.unwrap();
    commands::billing::renew(&exec, Utc::now(), acme)
        .await
        .unwrap();
    react(&exec, &reactor, mark).await.unwrap();
    if !drafted {
        // Handed over again (a crash before the checkpoint): no second line. (localstripe
        // lists only pending items, so an item on a draft cannot be found again there; Stripe
        // lists both.)
        react(&exec, &reactor, mark).await.unwrap();
        let pending = get(&stripe, &format!("invoiceitems?customer={customer}")).await;
        assert_eq!(pending["data"].as_array().unwrap().len(), 1, "{pending}");
    }
    let posted = payments.posted.lock().unwrap().clone();
    assert!(
        !posted.is_empty() && posted.iter().all(|id| *id == posted[0]),
        "{posted:?}"
    );
    let item = get(&stripe, &format!("invoiceitems/{}", posted[0])).await;
    assert_eq!(item["amount"], 30);
    assert_eq!(item["currency"], "eur");
    assert_eq!(item["subscription"], subscription.as_str());
    assert!(
        item["description"]
            .as_str()
            .unwrap()
            .starts_with("bandwidth.bytes: 2500000000 beyond the 5000000000 included"),
        "{}",
        item["description"]
    );
    (stripe, item)
}
