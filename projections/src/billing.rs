//! The billing read model: the plan catalog (every published version, and which plans are
//! retired), each tenant's subscription, and operators' limit overrides. A tenant's
//! entitlements (its effective limits and features) are its plan version's, the free plan's
//! latest for a tenant without a live subscription, with unexpired overrides on top.

use crate::scope::TenantScope;
use crate::{ProjectionError, Projector, ReadDb, ReadTx, decode, exec, fetch_all};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::aggregate::Aggregate;
use domain::event::{Reads, RecordedEvent};
use domain::plan::{Limit, LimitKey, Plan, PlanEvent, PlanKey, PlanVersion};
use domain::subscription::{Subscription, SubscriptionEvent, SubscriptionStatus};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, Default)]
pub struct BillingReadModel;

/// A plan version as the catalog shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanView {
    pub key: String,
    pub retired: bool,
    pub version: PlanVersion,
}

/// A tenant's subscription as the read model holds it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SubscriptionView {
    pub plan_key: String,
    pub plan_version: i64,
    pub status: String,
    pub interval: String,
    pub amount: i64,
    pub currency: String,
    pub trial_ends_at: Option<DateTime<Utc>>,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub cancel_at: Option<DateTime<Utc>>,
    pub scheduled_plan: Option<String>,
    pub grace_until: Option<DateTime<Utc>>,
}

/// One effective limit of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entitlement {
    pub key: LimitKey,
    pub limit: Limit,
    /// Set by an operator for this tenant (until `expires_at`), rather than by the plan.
    pub overridden: bool,
    pub expires_at: Option<DateTime<Utc>>,
}

impl BillingReadModel {
    pub const NAME: &'static str = "billing";

    /// The latest version of every plan, retired ones included (flagged), by key.
    pub async fn plans(db: &ReadDb) -> Result<Vec<PlanView>, sqlx::Error> {
        let sql = "SELECT v.plan_key, v.content, p.retired FROM plan_versions v \
                   JOIN plans p ON p.plan_key = v.plan_key AND p.latest_version = v.version \
                   ORDER BY v.plan_key";
        let rows = fetch_all!(db, (String, String, i64), sql)?;
        Ok(rows
            .into_iter()
            .filter_map(|(key, content, retired)| {
                Some(PlanView {
                    key,
                    retired: retired != 0,
                    version: serde_json::from_str(&content).ok()?,
                })
            })
            .collect())
    }

    /// One version of one plan.
    pub async fn plan_version(
        db: &ReadDb,
        key: &str,
        version: Option<i64>,
    ) -> Result<Option<PlanVersion>, sqlx::Error> {
        let rows = match version {
            Some(version) => fetch_all!(
                db,
                (String,),
                "SELECT content FROM plan_versions WHERE plan_key = $1 AND version = $2",
                key,
                version
            )?,
            None => fetch_all!(
                db,
                (String,),
                "SELECT v.content FROM plan_versions v JOIN plans p ON p.plan_key = v.plan_key \
                 AND p.latest_version = v.version WHERE v.plan_key = $1",
                key
            )?,
        };
        Ok(rows
            .into_iter()
            .next()
            .and_then(|(content,)| serde_json::from_str(&content).ok()))
    }

    /// The tenant's subscription, live or cancelled (none if it never subscribed).
    pub async fn subscription(
        db: &ReadDb,
        scope: &TenantScope,
    ) -> Result<Option<SubscriptionView>, sqlx::Error> {
        let sql = "SELECT plan_key, plan_version, status, \"interval\", amount, currency, \
                   trial_ends_at, period_start, period_end, cancel_at, scheduled_plan, grace_until \
                   FROM subscriptions WHERE tenant_id = $1";
        Ok(
            fetch_all!(db, SubscriptionView, sql, scope.tenant().as_uuid())?
                .into_iter()
                .next(),
        )
    }

    /// The plan version that binds the tenant: its live subscription's, else the free plan's
    /// latest.
    pub async fn plan_of(
        db: &ReadDb,
        scope: &TenantScope,
    ) -> Result<Option<PlanVersion>, sqlx::Error> {
        match Self::subscription(db, scope).await? {
            Some(s) if s.status != SubscriptionStatus::Cancelled.as_str() => {
                Self::plan_version(db, &s.plan_key, Some(s.plan_version)).await
            }
            _ => Self::plan_version(db, PlanKey::free().as_str(), None).await,
        }
    }

