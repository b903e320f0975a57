//! The usage read model: every counted usage event (`usage_events`, one row per tenant and
//! client id), from which totals over any range are exact by construction (each meter's
//! aggregation in SQL: `SUM`, `COUNT`, `MAX`, `COUNT(DISTINCT key)`, the latest by
//! timestamp), series are bucketed by hour or day (UTC), and an event's fate is explained.
//! It also answers the billing area's `UsageFigures` port ([`UsageFromReadModel`]).

use crate::scope::TenantScope;
use crate::{ProjectionError, Projector, ReadDb, ReadTx, decode, fetch_all};
use async_trait::async_trait;
use chrono::{DateTime, Duration, DurationRound, Utc};
use domain::aggregate::Aggregate;
use domain::event::{Reads, RecordedEvent};
use domain::ids::TenantId;
use domain::metering::{Aggregation, Meter, UsageEvent, UsageEventEvent};
use domain::plan::LimitKey;
use domain::usage::{UsageError, UsageFigures};

/// What a meter's total folds: when, how much, and the distinct-count key.
type Row<'a> = (DateTime<Utc>, i64, Option<&'a str>);

#[derive(Debug, Clone, Copy, Default)]
pub struct UsageReadModel;

/// One counted event, as `usageEvent(id)` shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CountedEvent {
    pub client_id: String,
    pub meter: String,
    pub value: i64,
    pub unique_key: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub position: i64,
}

/// Chart buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    pub fn length(self) -> Duration {
        match self {
            Self::Hour => Duration::hours(1),
            Self::Day => Duration::days(1),
        }
    }

    /// The bucket `at` falls in (UTC).
    pub fn start_of(self, at: DateTime<Utc>) -> DateTime<Utc> {
        at.duration_trunc(self.length()).unwrap_or(at)
    }
}

impl UsageReadModel {
    pub const NAME: &'static str = "usage";

    /// `meter`'s total for the tenant over `[from, to)` by the meter's aggregation.
    pub async fn total(
        db: &ReadDb,
        scope: &TenantScope,
        meter: &Meter,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
    ) -> Result<i64, sqlx::Error> {
        total(db, scope.tenant(), meter, (from, to)).await
    }

    /// `meter`'s totals per bucket over `[from, to)`, oldest first, empty buckets included.
    pub async fn series(
        db: &ReadDb,
        scope: &TenantScope,
        meter: &Meter,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
        bucket: Bucket,
    ) -> Result<Vec<(DateTime<Utc>, i64)>, sqlx::Error> {
        let sql = "SELECT occurred_at, value, unique_key FROM usage_events \
                   WHERE tenant_id = $1 AND meter = $2 AND occurred_at >= $3 AND occurred_at < $4";
        let rows = fetch_all!(
            db,
            (DateTime<Utc>, i64, Option<String>),
            sql,
            scope.tenant().as_uuid(),
            meter.key,
            from,
            to
        )?;
        // One pass: each row into its bucket, then each bucket's total.
        let first = bucket.start_of(from);
        let length = bucket.length().num_seconds();
        let count = usize::try_from((to - first).num_seconds().div_euclid(length) + 1).unwrap_or(0);
        let mut buckets: Vec<Vec<Row<'_>>> = vec![Vec::new(); count];
        for (at, value, key) in &rows {
            let index = usize::try_from((*at - first).num_seconds().div_euclid(length)).ok();
            if let Some(rows) = index.and_then(|i| buckets.get_mut(i)) {
                rows.push((*at, *value, key.as_deref()));
            }
        }
        Ok(buckets
            .into_iter()
            .enumerate()
            .map(|(i, rows)| {
                let i = i32::try_from(i).unwrap_or(i32::MAX);
                (first + bucket.length() * i, meter.total(rows))
            })
            .filter(|(start, _)| *start < to)
            .collect())
    }

    /// The counted event the tenant reported as `client_id`, if it counted.
    pub async fn event(
        db: &ReadDb,
        scope: &TenantScope,
        client_id: &str,
    ) -> Result<Option<CountedEvent>, sqlx::Error> {
        let sql = "SELECT client_id, meter, value, unique_key, occurred_at, position \
                   FROM usage_events WHERE tenant_id = $1 AND client_id = $2";
        Ok(
            fetch_all!(db, CountedEvent, sql, scope.tenant().as_uuid(), client_id)?
                .into_iter()
                .next(),
        )
    }
}

