//! The payment provider kept in step with subscriptions, both ways.
//!
//! Outbound, the [`PaymentsSync`] reactor follows the subscription streams: a start creates
//! the tenant's customer (once per tenant) and a provider subscription mirroring ours (with
//! the trial's end), an upgrade or a scheduled change taking effect moves it to the new plan,
//! a cancellation at the period's end is scheduled or withdrawn, a cancellation at once ends
//! it. Every call carries an idempotency key derived from the causing event
//! ([`IdempotencyKey::caused_by`]); what the provider created is recorded on the
//! subscription's stream (`LinkProvider`) with a command id derived from the same event, so a
//! crash anywhere in between repeats the calls with the same keys and records once.
//!
//! Inbound, [`record_provider_notice`] takes one provider event (a verified webhook) once:
//! it applies what the event means to the tenant's subscription (a failed payment, a paid
//! invoice, a subscription that ended) with a command id derived from the provider's event
//! id, then records the notice on its own stream; a redelivery finds the record. Payment
//! outcomes carry the provider's time, and the subscription ignores one older than the last
//! it applied, so events arriving out of order never roll it back.

use crate::{CommandContext, CommandError, CommandOutcome, Executor, LoadError};
use chrono::{DateTime, Duration, Utc};
use domain::aggregate::Aggregate;
use domain::event::{Actor, RecordedEvent};
use domain::ids::{CommandId, TenantId};
use domain::payments::{
    IdempotencyKey, InvoiceLine, NoticeAction, NoticeEvent, NoticeOutcome, Payments, PaymentsError,
    ProviderNotice, ProviderSubscription, RecordNotice, SubscriptionRequest,
};
use domain::plan::{Plan, PlanRef};
use domain::reactor::{ReactionError, Reactor, decoded};
use domain::subscription::{
    Subscription, SubscriptionCommand, SubscriptionError, SubscriptionEvent, SubscriptionStatus,
};
use domain::tenant::Tenant;
use domain::usage::UsageFigures;
use std::sync::Arc;
use uuid::Uuid;

/// The name of the reactor that pushes subscription changes to the payment provider.
pub const PAYMENTS_SYNC: &str = "payments_sync";

/// The actor of changes made because the payment provider said so.
pub const PROVIDER_WEBHOOK: &str = "payment_provider";

#[derive(Debug, Clone)]
pub struct PaymentsSync {
    exec: Executor,
    payments: Arc<dyn Payments>,
    /// Where a closed period's usage comes from, for overage (the metering area); without
    /// it no overage is billed.
    usage: Option<Arc<dyn UsageFigures>>,
}

impl PaymentsSync {
    pub fn new(exec: Executor, payments: Arc<dyn Payments>) -> Self {
        Self {
            exec,
            payments,
            usage: None,
        }
    }

    /// Bills overage for each closed period from these usage figures.
    #[must_use]
    pub fn with_usage(mut self, usage: Arc<dyn UsageFigures>) -> Self {
        self.usage = Some(usage);
        self
    }

    /// The subscription as it was just before `event` (the closed period's plan and dates).
    async fn state_before(&self, event: &RecordedEvent) -> Result<Subscription, Failure> {
        let read = domain::event_store::StreamRead {
            limit: usize::try_from(event.version.0.saturating_sub(1)).unwrap_or(usize::MAX),
            ..domain::event_store::StreamRead::forwards()
        };
        let mut state = Subscription::default();
        if read.limit == 0 {
            return Ok(state);
        }
        let events = self
            .exec
            .store()
            .read_stream(&event.stream, read)
            .await
            .map_err(|e| Failure::Store(e.to_string()))?;
        for earlier in events.iter().filter(|e| e.version < event.version) {
            if let Some(decoded) =
                decoded::<Subscription>(earlier).map_err(|e| Failure::Store(e.reason))?
            {
                state.evolve(&decoded);
            }
        }
        Ok(state)
    }

