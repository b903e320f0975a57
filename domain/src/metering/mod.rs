//! Usage metering: the meter catalog ([`meter`]) and one [`UsageEvent`] stream per usage event
//! a tenant reports (`usage_event-<UUIDv5 of tenant and client id>`). The stream's name is
//! the duplicate check: an event whose id the tenant used before finds its stream and records
//! nothing, however long ago (also after its period closed) and in whichever process.
//!
//! An event counts in the period and buckets of its own timestamp, whenever it arrives. Which
//! events are refused (unknown meter, negative value, missing id or key, too far in the future,
//! too late) is decided by `commands::metering` before anything is counted. A refused event
//! that has an id is remembered on its stream (`UsageRefused`, once per reason): it counts
//! nothing, but `usageEvent(id)` can say why it did not count, and billing reconciliation can
//! name a late event as the cause of a difference. The same id sent again, corrected, counts.

pub mod meter;

use crate::aggregate::Aggregate;
use crate::ids::TenantId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use meter::{Aggregation, CATALOG, Meter};

/// Longest client-supplied event id, in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// Largest value one event may carry: 2^53 - 1 (about 9 PB as bytes), the largest integer
/// a JavaScript client reads exactly.
pub const MAX_VALUE: i64 = (1 << 53) - 1;

/// A usage event as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    pub meter: String,
    pub value: i64,
    pub key: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

/// Why an event was refused. Every reason but [`UsageRefusal::MissingId`] is recorded on the
/// event's stream; the message is what clients read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UsageRefusal {
    #[error("the event has no id (1 to {MAX_ID_BYTES} bytes)")]
    MissingId,
    #[error("no meter is named {meter:?}")]
    UnknownMeter { meter: String },
    #[error("the value is negative")]
    NegativeValue,
    #[error("the value is over {max}")]
    TooLarge { max: i64 },
    #[error("the meter {meter} counts distinct keys: the event needs a key")]
    MissingKey { meter: String },
    #[error("the timestamp is {seconds} s ahead of the server's clock (at most {allowed} s)")]
    InTheFuture { seconds: i64, allowed: i64 },
    #[error(
        "too late: its period ended at {period_end}, {seconds} s after the grace of {grace} s ran out"
    )]
    TooLate {
        period_end: DateTime<Utc>,
        seconds: i64,
        grace: i64,
    },
}

impl UsageRefusal {
    /// A stable name of the reason (`TOO_LATE`, ...), for clients to match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingId => "MISSING_ID",
            Self::UnknownMeter { .. } => "UNKNOWN_METER",
            Self::NegativeValue => "NEGATIVE_VALUE",
            Self::TooLarge { .. } => "TOO_LARGE",
            Self::MissingKey { .. } => "MISSING_KEY",
            Self::InTheFuture { .. } => "IN_THE_FUTURE",
            Self::TooLate { .. } => "TOO_LATE",
        }
    }
}

/// A refusal as recorded: what the client sent (the meter name truncated to
/// [`MAX_METER_BYTES`]; never the key, which may name a person) and why it was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refused {
    pub meter: String,
    pub value: i64,
    pub occurred_at: DateTime<Utc>,
    pub reason: UsageRefusal,
    pub refused_at: DateTime<Utc>,
}

