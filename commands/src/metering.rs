//! Recording usage: one use case for every ingestion path (other areas through the write
//! path, the GraphQL mutation, the NDJSON endpoint). Each event of a batch gets its own fate:
//! counted, a duplicate of an event the tenant reported before (same id), or refused with the
//! reason; one refusal never stops the rest of the batch.
//!
//! Rules, checked before anything is counted: the meter is in the catalog; the id is 1 to
//! [`MAX_ID_BYTES`] bytes; the value is 0 to [`MAX_VALUE`] (a count's value is ignored, so
//! any); a meter that counts distinct keys gets a key; the timestamp is at most
//! [`IngestRules::future_skew`] ahead of now; and the billing period of the timestamp
//! (`Subscription::period_containing`) ended no longer than [`IngestRules::late_grace`] ago.
//! An accepted event counts in the period and buckets of its own timestamp. A refused event
//! with an id is remembered on its stream (once per reason, never once it counted), so that
//! `usageEvent(id)` explains it later.

use crate::{CommandContext, CommandError, Executor, LoadError};
use chrono::{DateTime, Duration, Utc};
use domain::ids::{CommandId, TenantId};
pub use domain::metering::UsageRefusal;
use domain::metering::{
    Aggregation, MAX_ID_BYTES, MAX_VALUE, Meter, RecordUsage, Recorded, RefuseUsage, Refused,
    UsageCommand, UsageEvent,
};
use domain::subscription::Subscription;
use futures_util::future::join_all;
use uuid::Uuid;

/// How far from now an event's timestamp may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestRules {
    /// How far ahead of the server's clock a timestamp may be (clock skew).
    pub future_skew: Duration,
    /// How long after its period's end an event is still accepted.
    pub late_grace: Duration,
}

impl Default for IngestRules {
    fn default() -> Self {
        Self {
            future_skew: Duration::minutes(5),
            late_grace: Duration::days(3),
        }
    }
}

/// One usage event as a client reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageInput {
    pub id: String,
    pub meter: String,
    pub value: i64,
    pub key: Option<String>,
    pub timestamp: DateTime<Utc>,
}

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageFate {
    /// Counted, at this log position.
    Counted {
        position: u64,
    },
    /// Reported before: the first report counts, this one does not.
    Duplicate {
        position: u64,
    },
    Refused(UsageRefusal),
}

impl UsageFate {
    /// Where the counted event (for a duplicate, the original) is in the log.
    pub fn position(&self) -> Option<u64> {
        match self {
            Self::Counted { position } | Self::Duplicate { position } => Some(*position),
            Self::Refused(_) => None,
        }
    }
}

fn check(
    input: &UsageInput,
    now: DateTime<Utc>,
    rules: IngestRules,
    subscription: &Subscription,
) -> Result<&'static Meter, UsageRefusal> {
    if input.id.is_empty() || input.id.len() > MAX_ID_BYTES {
        return Err(UsageRefusal::MissingId);
    }
    let meter = Meter::find(&input.meter).ok_or_else(|| UsageRefusal::UnknownMeter {
        meter: input.meter.clone(),
    })?;
    if input.value < 0 && meter.aggregation != Aggregation::Count {
        return Err(UsageRefusal::NegativeValue);
    }
    if input.value > MAX_VALUE && meter.aggregation != Aggregation::Count {
        return Err(UsageRefusal::TooLarge { max: MAX_VALUE });
    }
    if meter.needs_key && input.key.as_deref().is_none_or(str::is_empty) {
        return Err(UsageRefusal::MissingKey {
            meter: meter.key.to_owned(),
        });
    }
    let ahead = input.timestamp - now;
    if ahead > rules.future_skew {
        return Err(UsageRefusal::InTheFuture {
            seconds: ahead.num_seconds(),
            allowed: rules.future_skew.num_seconds(),
        });
    }
    let (_, period_end) = subscription.period_containing(input.timestamp);
    let overdue = now - (period_end + rules.late_grace);
    if overdue > Duration::zero() {
        return Err(UsageRefusal::TooLate {
            period_end,
            seconds: overdue.num_seconds(),
            grace: rules.late_grace.num_seconds(),
        });
    }
    Ok(meter)
}

