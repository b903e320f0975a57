//! The meter catalog: what usage Tenantry counts, how a period's events add up, and which
//! plan allowance a meter feeds.

use crate::plan::LimitKey;
use serde::{Deserialize, Serialize};

/// How a meter's events in a bucket or period add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// The sum of the values (bytes moved, points ingested).
    Sum,
    /// How many events (each counts one; values are ignored).
    Count,
    /// The largest value.
    Max,
    /// How many distinct `key`s (exact, not an estimate).
    UniqueCount,
    /// The value of the event with the latest timestamp (a gauge: bytes stored).
    Latest,
}

impl Aggregation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sum => "sum",
            Self::Count => "count",
            Self::Max => "max",
            Self::UniqueCount => "unique_count",
            Self::Latest => "latest",
        }
    }
}

/// One meter of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meter {
    pub key: &'static str,
    pub aggregation: Aggregation,
    pub unit: &'static str,
    /// The monthly plan allowance this meter's usage counts against.
    pub feeds: Option<LimitKey>,
    /// Whether an event must name a `key` (the thing counted once: a user, a client).
    pub needs_key: bool,
}

/// Every meter of the platform.
pub const CATALOG: &[Meter] = &[
    Meter {
        key: "backup.bytes",
        aggregation: Aggregation::Sum,
        unit: "bytes",
        feeds: None,
        needs_key: false,
    },
    Meter {
        key: "bandwidth.bytes",
        aggregation: Aggregation::Sum,
        unit: "bytes",
        feeds: Some(LimitKey::BandwidthBytesPerMonth),
        needs_key: false,
    },
    Meter {
        key: "pipeline.datapoints",
        aggregation: Aggregation::Sum,
        unit: "points",
        feeds: Some(LimitKey::DataPointsPerMonth),
        needs_key: false,
    },
    Meter {
        key: "api.calls",
        aggregation: Aggregation::Count,
        unit: "calls",
        feeds: None,
        needs_key: false,
    },
    Meter {
        key: "storage.bytes",
        aggregation: Aggregation::Latest,
        unit: "bytes",
        feeds: None,
        needs_key: false,
    },
    Meter {
        key: "storage.peak_bytes",
        aggregation: Aggregation::Max,
        unit: "bytes",
        feeds: None,
        needs_key: false,
    },
    Meter {
        key: "active.users",
        aggregation: Aggregation::UniqueCount,
        unit: "users",
        feeds: None,
        needs_key: true,
    },
];

impl Meter {
    /// The catalog's meter named `key`.
    pub fn find(key: &str) -> Option<&'static Meter> {
        CATALOG.iter().find(|m| m.key == key)
    }

    /// The meters whose usage counts against `limit`.
    pub fn feeding(limit: LimitKey) -> impl Iterator<Item = &'static Meter> {
        CATALOG.iter().filter(move |m| m.feeds == Some(limit))
    }

    /// Folds `(timestamp, value, key)` rows (any order) by this meter's aggregation.
    pub fn total<'a>(
        &self,
        rows: impl IntoIterator<Item = (chrono::DateTime<chrono::Utc>, i64, Option<&'a str>)>,
    ) -> i64 {
        let mut rows = rows.into_iter();
        match self.aggregation {
            Aggregation::Sum => rows.map(|(_, v, _)| v).fold(0i64, i64::saturating_add),
            Aggregation::Count => i64::try_from(rows.count()).unwrap_or(i64::MAX),
            Aggregation::Max => rows.map(|(_, v, _)| v).max().unwrap_or(0),
            Aggregation::UniqueCount => {
                let keys: std::collections::BTreeSet<&str> =
                    rows.filter_map(|(_, _, k)| k).collect();
                i64::try_from(keys.len()).unwrap_or(i64::MAX)
            }
            Aggregation::Latest => {
                // Ties on the timestamp go to the larger value, so the answer is the same in
                // any order.
                let mut latest: Option<(chrono::DateTime<chrono::Utc>, i64)> = None;
                for (at, v, _) in rows.by_ref() {
                    if latest.is_none_or(|l| (at, v) > l) {
                        latest = Some((at, v));
                    }
                }
                latest.map_or(0, |(_, v)| v)
            }
        }
    }
}