/// Longest meter name a refusal keeps, in bytes.
pub const MAX_METER_BYTES: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageEvent {
    pub recorded: Option<Recorded>,
    /// The latest refusal of this id, while it has not counted.
    pub refused: Option<Refused>,
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

#[derive(Debug, Clone, PartialEq)]
pub struct RefuseUsage {
    pub tenant: TenantId,
    pub client_id: String,
    pub refused: Refused,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UsageCommand {
    Record(RecordUsage),
    /// Remembers why an event was refused (nothing when it counted, or when the same reason
    /// is already on record).
    Refuse(RefuseUsage),
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
    UsageRefused {
        tenant_id: TenantId,
        client_id: String,
        meter: String,
        value: i64,
        occurred_at: DateTime<Utc>,
        reason: UsageRefusal,
        refused_at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageEventError {}

impl Aggregate for UsageEvent {
    const CATEGORY: &'static str = "usage_event";
    type Command = UsageCommand;
    type Event = UsageEventEvent;
    type Error = UsageEventError;

    /// A second report of the same event records nothing (it is a duplicate); a refusal is
    /// recorded only while the event has not counted, once per reason.
    fn decide(&self, command: &UsageCommand) -> Result<Vec<UsageEventEvent>, UsageEventError> {
        if self.recorded.is_some() {
            return Ok(vec![]);
        }
        Ok(match command {
            UsageCommand::Record(command) => vec![UsageEventEvent::UsageRecorded {
                tenant_id: command.tenant,
                client_id: command.client_id.clone(),
                meter: command.usage.meter.clone(),
                value: command.usage.value,
                key: command.usage.key.clone(),
                occurred_at: command.usage.occurred_at,
            }],
            UsageCommand::Refuse(command) => {
                let again = self.refused.as_ref().is_some_and(|r| {
                    std::mem::discriminant(&r.reason)
                        == std::mem::discriminant(&command.refused.reason)
                });
                if again || command.refused.reason == UsageRefusal::MissingId {
                    return Ok(vec![]);
                }
                let refused = &command.refused;
                let mut meter = refused.meter.clone();
                if meter.len() > MAX_METER_BYTES {
                    let mut end = MAX_METER_BYTES;
                    while !meter.is_char_boundary(end) {
                        end -= 1;
                    }
                    meter.truncate(end);
                }
                vec![UsageEventEvent::UsageRefused {
                    tenant_id: command.tenant,
                    client_id: command.client_id.clone(),
                    meter,
                    value: refused.value,
                    occurred_at: refused.occurred_at,
                    reason: refused.reason.clone(),
                    refused_at: refused.refused_at,
                }]
            }
        })
    }

    fn evolve(&mut self, event: &UsageEventEvent) {
        match event {
            UsageEventEvent::UsageRecorded {
                meter,
                value,
                key,
                occurred_at,
                ..
            } => {
                if self.recorded.is_none() {
                    self.recorded = Some(Recorded {
                        meter: meter.clone(),
                        value: *value,
                        key: key.clone(),
                        occurred_at: *occurred_at,
                    });
                    self.refused = None;
                }
            }
            UsageEventEvent::UsageRefused {
                meter,
                value,
                occurred_at,
                reason,
                refused_at,
                ..
            } => {
                if self.recorded.is_none() {
                    self.refused = Some(Refused {
                        meter: meter.clone(),
                        value: *value,
                        occurred_at: *occurred_at,
                        reason: reason.clone(),
                        refused_at: *refused_at,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::testing::aggregate::{at, given};

    fn record(value: i64) -> UsageCommand {
        UsageCommand::Record(RecordUsage {
            tenant: TenantId::from_uuid(Uuid::from_u128(1)),
            client_id: "evt-1".into(),
            usage: Recorded {
                meter: "bandwidth.bytes".into(),
                value,
                key: None,
                occurred_at: at(1),
            },
        })
    }

    fn refuse(reason: UsageRefusal) -> UsageCommand {
        UsageCommand::Refuse(RefuseUsage {
            tenant: TenantId::from_uuid(Uuid::from_u128(1)),
            client_id: "evt-1".into(),
            refused: Refused {
                meter: "bandwidth".repeat(20),
                value: 10,
                occurred_at: at(1),
                reason,
                refused_at: at(2),
            },
        })
    }

    #[test]
    fn a_refusal_is_remembered_once_per_reason_until_the_event_counts() {
        let unknown = || UsageRefusal::UnknownMeter {
            meter: "bandwidth".repeat(20),
        };
        let refused = given::<UsageEvent>([])
            .when(&refuse(unknown()))
            .then_accepted();
        let kept = refused.state().refused.clone().unwrap();
        assert_eq!(
            kept.meter.len(),
            MAX_METER_BYTES,
            "a long meter name is cut"
        );
        // The same reason again records nothing; another reason is remembered.
        refused.when(&refuse(unknown())).then_nothing();
        let late = refused
            .when(&refuse(UsageRefusal::TooLate {
                period_end: at(0),
                seconds: 5,
                grace: 10,
            }))
            .then_accepted();
        assert_eq!(
            late.state().refused.as_ref().unwrap().reason.code(),
            "TOO_LATE"
        );
        // Corrected and sent again, it counts; a refusal after that records nothing.
        let counted = late.when(&record(10)).then_accepted();
        assert!(counted.state().refused.is_none());
        counted
            .when(&refuse(UsageRefusal::NegativeValue))
            .then_nothing();
        // Without an id there is nothing to remember.
        given::<UsageEvent>([])
            .when(&refuse(UsageRefusal::MissingId))
            .then_nothing();
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
