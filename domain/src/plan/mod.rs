//! The plan catalog: what tenants can subscribe to. One stream per plan (`plan-<UUIDv5 of its
//! key>`), holding its published versions. A published version never changes: publishing
//! again makes the next version, and subscriptions stay on the version they took until they
//! are moved. Prices are integer minor units with their currency.
//!
//! This file holds the [`Plan`] state, folds events into it and decides commands; the value
//! objects (keys, prices, limits, features, overage) are in [`catalog`].

mod catalog;
mod error;

#[cfg(test)]
mod tests;

pub use catalog::{
    Currency, Feature, Interval, Limit, LimitKey, Overage, PlanKey, PlanName, PlanRef, Price,
};
pub use error::PlanError;

use crate::aggregate::Aggregate;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Namespace of plan stream ids (UUIDv5 of the key).
const PLANS: Uuid = Uuid::from_u128(0x2b8f_61d0_9a7c_4e35_8c14_f06e_3d92_a571);

/// One published version of a plan: everything a subscription to it is bound by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanVersion {
    pub version: u32,
    pub name: PlanName,
    /// At most one price per interval, all in one currency.
    pub prices: Vec<Price>,
    pub trial_days: u32,
    /// Limits not named are unlimited.
    pub limits: BTreeMap<LimitKey, Limit>,
    pub features: BTreeSet<Feature>,
    /// Meters billed beyond the plan's allowance, and at what price.
    pub overage: Vec<Overage>,
    pub published_at: DateTime<Utc>,
}

impl PlanVersion {
    /// The price for `interval`, if the plan is sold that way.
    pub fn price(&self, interval: Interval) -> Option<&Price> {
        self.prices.iter().find(|p| p.interval == interval)
    }

    /// The limit on `key` (unlimited when the plan names none).
    pub fn limit(&self, key: LimitKey) -> Limit {
        self.limits.get(&key).copied().unwrap_or(Limit::Unlimited)
    }

    /// What the plan costs a month, for ordering plans (a yearly price counts a twelfth).
    pub fn monthly_amount(&self) -> i64 {
        self.prices
            .iter()
            .map(Price::monthly_amount)
            .min()
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub key: Option<PlanKey>,
    pub versions: BTreeMap<u32, PlanVersion>,
    /// Retired plans take no new subscriptions; existing ones keep their version.
    pub retired: bool,
}

impl Plan {
    /// The id of `key`'s stream.
    pub fn id_of(key: &PlanKey) -> Uuid {
        Uuid::new_v5(&PLANS, key.as_str().as_bytes())
    }

    pub fn latest(&self) -> Option<&PlanVersion> {
        self.versions.values().next_back()
    }

    pub fn version(&self, version: u32) -> Option<&PlanVersion> {
        self.versions.get(&version)
    }
}

/// What an operator publishes: the content of a new version.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanDraft {
    pub name: PlanName,
    pub prices: Vec<Price>,
    pub trial_days: u32,
    pub limits: BTreeMap<LimitKey, Limit>,
    pub features: BTreeSet<Feature>,
    pub overage: Vec<Overage>,
}

impl PlanDraft {
    /// The free plan every platform starts with (operators publish new versions of it):
    /// one backup source and destination, daily backups of up to 1 GB, 5 GB of bandwidth
    /// and 100,000 data points a month, one pipeline, 7 days of retention, 5 members and
    /// 5 API keys.
    pub fn free() -> Self {
        const GB: u64 = 1_000_000_000;
        let limits = [
            (LimitKey::Sources, 1),
            (LimitKey::Destinations, 1),
            (LimitKey::MinScheduleIntervalSeconds, 86_400),
            (LimitKey::BackupBytes, GB),
            (LimitKey::BandwidthBytesPerMonth, 5 * GB),
            (LimitKey::Pipelines, 1),
            (LimitKey::DataPointsPerMonth, 100_000),
            (LimitKey::RetentionDays, 7),
            (LimitKey::Members, 5),
            (LimitKey::ApiKeys, 5),
        ];
        Self {
            name: PlanName::parse("Free").unwrap_or_else(|_| unreachable!()),
            prices: vec![Price {
                interval: Interval::Month,
                amount: 0,
                currency: Currency::parse("eur").unwrap_or_else(|_| unreachable!()),
            }],
            trial_days: 0,
            limits: limits
                .into_iter()
                .map(|(key, value)| (key, Limit::At(value)))
                .collect(),
            features: BTreeSet::new(),
            overage: vec![],
        }
    }