/// Records `batch` for `tenant` (see the module's documentation); one fate per event, in
/// order. Events are written concurrently, so a batch shares the store's group commits.
pub async fn record_usage(
    exec: &Executor,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    tenant: TenantId,
    rules: IngestRules,
    batch: &[UsageInput],
) -> Result<Vec<UsageFate>, CommandError<std::convert::Infallible>> {
    let subscription = exec
        .load::<Subscription>(tenant.as_uuid())
        .await
        .map_err(LoadError::into_command)?
        .state;
    // The first acceptable occurrence of an id in the batch is the one written; a later one
    // is its duplicate (written concurrently, the winner would be a matter of timing).
    let mut first_of = std::collections::HashMap::new();
    let mut plan = Vec::with_capacity(batch.len());
    for (index, input) in batch.iter().enumerate() {
        plan.push(match check(input, now, rules, &subscription) {
            Err(refusal) => Planned::Refused(refusal),
            Ok(meter) => match first_of.get(input.id.as_str()) {
                Some(&first) => Planned::SameAs(first),
                None => {
                    first_of.insert(input.id.as_str(), index);
                    Planned::Write(meter)
                }
            },
        });
    }
    let fates = batch.iter().zip(&plan).map(|(input, planned)| async move {
        match planned {
            Planned::Refused(refusal) => refuse(exec, ctx, now, tenant, input, refusal).await,
            // Filled in below from what the first occurrence became.
            Planned::SameAs(_) => Ok(UsageFate::Duplicate { position: 0 }),
            Planned::Write(meter) => write(exec, ctx, tenant, input, meter).await,
        }
    });
    let mut fates: Vec<UsageFate> = join_all(fates)
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    for (index, planned) in plan.iter().enumerate() {
        if let Planned::SameAs(first) = planned {
            let position = fates[*first].position().unwrap_or_default();
            fates[index] = UsageFate::Duplicate { position };
        }
    }
    Ok(fates)
}

/// Writes one accepted event: counted, or a duplicate of the stream already there.
async fn write(
    exec: &Executor,
    ctx: &CommandContext,
    tenant: TenantId,
    input: &UsageInput,
    meter: &Meter,
) -> Result<UsageFate, CommandError<std::convert::Infallible>> {
    let id = UsageEvent::id_of(tenant, &input.id);
    // The command id derives from the event's stream: a retried batch is a no-op.
    let ctx = ctx
        .clone()
        .for_tenant(tenant)
        .with_command_id(CommandId::from_uuid(Uuid::new_v5(&id, b"record")));
    let command = UsageCommand::Record(RecordUsage {
        tenant,
        client_id: input.id.clone(),
        usage: Recorded {
            meter: meter.key.to_owned(),
            value: if meter.aggregation == Aggregation::Count {
                1
            } else {
                input.value
            },
            key: input.key.clone().filter(|k| !k.is_empty()),
            occurred_at: input.timestamp,
        },
    });
    let never =
        |e: CommandError<domain::metering::UsageEventError>| e.map_rejection(|e| match e {});
    // Most events are new: written without reading first. One whose stream exists is a
    // duplicate, decided against the stream (for the original's position).
    let outcome = match exec
        .create::<UsageEvent>(id, &command, &ctx)
        .await
        .map_err(never)?
    {
        Some(outcome) => outcome,
        None => exec
            .execute::<UsageEvent>(id, &command, &ctx)
            .await
            .map_err(never)?,
    };
    let position = outcome.position.0;
    Ok(if outcome.appended > 0 && !outcome.replayed {
        UsageFate::Counted { position }
    } else {
        UsageFate::Duplicate { position }
    })
}

/// Remembers why an event with an id was refused (see `UsageCommand::Refuse`); the fate stays
/// the refusal.
async fn refuse(
    exec: &Executor,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    tenant: TenantId,
    input: &UsageInput,
    refusal: &UsageRefusal,
) -> Result<UsageFate, CommandError<std::convert::Infallible>> {
    if *refusal != UsageRefusal::MissingId {
        let id = UsageEvent::id_of(tenant, &input.id);
        let command_id = Uuid::new_v5(&id, format!("refuse:{}", refusal.code()).as_bytes());
        let ctx = ctx
            .clone()
            .for_tenant(tenant)
            .with_command_id(CommandId::from_uuid(command_id));
        let command = UsageCommand::Refuse(RefuseUsage {
            tenant,
            client_id: input.id.clone(),
            refused: Refused {
                meter: input.meter.clone(),
                value: input.value,
                occurred_at: input.timestamp,
                reason: refusal.clone(),
                refused_at: now,
            },
        });
        let never =
            |e: CommandError<domain::metering::UsageEventError>| e.map_rejection(|e| match e {});
        // Usually the id is new: one write, no read (as for a counted event).
        if exec
            .create::<UsageEvent>(id, &command, &ctx)
            .await
            .map_err(never)?
            .is_none()
        {
            exec.execute::<UsageEvent>(id, &command, &ctx)
                .await
                .map_err(never)?;
        }
    }
    Ok(UsageFate::Refused(refusal.clone()))
}

