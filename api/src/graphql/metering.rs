//! Usage metering: `recordUsage` (one event or a batch, members and write-scoped keys) and,
//! on the tenant, `usage`, `usageSeries` and `usageEvent`. Each calls `commands::metering` or
//! the usage read model.

use super::tenancy::{request_context, tenant_arg};
use super::{principal, services};
use crate::auth::grant;
use crate::error::{ApiError, GqlResult};
use crate::services::Services;
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use commands::metering::{UsageFate, UsageInput, record_usage};
use domain::access::Permission;
use domain::aggregate::Aggregate;
use domain::event::Position;
use domain::metering::{Meter, UsageEvent, UsageRefusal};
use domain::subscription::Subscription;
use projections::tenant_access::TenantScope;
use projections::usage::{Bucket, UsageReadModel};

/// Most events one `recordUsage` call carries.
pub const MAX_BATCH: usize = 1_000;
/// Most buckets one `usageSeries` answers.
pub const MAX_BUCKETS: i64 = 1_000;

#[derive(InputObject)]
pub struct UsageEventInput {
    /// The client's id of the event: the same id again is a duplicate, never counted twice.
    pub id: String,
    pub meter: String,
    /// The amount (ignored by counting meters).
    #[graphql(default = 1)]
    pub value: i64,
    /// What a distinct-count meter counts (a user id, say).
    pub key: Option<String>,
    /// When it happened (default: now). It counts in the period and buckets of this time.
    pub timestamp: Option<DateTime<Utc>>,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum UsageStatus {
    Counted,
    Duplicate,
    Refused,
}

#[derive(SimpleObject)]
pub struct UsageResult {
    pub id: String,
    pub status: UsageStatus,
    /// Why it was refused.
    pub reason: Option<String>,
    /// The reason's stable name (`UNKNOWN_METER`, `TOO_LATE`, ...).
    pub code: Option<String>,
    /// Where the counted event (or, for a duplicate, the original) is in the log.
    pub position: Option<String>,
}

#[derive(SimpleObject)]
pub struct RecordUsagePayload {
    /// One per event, in order.
    pub results: Vec<UsageResult>,
    pub counted: u32,
    pub duplicates: u32,
    pub refused: u32,
    pub position: String,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum UsageBucket {
    Hour,
    Day,
}

#[derive(SimpleObject)]
pub struct UsageTotal {
    pub meter: String,
    pub unit: String,
    pub aggregation: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub total: i64,
}

#[derive(SimpleObject)]
pub struct UsagePoint {
    pub start: DateTime<Utc>,
    pub total: i64,
}

/// Whether and where an event counted, or why not.
#[derive(SimpleObject)]
pub struct UsageExplanation {
    pub id: String,
    pub counted: bool,
    /// Why it does not count, or that it counted but the figures do not show it yet.
    pub reason: Option<String>,
    /// `null` once counted; the refusal's code (`UNKNOWN_METER`, `TOO_LATE`, ...);
    /// `NOT_RECEIVED` for an id never received (or refused without one).
    pub code: Option<String>,
    pub meter: Option<String>,
    pub value: Option<i64>,
    pub occurred_at: Option<DateTime<Utc>>,
    /// The billing period of its timestamp (the one it counts in, or came too late for).
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    /// The hour and day buckets it counts in.
    pub hour: Option<DateTime<Utc>>,
    pub day: Option<DateTime<Utc>>,
    pub position: Option<String>,
    /// When it was last refused (a refused event).
    pub refused_at: Option<DateTime<Utc>>,
    /// How long after the period's grace ran out it arrived (a `TOO_LATE` refusal).
    pub late_by_seconds: Option<i64>,
}

impl UsageExplanation {
    fn unknown(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            counted: false,
            reason: None,
            code: None,
            meter: None,
            value: None,
            occurred_at: None,
            period_start: None,
            period_end: None,
            hour: None,
            day: None,
            position: None,
            refused_at: None,
            late_by_seconds: None,
        }
    }
}

fn meter_arg(meter: &str) -> Result<&'static Meter, ApiError> {
    Meter::find(meter)
        .ok_or_else(|| ApiError::bad_input("meter", format!("no meter is named {meter:?}")))
}