    /// Every limit of the tenant at `now`: the plan's (unlimited where it names none), with
    /// unexpired overrides on top.
    pub async fn entitlements(
        db: &ReadDb,
        scope: &TenantScope,
        now: DateTime<Utc>,
    ) -> Result<Vec<Entitlement>, sqlx::Error> {
        let plan = Self::plan_of(db, scope).await?;
        let sql = "SELECT limit_key, max, expires_at FROM limit_overrides \
                   WHERE tenant_id = $1 AND (expires_at IS NULL OR expires_at > $2)";
        let overrides = fetch_all!(
            db,
            (String, Option<i64>, Option<DateTime<Utc>>),
            sql,
            scope.tenant().as_uuid(),
            now
        )?;
        Ok(LimitKey::ALL
            .into_iter()
            .map(|key| {
                let overridden = overrides.iter().find(|(k, _, _)| k == key.as_str());
                match overridden {
                    Some((_, max, expires_at)) => Entitlement {
                        key,
                        limit: max.map_or(Limit::Unlimited, |m| {
                            Limit::At(u64::try_from(m).unwrap_or(0))
                        }),
                        overridden: true,
                        expires_at: *expires_at,
                    },
                    None => Entitlement {
                        key,
                        limit: plan.as_ref().map_or(Limit::Unlimited, |p| p.limit(key)),
                        overridden: false,
                        expires_at: None,
                    },
                }
            })
            .collect())
    }

    /// Tenants whose subscription needs the renewal job at `now`: a period over, or a grace
    /// period over while past due. At most `limit`, the most overdue first.
    pub async fn due(
        db: &ReadDb,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<domain::ids::TenantId>, sqlx::Error> {
        let sql = "SELECT tenant_id FROM subscriptions WHERE status <> $1 AND \
                   (period_end <= $2 OR (status = $3 AND grace_until <= $2)) \
                   ORDER BY period_end, tenant_id LIMIT $4";
        let rows = fetch_all!(
            db,
            (Uuid,),
            sql,
            SubscriptionStatus::Cancelled.as_str(),
            now,
            SubscriptionStatus::PastDue.as_str(),
            i64::from(limit)
        )?;
        Ok(rows
            .into_iter()
            .map(|(t,)| domain::ids::TenantId::from_uuid(t))
            .collect())
    }

    /// The cheapest plan (by monthly price, not retired) whose latest version allows more than
    /// `used` of `key`.
    pub async fn cheapest_plan_allowing(
        db: &ReadDb,
        key: LimitKey,
        used: u64,
    ) -> Result<Option<String>, sqlx::Error> {
        let mut plans: Vec<PlanView> = Self::plans(db)
            .await?
            .into_iter()
            .filter(|p| !p.retired && p.version.limit(key).allows(used, 1))
            .collect();
        plans.sort_by_key(|p| p.version.monthly_amount());
        Ok(plans.into_iter().next().map(|p| p.key))
    }
}

impl BillingReadModel {
    /// The tenant whose customer at the payment provider `customer` is (the webhook
    /// endpoint's way from a provider event to a tenant; not tenant-scoped: it is how the
    /// tenant is found).
    pub async fn tenant_of_customer(
        db: &ReadDb,
        customer: &str,
    ) -> Result<Option<Uuid>, sqlx::Error> {
        let sql = "SELECT tenant_id FROM provider_customers WHERE customer_id = $1";
        Ok(fetch_all!(db, (Uuid,), sql, customer)?
            .into_iter()
            .next()
            .map(|(t,)| t))
    }
}

#[async_trait]
impl Projector for BillingReadModel {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> u32 {
        2
    }

    fn reads(&self) -> Reads {
        Reads::categories(&[Plan::CATEGORY, Subscription::CATEGORY])
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "plans",
            "plan_versions",
            "subscriptions",
            "limit_overrides",
            "provider_customers",
        ]
    }

