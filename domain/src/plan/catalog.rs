//! The catalog's value objects, parsed once at the edge and read back from events without
//! checking again (`transparent`), like every value object here.

use super::PlanError;
use serde::{Deserialize, Serialize};

/// A plan's stable key (`free`, `pro`): 1 to 40 of `a-z 0-9 -`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PlanKey(String);

impl PlanKey {
    pub fn parse(key: &str) -> Result<Self, PlanError> {
        let ok = (1..=40).contains(&key.len())
            && key.starts_with(|c: char| c.is_ascii_lowercase())
            && key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(Self(key.to_owned()))
        } else {
            Err(PlanError::InvalidKey)
        }
    }

    /// The plan every tenant is on until it subscribes to another.
    pub fn free() -> Self {
        Self("free".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A plan's display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PlanName(String);

impl PlanName {
    pub fn parse(name: &str) -> Result<Self, PlanError> {
        let name = name.trim();
        let len = name.chars().count();
        if len == 0 || len > 100 || name.chars().any(char::is_control) {
            return Err(PlanError::InvalidName);
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A plan and one of its versions: what a subscription is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRef {
    pub key: PlanKey,
    pub version: u32,
}

/// How often a subscription is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    Month,
    Year,
}

impl Interval {
    /// Months in one period.
    pub fn months(self) -> u32 {
        match self {
            Self::Month => 1,
            Self::Year => 12,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Month => "month",
            Self::Year => "year",
        }
    }
}

/// An ISO 4217 currency code, lower-case (`eur`, `usd`), as Stripe writes them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Currency(String);

impl Currency {
    pub fn parse(code: &str) -> Result<Self, PlanError> {
        let code = code.to_ascii_lowercase();
        if code.len() == 3 && code.chars().all(|c| c.is_ascii_lowercase()) {
            Ok(Self(code))
        } else {
            Err(PlanError::InvalidCurrency)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What one period costs, in minor units (cents) of `currency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    pub interval: Interval,
    pub amount: i64,
    pub currency: Currency,
}

impl Price {
    /// The price of a month (a yearly price's twelfth, rounded down), for comparing plans.
    pub fn monthly_amount(&self) -> i64 {
        self.amount / i64::from(self.interval.months())
    }
}

/// What a plan limits. Counts of held resources (`Sources`, `Members`, ...), sizes of one
/// item (`BackupBytes`), usage per billing period (`...PerMonth`), and two floors where less is
/// more (`MinScheduleIntervalSeconds`: the shortest schedule allowed; `RetentionDays`: the
/// longest retention allowed, a ceiling like the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKey {
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

impl LimitKey {
    pub const ALL: [Self; 10] = [
        Self::BackupBytes,
        Self::Sources,
        Self::Destinations,
        Self::MinScheduleIntervalSeconds,
        Self::BandwidthBytesPerMonth,
        Self::Pipelines,
        Self::DataPointsPerMonth,
        Self::RetentionDays,
        Self::Members,
        Self::ApiKeys,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BackupBytes => "backup_bytes",
            Self::Sources => "sources",
            Self::Destinations => "destinations",
            Self::MinScheduleIntervalSeconds => "min_schedule_interval_seconds",
            Self::BandwidthBytesPerMonth => "bandwidth_bytes_per_month",
            Self::Pipelines => "pipelines",
            Self::DataPointsPerMonth => "data_points_per_month",
            Self::RetentionDays => "retention_days",
            Self::Members => "members",
            Self::ApiKeys => "api_keys",
        }
    }

    /// The period allowance a meter's usage counts against (what overage is billed beyond),
    /// from the meter catalog.
    pub fn allowance_of(meter: &str) -> Option<Self> {
        crate::metering::Meter::find(meter).and_then(|m| m.feeds)
    }

    /// Whether a higher value is more generous (false only for the schedule floor).
    pub fn more_is_better(self) -> bool {
        self != Self::MinScheduleIntervalSeconds
    }
}

/// A limit's value: a number, or none at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    Unlimited,
    At(u64),
}

impl Limit {
    /// Whether `used` plus `more` stays within the limit.
    pub fn allows(self, used: u64, more: u64) -> bool {
        match self {
            Self::Unlimited => true,
            Self::At(limit) => used.saturating_add(more) <= limit,
        }
    }

    pub fn value(self) -> Option<u64> {
        match self {
            Self::Unlimited => None,
            Self::At(limit) => Some(limit),
        }
    }
}

/// A named capability a plan grants (`sso`, `audit_export`): 1 to 64 of `a-z 0-9 _`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Feature(String);

impl Feature {
    pub fn parse(name: &str) -> Result<Self, PlanError> {
        let ok = (1..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(PlanError::InvalidFeature)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Usage of `meter` beyond the plan's allowance is billed at `unit_price` minor units per
/// `per_units` units (for example 10 cents per 1,000,000,000 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overage {
    pub meter: String,
    pub unit_price: i64,
    pub per_units: u64,
}

impl Overage {
    /// The allowance this overage is billed beyond.
    pub fn allowance(&self) -> Option<LimitKey> {
        LimitKey::allowance_of(&self.meter)
    }

    /// What `over` units beyond the allowance cost: whole blocks of `per_units`, a started
    /// block counted in full.
    pub fn charge(&self, over: u64) -> i64 {
        let blocks = over.div_ceil(self.per_units);
        i64::try_from(blocks)
            .unwrap_or(i64::MAX)
            .saturating_mul(self.unit_price)
    }

    pub fn parse(meter: &str, unit_price: i64, per_units: u64) -> Result<Self, PlanError> {
        let ok = LimitKey::allowance_of(meter).is_some() && per_units > 0;
        if !ok {
            return Err(PlanError::InvalidOverage);
        }
        if unit_price < 0 {
            return Err(PlanError::NegativePrice);
        }
        Ok(Self {
            meter: meter.to_owned(),
            unit_price,
            per_units,
        })
    }
}
