//! Plans, subscriptions and entitlements. Everyone may read the catalog; owners manage their
//! tenant's subscription and admins read it; platform operators publish and retire plans and
//! override a tenant's limits. Each mutation calls a use case of `commands::billing`.

use super::tenancy::{request_context, tenant_arg};
use super::{principal, services};
use crate::auth::grant;
use crate::error::{ApiError, GqlResult, LimitExceeded};
use crate::services::Services;
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use commands::CommandOutcome;
use commands::billing::{
    BillingError, SubscriptionChange, change_plan, change_subscription, publish_plan, retire_plan,
    subscribe,
};
use domain::access::{Permission, TenantAccess};
use domain::aggregate::Aggregate;
use domain::ids::TenantId;
use domain::plan::{
    Currency, Feature, Interval, Limit, LimitKey, Overage, Plan, PlanDraft, PlanError, PlanKey,
    PlanName, PlanVersion, Price,
};
use domain::subscription::{LimitOverride, Subscription};
use domain::tenant::{ResourceKind, Tenant};
use projections::billing::{BillingReadModel, SubscriptionView};
use projections::tenant_access::TenantScope;
use projections::tenant_directory::TenantDirectory;
use std::collections::{BTreeMap, BTreeSet};

/// What a plan limits.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "LimitKey")]
pub enum LimitKeyValue {
    BackupBytes,
    Sources,
    Destinations,
    MinScheduleIntervalSeconds,
    BandwidthBytesPerMonth,
    Pipelines,
    DataPointsPerMonth,
    RetentionDays,
    Members,
    ApiKeys,
}

impl From<LimitKeyValue> for LimitKey {
    fn from(value: LimitKeyValue) -> Self {
        use LimitKeyValue as V;
        match value {
            V::BackupBytes => Self::BackupBytes,
            V::Sources => Self::Sources,
            V::Destinations => Self::Destinations,
            V::MinScheduleIntervalSeconds => Self::MinScheduleIntervalSeconds,
            V::BandwidthBytesPerMonth => Self::BandwidthBytesPerMonth,
            V::Pipelines => Self::Pipelines,
            V::DataPointsPerMonth => Self::DataPointsPerMonth,
            V::RetentionDays => Self::RetentionDays,
            V::Members => Self::Members,
            V::ApiKeys => Self::ApiKeys,
        }
    }
}

impl From<LimitKey> for LimitKeyValue {
    fn from(value: LimitKey) -> Self {
        use LimitKey as K;
        match value {
            K::BackupBytes => Self::BackupBytes,
            K::Sources => Self::Sources,
            K::Destinations => Self::Destinations,
            K::MinScheduleIntervalSeconds => Self::MinScheduleIntervalSeconds,
            K::BandwidthBytesPerMonth => Self::BandwidthBytesPerMonth,
            K::Pipelines => Self::Pipelines,
            K::DataPointsPerMonth => Self::DataPointsPerMonth,
            K::RetentionDays => Self::RetentionDays,
            K::Members => Self::Members,
            K::ApiKeys => Self::ApiKeys,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "BillingInterval")]
pub enum IntervalValue {
    Month,
    Year,
}

impl From<IntervalValue> for Interval {
    fn from(value: IntervalValue) -> Self {
        match value {
            IntervalValue::Month => Self::Month,
            IntervalValue::Year => Self::Year,
        }
    }
}

impl From<Interval> for IntervalValue {
    fn from(value: Interval) -> Self {
        match value {
            Interval::Month => Self::Month,
            Interval::Year => Self::Year,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "SubscriptionStatus")]
pub enum SubscriptionStatusValue {
    Trialing,
    Active,
    PastDue,
    Suspended,
    Cancelled,
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "Price")]
pub struct PriceObject {
    pub interval: IntervalValue,
    /// In minor units (cents) of `currency`.
    pub amount: i64,
    /// ISO 4217, lower-case.
    pub currency: String,
}

impl From<&Price> for PriceObject {
    fn from(price: &Price) -> Self {
        Self {
            interval: price.interval.into(),
            amount: price.amount,
            currency: price.currency.as_str().to_owned(),
        }
    }
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "PlanLimit")]
pub struct PlanLimitObject {
    pub key: LimitKeyValue,
    /// Null: unlimited.
    pub limit: Option<u64>,
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "Overage")]
pub struct OverageObject {
    pub meter: String,
    /// Minor units per `perUnits` units beyond the allowance.
    pub unit_price: i64,
    pub per_units: u64,
}