    async fn create_tables(
        &self,
        tx: &mut ReadTx<'_>,
        suffix: &str,
    ) -> Result<(), ProjectionError> {
        let (id, time) = tx.id_and_time_types();
        for ddl in [
            format!(
                "CREATE TABLE plans{suffix} (plan_key TEXT PRIMARY KEY, plan_id {id} NOT NULL, \
                 latest_version BIGINT NOT NULL, retired BIGINT NOT NULL)"
            ),
            format!(
                "CREATE TABLE plan_versions{suffix} (plan_key TEXT NOT NULL, version BIGINT NOT NULL, \
                 content TEXT NOT NULL, published_at {time} NOT NULL, PRIMARY KEY (plan_key, version))"
            ),
            format!(
                "CREATE TABLE subscriptions{suffix} (tenant_id {id} PRIMARY KEY, plan_key TEXT NOT NULL, \
                 plan_version BIGINT NOT NULL, status TEXT NOT NULL, \"interval\" TEXT NOT NULL, \
                 amount BIGINT NOT NULL, currency TEXT NOT NULL, trial_ends_at {time}, \
                 period_start {time} NOT NULL, period_end {time} NOT NULL, cancel_at {time}, \
                 scheduled_plan TEXT, grace_until {time})"
            ),
            format!(
                "CREATE TABLE limit_overrides{suffix} (tenant_id {id} NOT NULL, limit_key TEXT NOT NULL, \
                 max BIGINT, expires_at {time}, PRIMARY KEY (tenant_id, limit_key))"
            ),
            format!(
                "CREATE TABLE provider_customers{suffix} (customer_id TEXT PRIMARY KEY, \
                 tenant_id {id} NOT NULL)"
            ),
        ] {
            tx.execute_ddl(&ddl).await?;
        }
        Ok(())
    }

    async fn apply(
        &self,
        tx: &mut ReadTx<'_>,
        suffix: &str,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        for event in events {
            if event.stream.aggregate_id(Plan::CATEGORY).is_some() {
                apply_plan(tx, suffix, decode::<Plan>(event)?, event).await?;
            } else if let Some(tenant) = event.stream.aggregate_id(Subscription::CATEGORY) {
                apply_subscription(tx, suffix, tenant, decode::<Subscription>(event)?).await?;
            }
        }
        Ok(())
    }
}

async fn apply_plan(
    tx: &mut ReadTx<'_>,
    suffix: &str,
    event: PlanEvent,
    recorded: &RecordedEvent,
) -> Result<(), ProjectionError> {
    match event {
        PlanEvent::PlanVersionPublished { key, version } => {
            let content = serde_json::to_string(&version).map_err(|e| ProjectionError::Event {
                position: recorded.position.0,
                reason: e.to_string(),
            })?;
            exec!(
                &mut *tx,
                &format!(
                    "INSERT INTO plan_versions{suffix} (plan_key, version, content, published_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (plan_key, version) DO NOTHING"
                ),
                key.as_str(),
                i64::from(version.version),
                content,
                version.published_at
            )?;
            exec!(
                &mut *tx,
                &format!(
                    "INSERT INTO plans{suffix} (plan_key, plan_id, latest_version, retired) \
                     VALUES ($1, $2, $3, 0) ON CONFLICT (plan_key) DO UPDATE SET \
                     latest_version = excluded.latest_version, retired = 0"
                ),
                key.as_str(),
                Plan::id_of(&key),
                i64::from(version.version)
            )?;
        }
        PlanEvent::PlanRetired { .. } => {
            if let Some(id) = recorded.stream.aggregate_id(Plan::CATEGORY) {
                exec!(
                    &mut *tx,
                    &format!("UPDATE plans{suffix} SET retired = 1 WHERE plan_id = $1"),
                    id
                )?;
            }
        }
    }
    Ok(())
}

