//! Billing use cases: operators publish and retire plans and override a tenant's limits;
//! owners subscribe, change plan, cancel and resume; the renewal job moves periods on and
//! suspends subscriptions whose grace period is over; payment outcomes (from the payment
//! provider, or an operator in local mode) mark subscriptions past due or recovered.
//!
//! What a tenant may hold comes from [`effective_limit`]: its subscription's plan version
//! (the free plan's latest version without one), with an operator's unexpired override on
//! top. Published plan versions never change, so reading one needs no guard.

use crate::{CommandContext, CommandError, CommandOutcome, Executor, LoadError};
use chrono::{DateTime, Duration, Utc};
use domain::aggregate::Aggregate;
use domain::ids::TenantId;
use domain::plan::{
    Interval, Limit, LimitKey, Plan, PlanCommand, PlanDraft, PlanError, PlanKey, PlanRef,
    PlanVersion,
};
use domain::subscription::{
    LimitOverride, Subscription, SubscriptionCommand, SubscriptionError, SubscriptionStatus,
};
use domain::tenant::{Tenant, TenantStatus};
use uuid::Uuid;

/// The name the free plan is published under when a platform starts without one.
pub const FREE_PLAN_SEED: &str = "free_plan_seed";

/// The name of the renewal job (periods, grace periods).
pub const RENEWALS: &str = "subscription_renewals";

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Subscription(#[from] SubscriptionError),
    #[error("the plan {0} is retired: it takes no new subscriptions")]
    Retired(String),
    #[error("the plan {plan} is not sold per {interval}")]
    NoPrice {
        plan: String,
        interval: &'static str,
    },
    #[error("the tenant is not active")]
    TenantNotActive,
    #[error("no such tenant")]
    NoSuchTenant,
}

/// Publishes `draft` as `key`'s next version.
pub async fn publish_plan(
    exec: &Executor,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    key: PlanKey,
    draft: PlanDraft,
) -> Result<CommandOutcome, CommandError<PlanError>> {
    let id = Plan::id_of(&key);
    let command = PlanCommand::Publish {
        key,
        draft,
        at: now,
    };
    exec.execute::<Plan>(id, &command, ctx).await
}

pub async fn retire_plan(
    exec: &Executor,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    key: &PlanKey,
) -> Result<CommandOutcome, CommandError<PlanError>> {
    exec.execute::<Plan>(Plan::id_of(key), &PlanCommand::Retire { at: now }, ctx)
        .await
}

/// Publishes the free plan ([`PlanDraft::free`]) unless a version of it exists: on every
/// start, by every process, writing it once (the command id is fixed).
pub async fn seed_free_plan(
    exec: &Executor,
    now: DateTime<Utc>,
) -> Result<CommandOutcome, CommandError<PlanError>> {
    let ctx = CommandContext::from_request(
        domain::event::Actor::system(FREE_PLAN_SEED),
        Uuid::nil(),
        FREE_PLAN_SEED,
        Some(Uuid::nil()),
    );
    let key = PlanKey::free();
    let command = PlanCommand::Publish {
        key: key.clone(),
        draft: PlanDraft::free(),
        at: now,
    };
    exec.execute_with::<Plan, Plan, PlanError>(Plan::id_of(&key), None, &ctx, |plan, _| {
        if plan.latest().is_some() {
            return Ok((vec![], vec![]));
        }
        Ok((plan.decide(&command)?, vec![]))
    })
    .await
}

/// The latest version of plan `key`, refused when there is none or it is retired.
async fn sellable(
    exec: &Executor,
    key: &PlanKey,
) -> Result<PlanVersion, CommandError<BillingError>> {
    let plan = exec
        .load::<Plan>(Plan::id_of(key))
        .await
        .map_err(LoadError::into_command)?
        .state;
    if plan.retired {
        return Err(CommandError::Rejected(BillingError::Retired(
            key.as_str().to_owned(),
        )));
    }
    plan.latest()
        .cloned()
        .ok_or(CommandError::Rejected(BillingError::Plan(
            PlanError::NotFound,
        )))
}