    /// Posts the overage of the period that `event` (a renewal starting the next period)
    /// closed: for each meter the plan bills beyond its allowance, whole blocks beyond it at
    /// the plan's unit price, one invoice line per meter keyed by the event and the meter.
    async fn overage(
        &self,
        event: &RecordedEvent,
        tenant: TenantId,
        closed_end: DateTime<Utc>,
    ) -> Result<(), Failure> {
        let Some(usage) = &self.usage else {
            return Ok(());
        };
        let before = self.state_before(event).await?;
        let (Some(plan), Some(start), Some(price)) =
            (&before.plan, before.period_start, &before.price)
        else {
            return Ok(());
        };
        // A trial is not billed, its usage neither.
        if before.status == Some(SubscriptionStatus::Trialing) {
            return Ok(());
        }
        let state = self.subscription(tenant).await?;
        let (Some(customer), Some((subscription, _))) =
            (state.provider_customer, state.provider_subscription)
        else {
            return Ok(());
        };
        let version = self.exec.load::<Plan>(Plan::id_of(&plan.key)).await?.state;
        let Some(version) = version.version(plan.version) else {
            return Ok(());
        };
        for overage in &version.overage {
            let Some(key) = overage.allowance() else {
                continue;
            };
            let Some(included) = version.limit(key).value() else {
                continue; // unlimited: nothing is beyond it
            };
            let used = usage
                .used(tenant, key, (start, closed_end))
                .await
                .map_err(|e| Failure::Store(e.to_string()))?;
            let over = used.saturating_sub(included);
            let amount = overage.charge(over);
            if amount == 0 {
                continue;
            }
            let line = InvoiceLine {
                customer: customer.clone(),
                subscription: Some(subscription.clone()),
                amount,
                currency: price.currency.as_str().to_owned(),
                description: format!(
                    "{}: {over} beyond the {included} included, {} to {}",
                    overage.meter,
                    start.format("%Y-%m-%d"),
                    closed_end.format("%Y-%m-%d")
                ),
                draft_since: Some(closed_end),
            };
            let key = IdempotencyKey::caused_by(
                event.event_id.as_uuid(),
                &format!("overage-{}", overage.meter),
            );
            let item = self.payments.add_invoice_line(&line, &key).await?;
            tracing::info!(tenant = %tenant, stripe.invoice_item = %item, meter = %overage.meter, "overage posted");
        }
        Ok(())
    }

    async fn subscription(&self, tenant: TenantId) -> Result<Subscription, LoadError> {
        Ok(self
            .exec
            .load::<Subscription>(tenant.as_uuid())
            .await?
            .state)
    }

    async fn plan_name(&self, plan: &PlanRef) -> Result<String, LoadError> {
        let state = self.exec.load::<Plan>(Plan::id_of(&plan.key)).await?.state;
        Ok(state.version(plan.version).map_or_else(
            || plan.key.as_str().to_owned(),
            |v| v.name.as_str().to_owned(),
        ))
    }

