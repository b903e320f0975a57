//! Usage metering: the meter catalog ([`meter`]) and one [`UsageEvent`] stream per usage event
//! a tenant reports (`usage_event-<UUIDv5 of tenant and client id>`). The stream's name is
//! the duplicate check: an event whose id the tenant used before finds its stream and records
//! nothing, however long ago (also after its period closed) and in whichever process.
//!
//! An event counts in the period and buckets of its own timestamp, whenever it arrives. Which
//! events are refused (unknown meter, negative value, missing id or key, too far in the future,
//! too late) is decided before anything is written (`commands::metering`).

pub mod meter;

use crate::aggregate::Aggregate;
use crate::ids::TenantId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use meter::{Aggregation, CATALOG, Meter};

/// Longest client-supplied event id, in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// A usage event as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    pub meter: String,
    pub value: i64,
    pub key: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageEvent {
    pub recorded: Option<Recorded>,
}

impl UsageEvent {
    /// The stream id of `tenant`'s event `client_id`.
    pub fn id_of(tenant: TenantId, client_id: &str) -> Uuid {
        Uuid::new_v5(
            &tenant.as_uuid(),
            format!("usage-event:{client_id}").as_bytes(),
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordUsage {
    pub tenant: TenantId,
    pub client_id: String,
    pub usage: Recorded,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UsageEventEvent {
    UsageRecorded {
        tenant_id: TenantId,
        client_id: String,
        meter: String,
        value: i64,
        key: Option<String>,
        occurred_at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageEventError {}

impl Aggregate for UsageEvent {
    const CATEGORY: &'static str = "usage_event";
    type Command = RecordUsage;
    type Event = UsageEventEvent;
    type Error = UsageEventError;

    /// A second report of the same event records nothing (it is a duplicate).
    fn decide(&self, command: &RecordUsage) -> Result<Vec<UsageEventEvent>, UsageEventError> {
        if self.recorded.is_some() {
            return Ok(vec![]);
        }
        Ok(vec![UsageEventEvent::UsageRecorded {
            tenant_id: command.tenant,
            client_id: command.client_id.clone(),
            meter: command.usage.meter.clone(),
            value: command.usage.value,
            key: command.usage.key.clone(),
            occurred_at: command.usage.occurred_at,
        }])
    }

    fn evolve(&mut self, event: &UsageEventEvent) {
        let UsageEventEvent::UsageRecorded {
            meter,
            value,
            key,
            occurred_at,
            ..
        } = event;
        if self.recorded.is_none() {
            self.recorded = Some(Recorded {
                meter: meter.clone(),
                value: *value,
                key: key.clone(),
                occurred_at: *occurred_at,
            });
        }
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::testing::aggregate::{at, given};

    fn record(value: i64) -> RecordUsage {
        RecordUsage {
            tenant: TenantId::from_uuid(Uuid::from_u128(1)),
            client_id: "evt-1".into(),
            usage: Recorded {
                meter: "bandwidth.bytes".into(),
                value,
                key: None,
                occurred_at: at(1),
            },
        }
    }

    #[test]
    fn an_event_is_recorded_once_and_its_duplicate_records_nothing() {
        let recorded = given::<UsageEvent>([]).when(&record(10)).then_accepted();
        // The same id again, even with another value: the first stands.
        recorded.when(&record(99)).then_nothing();
        assert_eq!(
            recorded.state().recorded.as_ref().map(|r| r.value),
            Some(10)
        );
    }

    #[test]
    fn totals_follow_each_aggregation_in_any_order() {
        let rows = [
            (at(3), 5, Some("a")),
            (at(1), 9, Some("b")),
            (at(3), 7, Some("a")),
            (at(2), 1, None),
        ];
        let total = |key: &str| Meter::find(key).unwrap().total(rows);
        assert_eq!(total("bandwidth.bytes"), 22);
        assert_eq!(total("api.calls"), 4);
        assert_eq!(total("storage.peak_bytes"), 9);
        assert_eq!(total("active.users"), 2);
        // The latest timestamp wins; a tie goes to the larger value.
        assert_eq!(total("storage.bytes"), 7);
        let mut reversed = rows;
        reversed.reverse();
        assert_eq!(Meter::find("storage.bytes").unwrap().total(reversed), 7);
        assert_eq!(
            Meter::feeding(crate::plan::LimitKey::BandwidthBytesPerMonth)
                .map(|m| m.key)
                .collect::<Vec<_>>(),
            ["bandwidth.bytes"]
        );
    }
}