/// Plan `key`'s latest version and its price per `interval`.
async fn offer(
    exec: &Executor,
    key: &PlanKey,
    interval: Interval,
) -> Result<(PlanRef, PlanVersion, domain::plan::Price), CommandError<BillingError>> {
    let version = sellable(exec, key).await?;
    let price = version.price(interval).cloned().ok_or_else(|| {
        CommandError::Rejected(BillingError::NoPrice {
            plan: key.as_str().to_owned(),
            interval: interval.as_str(),
        })
    })?;
    let plan = PlanRef {
        key: key.clone(),
        version: version.version,
    };
    Ok((plan, version, price))
}

/// Runs a subscription command for `tenant`, reading the tenant's state in the same decision
/// (only an active tenant takes up or changes a plan) when `needs_active`.
async fn run(
    exec: &Executor,
    ctx: &CommandContext,
    tenant: TenantId,
    command: &SubscriptionCommand,
    needs_active: bool,
) -> Result<CommandOutcome, CommandError<BillingError>> {
    let ctx = ctx.clone().for_tenant(tenant);
    exec.execute_with::<Subscription, Tenant, BillingError>(
        tenant.as_uuid(),
        needs_active.then_some(tenant.as_uuid()),
        &ctx,
        |subscription, state| {
            if needs_active {
                match state.status {
                    Some(TenantStatus::Active) => {}
                    None => return Err(BillingError::NoSuchTenant),
                    Some(_) => return Err(BillingError::TenantNotActive),
                }
            }
            Ok((subscription.decide(command)?, vec![]))
        },
    )
    .await
}

/// Subscribes `tenant` to the latest version of plan `key`, billed per `interval` (with the
/// plan's trial, once per tenant).
pub async fn subscribe(
    exec: &Executor,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    tenant: TenantId,
    (key, interval): (&PlanKey, Interval),
) -> Result<CommandOutcome, CommandError<BillingError>> {
    let (plan, version, price) = offer(exec, key, interval).await?;
    let command = SubscriptionCommand::Start {
        tenant,
        plan,
        price,
        trial_days: version.trial_days,
        at: now,
    };
    run(exec, ctx, tenant, &command, true).await
}

/// Moves `tenant` to the latest version of plan `key` per `interval`: an upgrade at once
/// (prorated), anything else at the period's end.
pub async fn change_plan(
    exec: &Executor,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    tenant: TenantId,
    (key, interval): (&PlanKey, Interval),
) -> Result<CommandOutcome, CommandError<BillingError>> {
    let (plan, _, price) = offer(exec, key, interval).await?;
    let command = SubscriptionCommand::ChangePlan {
        plan,
        price,
        at: now,
    };
    run(exec, ctx, tenant, &command, true).await
}

/// What owners, operators and the payment provider do to a subscription as it is.
#[derive(Debug, Clone, Copy)]
pub enum SubscriptionChange {
    Cancel {
        at_period_end: bool,
    },
    Resume,
    PaymentFailed {
        grace: Duration,
    },
    PaymentRecovered,
    Override {
        key: LimitKey,
        limit: Option<LimitOverride>,
    },
}

pub async fn change_subscription(
    exec: &Executor,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    tenant: TenantId,
    change: SubscriptionChange,
) -> Result<CommandOutcome, CommandError<BillingError>> {
    let command = match change {
        SubscriptionChange::Cancel { at_period_end } => SubscriptionCommand::Cancel {
            at_period_end,
            at: now,
        },
        SubscriptionChange::Resume => SubscriptionCommand::Resume { at: now },
        SubscriptionChange::PaymentFailed { grace } => {
            SubscriptionCommand::RecordPaymentFailure { grace, at: now }
        }
        SubscriptionChange::PaymentRecovered => {
            SubscriptionCommand::RecordPaymentRecovery { at: now }
        }
        SubscriptionChange::Override { key, limit } => SubscriptionCommand::OverrideLimit {
            key,
            limit,
            at: now,
        },
    };
    if matches!(change, SubscriptionChange::Override { .. }) {
        let state = exec
            .load::<Tenant>(tenant.as_uuid())
            .await
            .map_err(LoadError::into_command)?
            .state;
        if state.id.is_none() {
            return Err(CommandError::Rejected(BillingError::NoSuchTenant));
        }
    }
    run(exec, ctx, tenant, &command, false).await
}