enum Planned {
    Refused(UsageRefusal),
    Write(&'static Meter),
    /// A later occurrence of the id at this index of the batch.
    SameAs(usize),
}

/// The name of the reactor that turns metered usage into allowance thresholds.
pub const USAGE_THRESHOLDS: &str = "usage_thresholds";

/// Follows counted usage events; for each tenant, allowance and period a batch touched, reads
/// the usage through those events (the usage read model, waited for) and records the
/// thresholds crossed (`billing::note_usage`: 80% and 100%, once per allowance and period,
/// with mails to the owners). One reactor, one batch at a time, and command ids derived from
/// tenant, allowance, period and threshold: concurrent ingestion, redelivery and a rebuilt
/// read model never fire a threshold twice; a new period fires them again.
#[derive(Debug, Clone)]
pub struct UsageThresholds {
    exec: Executor,
    usage: std::sync::Arc<dyn domain::usage::UsageFigures>,
}

impl UsageThresholds {
    pub fn new(exec: Executor, usage: std::sync::Arc<dyn domain::usage::UsageFigures>) -> Self {
        Self { exec, usage }
    }
}

#[async_trait::async_trait]
impl domain::reactor::Reactor for UsageThresholds {
    fn name(&self) -> &'static str {
        USAGE_THRESHOLDS
    }

    fn reads(&self) -> domain::event::Reads {
        use domain::aggregate::Aggregate;
        domain::event::Reads::categories(&[UsageEvent::CATEGORY])
    }

    async fn react(
        &self,
        events: &[domain::event::RecordedEvent],
    ) -> Result<(), domain::reactor::ReactionError> {
        use domain::metering::UsageEventEvent;
        use domain::reactor::{ReactionError, decoded};
        type Touched = (
            TenantId,
            domain::plan::LimitKey,
            (DateTime<Utc>, DateTime<Utc>),
        );
        let Some(last) = events.last() else {
            return Ok(());
        };
        let mut touched: Vec<Touched> = Vec::new();
        let mut periods = std::collections::HashMap::new();
        for event in events {
            let Some(UsageEventEvent::UsageRecorded {
                tenant_id,
                meter,
                occurred_at,
                ..
            }) = decoded::<UsageEvent>(event)?
            else {
                continue;
            };
            let Some(key) = Meter::find(&meter).and_then(|m| m.feeds) else {
                continue;
            };
            let subscription = match periods.get(&tenant_id) {
                Some(s) => s,
                None => {
                    let loaded = self
                        .exec
                        .load::<Subscription>(tenant_id.as_uuid())
                        .await
                        .map_err(|e| ReactionError::at(event, e))?
                        .state;
                    periods.entry(tenant_id).or_insert(loaded)
                }
            };
            let entry = (tenant_id, key, subscription.period_containing(occurred_at));
            if !touched.contains(&entry) {
                touched.push(entry);
            }
        }
        for (tenant, key, period) in touched {
            let used = self
                .usage
                .used_through(tenant, key, period, last.position)
                .await
                .map_err(|e| ReactionError::at(last, e))?;
            match crate::billing::note_usage(
                &self.exec,
                last.recorded_at,
                tenant,
                (key, period),
                used,
            )
            .await
            {
                Ok(_) => {}
                // Closed or gone meanwhile: nothing to tell.
                Err(CommandError::Rejected(error)) => {
                    tracing::info!(reactor = USAGE_THRESHOLDS, tenant.id = %tenant, error = %error, "threshold not recorded");
                }
                Err(error) => return Err(ReactionError::at(last, error)),
            }
        }
        Ok(())
    }
}