async fn apply_subscription(
    tx: &mut ReadTx<'_>,
    suffix: &str,
    tenant: Uuid,
    event: SubscriptionEvent,
) -> Result<(), ProjectionError> {
    use SubscriptionEvent as E;
    let set = |assignments: &str| {
        format!("UPDATE subscriptions{suffix} SET {assignments} WHERE tenant_id = $1")
    };
    match event {
        E::SubscriptionStarted {
            plan,
            price,
            trial_ends_at,
            period_start,
            period_end,
            ..
        } => {
            let status = if trial_ends_at.is_some() {
                SubscriptionStatus::Trialing
            } else {
                SubscriptionStatus::Active
            };
            exec!(
                &mut *tx,
                &format!(
                    "INSERT INTO subscriptions{suffix} (tenant_id, plan_key, plan_version, status, \
                     \"interval\", amount, currency, trial_ends_at, period_start, period_end) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (tenant_id) DO UPDATE SET \
                     plan_key = excluded.plan_key, plan_version = excluded.plan_version, \
                     status = excluded.status, \"interval\" = excluded.\"interval\", \
                     amount = excluded.amount, currency = excluded.currency, \
                     trial_ends_at = excluded.trial_ends_at, period_start = excluded.period_start, \
                     period_end = excluded.period_end, cancel_at = NULL, scheduled_plan = NULL, \
                     grace_until = NULL"
                ),
                tenant,
                plan.key.as_str(),
                i64::from(plan.version),
                status.as_str(),
                price.interval.as_str(),
                price.amount,
                price.currency.as_str(),
                trial_ends_at,
                period_start,
                period_end
            )?;
        }
        E::PlanChanged { plan, price, .. } => {
            exec!(
                &mut *tx,
                &set(
                    "plan_key = $2, plan_version = $3, \"interval\" = $4, amount = $5, scheduled_plan = NULL"
                ),
                tenant,
                plan.key.as_str(),
                i64::from(plan.version),
                price.interval.as_str(),
                price.amount
            )?;
        }
        E::PlanChangeScheduled { plan, .. } => {
            exec!(
                &mut *tx,
                &set("scheduled_plan = $2"),
                tenant,
                plan.key.as_str()
            )?;
        }
        E::CancellationScheduled { cancel_at, .. } => {
            exec!(&mut *tx, &set("cancel_at = $2"), tenant, cancel_at)?;
        }
        E::CancellationWithdrawn { .. } => {
            exec!(&mut *tx, &set("cancel_at = NULL"), tenant)?;
        }
        E::SubscriptionCancelled { .. } => {
            exec!(
                &mut *tx,
                &set("status = $2, cancel_at = NULL, scheduled_plan = NULL"),
                tenant,
                SubscriptionStatus::Cancelled.as_str()
            )?;
        }
        E::PeriodRenewed {
            period_start,
            period_end,
            changed_to,
            ..
        } => {
            exec!(
                &mut *tx,
                &set(
                    "period_start = $2, period_end = $3, scheduled_plan = NULL, trial_ends_at = NULL, \
                      status = CASE WHEN status = $4 THEN $5 ELSE status END"
                ),
                tenant,
                period_start,
                period_end,
                SubscriptionStatus::Trialing.as_str(),
                SubscriptionStatus::Active.as_str()
            )?;
            if let Some((plan, price)) = changed_to {
                exec!(
                    &mut *tx,
                    &set("plan_key = $2, plan_version = $3, \"interval\" = $4, amount = $5"),
                    tenant,
                    plan.key.as_str(),
                    i64::from(plan.version),
                    price.interval.as_str(),
                    price.amount
                )?;
            }
        }
        E::PaymentFailed { grace_until, .. } => {
            exec!(
                &mut *tx,
                &set("status = $2, grace_until = $3"),
                tenant,
                SubscriptionStatus::PastDue.as_str(),
                grace_until
            )?;
        }
        E::SubscriptionSuspended { .. } => {
            exec!(
                &mut *tx,
                &set("status = $2"),
                tenant,
                SubscriptionStatus::Suspended.as_str()
            )?;
        }
        E::PaymentRecovered { .. } => {
            exec!(
                &mut *tx,
                &set("status = $2, grace_until = NULL"),
                tenant,
                SubscriptionStatus::Active.as_str()
            )?;
        }
        E::TrialEnded {
            period_start,
            period_end,
            ..
        } => {
            exec!(
                &mut *tx,
                &set("status = $2, trial_ends_at = NULL, period_start = $3, period_end = $4"),
                tenant,
                SubscriptionStatus::Active.as_str(),
                period_start,
                period_end
            )?;
        }
        E::ProviderCustomerLinked { customer, .. } => {
            exec!(
                &mut *tx,
                &format!(
                    "INSERT INTO provider_customers{suffix} (customer_id, tenant_id) VALUES ($1, $2) \
                     ON CONFLICT (customer_id) DO NOTHING"
                ),
                customer,
                tenant
            )?;
        }
        // The payments reactor's business (commands::payments).
        E::ProviderSubscriptionLinked { .. } => {}
        // The outbox's business (commands::mail).
        E::AllowanceWarned { .. } | E::AllowanceReached { .. } => {}
        E::LimitOverridden { key, limit, .. } => match limit {
            Some(o) => {
                exec!(
                    &mut *tx,
                    &format!(
                        "INSERT INTO limit_overrides{suffix} (tenant_id, limit_key, max, expires_at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, limit_key) DO UPDATE SET \
                         max = excluded.max, expires_at = excluded.expires_at"
                    ),
                    tenant,
                    key.as_str(),
                    o.limit
                        .value()
                        .map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
                    o.expires_at
                )?;
            }
            None => {
                exec!(
                    &mut *tx,
                    &format!(
                        "DELETE FROM limit_overrides{suffix} WHERE tenant_id = $1 AND limit_key = $2"
                    ),
                    tenant,
                    key.as_str()
                )?;
            }
        },
    }
    Ok(())
}