    /// Records what the provider created for `event`'s subscription.
    async fn link(
        &self,
        event: &RecordedEvent,
        tenant: TenantId,
        (customer, subscription): (&str, Option<&ProviderSubscription>),
        step: &str,
    ) -> Result<(), String> {
        let ctx =
            CommandContext::caused_by(event, &format!("{PAYMENTS_SYNC}/{step}")).for_tenant(tenant);
        let command = SubscriptionCommand::LinkProvider {
            customer: customer.to_owned(),
            subscription: subscription.map(|s| (s.id.clone(), s.item.clone())),
            at: event.recorded_at,
        };
        match self
            .exec
            .execute::<Subscription>(tenant.as_uuid(), &command, &ctx)
            .await
        {
            Ok(_) => Ok(()),
            // Cancelled meanwhile: the cancellation ends what was just created.
            Err(CommandError::Rejected(SubscriptionError::NotSubscribed)) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn started(
        &self,
        event: &RecordedEvent,
        tenant: TenantId,
        (plan, price, trial_ends_at): (&PlanRef, &domain::plan::Price, Option<DateTime<Utc>>),
    ) -> Result<(), Failure> {
        let state = self.subscription(tenant).await?;
        if !state.status.is_some_and(SubscriptionStatus::is_live) {
            return Ok(()); // cancelled since: nothing to mirror
        }
        if state.provider_subscription.is_some() {
            return Ok(()); // linked already (this start, handed over again)
        }
        let customer = match &state.provider_customer {
            Some(customer) => customer.clone(),
            None => {
                let name = self
                    .exec
                    .load::<Tenant>(tenant.as_uuid())
                    .await?
                    .state
                    .name
                    .map_or_else(|| tenant.to_string(), |n| n.as_str().to_owned());
                let key = IdempotencyKey::caused_by(event.event_id.as_uuid(), "customer");
                let customer = self.payments.create_customer(tenant, &name, &key).await?;
                self.link(event, tenant, (&customer, None), "customer")
                    .await
                    .map_err(Failure::Store)?;
                customer
            }
        };
        let request = SubscriptionRequest {
            tenant,
            customer: customer.clone(),
            plan: plan.clone(),
            plan_name: self.plan_name(plan).await?,
            price: price.clone(),
            trial_end: trial_ends_at,
        };
        let key = IdempotencyKey::caused_by(event.event_id.as_uuid(), "subscription");
        let created = self.payments.create_subscription(&request, &key).await?;
        self.link(event, tenant, (&customer, Some(&created)), "subscription")
            .await
            .map_err(Failure::Store)
    }

    /// Moves the provider's subscription to `plan` at `price` (an upgrade, or a scheduled
    /// change taking effect).
    async fn move_to(
        &self,
        event: &RecordedEvent,
        tenant: TenantId,
        (plan, price): (&PlanRef, &domain::plan::Price),
    ) -> Result<(), Failure> {
        let state = self.subscription(tenant).await?;
        let Some((id, item)) = state.provider_subscription else {
            return Ok(());
        };
        let name = self.plan_name(plan).await?;
        let key = IdempotencyKey::caused_by(event.event_id.as_uuid(), "plan");
        Ok(self
            .payments
            .change_plan(
                &ProviderSubscription { id, item },
                (plan, &name, price),
                &key,
            )
            .await?)
    }

    async fn react_to(&self, event: &RecordedEvent) -> Result<(), Failure> {
        use SubscriptionEvent as E;
        let Some(tenant) = event.stream.aggregate_id(Subscription::CATEGORY) else {
            return Ok(());
        };
        let tenant = TenantId::from_uuid(tenant);
        let Some(decoded) = decoded::<Subscription>(event).map_err(|e| Failure::Store(e.reason))?
        else {
            return Ok(());
        };
        let key = |call: &str| IdempotencyKey::caused_by(event.event_id.as_uuid(), call);
        let by_provider =
            matches!(&event.metadata.actor, Actor::System { name } if name == PROVIDER_WEBHOOK);
        match decoded {
            E::SubscriptionStarted {
                plan,
                price,
                trial_ends_at,
                ..
            } => {
                self.started(event, tenant, (&plan, &price, trial_ends_at))
                    .await
            }
            E::PeriodRenewed {
                period_start,
                changed_to,
                ..
            } => {
                self.overage(event, tenant, period_start).await?;
                match changed_to {
                    Some((plan, price)) => self.move_to(event, tenant, (&plan, &price)).await,
                    None => Ok(()),
                }
            }
            E::PlanChanged { plan, price, .. } => {
                self.move_to(event, tenant, (&plan, &price)).await
            }
            E::CancellationScheduled { .. } | E::CancellationWithdrawn { .. } => {
                let cancel = matches!(decoded, E::CancellationScheduled { .. });
                let state = self.subscription(tenant).await?;
                let Some((id, _)) = state.provider_subscription else {
                    return Ok(());
                };
                Ok(self
                    .payments
                    .cancel_at_period_end(&id, cancel, &key("cancel_at_period_end"))
                    .await?)
            }
            // Ended by the provider itself: nothing to tell it.
            E::SubscriptionCancelled { .. } if by_provider => Ok(()),
            E::SubscriptionCancelled { .. } => {
                let state = self.subscription(tenant).await?;
                // Started again since: the new subscription is not the one that ended.
                if state.status.is_some_and(SubscriptionStatus::is_live) {
                    return Ok(());
                }
                let Some((id, _)) = state.provider_subscription else {
                    return Ok(());
                };
                Ok(self.payments.cancel_now(&id, &key("cancel")).await?)
            }
            _ => Ok(()),
        }
    }
}

/// Why one reaction failed: a transient failure is retried by the runner (holding later
/// events back); a refusal is logged and skipped, since retrying the same call cannot help.
#[derive(Debug)]
enum Failure {
    Provider(PaymentsError),
    Store(String),
}

impl From<PaymentsError> for Failure {
    fn from(e: PaymentsError) -> Self {
        Self::Provider(e)
    }
}

impl From<LoadError> for Failure {
    fn from(e: LoadError) -> Self {
        Self::Store(e.to_string())
    }
}

#[async_trait::async_trait]
impl Reactor for PaymentsSync {
    fn name(&self) -> &'static str {
        PAYMENTS_SYNC
    }

    fn reads(&self) -> domain::event::Reads {
        domain::event::Reads::categories(&[Subscription::CATEGORY])
    }

    async fn react(&self, events: &[RecordedEvent]) -> Result<(), ReactionError> {
        for event in events {
            match self.react_to(event).await {
                Ok(()) => {}
                Err(Failure::Provider(PaymentsError::Refused(reason))) => {
                    tracing::error!(
                        reactor = PAYMENTS_SYNC,
                        event.id = %event.event_id,
                        event.r#type = %event.event_type,
                        tenant.id = ?event.tenant_id,
                        error = %reason,
                        "the payment provider refused a change; it was not made there"
                    );
                }
                Err(Failure::Provider(e)) => return Err(ReactionError::at(event, e)),
                Err(Failure::Store(e)) => return Err(ReactionError::at(event, e)),
            }
        }
        Ok(())
    }
}

/// One provider event, as received.
#[derive(Debug, Clone)]
pub struct Notice {
    pub provider: &'static str,
    pub event_id: String,
    pub event_type: String,
    pub object_id: Option<String>,
    pub tenant: Option<TenantId>,
    pub created: DateTime<Utc>,
    pub action: NoticeAction,
}

/// How a notice was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeReceipt {
    Recorded(NoticeOutcome),
    /// Received before: nothing was done again.
    Duplicate,
}