async fn subscription(services: &Services, scope: &TenantScope) -> Result<Subscription, ApiError> {
    Ok(services
        .executor
        .load_current::<Subscription>(scope.tenant().as_uuid())
        .await?
        .state)
}

/// `tenant { usage(meter, from, to) }`: the total over `[from, to)`, the current billing
/// period by default.
pub(crate) async fn usage_of(
    services: &Services,
    scope: &TenantScope,
    meter: &str,
    range: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
) -> Result<UsageTotal, ApiError> {
    let meter = meter_arg(meter)?;
    let (default_from, default_to) = subscription(services, scope)
        .await?
        .period_containing(Utc::now());
    let (from, to) = (
        range.0.unwrap_or(default_from),
        range.1.unwrap_or(default_to),
    );
    if from >= to {
        return Err(ApiError::bad_input("to", "`to` must be after `from`"));
    }
    services.metrics.read_queries(1);
    let total = UsageReadModel::total(&services.read_db, scope, meter, (from, to)).await?;
    Ok(UsageTotal {
        meter: meter.key.to_owned(),
        unit: meter.unit.to_owned(),
        aggregation: meter.aggregation.as_str().to_owned(),
        from,
        to,
        total,
    })
}

pub(crate) async fn usage_series_of(
    services: &Services,
    scope: &TenantScope,
    meter: &str,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    bucket: UsageBucket,
) -> Result<Vec<UsagePoint>, ApiError> {
    let meter = meter_arg(meter)?;
    let bucket = match bucket {
        UsageBucket::Hour => Bucket::Hour,
        UsageBucket::Day => Bucket::Day,
    };
    if from >= to {
        return Err(ApiError::bad_input("to", "`to` must be after `from`"));
    }
    let buckets = (to - bucket.start_of(from)).num_seconds() / bucket.length().num_seconds();
    if buckets > MAX_BUCKETS {
        return Err(ApiError::bad_input(
            "bucket",
            format!("at most {MAX_BUCKETS} buckets: {buckets} asked; take a larger bucket"),
        ));
    }
    services.metrics.read_queries(1);
    Ok(
        UsageReadModel::series(&services.read_db, scope, meter, (from, to), bucket)
            .await?
            .into_iter()
            .map(|(start, total)| UsagePoint { start, total })
            .collect(),
    )
}

pub(crate) async fn usage_event_of(
    services: &Services,
    scope: &TenantScope,
    id: &str,
) -> Result<UsageExplanation, ApiError> {
    services.metrics.read_queries(1);
    let subscription = subscription(services, scope).await?;
    if let Some(event) = UsageReadModel::event(&services.read_db, scope, id).await? {
        let (period_start, period_end) = subscription.period_containing(event.occurred_at);
        return Ok(UsageExplanation {
            counted: true,
            meter: Some(event.meter),
            value: Some(event.value),
            occurred_at: Some(event.occurred_at),
            period_start: Some(period_start),
            period_end: Some(period_end),
            hour: Some(Bucket::Hour.start_of(event.occurred_at)),
            day: Some(Bucket::Day.start_of(event.occurred_at)),
            position: Some(event.position.to_string()),
            ..UsageExplanation::unknown(&event.client_id)
        });
    }
    // Not counted in the read model: the event's stream tells whether it was refused (and
    // why), counted but not yet projected, or never received.
    let stream = services
        .executor
        .load_current::<UsageEvent>(UsageEvent::id_of(scope.tenant(), id))
        .await?
        .state;
    let mut answer = UsageExplanation::unknown(id);
    if let Some(recorded) = stream.recorded {
        answer.counted = true;
        answer.reason =
            Some("counted; the usage figures have not caught up with it yet".to_owned());
        answer.meter = Some(recorded.meter);
        answer.value = Some(recorded.value);
        answer.occurred_at = Some(recorded.occurred_at);
    } else if let Some(refused) = stream.refused {
        let (period_start, period_end) = subscription.period_containing(refused.occurred_at);
        answer.reason = Some(refused.reason.to_string());
        answer.code = Some(refused.reason.code().to_owned());
        answer.late_by_seconds = match refused.reason {
            UsageRefusal::TooLate { seconds, .. } => Some(seconds),
            _ => None,
        };
        answer.meter = Some(refused.meter);
        answer.value = Some(refused.value);
        answer.occurred_at = Some(refused.occurred_at);
        answer.period_start = Some(period_start);
        answer.period_end = Some(period_end);
        answer.refused_at = Some(refused.refused_at);
    } else {
        answer.code = Some("NOT_RECEIVED".to_owned());
        answer.reason = Some(
            "no event with this id was received (an event refused for having no id cannot be \
             looked up)"
                .to_owned(),
        );
    }
    Ok(answer)
}