/// A plan's latest version, as the catalog offers it.
#[derive(SimpleObject, Clone)]
#[graphql(name = "Plan")]
pub struct PlanObject {
    pub key: String,
    pub version: u32,
    pub name: String,
    pub prices: Vec<PriceObject>,
    pub trial_days: u32,
    /// Every limit (null: unlimited).
    pub limits: Vec<PlanLimitObject>,
    pub features: Vec<String>,
    pub overage: Vec<OverageObject>,
    /// Retired plans take no new subscriptions.
    pub retired: bool,
    pub published_at: DateTime<Utc>,
}

impl PlanObject {
    fn new(key: String, version: &PlanVersion, retired: bool) -> Self {
        Self {
            key,
            version: version.version,
            name: version.name.as_str().to_owned(),
            prices: version.prices.iter().map(PriceObject::from).collect(),
            trial_days: version.trial_days,
            limits: LimitKey::ALL
                .into_iter()
                .map(|key| PlanLimitObject {
                    key: key.into(),
                    limit: version.limit(key).value(),
                })
                .collect(),
            features: version
                .features
                .iter()
                .map(|f| f.as_str().to_owned())
                .collect(),
            overage: version
                .overage
                .iter()
                .map(|o| OverageObject {
                    meter: o.meter.clone(),
                    unit_price: o.unit_price,
                    per_units: o.per_units,
                })
                .collect(),
            retired,
            published_at: version.published_at,
        }
    }
}

/// A tenant's subscription.
#[derive(SimpleObject)]
#[graphql(name = "Subscription")]
pub struct SubscriptionObject {
    pub plan: String,
    pub plan_version: i64,
    pub status: SubscriptionStatusValue,
    pub price: PriceObject,
    pub trial_ends_at: Option<DateTime<Utc>>,
    pub current_period_start: DateTime<Utc>,
    pub current_period_end: DateTime<Utc>,
    /// When a scheduled cancellation takes effect.
    pub cancel_at: Option<DateTime<Utc>>,
    /// The plan a scheduled downgrade moves to at the period's end.
    pub scheduled_plan: Option<String>,
    /// Past due: when the tenant is suspended unless a payment succeeds.
    pub grace_until: Option<DateTime<Utc>>,
}

impl SubscriptionObject {
    fn new(view: SubscriptionView) -> Result<Self, ApiError> {
        let status = match view.status.as_str() {
            "trialing" => SubscriptionStatusValue::Trialing,
            "active" => SubscriptionStatusValue::Active,
            "past_due" => SubscriptionStatusValue::PastDue,
            "suspended" => SubscriptionStatusValue::Suspended,
            "cancelled" => SubscriptionStatusValue::Cancelled,
            other => return Err(ApiError::internal(format!("unknown status {other}"))),
        };
        let interval = match view.interval.as_str() {
            "year" => IntervalValue::Year,
            _ => IntervalValue::Month,
        };
        Ok(Self {
            plan: view.plan_key,
            plan_version: view.plan_version,
            status,
            price: PriceObject {
                interval,
                amount: view.amount,
                currency: view.currency,
            },
            trial_ends_at: view.trial_ends_at,
            current_period_start: view.period_start,
            current_period_end: view.period_end,
            cancel_at: view.cancel_at,
            scheduled_plan: view.scheduled_plan,
            grace_until: view.grace_until,
        })
    }
}

impl SubscriptionObject {
    /// The subscription as the aggregate's state has it (time travel folds the stream);
    /// `None` before the tenant ever subscribed.
    fn from_state(state: &Subscription) -> Option<Self> {
        use domain::subscription::SubscriptionStatus as S;
        let (Some(plan), Some(price), Some(status), Some(start), Some(end)) = (
            &state.plan,
            &state.price,
            state.status,
            state.period_start,
            state.period_end,
        ) else {
            return None;
        };
        Some(Self {
            plan: plan.key.as_str().to_owned(),
            plan_version: i64::from(plan.version),
            status: match status {
                S::Trialing => SubscriptionStatusValue::Trialing,
                S::Active => SubscriptionStatusValue::Active,
                S::PastDue => SubscriptionStatusValue::PastDue,
                S::Suspended => SubscriptionStatusValue::Suspended,
                S::Cancelled => SubscriptionStatusValue::Cancelled,
            },
            price: PriceObject::from(price),
            trial_ends_at: state.trial_ends_at,
            current_period_start: start,
            current_period_end: end,
            cancel_at: state.cancel_at,
            scheduled_plan: state
                .scheduled
                .as_ref()
                .map(|(plan, _)| plan.key.as_str().to_owned()),
            grace_until: state.grace_until,
        })
    }
}