async fn total(
    db: &ReadDb,
    tenant: TenantId,
    meter: &Meter,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> Result<i64, sqlx::Error> {
    let aggregate = match meter.aggregation {
        Aggregation::Sum => "COALESCE(SUM(value), 0)",
        Aggregation::Count => "COUNT(*)",
        Aggregation::Max => "COALESCE(MAX(value), 0)",
        Aggregation::UniqueCount => "COUNT(DISTINCT unique_key)",
        Aggregation::Latest => {
            let sql = "SELECT value FROM usage_events WHERE tenant_id = $1 AND meter = $2 \
                       AND occurred_at >= $3 AND occurred_at < $4 \
                       ORDER BY occurred_at DESC, value DESC LIMIT 1";
            let rows = fetch_all!(db, (i64,), sql, tenant.as_uuid(), meter.key, from, to)?;
            return Ok(rows.first().map_or(0, |(v,)| *v));
        }
    };
    // SUM of BIGINT is NUMERIC on PostgreSQL: cast back.
    let sql = format!(
        "SELECT CAST({aggregate} AS BIGINT) FROM usage_events WHERE tenant_id = $1 AND meter = $2 \
         AND occurred_at >= $3 AND occurred_at < $4"
    );
    let rows = fetch_all!(db, (i64,), &sql, tenant.as_uuid(), meter.key, from, to)?;
    Ok(rows.first().map_or(0, |(v,)| *v))
}

/// The billing area's usage port over this read model: an allowance's usage is the total of
/// the meters that feed it.
#[derive(Debug, Clone)]
pub struct UsageFromReadModel {
    db: ReadDb,
}

impl UsageFromReadModel {
    pub fn new(db: ReadDb) -> Self {
        Self { db }
    }
}

#[async_trait]
impl UsageFigures for UsageFromReadModel {
    async fn used(
        &self,
        tenant: TenantId,
        key: LimitKey,
        period: (DateTime<Utc>, DateTime<Utc>),
    ) -> Result<u64, UsageError> {
        let mut used = 0u64;
        for meter in Meter::feeding(key) {
            let total = total(&self.db, tenant, meter, period)
                .await
                .map_err(|e| UsageError(e.to_string()))?;
            used = used.saturating_add(u64::try_from(total).unwrap_or(0));
        }
        Ok(used)
    }

    async fn used_through(
        &self,
        tenant: TenantId,
        key: LimitKey,
        period: (DateTime<Utc>, DateTime<Utc>),
        through: domain::event::Position,
    ) -> Result<u64, UsageError> {
        crate::read_your_writes::wait_for(
            &self.db,
            &[UsageReadModel::NAME],
            through,
            std::time::Duration::from_secs(30),
        )
        .await
        .map_err(|e| UsageError(format!("the usage read model did not catch up: {e:?}")))?;
        self.used(tenant, key, period).await
    }
}

#[async_trait]
impl Projector for UsageReadModel {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn reads(&self) -> Reads {
        Reads::categories(&[UsageEvent::CATEGORY])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["usage_events"]
    }

    async fn create_tables(
        &self,
        tx: &mut ReadTx<'_>,
        suffix: &str,
    ) -> Result<(), ProjectionError> {
        let (id, time) = tx.id_and_time_types();
        for ddl in [
            format!(
                "CREATE TABLE usage_events{suffix} (tenant_id {id} NOT NULL, client_id TEXT NOT NULL, \
                 meter TEXT NOT NULL, value BIGINT NOT NULL, unique_key TEXT, \
                 occurred_at {time} NOT NULL, position BIGINT NOT NULL, \
                 PRIMARY KEY (tenant_id, client_id))"
            ),
            format!(
                "CREATE INDEX usage_events{suffix}_by_time ON usage_events{suffix} \
                 (tenant_id, meter, occurred_at)"
            ),
        ] {
            tx.execute_ddl(&ddl).await?;
        }
        Ok(())
    }

    /// On PostgreSQL one INSERT for the whole batch (arrays unnested server-side); on SQLite,
    /// where a statement costs no network round trip, one per event.
    async fn apply(
        &self,
        tx: &mut ReadTx<'_>,
        suffix: &str,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut rows = Rows::default();
        for event in events {
            // A refusal counts nothing (the event's stream explains it).
            let UsageEventEvent::UsageRecorded {
                tenant_id,
                client_id,
                meter,
                value,
                key,
                occurred_at,
            } = decode::<UsageEvent>(event)?
            else {
                continue;
            };
            rows.tenants.push(tenant_id.as_uuid());
            rows.ids.push(client_id);
            rows.meters.push(meter);
            rows.values.push(value);
            rows.keys.push(key);
            rows.times.push(occurred_at);
            rows.positions
                .push(i64::try_from(event.position.0).unwrap_or(i64::MAX));
        }
        if rows.tenants.is_empty() {
            return Ok(());
        }
        let columns = "tenant_id, client_id, meter, value, unique_key, occurred_at, position";
        match tx {
            ReadTx::Postgres(tx) => {
                sqlx::query(&format!(
                    "INSERT INTO usage_events{suffix} ({columns}) SELECT * FROM unnest($1::uuid[], \
                     $2::text[], $3::text[], $4::bigint[], $5::text[], $6::timestamptz[], \
                     $7::bigint[]) ON CONFLICT (tenant_id, client_id) DO NOTHING"
                ))
                .bind(rows.tenants)
                .bind(rows.ids)
                .bind(rows.meters)
                .bind(rows.values)
                .bind(rows.keys)
                .bind(rows.times)
                .bind(rows.positions)
                .execute(&mut **tx)
                .await?;
            }
            ReadTx::Sqlite(tx) => {
                let sql = format!(
                    "INSERT INTO usage_events{suffix} ({columns}) VALUES ($1, $2, $3, $4, $5, \
                     $6, $7) ON CONFLICT (tenant_id, client_id) DO NOTHING"
                );
                for i in 0..rows.tenants.len() {
                    sqlx::query(&sql)
                        .bind(rows.tenants[i])
                        .bind(&rows.ids[i])
                        .bind(&rows.meters[i])
                        .bind(rows.values[i])
                        .bind(&rows.keys[i])
                        .bind(rows.times[i])
                        .bind(rows.positions[i])
                        .execute(&mut **tx)
                        .await?;
                }
            }
        }
        Ok(())
    }
}

/// A batch's counted events, column by column.
#[derive(Default)]
struct Rows {
    tenants: Vec<uuid::Uuid>,
    ids: Vec<String>,
    meters: Vec<String>,
    values: Vec<i64>,
    keys: Vec<Option<String>>,
    times: Vec<DateTime<Utc>>,
    positions: Vec<i64>,
}