/// The renewal job's work for one subscription: the next period when the current one is
/// over (one period per call), and suspension once a grace period is over. The command ids
/// derive from the subscription's version, so two processes renewing at once write once.
pub async fn renew(
    exec: &Executor,
    now: DateTime<Utc>,
    tenant: TenantId,
) -> Result<Vec<CommandOutcome>, CommandError<BillingError>> {
    let mut outcomes = Vec::new();
    for step in ["renew", "grace"] {
        let loaded = exec
            .load::<Subscription>(tenant.as_uuid())
            .await
            .map_err(LoadError::into_command)?;
        if !loaded.state.status.is_some_and(SubscriptionStatus::is_live) {
            break;
        }
        let seed = Uuid::new_v5(
            &tenant.as_uuid(),
            format!("{step}@{}", loaded.version.0).as_bytes(),
        );
        let ctx = CommandContext::from_request(
            domain::event::Actor::system(RENEWALS),
            Uuid::nil(),
            RENEWALS,
            Some(seed),
        );
        let command = match step {
            "renew" => SubscriptionCommand::Renew { at: now },
            _ => SubscriptionCommand::ExpireGrace { at: now },
        };
        outcomes.push(run(exec, &ctx, tenant, &command, false).await?);
    }
    Ok(outcomes)
}

/// The limit on `key` for `tenant` at `now`: the operator's unexpired override, else its
/// subscription's plan version (the free plan's latest version when it has none, or none is
/// live), else unlimited when not even a free plan exists.
pub async fn effective_limit(
    exec: &Executor,
    tenant: TenantId,
    key: LimitKey,
    now: DateTime<Utc>,
) -> Result<Limit, LoadError> {
    let subscription = exec.load::<Subscription>(tenant.as_uuid()).await?.state;
    if let Some(limit) = subscription.override_at(key, now) {
        return Ok(limit);
    }
    Ok(plan_version_of(exec, &subscription)
        .await?
        .map_or(Limit::Unlimited, |version| version.limit(key)))
}

/// The plan version `subscription` binds its tenant to (the free plan's latest without a live
/// subscription).
async fn plan_version_of(
    exec: &Executor,
    subscription: &Subscription,
) -> Result<Option<PlanVersion>, LoadError> {
    let live = subscription.status.is_some_and(SubscriptionStatus::is_live);
    let (key, version) = match (&subscription.plan, live) {
        (Some(plan), true) => (plan.key.clone(), Some(plan.version)),
        _ => (PlanKey::free(), None),
    };
    let plan = exec.load::<Plan>(Plan::id_of(&key)).await?.state;
    Ok(match version {
        Some(version) => plan.version(version).cloned(),
        None => plan.latest().cloned(),
    })
}

/// The name of the reactor that suspends and reactivates tenants with their subscriptions.
pub const SUSPEND_UNPAID: &str = "suspend_unpaid";

/// Why a tenant suspended for an unpaid subscription says it is.
pub const UNPAID_REASON: &str =
    "payment overdue: the grace period ended without a successful payment";

/// Suspends the tenant of a subscription whose grace period ended unpaid, and reactivates it
/// when the payment is recovered (only a tenant it suspended itself: a suspension by an
/// operator for another reason stays). Command ids derive from the causing events.
#[derive(Debug, Clone)]
pub struct SuspendUnpaid {
    exec: Executor,
}

impl SuspendUnpaid {
    pub fn new(exec: Executor) -> Self {
        Self { exec }
    }
}