/// `tenant { subscription(asOf | asOfPosition) }`: the subscription as it was then, folded
/// from its stream (the replay's code path), not read from the read model.
pub(crate) async fn subscription_as_of(
    services: &Services,
    scope: &TenantScope,
    as_of: commands::AsOf,
) -> Result<Option<SubscriptionObject>, ApiError> {
    let state = services
        .executor
        .load_as_of::<Subscription>(scope.tenant().as_uuid(), as_of)
        .await?
        .state;
    Ok(SubscriptionObject::from_state(&state))
}

/// One effective limit and what is used of it.
#[derive(SimpleObject)]
#[graphql(name = "Entitlement")]
pub struct EntitlementObject {
    pub key: LimitKeyValue,
    /// Null: unlimited.
    pub limit: Option<u64>,
    /// What the tenant holds against it; null where usage is not counted here (period
    /// allowances, fed by usage metering, and per-item limits).
    pub used: Option<u64>,
    /// `used` as a percentage of `limit` (null when either is).
    pub percent: Option<f64>,
    /// Set by an operator for this tenant rather than by the plan.
    pub overridden: bool,
    pub override_expires_at: Option<DateTime<Utc>>,
}

/// What the tenant holds of each counted limit, from the aggregates that count them.
async fn used(services: &Services, tenant: TenantId) -> Result<BTreeMap<LimitKey, u64>, ApiError> {
    let access = services
        .executor
        .load_current::<TenantAccess>(tenant.as_uuid())
        .await?
        .state;
    let state = services
        .executor
        .load_current::<Tenant>(tenant.as_uuid())
        .await?
        .state;
    let held = |kind| state.resources.get(&kind).map_or(0, |ids| ids.len() as u64);
    // Period allowances: the usage of the current billing period.
    let subscription = services
        .executor
        .load_current::<Subscription>(tenant.as_uuid())
        .await?
        .state;
    let period = subscription.period_containing(Utc::now());
    let mut allowances = Vec::new();
    for key in [
        LimitKey::BandwidthBytesPerMonth,
        LimitKey::DataPointsPerMonth,
    ] {
        let used = services
            .usage
            .used(tenant, key, period)
            .await
            .map_err(ApiError::internal)?;
        allowances.push((key, used));
    }
    Ok(allowances
        .into_iter()
        .chain([
            (LimitKey::Members, access.members.len() as u64),
            (
                LimitKey::ApiKeys,
                access.api_keys.values().filter(|k| !k.revoked).count() as u64,
            ),
            (LimitKey::Sources, held(ResourceKind::BackupSource)),
            (
                LimitKey::Destinations,
                held(ResourceKind::BackupDestination),
            ),
            (LimitKey::Pipelines, held(ResourceKind::Pipeline)),
        ])
        .collect())
}

/// `tenant { subscription entitlements features }`, resolved by `TenantNode`.
pub(crate) async fn subscription_of(
    services: &Services,
    scope: &TenantScope,
) -> Result<Option<SubscriptionObject>, ApiError> {
    services.metrics.read_queries(1);
    BillingReadModel::subscription(&services.read_db, scope)
        .await?
        .map(SubscriptionObject::new)
        .transpose()
}

pub(crate) async fn entitlements_of(
    services: &Services,
    scope: &TenantScope,
) -> Result<Vec<EntitlementObject>, ApiError> {
    services.metrics.read_queries(2);
    let limits = BillingReadModel::entitlements(&services.read_db, scope, Utc::now()).await?;
    let used = used(services, scope.tenant()).await?;
    Ok(limits
        .into_iter()
        .map(|e| {
            let used = used.get(&e.key).copied();
            let limit = e.limit.value();
            EntitlementObject {
                key: e.key.into(),
                limit,
                used,
                percent: match (used, limit) {
                    (Some(used), Some(limit)) if limit > 0 => {
                        Some(used as f64 * 100.0 / limit as f64)
                    }
                    _ => None,
                },
                overridden: e.overridden,
                override_expires_at: e.expires_at,
            }
        })
        .collect())
}

