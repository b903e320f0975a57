//! A tenant's subscription: one stream per tenant (`subscription-<tenant id>`). It starts
//! (with a trial when the plan has one and the tenant never had one), changes plan (an
//! upgrade at once, prorated; a downgrade or a change of interval at the period's end),
//! is cancelled at the period's end or at once, resumed before that end, renewed period
//! after period, and follows payments: a failed payment makes it past due until a grace
//! period ends, then suspended; a recovered payment makes it active again. Operators override
//! single limits for a tenant, with an expiry.
//!
//! **Periods** are in UTC and counted from the billing anchor (the start, or the end of the
//! trial): period `n` runs from `anchor + n × interval` to `anchor + (n + 1) × interval`,
//! each computed from the anchor with the day clamped to the month's length: an anchor of
//! January 31 gives February 28 (29 in leap years), then March 31. A period's start is
//! inside it, its end is not.
//!
//! **Proration** of an upgrade at time `t` in a period `[start, end)`: the unused part of
//! the old price is credited and the same part of the new price charged, each
//! `amount × (end − t) / (end − start)` in seconds, rounded half up to a minor unit.

mod error;
mod period;

#[cfg(test)]
mod tests;

pub use error::SubscriptionError;
pub use period::{add_months, prorated};

use crate::aggregate::Aggregate;
use crate::ids::TenantId;
use crate::mail::QueuedMail;
use crate::plan::{Limit, LimitKey, PlanRef, Price};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Trialing,
    Active,
    /// A payment failed; the tenant works until the grace period ends.
    PastDue,
    /// The grace period ended unpaid: the tenant is suspended until a payment succeeds.
    Suspended,
    Cancelled,
}

impl SubscriptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trialing => "trialing",
            Self::Active => "active",
            Self::PastDue => "past_due",
            Self::Suspended => "suspended",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the subscription still binds the tenant to its plan.
    pub fn is_live(self) -> bool {
        self != Self::Cancelled
    }
}

/// An operator's override of one limit for one tenant, until it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitOverride {
    pub limit: Limit,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The credit and charge of a prorated upgrade, in minor units of the plans' currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proration {
    pub credit: i64,
    pub charge: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub tenant: Option<TenantId>,
    pub plan: Option<PlanRef>,
    pub price: Option<Price>,
    pub status: Option<SubscriptionStatus>,
    /// Where periods are counted from.
    pub anchor: Option<DateTime<Utc>>,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// Whether this tenant ever had a trial (one per tenant).
    pub trial_used: bool,
    /// A cancellation that takes effect then.
    pub cancel_at: Option<DateTime<Utc>>,
    /// A plan change that takes effect at the period's end.
    pub scheduled: Option<(PlanRef, Price)>,
    pub grace_until: Option<DateTime<Utc>>,
    pub overrides: BTreeMap<LimitKey, LimitOverride>,
    /// The allowances warned about, with the start of the period they were warned in.
    #[serde(default)]
    pub warned: BTreeMap<LimitKey, DateTime<Utc>>,
    /// The allowances used up, with the start of the period they were used up in.
    #[serde(default)]
    pub reached: BTreeMap<LimitKey, DateTime<Utc>>,
    /// The tenant's customer at the payment provider (kept across subscriptions).
    #[serde(default)]
    pub provider_customer: Option<String>,
    /// The provider's subscription mirroring this one (the last one, once cancelled): its id
    /// and its item.
    #[serde(default)]
    pub provider_subscription: Option<(String, String)>,
    /// When the last payment outcome happened (the provider's time): an older one arriving
    /// later changes nothing.
    #[serde(default)]
    pub payment_changed_at: Option<DateTime<Utc>>,
}

impl Subscription {
    fn live(&self) -> Result<SubscriptionStatus, SubscriptionError> {
        match self.status {
            None | Some(SubscriptionStatus::Cancelled) => Err(SubscriptionError::NotSubscribed),
            Some(status) => Ok(status),
        }
    }