#[derive(Default)]
pub struct MeteringMutation;

#[Object]
impl MeteringMutation {
    /// Reports usage events (at most 1,000 per call; members and keys with write scope). Each
    /// gets its fate: counted, a duplicate of an id reported before, or refused with the
    /// reason; the others are recorded whatever happens to one.
    async fn record_usage(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        events: Vec<UsageEventInput>,
        idempotency_key: Option<ID>,
    ) -> GqlResult<RecordUsagePayload> {
        let (services, principal) = (services(ctx), principal(ctx));
        let tenant = tenant_arg(&tenant_id)?;
        grant(services, &principal, tenant, Permission::Write).await?;
        if events.is_empty() || events.len() > MAX_BATCH {
            return Err(ApiError::bad_input(
                "events",
                format!("1 to {MAX_BATCH} events per call, got {}", events.len()),
            )
            .into());
        }
        let cmd_ctx = request_context(ctx, idempotency_key.as_ref()).await?;
        let now = Utc::now();
        let inputs: Vec<UsageInput> = events
            .into_iter()
            .map(|e| UsageInput {
                id: e.id,
                meter: e.meter,
                value: e.value,
                key: e.key,
                timestamp: e.timestamp.unwrap_or(now),
            })
            .collect();
        let fates = record_usage(
            &services.executor,
            &cmd_ctx,
            now,
            tenant,
            services.config.usage_rules,
            &inputs,
        )
        .await;
        services.metrics.command(
            UsageEvent::CATEGORY,
            if fates.is_ok() { "ok" } else { "error" },
        );
        let fates = fates.map_err(ApiError::from)?;
        let position = fates
            .iter()
            .filter_map(UsageFate::position)
            .max()
            .unwrap_or(0);
        services
            .written(Position(position), &[UsageReadModel::NAME])
            .await?;
        let mut payload = RecordUsagePayload {
            results: Vec::with_capacity(fates.len()),
            counted: 0,
            duplicates: 0,
            refused: 0,
            position: position.to_string(),
        };
        for (input, fate) in inputs.into_iter().zip(fates) {
            let (status, refusal, position) = match fate {
                UsageFate::Counted { position } => {
                    payload.counted += 1;
                    (UsageStatus::Counted, None, Some(position.to_string()))
                }
                UsageFate::Duplicate { position } => {
                    payload.duplicates += 1;
                    (UsageStatus::Duplicate, None, Some(position.to_string()))
                }
                UsageFate::Refused(reason) => {
                    payload.refused += 1;
                    (UsageStatus::Refused, Some(reason), None)
                }
            };
            payload.results.push(UsageResult {
                id: input.id,
                status,
                reason: refusal.as_ref().map(ToString::to_string),
                code: refusal.map(|r| r.code().to_owned()),
                position,
            });
        }
        Ok(payload)
    }
}