pub(crate) async fn features_of(
    services: &Services,
    scope: &TenantScope,
) -> Result<Vec<String>, ApiError> {
    services.metrics.read_queries(1);
    Ok(BillingReadModel::plan_of(&services.read_db, scope)
        .await?
        .map(|p| p.features.iter().map(|f| f.as_str().to_owned()).collect())
        .unwrap_or_default())
}

/// Fills in what a client needs to offer an upgrade: the cheapest plan that allows more.
pub(crate) async fn explain_limit(services: &Services, error: ApiError) -> ApiError {
    match error {
        ApiError::PlanLimitExceeded(mut limit) => {
            let LimitExceeded { key, used, .. } = *limit;
            limit.cheapest_plan =
                BillingReadModel::cheapest_plan_allowing(&services.read_db, key, used)
                    .await
                    .ok()
                    .flatten();
            ApiError::PlanLimitExceeded(limit)
        }
        other => other,
    }
}

#[derive(Default)]
pub struct BillingQuery;

#[Object]
impl BillingQuery {
    /// The plan catalog: every plan's latest version, by key (retired ones flagged).
    async fn plans(&self, ctx: &Context<'_>) -> GqlResult<Vec<PlanObject>> {
        let services = services(ctx);
        services.metrics.read_queries(1);
        Ok(BillingReadModel::plans(&services.read_db)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .map(|p| PlanObject::new(p.key, &p.version, p.retired))
            .collect())
    }
}

#[derive(InputObject)]
pub struct PriceInput {
    pub interval: IntervalValue,
    pub amount: i64,
    pub currency: String,
}

#[derive(InputObject)]
pub struct PlanLimitInput {
    pub key: LimitKeyValue,
    /// Null: unlimited.
    pub limit: Option<u64>,
}

#[derive(InputObject)]
pub struct OverageInput {
    pub meter: String,
    pub unit_price: i64,
    pub per_units: u64,
}

/// A new version of a plan. Limits not named are unlimited.
#[derive(InputObject)]
pub struct PlanInput {
    pub key: String,
    pub name: String,
    pub prices: Vec<PriceInput>,
    #[graphql(default)]
    pub trial_days: u32,
    #[graphql(default)]
    pub limits: Vec<PlanLimitInput>,
    #[graphql(default)]
    pub features: Vec<String>,
    #[graphql(default)]
    pub overage: Vec<OverageInput>,
}

fn plan_key_arg(key: &str) -> Result<PlanKey, ApiError> {
    PlanKey::parse(key).map_err(|e| ApiError::bad_input("plan", e.to_string()))
}