    /// The billing period containing `at`, for a live subscription: the current period (a
    /// trial included) when `at` is in it, else counted from the anchor (`at` at or after
    /// it). Otherwise, and before the anchor, the calendar month (UTC) of `at`. Allowances,
    /// usage queries and late usage all take their periods from here.
    pub fn period_containing(&self, at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let live = self.status.is_some_and(SubscriptionStatus::is_live);
        if live
            && let (Some(start), Some(end)) = (self.period_start, self.period_end)
            && start <= at
            && at < end
        {
            return (start, end);
        }
        if let (true, Some(anchor), Some(price)) = (live, self.anchor, &self.price)
            && anchor <= at
        {
            let step = price.interval.months();
            let mut months = 0;
            while add_months(anchor, months + step) <= at {
                months += step;
            }
            return (
                add_months(anchor, months),
                add_months(anchor, months + step),
            );
        }
        use chrono::Datelike;
        let month = chrono::NaiveDate::from_ymd_opt(at.year(), at.month(), 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(at, |d| d.and_utc());
        (month, add_months(month, 1))
    }

    /// The override of `key` in force at `at`, if any.
    pub fn override_at(&self, key: LimitKey, at: DateTime<Utc>) -> Option<Limit> {
        self.overrides
            .get(&key)
            .filter(|o| o.expires_at.is_none_or(|expires| expires > at))
            .map(|o| o.limit)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SubscriptionCommand {
    /// Subscribes to `plan` at `price` (the plan version's price for the chosen interval); a
    /// trial of `trial_days` when the plan has one and the tenant never had one.
    Start {
        tenant: TenantId,
        plan: PlanRef,
        price: Price,
        trial_days: u32,
        at: DateTime<Utc>,
    },
    ChangePlan {
        plan: PlanRef,
        price: Price,
        at: DateTime<Utc>,
    },
    Cancel {
        at_period_end: bool,
        at: DateTime<Utc>,
    },
    /// Withdraws a cancellation scheduled for the period's end.
    Resume {
        at: DateTime<Utc>,
    },
    /// Moves to the next period once the current one is over (the renewal job, one period at
    /// a time): applies a scheduled change or cancellation, ends a trial.
    Renew {
        at: DateTime<Utc>,
    },
    RecordPaymentFailure {
        grace: Duration,
        at: DateTime<Utc>,
    },
    /// Suspends a past-due subscription whose grace period is over.
    ExpireGrace {
        at: DateTime<Utc>,
    },
    RecordPaymentRecovery {
        at: DateTime<Utc>,
    },
    /// Notes that an allowance was used up in the period starting at `period_start`, with the
    /// mails telling the owners: once per allowance and period.
    ReachAllowance {
        key: LimitKey,
        period_start: DateTime<Utc>,
        used: u64,
        limit: u64,
        mails: Vec<QueuedMail>,
        at: DateTime<Utc>,
    },
    /// Ends a trial now: the payment provider charged the first period (its trial ended, or
    /// the customer chose to pay early). The period starts now and becomes the anchor.
    EndTrial {
        at: DateTime<Utc>,
    },
    /// Records the payment provider's customer and subscription mirroring this one.
    LinkProvider {
        customer: String,
        subscription: Option<(String, String)>,
        at: DateTime<Utc>,
    },
    /// Sets (or with `None` clears) an operator's override of one limit.
    OverrideLimit {
        key: LimitKey,
        limit: Option<LimitOverride>,
        at: DateTime<Utc>,
    },
    /// Notes that an allowance passed its warning threshold in the period starting at
    /// `period_start`, with the mails telling the owners: once per allowance and period.
    WarnAllowance {
        key: LimitKey,
        period_start: DateTime<Utc>,
        used: u64,
        limit: u64,
        mails: Vec<QueuedMail>,
        at: DateTime<Utc>,
    },
}

/// The facts stored on a subscription's stream, pinned by the golden files in
/// `domain/tests/golden/subscription`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SubscriptionEvent {
    SubscriptionStarted {
        tenant_id: TenantId,
        plan: PlanRef,
        price: Price,
        trial_ends_at: Option<DateTime<Utc>>,
        anchor: DateTime<Utc>,
        period_start: DateTime<Utc>,
        period_end: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// An upgrade, in force at once.
    PlanChanged {
        plan: PlanRef,
        price: Price,
        proration: Option<Proration>,
        at: DateTime<Utc>,
    },
    PlanChangeScheduled {
        plan: PlanRef,
        price: Price,
        effective_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    CancellationScheduled {
        cancel_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    CancellationWithdrawn {
        at: DateTime<Utc>,
    },
    SubscriptionCancelled {
        at: DateTime<Utc>,
    },
    PeriodRenewed {
        period_start: DateTime<Utc>,
        period_end: DateTime<Utc>,
        /// The scheduled change that took effect with this period.
        changed_to: Option<(PlanRef, Price)>,
        at: DateTime<Utc>,
    },
    PaymentFailed {
        grace_until: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    SubscriptionSuspended {
        at: DateTime<Utc>,
    },
    PaymentRecovered {
        at: DateTime<Utc>,
    },
    LimitOverridden {
        key: LimitKey,
        limit: Option<LimitOverride>,
        at: DateTime<Utc>,
    },
    /// An allowance was used up this period: actions consuming it are refused until the
    /// period ends or the plan allows more; `mails` tell the owners.
    AllowanceReached {
        key: LimitKey,
        period_start: DateTime<Utc>,
        used: u64,
        limit: u64,
        mails: Vec<QueuedMail>,
        at: DateTime<Utc>,
    },
    /// The trial ended before its time; the first paid period runs from `period_start`.
    TrialEnded {
        period_start: DateTime<Utc>,
        period_end: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    ProviderCustomerLinked {
        customer: String,
        at: DateTime<Utc>,
    },
    ProviderSubscriptionLinked {
        subscription: String,
        item: String,
        at: DateTime<Utc>,
    },
    /// An allowance passed its warning threshold this period; `mails` tell the owners.
    AllowanceWarned {
        key: LimitKey,
        period_start: DateTime<Utc>,
        used: u64,
        limit: u64,
        mails: Vec<QueuedMail>,
        at: DateTime<Utc>,
    },
}

impl Aggregate for Subscription {
    const CATEGORY: &'static str = "subscription";
    type Command = SubscriptionCommand;
    type Event = SubscriptionEvent;
    type Error = SubscriptionError;

    fn decide(
        &self,
        command: &SubscriptionCommand,
    ) -> Result<Vec<SubscriptionEvent>, SubscriptionError> {
        use SubscriptionCommand as C;
        use SubscriptionEvent as E;
        match command {
            C::Start {
                tenant,
                plan,
                price,
                trial_days,
                at,
            } => {
                if self.status.is_some_and(SubscriptionStatus::is_live) {
                    return Err(SubscriptionError::AlreadySubscribed);
                }
                let trial_ends_at = (*trial_days > 0 && !self.trial_used)
                    .then(|| *at + Duration::days(i64::from(*trial_days)));
                let anchor = trial_ends_at.unwrap_or(*at);
                let period_end =
                    trial_ends_at.unwrap_or_else(|| add_months(anchor, price.interval.months()));
                Ok(vec![E::SubscriptionStarted {
                    tenant_id: *tenant,
                    plan: plan.clone(),
                    price: price.clone(),
                    trial_ends_at,
                    anchor,
                    period_start: *at,
                    period_end,
                    at: *at,
                }])
            }
            C::ChangePlan { plan, price, at } => {
                let status = self.live()?;
                if status == SubscriptionStatus::Suspended {
                    return Err(SubscriptionError::Suspended);
                }
                let (Some(current), Some(current_price), Some(start), Some(end)) =
                    (&self.plan, &self.price, self.period_start, self.period_end)
                else {
                    return Err(SubscriptionError::NotSubscribed);
                };
                if current == plan && current_price == price {
                    // Back to the plan it is on: a scheduled change is dropped.
                    return Ok(match &self.scheduled {
                        Some(_) => vec![E::PlanChanged {
                            plan: plan.clone(),
                            price: price.clone(),
                            proration: None,
                            at: *at,
                        }],
                        None => vec![],
                    });
                }
                if price.currency != current_price.currency {
                    return Err(SubscriptionError::CurrencyChange);
                }
                if status == SubscriptionStatus::Trialing {
                    // Nothing was paid yet: the trial goes on with the new plan.
                    return Ok(vec![E::PlanChanged {
                        plan: plan.clone(),
                        price: price.clone(),
                        proration: None,
                        at: *at,
                    }]);
                }
                let upgrade = price.interval == current_price.interval
                    && price.monthly_amount() > current_price.monthly_amount();
                if upgrade {
                    let proration = Proration {
                        credit: prorated(current_price.amount, (start, end), *at),
                        charge: prorated(price.amount, (start, end), *at),
                    };
                    Ok(vec![E::PlanChanged {
                        plan: plan.clone(),
                        price: price.clone(),
                        proration: Some(proration),
                        at: *at,
                    }])
                } else {
                    Ok(vec![E::PlanChangeScheduled {
                        plan: plan.clone(),
                        price: price.clone(),
                        effective_at: end,
                        at: *at,
                    }])
                }
            }
            C::Cancel { at_period_end, at } => {
                self.live()?;
                match (at_period_end, self.period_end) {
                    (true, Some(end)) if end > *at => {
                        if self.cancel_at == Some(end) {
                            return Ok(vec![]);
                        }
                        Ok(vec![E::CancellationScheduled {
                            cancel_at: end,
                            at: *at,
                        }])
                    }
                    _ => Ok(vec![E::SubscriptionCancelled { at: *at }]),
                }
            }
            C::Resume { at } => {
                self.live()?;
                match self.cancel_at {
                    Some(cancel_at) if cancel_at > *at => {
                        Ok(vec![E::CancellationWithdrawn { at: *at }])
                    }
                    _ => Err(SubscriptionError::NothingToResume),
                }
            }
            C::Renew { at } => {
                self.live()?;
                let (Some(anchor), Some(end), Some(price)) =
                    (self.anchor, self.period_end, &self.price)
                else {
                    return Err(SubscriptionError::NotSubscribed);
                };
                if *at < end {
                    return Ok(vec![]);
                }
                if self.cancel_at.is_some_and(|c| c <= *at) {
                    return Ok(vec![E::SubscriptionCancelled { at: end }]);
                }
                let price = self.scheduled.as_ref().map_or(price, |(_, p)| p);
                // The next period boundary after `end`, counted from the anchor.
                let mut months = price.interval.months();
                while add_months(anchor, months) <= end {
                    months += price.interval.months();
                }
                Ok(vec![E::PeriodRenewed {
                    period_start: end,
                    period_end: add_months(anchor, months),
                    changed_to: self.scheduled.clone(),
                    at: *at,
                }])
            }
            // An outcome older than the last one recorded (webhooks arrive out of order).
            C::RecordPaymentFailure { at, .. } | C::RecordPaymentRecovery { at }
                if self.payment_changed_at.is_some_and(|last| last > *at) =>
            {
                self.live()?;
                Ok(vec![])
            }
            C::RecordPaymentFailure { grace, at } => match self.live()? {
                SubscriptionStatus::PastDue | SubscriptionStatus::Suspended => Ok(vec![]),
                _ => Ok(vec![E::PaymentFailed {
                    grace_until: *at + *grace,
                    at: *at,
                }]),
            },
            C::ExpireGrace { at } => match (self.live()?, self.grace_until) {
                (SubscriptionStatus::PastDue, Some(until)) if until <= *at => {
                    Ok(vec![E::SubscriptionSuspended { at: *at }])
                }
                _ => Ok(vec![]),
            },
            C::RecordPaymentRecovery { at } => match self.live()? {
                SubscriptionStatus::PastDue | SubscriptionStatus::Suspended => {
                    Ok(vec![E::PaymentRecovered { at: *at }])
                }
                _ => Ok(vec![]),
            },
            C::WarnAllowance {
                key,
                period_start,
                used,
                limit,
                mails,
                at,
            }
            | C::ReachAllowance {
                key,
                period_start,
                used,
                limit,
                mails,
                at,
            } => {
                let warning = matches!(command, C::WarnAllowance { .. });
                let noted = if warning { &self.warned } else { &self.reached };
                if noted.get(key) == Some(period_start) {
                    return Ok(vec![]);
                }
                let (key, period_start, used, limit, mails, at) =
                    (*key, *period_start, *used, *limit, mails.clone(), *at);
                Ok(vec![if warning {
                    E::AllowanceWarned {
                        key,
                        period_start,
                        used,
                        limit,
                        mails,
                        at,
                    }
                } else {
                    E::AllowanceReached {
                        key,
                        period_start,
                        used,
                        limit,
                        mails,
                        at,
                    }
                }])
            }
            C::EndTrial { at } => match (self.live()?, &self.price) {
                (SubscriptionStatus::Trialing, Some(price)) => Ok(vec![E::TrialEnded {
                    period_start: *at,
                    period_end: add_months(*at, price.interval.months()),
                    at: *at,
                }]),
                _ => Ok(vec![]),
            },
            C::LinkProvider {
                customer,
                subscription,
                at,
            } => {
                let mut events = Vec::new();
                if self.provider_customer.as_ref() != Some(customer) {
                    events.push(E::ProviderCustomerLinked {
                        customer: customer.clone(),
                        at: *at,
                    });
                }
                if let Some((id, item)) = subscription
                    && self.provider_subscription.as_ref() != Some(&(id.clone(), item.clone()))
                {
                    self.live()?;
                    events.push(E::ProviderSubscriptionLinked {
                        subscription: id.clone(),
                        item: item.clone(),
                        at: *at,
                    });
                }
                Ok(events)
            }
            // A tenant on the free plan (no subscription) can have overrides too.
            C::OverrideLimit { key, limit, at } => {
                if self.overrides.get(key) == limit.as_ref() {
                    return Ok(vec![]);
                }
                Ok(vec![E::LimitOverridden {
                    key: *key,
                    limit: *limit,
                    at: *at,
                }])
            }
        }
    }

    fn evolve(&mut self, event: &SubscriptionEvent) {
        use SubscriptionEvent as E;
        match event {
            E::SubscriptionStarted {
                tenant_id,
                plan,
                price,
                trial_ends_at,
                anchor,
                period_start,
                period_end,
                ..
            } => {
                self.tenant = Some(*tenant_id);
                self.plan = Some(plan.clone());
                self.price = Some(price.clone());
                self.status = Some(if trial_ends_at.is_some() {
                    SubscriptionStatus::Trialing
                } else {
                    SubscriptionStatus::Active
                });
                self.trial_used |= trial_ends_at.is_some();
                self.trial_ends_at = *trial_ends_at;
                self.anchor = Some(*anchor);
                self.period_start = Some(*period_start);
                self.period_end = Some(*period_end);
                self.cancel_at = None;
                self.scheduled = None;
                self.grace_until = None;
                // A new subscription gets a provider subscription of its own.
                self.provider_subscription = None;
            }
            E::PlanChanged { plan, price, .. } => {
                self.plan = Some(plan.clone());
                self.price = Some(price.clone());
                self.scheduled = None;
            }
            E::PlanChangeScheduled { plan, price, .. } => {
                self.scheduled = Some((plan.clone(), price.clone()));
            }
            E::CancellationScheduled { cancel_at, .. } => self.cancel_at = Some(*cancel_at),
            E::CancellationWithdrawn { .. } => self.cancel_at = None,
            E::SubscriptionCancelled { .. } => {
                self.status = Some(SubscriptionStatus::Cancelled);
                self.cancel_at = None;
                self.scheduled = None;
            }
            E::TrialEnded {
                period_start,
                period_end,
                ..
            } => {
                self.status = Some(SubscriptionStatus::Active);
                self.trial_ends_at = None;
                self.anchor = Some(*period_start);
                self.period_start = Some(*period_start);
                self.period_end = Some(*period_end);
            }
            E::AllowanceReached {
                key, period_start, ..
            } => {
                self.reached.insert(*key, *period_start);
            }
            E::ProviderCustomerLinked { customer, .. } => {
                self.provider_customer = Some(customer.clone());
            }
            E::ProviderSubscriptionLinked {
                subscription, item, ..
            } => {
                self.provider_subscription = Some((subscription.clone(), item.clone()));
            }
            E::PeriodRenewed {
                period_start,
                period_end,
                changed_to,
                ..
            } => {
                self.period_start = Some(*period_start);
                self.period_end = Some(*period_end);
                if let Some((plan, price)) = changed_to {
                    self.plan = Some(plan.clone());
                    self.price = Some(price.clone());
                }
                self.scheduled = None;
                if self.status == Some(SubscriptionStatus::Trialing) {
                    self.status = Some(SubscriptionStatus::Active);
                    self.trial_ends_at = None;
                }
            }
            E::PaymentFailed { grace_until, at } => {
                self.status = Some(SubscriptionStatus::PastDue);
                self.grace_until = Some(*grace_until);
                self.payment_changed_at = Some(*at);
            }
            E::SubscriptionSuspended { .. } => self.status = Some(SubscriptionStatus::Suspended),
            E::PaymentRecovered { at } => {
                self.status = Some(SubscriptionStatus::Active);
                self.grace_until = None;
                self.payment_changed_at = Some(*at);
            }
            E::AllowanceWarned {
                key, period_start, ..
            } => {
                self.warned.insert(*key, *period_start);
            }
            E::LimitOverridden { key, limit, .. } => match limit {
                Some(limit) => {
                    self.overrides.insert(*key, *limit);
                }
                None => {
                    self.overrides.remove(key);
                }
            },
        }
    }
}