/// Takes one provider event once (see the module's documentation). `grace` is how long a
/// subscription stays past due before it is suspended.
pub async fn record_provider_notice(
    exec: &Executor,
    now: DateTime<Utc>,
    notice: &Notice,
    grace: Duration,
) -> Result<NoticeReceipt, CommandError<SubscriptionError>> {
    let id = ProviderNotice::id_of(notice.provider, &notice.event_id);
    let loaded = exec
        .load::<ProviderNotice>(id)
        .await
        .map_err(LoadError::into_command)?;
    if loaded.state.received {
        return Ok(NoticeReceipt::Duplicate);
    }
    let outcome = match (&notice.action, notice.tenant) {
        (NoticeAction::Unhandled, _) => NoticeOutcome::Unhandled,
        (NoticeAction::Nothing(reason), _) => NoticeOutcome::Ignored {
            reason: reason.clone(),
        },
        (_, None) => NoticeOutcome::Ignored {
            reason: "no tenant of this platform".into(),
        },
        (_, Some(tenant)) => apply(exec, id, notice, tenant, grace).await?,
    };
    let ctx = context(id, "notice");
    let ctx = match notice.tenant {
        Some(tenant) => ctx.for_tenant(tenant),
        None => ctx,
    };
    let event = NoticeEvent::NoticeReceived {
        provider: notice.provider.to_owned(),
        event_id: notice.event_id.clone(),
        event_type: notice.event_type.clone(),
        object_id: notice.object_id.clone(),
        tenant_id: notice.tenant,
        created: notice.created,
        outcome: outcome.clone(),
        at: now,
    };
    exec.execute::<ProviderNotice>(id, &RecordNotice(event), &ctx)
        .await
        .map_err(|e| e.map_rejection(|e: domain::payments::NoticeError| match e {}))?;
    Ok(NoticeReceipt::Recorded(outcome))
}

fn context(notice: Uuid, step: &str) -> CommandContext {
    CommandContext::new(Actor::system(PROVIDER_WEBHOOK))
        .with_command_id(CommandId::from_uuid(Uuid::new_v5(&notice, step.as_bytes())))
}