    fn check(&self) -> Result<(), PlanError> {
        if self.prices.is_empty() {
            return Err(PlanError::NoPrice);
        }
        let currency = &self.prices[0].currency;
        if self.prices.iter().any(|p| &p.currency != currency) {
            return Err(PlanError::MixedCurrencies);
        }
        if self.prices.iter().any(|p| p.amount < 0) || self.overage.iter().any(|o| o.unit_price < 0)
        {
            return Err(PlanError::NegativePrice);
        }
        for interval in [Interval::Month, Interval::Year] {
            if self
                .prices
                .iter()
                .filter(|p| p.interval == interval)
                .count()
                > 1
            {
                return Err(PlanError::DuplicatePrice(interval));
            }
        }
        if self.trial_days > 365 {
            return Err(PlanError::TrialTooLong);
        }
        if self.overage.iter().any(|o| o.per_units == 0) {
            return Err(PlanError::InvalidOverage);
        }
        Ok(())
    }

    fn same_as(&self, version: &PlanVersion) -> bool {
        self.name == version.name
            && self.prices == version.prices
            && self.trial_days == version.trial_days
            && self.limits == version.limits
            && self.features == version.features
            && self.overage == version.overage
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PlanCommand {
    /// Publishes `draft` as the plan's next version (a draft identical to the latest version
    /// publishes nothing).
    Publish {
        key: PlanKey,
        draft: PlanDraft,
        at: DateTime<Utc>,
    },
    /// No new subscriptions; existing ones keep their version.
    Retire { at: DateTime<Utc> },
}

/// The facts stored on a plan's stream. Their stored shape is pinned by the golden files in
/// `domain/tests/golden/plan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PlanEvent {
    PlanVersionPublished { key: PlanKey, version: PlanVersion },
    PlanRetired { at: DateTime<Utc> },
}

impl Aggregate for Plan {
    const CATEGORY: &'static str = "plan";
    type Command = PlanCommand;
    type Event = PlanEvent;
    type Error = PlanError;

    fn decide(&self, command: &PlanCommand) -> Result<Vec<PlanEvent>, PlanError> {
        match command {
            PlanCommand::Publish { key, draft, at } => {
                draft.check()?;
                if self.latest().is_some_and(|latest| draft.same_as(latest)) {
                    return Ok(vec![]);
                }
                let version = self.latest().map_or(1, |v| v.version + 1);
                Ok(vec![PlanEvent::PlanVersionPublished {
                    key: key.clone(),
                    version: PlanVersion {
                        version,
                        name: draft.name.clone(),
                        prices: draft.prices.clone(),
                        trial_days: draft.trial_days,
                        limits: draft.limits.clone(),
                        features: draft.features.clone(),
                        overage: draft.overage.clone(),
                        published_at: *at,
                    },
                }])
            }
            PlanCommand::Retire { at } => {
                if self.key.is_none() {
                    return Err(PlanError::NotFound);
                }
                if self.retired {
                    return Ok(vec![]);
                }
                Ok(vec![PlanEvent::PlanRetired { at: *at }])
            }
        }
    }

    fn evolve(&mut self, event: &PlanEvent) {
        match event {
            PlanEvent::PlanVersionPublished { key, version } => {
                self.key = Some(key.clone());
                self.versions.insert(version.version, version.clone());
                // Publishing again brings a retired plan back.
                self.retired = false;
            }
            PlanEvent::PlanRetired { .. } => self.retired = true,
        }
    }
}