#[async_trait::async_trait]
impl domain::reactor::Reactor for SuspendUnpaid {
    fn name(&self) -> &'static str {
        SUSPEND_UNPAID
    }

    fn reads(&self) -> domain::event::Reads {
        domain::event::Reads::categories(&[Subscription::CATEGORY])
    }

    async fn react(
        &self,
        events: &[domain::event::RecordedEvent],
    ) -> Result<(), domain::reactor::ReactionError> {
        use crate::tenancy::{OperatorAction, operate_tenant};
        use domain::subscription::SubscriptionEvent as E;
        for event in events {
            let failed = |reason: String| domain::reactor::ReactionError::at(event, reason);
            let Some(tenant) = event.stream.aggregate_id(Subscription::CATEGORY) else {
                continue;
            };
            let tenant = TenantId::from_uuid(tenant);
            let Some(decoded) = domain::reactor::decoded::<Subscription>(event)? else {
                continue;
            };
            let action = match decoded {
                E::SubscriptionSuspended { .. } => OperatorAction::Suspend {
                    reason: UNPAID_REASON.to_owned(),
                },
                E::PaymentRecovered { .. } => {
                    let state = self
                        .exec
                        .load::<Tenant>(tenant.as_uuid())
                        .await
                        .map_err(|e| failed(e.to_string()))?
                        .state;
                    let ours = state.status == Some(TenantStatus::Suspended)
                        && state.suspension_reason.as_deref() == Some(UNPAID_REASON);
                    if !ours {
                        continue;
                    }
                    OperatorAction::Reactivate
                }
                _ => continue,
            };
            let ctx = CommandContext::caused_by(event, SUSPEND_UNPAID);
            match operate_tenant(&self.exec, &ctx, event.recorded_at, tenant, action).await {
                Ok(_) => {}
                // Closed meanwhile, or already in that state: nothing to do.
                Err(CommandError::Rejected(error)) => {
                    tracing::info!(reactor = SUSPEND_UNPAID, tenant.id = %tenant, error = %error, "tenant left as it is");
                }
                Err(error) => return Err(failed(error.to_string())),
            }
        }
        Ok(())
    }
}

/// Share of an allowance at which owners are warned, in percent.
pub const WARN_AT_PERCENT: u64 = 80;

/// What an allowance check found: the action may go ahead.
#[derive(Debug, Clone, PartialEq)]
pub struct Allowance {
    pub key: LimitKey,
    pub limit: Limit,
    /// Used in the period before this action.
    pub used: u64,
    pub period: (DateTime<Utc>, DateTime<Utc>),
}

#[derive(Debug, thiserror::Error)]
pub enum AllowanceError {
    #[error(
        "the plan's {} allowance of {limit} is used up ({used} used) until {period_end}",
        key.as_str()
    )]
    Exhausted {
        key: LimitKey,
        limit: u64,
        used: u64,
        period_end: DateTime<Utc>,
    },
    #[error(transparent)]
    Usage(#[from] domain::usage::UsageError),
    #[error(transparent)]
    Subscription(#[from] SubscriptionError),
}

/// The one check every action that consumes a period allowance makes (backup runs consume
/// bandwidth, ingestion data points): refused with `Exhausted` when `amount` more would pass
/// the limit, so the action is not started (deleting, cleaning up and restoring consume
/// nothing and are never checked). Passing [`WARN_AT_PERCENT`] records a warning and queues a
/// mail to each owner, once per allowance and period (the command id derives from both).
pub async fn check_allowance(
    exec: &Executor,
    usage: &dyn domain::usage::UsageFigures,
    now: DateTime<Utc>,
    tenant: TenantId,
    (key, amount): (LimitKey, u64),
) -> Result<Allowance, CommandError<AllowanceError>> {
    let rejected = |e: AllowanceError| CommandError::Rejected(e);
    let subscription = exec
        .load::<Subscription>(tenant.as_uuid())
        .await
        .map_err(LoadError::into_command)?
        .state;
    let period = subscription.period_containing(now);
    let limit = effective_limit(exec, tenant, key, now)
        .await
        .map_err(LoadError::into_command)?;
    let used = usage
        .used(tenant, key, period)
        .await
        .map_err(|e| rejected(e.into()))?;
    let Limit::At(max) = limit else {
        return Ok(Allowance {
            key,
            limit,
            used,
            period,
        });
    };
    if !limit.allows(used, amount) {
        return Err(rejected(AllowanceError::Exhausted {
            key,
            limit: max,
            used,
            period_end: period.1,
        }));
    }
    let after = used.saturating_add(amount);
    let warned = subscription.warned.get(&key) == Some(&period.0);
    if !warned && max > 0 && after.saturating_mul(100) >= max.saturating_mul(WARN_AT_PERCENT) {
        warn_owners(
            exec,
            now,
            tenant,
            (key, period),
            (after, max),
            Threshold::Warning,
        )
        .await?;
    }
    Ok(Allowance {
        key,
        limit,
        used,
        period,
    })
}

/// The two thresholds of a period allowance owners hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    /// [`WARN_AT_PERCENT`] of it used.
    Warning,
    /// All of it used: actions consuming it are refused.
    Reached,
}