async fn apply(
    exec: &Executor,
    notice_id: Uuid,
    notice: &Notice,
    tenant: TenantId,
    grace: Duration,
) -> Result<NoticeOutcome, CommandError<SubscriptionError>> {
    let state = exec
        .load::<Subscription>(tenant.as_uuid())
        .await
        .map_err(LoadError::into_command)?
        .state;
    let at = notice.created;
    let paid = || match state.status {
        Some(SubscriptionStatus::Trialing) => SubscriptionCommand::EndTrial { at },
        _ => SubscriptionCommand::RecordPaymentRecovery { at },
    };
    let ours = |subscription: &str| {
        state
            .provider_subscription
            .as_ref()
            .is_some_and(|(id, _)| id == subscription)
    };
    let command = match &notice.action {
        NoticeAction::Unhandled => return Ok(NoticeOutcome::Unhandled),
        NoticeAction::Nothing(reason) => {
            return Ok(NoticeOutcome::Ignored {
                reason: reason.clone(),
            });
        }
        // The provider ends a deleted customer's subscriptions (and says so too).
        NoticeAction::CustomerDeleted => SubscriptionCommand::Cancel {
            at_period_end: false,
            at,
        },
        NoticeAction::PaymentFailed => SubscriptionCommand::RecordPaymentFailure { grace, at },
        NoticeAction::InvoicePaid => paid(),
        NoticeAction::SubscriptionEnded(id) | NoticeAction::SubscriptionStatus(id, _)
            if !ours(id) =>
        {
            return Ok(NoticeOutcome::Ignored {
                reason: "not the tenant's current subscription".into(),
            });
        }
        NoticeAction::SubscriptionEnded(_) => SubscriptionCommand::Cancel {
            at_period_end: false,
            at,
        },
        NoticeAction::SubscriptionStatus(_, status) => match status.as_str() {
            "past_due" | "unpaid" => SubscriptionCommand::RecordPaymentFailure { grace, at },
            "active" => paid(),
            "canceled" => SubscriptionCommand::Cancel {
                at_period_end: false,
                at,
            },
            _ => return Ok(NoticeOutcome::Applied { changed: false }),
        },
    };
    let ctx = context(notice_id, "subscription").for_tenant(tenant);
    match exec
        .execute::<Subscription>(tenant.as_uuid(), &command, &ctx)
        .await
    {
        Ok(CommandOutcome { appended, .. }) => Ok(NoticeOutcome::Applied {
            changed: appended > 0,
        }),
        Err(CommandError::Rejected(e)) => Ok(NoticeOutcome::Ignored {
            reason: e.to_string(),
        }),
        Err(e) => Err(e),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PaymentMethodError {
    #[error("no payment provider is configured: billing runs in local mode")]
    LocalMode,
    #[error("the tenant has no subscription")]
    NotSubscribed,
    #[error("the tenant's customer is being created at the payment provider; try again shortly")]
    NotLinkedYet,
    #[error(transparent)]
    Provider(#[from] PaymentsError),
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// A SetupIntent for `tenant`'s customer: the client secret Stripe.js confirms a card with.
/// The one outbound call made on a request's path (it changes nothing that is billed): its
/// idempotency key is the command id, so a retried request gets the same intent.
pub async fn set_up_payment_method(
    exec: &Executor,
    payments: Option<&dyn Payments>,
    ctx: &CommandContext,
    tenant: TenantId,
) -> Result<String, PaymentMethodError> {
    let payments = payments.ok_or(PaymentMethodError::LocalMode)?;
    let state = exec.load::<Subscription>(tenant.as_uuid()).await?.state;
    if !state.status.is_some_and(SubscriptionStatus::is_live) {
        return Err(PaymentMethodError::NotSubscribed);
    }
    let customer = state
        .provider_customer
        .ok_or(PaymentMethodError::NotLinkedYet)?;
    let key = IdempotencyKey::caused_by(ctx.command_id.as_uuid(), "setup_intent");
    Ok(payments.set_up_payment_method(&customer, &key).await?)
}