impl PlanInput {
    fn parse(self) -> Result<(PlanKey, PlanDraft), ApiError> {
        let bad =
            |field: &'static str| move |e: PlanError| ApiError::bad_input(field, e.to_string());
        let key = PlanKey::parse(&self.key).map_err(bad("key"))?;
        let prices = self
            .prices
            .into_iter()
            .map(|p| {
                Ok(Price {
                    interval: p.interval.into(),
                    amount: p.amount,
                    currency: Currency::parse(&p.currency).map_err(bad("prices"))?,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let mut limits = BTreeMap::new();
        for limit in self.limits {
            let value = limit.limit.map_or(Limit::Unlimited, Limit::At);
            if limits.insert(LimitKey::from(limit.key), value).is_some() {
                return Err(ApiError::bad_input("limits", "a limit is named twice"));
            }
        }
        let features = self
            .features
            .iter()
            .map(|f| Feature::parse(f).map_err(bad("features")))
            .collect::<Result<BTreeSet<_>, _>>()?;
        let overage = self
            .overage
            .iter()
            .map(|o| Overage::parse(&o.meter, o.unit_price, o.per_units).map_err(bad("overage")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((
            key,
            PlanDraft {
                name: PlanName::parse(&self.name).map_err(bad("name"))?,
                prices,
                trial_days: self.trial_days,
                limits,
                features,
                overage,
            },
        ))
    }
}

/// An operator's override of one limit for one tenant.
#[derive(InputObject)]
pub struct LimitOverrideInput {
    pub key: LimitKeyValue,
    /// Null: unlimited.
    pub limit: Option<u64>,
    /// Until then (for good without).
    pub expires_at: Option<DateTime<Utc>>,
    /// Removes the override instead (the plan's limit applies again).
    #[graphql(default)]
    pub clear: bool,
}

#[derive(SimpleObject)]
pub struct PlanPayload {
    pub plan: Option<PlanObject>,
    pub position: String,
}

#[derive(SimpleObject)]
pub struct SubscriptionPayload {
    pub subscription: Option<SubscriptionObject>,
    pub position: String,
}

/// What Stripe.js needs to collect a payment method.
#[derive(SimpleObject)]
pub struct PaymentMethodSetup {
    /// The SetupIntent's client secret (give it to `stripe.confirmCardSetup`).
    pub client_secret: String,
}

#[derive(Default)]
pub struct BillingMutation;

/// A plan as an operator's change left it, once the catalog shows it.
async fn plan_written(
    services: &Services,
    outcome: &CommandOutcome,
    key: &PlanKey,
) -> Result<PlanPayload, ApiError> {
    services
        .written(outcome.position, &[BillingReadModel::NAME])
        .await?;
    let plan = BillingReadModel::plans(&services.read_db)
        .await?
        .into_iter()
        .find(|p| p.key == key.as_str())
        .map(|p| PlanObject::new(p.key, &p.version, p.retired));
    Ok(PlanPayload {
        plan,
        position: outcome.position.0.to_string(),
    })
}

/// A subscription use case for `tenant_id` by an owner; the subscription as written.
async fn owner_change(
    ctx: &Context<'_>,
    tenant_id: &ID,
    key: Option<&ID>,
    run: impl AsyncFnOnce(
        &Services,
        &commands::CommandContext,
        TenantId,
    ) -> Result<CommandOutcome, commands::CommandError<BillingError>>,
) -> Result<SubscriptionPayload, ApiError> {
    let (services, principal) = (services(ctx), principal(ctx));
    let tenant = tenant_arg(tenant_id)?;
    let granted = grant(services, &principal, tenant, Permission::ManageBilling).await?;
    let cmd_ctx = request_context(ctx, key).await?;
    let outcome = services.counted(
        Subscription::CATEGORY,
        run(services, &cmd_ctx, tenant).await,
    )?;
    // The directory shows the tenant's plan too.
    services
        .written(
            outcome.position,
            &[BillingReadModel::NAME, TenantDirectory::NAME],
        )
        .await?;
    Ok(SubscriptionPayload {
        subscription: subscription_of(services, &TenantScope::from(&granted)).await?,
        position: outcome.position.0.to_string(),
    })
}

/// An owner's change to the subscription as it is (cancel, resume).
async fn owner_subscription_change(
    ctx: &Context<'_>,
    tenant_id: &ID,
    key: Option<&ID>,
    change: SubscriptionChange,
) -> Result<SubscriptionPayload, ApiError> {
    owner_change(ctx, tenant_id, key, async |services, cmd, tenant| {
        change_subscription(&services.executor, cmd, Utc::now(), tenant, change).await
    })
    .await
}

#[Object]
impl BillingMutation {
    /// Subscribes the tenant to a plan's latest version (owners), with the plan's trial once
    /// per tenant. Without a payment provider configured nothing is charged (local mode).
    async fn subscribe(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        plan: String,
        #[graphql(default_with = "IntervalValue::Month")] interval: IntervalValue,
        idempotency_key: Option<ID>,
    ) -> GqlResult<SubscriptionPayload> {
        let key = plan_key_arg(&plan)?;
        Ok(owner_change(
            ctx,
            &tenant_id,
            idempotency_key.as_ref(),
            async |services, cmd, tenant| {
                subscribe(
                    &services.executor,
                    cmd,
                    Utc::now(),
                    tenant,
                    (&key, interval.into()),
                )
                .await
            },
        )
        .await?)
    }

    /// Moves to a plan's latest version (owners): an upgrade at once, prorated; a downgrade
    /// or another interval at the period's end. A downgrade never deletes anything: while
    /// over a limit, only new resources are refused.
    async fn change_plan(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        plan: String,
        #[graphql(default_with = "IntervalValue::Month")] interval: IntervalValue,
        idempotency_key: Option<ID>,
    ) -> GqlResult<SubscriptionPayload> {
        let key = plan_key_arg(&plan)?;
        Ok(owner_change(
            ctx,
            &tenant_id,
            idempotency_key.as_ref(),
            async |services, cmd, tenant| {
                change_plan(
                    &services.executor,
                    cmd,
                    Utc::now(),
                    tenant,
                    (&key, interval.into()),
                )
                .await
            },
        )
        .await?)
    }

    /// Cancels (owners): at the period's end by default, or at once.
    async fn cancel_subscription(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        #[graphql(default = true)] at_period_end: bool,
        idempotency_key: Option<ID>,
    ) -> GqlResult<SubscriptionPayload> {
        let change = SubscriptionChange::Cancel { at_period_end };
        Ok(owner_subscription_change(ctx, &tenant_id, idempotency_key.as_ref(), change).await?)
    }

    /// Withdraws a cancellation scheduled for the period's end (owners).
    async fn resume_subscription(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        idempotency_key: Option<ID>,
    ) -> GqlResult<SubscriptionPayload> {
        let change = SubscriptionChange::Resume;
        Ok(owner_subscription_change(ctx, &tenant_id, idempotency_key.as_ref(), change).await?)
    }

    /// A SetupIntent for the tenant's customer at Stripe (owners): its client secret, for
    /// Stripe.js to collect and confirm a card with. Needs Stripe configured and a
    /// subscription; `UNAVAILABLE` while the customer is still being created.
    async fn set_up_payment_method(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        idempotency_key: Option<ID>,
    ) -> GqlResult<PaymentMethodSetup> {
        let (services, principal) = (services(ctx), principal(ctx));
        let tenant = tenant_arg(&tenant_id)?;
        grant(services, &principal, tenant, Permission::ManageBilling).await?;
        let cmd_ctx = request_context(ctx, idempotency_key.as_ref()).await?;
        let client_secret = commands::payments::set_up_payment_method(
            &services.executor,
            services.payments.as_deref(),
            &cmd_ctx,
            tenant,
        )
        .await?;
        Ok(PaymentMethodSetup { client_secret })
    }

    /// Publishes a plan's next version (platform operators). A version identical to the
    /// latest publishes nothing.
    async fn publish_plan(
        &self,
        ctx: &Context<'_>,
        input: PlanInput,
        idempotency_key: Option<ID>,
    ) -> GqlResult<PlanPayload> {
        let (services, principal) = (services(ctx), principal(ctx));
        principal.require_operator()?;
        let (key, draft) = input.parse()?;
        let cmd_ctx = request_context(ctx, idempotency_key.as_ref()).await?;
        let outcome = services.counted(
            Plan::CATEGORY,
            publish_plan(&services.executor, &cmd_ctx, Utc::now(), key.clone(), draft).await,
        )?;
        Ok(plan_written(services, &outcome, &key).await?)
    }

    /// Retires a plan (platform operators): no new subscriptions; existing ones stay.
    async fn retire_plan(
        &self,
        ctx: &Context<'_>,
        plan: String,
        idempotency_key: Option<ID>,
    ) -> GqlResult<PlanPayload> {
        let (services, principal) = (services(ctx), principal(ctx));
        principal.require_operator()?;
        let key = plan_key_arg(&plan)?;
        let cmd_ctx = request_context(ctx, idempotency_key.as_ref()).await?;
        let outcome = services.counted(
            Plan::CATEGORY,
            retire_plan(&services.executor, &cmd_ctx, Utc::now(), &key).await,
        )?;
        Ok(plan_written(services, &outcome, &key).await?)
    }

    /// Overrides one of a tenant's limits (platform operators).
    async fn set_limit_override(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        input: LimitOverrideInput,
        idempotency_key: Option<ID>,
    ) -> GqlResult<SubscriptionPayload> {
        let LimitOverrideInput {
            key,
            limit,
            expires_at,
            clear,
        } = input;
        let (services, principal) = (services(ctx), principal(ctx));
        principal.require_operator()?;
        let tenant = tenant_arg(&tenant_id)?;
        let change = SubscriptionChange::Override {
            key: key.into(),
            limit: (!clear).then_some(LimitOverride {
                limit: limit.map_or(Limit::Unlimited, Limit::At),
                expires_at,
            }),
        };
        let cmd_ctx = request_context(ctx, idempotency_key.as_ref()).await?;
        let outcome = services.counted(
            Subscription::CATEGORY,
            change_subscription(&services.executor, &cmd_ctx, Utc::now(), tenant, change).await,
        )?;
        services
            .written(outcome.position, &[BillingReadModel::NAME])
            .await?;
        Ok(SubscriptionPayload {
            subscription: None,
            position: outcome.position.0.to_string(),
        })
    }
}