/// Records the thresholds `used` of allowance `key` crossed in `period` (usage as metered,
/// from the usage thresholds reactor): at [`WARN_AT_PERCENT`] a warning, at 100% the
/// allowance reached, each once per allowance and period (the subscription remembers, and
/// the command ids derive from tenant, allowance, period and threshold), each with a mail to
/// every owner. Unlimited allowances have no thresholds.
pub async fn note_usage(
    exec: &Executor,
    now: DateTime<Utc>,
    tenant: TenantId,
    (key, period): (LimitKey, (DateTime<Utc>, DateTime<Utc>)),
    used: u64,
) -> Result<Vec<Threshold>, CommandError<AllowanceError>> {
    let subscription = exec
        .load::<Subscription>(tenant.as_uuid())
        .await
        .map_err(LoadError::into_command)?
        .state;
    let Limit::At(max) = effective_limit(exec, tenant, key, now)
        .await
        .map_err(LoadError::into_command)?
    else {
        return Ok(vec![]);
    };
    let mut crossed = Vec::new();
    if max > 0 && used.saturating_mul(100) >= max.saturating_mul(WARN_AT_PERCENT) {
        crossed.push(Threshold::Warning);
    }
    if used >= max {
        crossed.push(Threshold::Reached);
    }
    let mut recorded = Vec::new();
    for threshold in crossed {
        let noted = match threshold {
            Threshold::Warning => subscription.warned.get(&key),
            Threshold::Reached => subscription.reached.get(&key),
        };
        if noted != Some(&period.0) {
            warn_owners(exec, now, tenant, (key, period), (used, max), threshold).await?;
            recorded.push(threshold);
        }
    }
    Ok(recorded)
}

async fn warn_owners(
    exec: &Executor,
    now: DateTime<Utc>,
    tenant: TenantId,
    (key, period): (LimitKey, (DateTime<Utc>, DateTime<Utc>)),
    (used, max): (u64, u64),
    threshold: Threshold,
) -> Result<(), CommandError<AllowanceError>> {
    let access = exec
        .load::<domain::access::TenantAccess>(tenant.as_uuid())
        .await
        .map_err(LoadError::into_command)?
        .state;
    let step = match threshold {
        Threshold::Warning => "warn",
        Threshold::Reached => "reach",
    };
    let seed = Uuid::new_v5(
        &tenant.as_uuid(),
        format!("{step} {} {}", key.as_str(), period.0.timestamp()).as_bytes(),
    );
    let ctx = CommandContext::from_request(
        domain::event::Actor::system("allowance_warnings"),
        Uuid::nil(),
        "allowance_warnings",
        Some(seed),
    )
    .for_tenant(tenant);
    let percent = u8::try_from((used.saturating_mul(100) / max).min(100)).unwrap_or(100);
    let mut mails = Vec::new();
    for (user, member) in &access.members {
        if member.role != domain::access::Role::Owner {
            continue;
        }
        // The address is sealed under the owner's key already: the mail carries it as it is.
        mails.push(domain::mail::QueuedMail {
            mail_id: Uuid::new_v5(&ctx.command_id.as_uuid(), user.as_uuid().as_bytes()),
            subject: domain::ids::SubjectId::from_uuid(user.as_uuid()),
            to: member.email.clone(),
            kind: domain::mail::MailKind::AllowanceWarning {
                tenant_id: tenant,
                key,
                percent,
                period_end: period.1,
            },
            token: None,
            expires_at: Some(period.1),
        });
    }
    let command = match threshold {
        Threshold::Warning => SubscriptionCommand::WarnAllowance {
            key,
            period_start: period.0,
            used,
            limit: max,
            mails,
            at: now,
        },
        Threshold::Reached => SubscriptionCommand::ReachAllowance {
            key,
            period_start: period.0,
            used,
            limit: max,
            mails,
            at: now,
        },
    };
    exec.execute::<Subscription>(tenant.as_uuid(), &command, &ctx)
        .await
        .map(drop)
        .map_err(|e| e.map_rejection(AllowanceError::Subscription))
}
