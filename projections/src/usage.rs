//! The usage read model: every counted usage event (`usage_events`, one row per tenant and
//! client id) and, per tenant, meter and hour and per tenant, meter and day, each bucket's
//! partial aggregates (`usage_buckets`: sum, count, max and the latest value with its time).
//! Totals over any range are exact: whole days and hours come from the buckets, the parts of
//! an hour at either end of the range from the rows, and the partial aggregates combine
//! without loss. An exact distinct count cannot be combined from buckets, so it always reads
//! the rows. Series are bucketed by hour or day (UTC) the same way, and an event's fate is
//! explained from its row. It also answers the billing area's `UsageFigures` port
//! ([`UsageFromReadModel`]).

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

    /// How `usage_buckets` names the width.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
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

    /// `meter`'s totals per bucket over `[from, to)`, oldest first, empty buckets included
    /// (the first and last only over their part inside the range).
    pub async fn series(
        db: &ReadDb,
        scope: &TenantScope,
        meter: &Meter,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
        bucket: Bucket,
    ) -> Result<Vec<(DateTime<Utc>, i64)>, sqlx::Error> {
        let tenant = scope.tenant();
        let first = bucket.start_of(from);
        let mut starts = Vec::new();
        let mut start = first;
        while start < to {
            starts.push(start);
            start += bucket.length();
        }
        if meter.aggregation == Aggregation::UniqueCount {
            return unique_series(db, tenant, meter, (from, to), bucket, &starts).await;
        }
        // Whole buckets from `usage_buckets`; the part of a bucket the range cuts, if any, at
        // either end from the rows.
        let whole_from = if from == first {
            first
        } else {
            first + bucket.length()
        };
        let whole_to = bucket.start_of(to);
        let mut partials = std::collections::HashMap::new();
        if whole_from < whole_to {
            partials.extend(bucket_rows(db, tenant, meter, bucket, (whole_from, whole_to)).await?);
        }
        for edge in [(from, whole_from.min(to)), (whole_to.max(whole_from), to)] {
            if edge.0 < edge.1 {
                let partial = raw_partial(db, tenant, meter, edge).await?;
                partials.insert(bucket.start_of(edge.0), partial);
            }
        }
        Ok(starts
            .into_iter()
            .map(|start| {
                let total = partials
                    .get(&start)
                    .map_or(0, |p: &Partial| p.value(meter.aggregation));
                (start, total)
            })
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

/// Most a bucket's sum holds: sums saturate rather than fail (a failing write would stop
/// the read model for every tenant).
const MAX_SUM: i64 = i64::MAX;

/// What a meter's total over part of a range needs, whatever its aggregation (but an exact
/// distinct count): partials of adjacent parts combine into the whole's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Partial {
    sum: i64,
    count: i64,
    max: Option<i64>,
    /// The latest event (by time, then value).
    latest: Option<(DateTime<Utc>, i64)>,
}

impl Partial {
    fn of(at: DateTime<Utc>, value: i64) -> Self {
        Self {
            sum: value,
            count: 1,
            max: Some(value),
            latest: Some((at, value)),
        }
    }

    fn merge(&mut self, other: &Self) {
        self.sum = self.sum.saturating_add(other.sum);
        self.count = self.count.saturating_add(other.count);
        self.max = self.max.max(other.max);
        self.latest = self.latest.max(other.latest);
    }

    fn value(&self, aggregation: Aggregation) -> i64 {
        match aggregation {
            Aggregation::Sum => self.sum,
            Aggregation::Count => self.count,
            Aggregation::Max => self.max.unwrap_or(0),
            Aggregation::Latest => self.latest.map_or(0, |(_, v)| v),
            // Not combinable: read from the rows (`unique_total`).
            Aggregation::UniqueCount => 0,
        }
    }
}

/// The partial of the rows in `[from, to)` (one aggregate query, and one more for the
/// latest value).
async fn raw_partial(
    db: &ReadDb,
    tenant: TenantId,
    meter: &Meter,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> Result<Partial, sqlx::Error> {
    // SUM of BIGINT is NUMERIC on PostgreSQL: cast back.
    let sql = "SELECT CAST(COALESCE(SUM(value), 0) AS BIGINT), COUNT(*), MAX(value) \
               FROM usage_events WHERE tenant_id = $1 AND meter = $2 \
               AND occurred_at >= $3 AND occurred_at < $4";
    let rows = fetch_all!(
        db,
        (i64, i64, Option<i64>),
        sql,
        tenant.as_uuid(),
        meter.key,
        from,
        to
    )?;
    let Some(&(sum, count, max)) = rows.first() else {
        return Ok(Partial::default());
    };
    let mut partial = Partial {
        sum,
        count,
        max,
        latest: None,
    };
    if meter.aggregation == Aggregation::Latest && count > 0 {
        let sql = "SELECT occurred_at, value FROM usage_events WHERE tenant_id = $1 \
                   AND meter = $2 AND occurred_at >= $3 AND occurred_at < $4 \
                   ORDER BY occurred_at DESC, value DESC LIMIT 1";
        let rows = fetch_all!(
            db,
            (DateTime<Utc>, i64),
            sql,
            tenant.as_uuid(),
            meter.key,
            from,
            to
        )?;
        partial.latest = rows.first().copied();
    }
    Ok(partial)
}

/// The buckets of one width starting in `[from, to)`, by start.
async fn bucket_rows(
    db: &ReadDb,
    tenant: TenantId,
    meter: &Meter,
    width: Bucket,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> Result<Vec<(DateTime<Utc>, Partial)>, sqlx::Error> {
    let sql = "SELECT start, total, events, peak, latest_at, latest_value FROM usage_buckets \
               WHERE tenant_id = $1 AND meter = $2 AND width = $3 AND start >= $4 AND start < $5";
    let rows = fetch_all!(
        db,
        (DateTime<Utc>, i64, i64, i64, DateTime<Utc>, i64),
        sql,
        tenant.as_uuid(),
        meter.key,
        width.name(),
        from,
        to
    )?;
    Ok(rows
        .into_iter()
        .map(|(start, sum, count, max, latest_at, latest)| {
            let partial = Partial {
                sum,
                count,
                max: Some(max),
                latest: Some((latest_at, latest)),
            };
            (start, partial)
        })
        .collect())
}

fn ceil(bucket: Bucket, at: DateTime<Utc>) -> DateTime<Utc> {
    let start = bucket.start_of(at);
    if start == at {
        at
    } else {
        start + bucket.length()
    }
}

/// `meter`'s total over `[from, to)`: whole days, then whole hours at either side of them,
/// from `usage_buckets`; what is left at either end (less than an hour each) from the rows.
async fn total(
    db: &ReadDb,
    tenant: TenantId,
    meter: &Meter,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> Result<i64, sqlx::Error> {
    if meter.aggregation == Aggregation::UniqueCount {
        let sql = "SELECT COUNT(DISTINCT unique_key) FROM usage_events WHERE tenant_id = $1 \
                   AND meter = $2 AND occurred_at >= $3 AND occurred_at < $4";
        let rows = fetch_all!(db, (i64,), sql, tenant.as_uuid(), meter.key, from, to)?;
        return Ok(rows.first().map_or(0, |(v,)| *v));
    }
    let (h1, h2) = (ceil(Bucket::Hour, from), Bucket::Hour.start_of(to));
    if h1 >= h2 {
        return Ok(raw_partial(db, tenant, meter, (from, to))
            .await?
            .value(meter.aggregation));
    }
    let (d1, d2) = (ceil(Bucket::Day, h1), Bucket::Day.start_of(h2));
    let mut whole = Partial::default();
    let mut hours = vec![(h1, h2)];
    if d1 < d2 {
        for (_, partial) in bucket_rows(db, tenant, meter, Bucket::Day, (d1, d2)).await? {
            whole.merge(&partial);
        }
        hours = vec![(h1, d1), (d2, h2)];
    }
    for range in hours {
        if range.0 < range.1 {
            for (_, partial) in bucket_rows(db, tenant, meter, Bucket::Hour, range).await? {
                whole.merge(&partial);
            }
        }
    }
    for edge in [(from, h1), (h2, to)] {
        if edge.0 < edge.1 {
            whole.merge(&raw_partial(db, tenant, meter, edge).await?);
        }
    }
    Ok(whole.value(meter.aggregation))
}

/// An exact distinct count per bucket, from the rows.
async fn unique_series(
    db: &ReadDb,
    tenant: TenantId,
    meter: &Meter,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    bucket: Bucket,
    starts: &[DateTime<Utc>],
) -> Result<Vec<(DateTime<Utc>, i64)>, sqlx::Error> {
    let sql = "SELECT occurred_at, value, unique_key FROM usage_events \
               WHERE tenant_id = $1 AND meter = $2 AND occurred_at >= $3 AND occurred_at < $4";
    let rows = fetch_all!(
        db,
        (DateTime<Utc>, i64, Option<String>),
        sql,
        tenant.as_uuid(),
        meter.key,
        from,
        to
    )?;
    let mut keys: std::collections::HashMap<DateTime<Utc>, std::collections::HashSet<&str>> =
        std::collections::HashMap::new();
    for (at, _, key) in &rows {
        if let Some(key) = key {
            keys.entry(bucket.start_of(*at)).or_default().insert(key);
        }
    }
    Ok(starts
        .iter()
        .map(|start| {
            let n = keys.get(start).map_or(0, std::collections::HashSet::len);
            (*start, i64::try_from(n).unwrap_or(i64::MAX))
        })
        .collect())
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

    /// 2: hour and day buckets.
    fn version(&self) -> u32 {
        2
    }

    fn reads(&self) -> Reads {
        Reads::categories(&[UsageEvent::CATEGORY])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["usage_events", "usage_buckets"]
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
            // `width`: `hour` or `day`; `start`: the bucket's first instant (UTC).
            format!(
                "CREATE TABLE usage_buckets{suffix} (tenant_id {id} NOT NULL, meter TEXT NOT NULL, \
                 width TEXT NOT NULL, start {time} NOT NULL, total BIGINT NOT NULL, \
                 events BIGINT NOT NULL, peak BIGINT NOT NULL, latest_at {time} NOT NULL, \
                 latest_value BIGINT NOT NULL, PRIMARY KEY (tenant_id, meter, width, start))"
            ),
        ] {
            tx.execute_ddl(&ddl).await?;
        }
        Ok(())
    }

    /// Inserts the batch's counted events (on PostgreSQL one INSERT for the whole batch,
    /// arrays unnested server-side; on SQLite, where a statement costs no network round
    /// trip, one per event), then adds what was inserted to its hour and day buckets (one
    /// upsert per bucket the batch touched, pre-aggregated here).
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
        // What was inserted (a row already there is not counted again).
        let mut inserted: Vec<(uuid::Uuid, String, i64, DateTime<Utc>)> = Vec::new();
        match tx {
            ReadTx::Postgres(tx) => {
                inserted = sqlx::query_as(&format!(
                    "INSERT INTO usage_events{suffix} ({columns}) SELECT * FROM unnest($1::uuid[], \
                     $2::text[], $3::text[], $4::bigint[], $5::text[], $6::timestamptz[], \
                     $7::bigint[]) ON CONFLICT (tenant_id, client_id) DO NOTHING \
                     RETURNING tenant_id, meter, value, occurred_at"
                ))
                .bind(&rows.tenants)
                .bind(&rows.ids)
                .bind(&rows.meters)
                .bind(&rows.values)
                .bind(&rows.keys)
                .bind(&rows.times)
                .bind(&rows.positions)
                .fetch_all(&mut **tx)
                .await?;
            }
            ReadTx::Sqlite(tx) => {
                let sql = format!(
                    "INSERT INTO usage_events{suffix} ({columns}) VALUES ($1, $2, $3, $4, $5, \
                     $6, $7) ON CONFLICT (tenant_id, client_id) DO NOTHING"
                );
                for i in 0..rows.tenants.len() {
                    let done = sqlx::query(&sql)
                        .bind(rows.tenants[i])
                        .bind(&rows.ids[i])
                        .bind(&rows.meters[i])
                        .bind(rows.values[i])
                        .bind(&rows.keys[i])
                        .bind(rows.times[i])
                        .bind(rows.positions[i])
                        .execute(&mut **tx)
                        .await?;
                    if done.rows_affected() > 0 {
                        inserted.push((
                            rows.tenants[i],
                            rows.meters[i].clone(),
                            rows.values[i],
                            rows.times[i],
                        ));
                    }
                }
            }
        }
        let mut buckets: std::collections::BTreeMap<
            (uuid::Uuid, String, Bucket, DateTime<Utc>),
            Partial,
        > = std::collections::BTreeMap::new();
        for (tenant, meter, value, at) in inserted {
            for width in [Bucket::Hour, Bucket::Day] {
                buckets
                    .entry((tenant, meter.clone(), width, width.start_of(at)))
                    .or_default()
                    .merge(&Partial::of(at, value));
            }
        }
        add_to_buckets(tx, suffix, buckets).await
    }
}

/// Adds each partial to its bucket row (created when new). Sums saturate.
async fn add_to_buckets(
    tx: &mut ReadTx<'_>,
    suffix: &str,
    buckets: std::collections::BTreeMap<(uuid::Uuid, String, Bucket, DateTime<Utc>), Partial>,
) -> Result<(), ProjectionError> {
    if buckets.is_empty() {
        return Ok(());
    }
    let (mut tenants, mut meters, mut widths, mut starts) = (vec![], vec![], vec![], vec![]);
    let (mut sums, mut counts, mut peaks, mut latest_ats, mut latest_values) =
        (vec![], vec![], vec![], vec![], vec![]);
    for ((tenant, meter, width, start), partial) in buckets {
        let (Some(peak), Some((latest_at, latest_value))) = (partial.max, partial.latest) else {
            continue;
        };
        tenants.push(tenant);
        meters.push(meter);
        widths.push(width.name());
        starts.push(start);
        sums.push(partial.sum);
        counts.push(partial.count);
        peaks.push(peak);
        latest_ats.push(latest_at);
        latest_values.push(latest_value);
    }
    // The later event (by time, then value) is the latest.
    let update = |sum: &str, greatest: &str| {
        format!(
            "ON CONFLICT (tenant_id, meter, width, start) DO UPDATE SET total = {sum}, \
             events = b.events + excluded.events, peak = {greatest}(b.peak, excluded.peak), \
             latest_value = CASE WHEN (excluded.latest_at, excluded.latest_value) > \
             (b.latest_at, b.latest_value) THEN excluded.latest_value ELSE b.latest_value END, \
             latest_at = CASE WHEN excluded.latest_at > b.latest_at THEN excluded.latest_at \
             ELSE b.latest_at END"
        )
    };
    let columns = "tenant_id, meter, width, start, total, events, peak, latest_at, latest_value";
    match tx {
        ReadTx::Postgres(tx) => {
            let sum = format!(
                "CAST(LEAST(CAST(b.total AS NUMERIC) + excluded.total, {MAX_SUM}) AS BIGINT)"
            );
            sqlx::query(&format!(
                "INSERT INTO usage_buckets{suffix} AS b ({columns}) SELECT * FROM unnest(\
                 $1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[], \
                 $6::bigint[], $7::bigint[], $8::timestamptz[], $9::bigint[]) {}",
                update(&sum, "GREATEST")
            ))
            .bind(tenants)
            .bind(meters)
            .bind(widths)
            .bind(starts)
            .bind(sums)
            .bind(counts)
            .bind(peaks)
            .bind(latest_ats)
            .bind(latest_values)
            .execute(&mut **tx)
            .await?;
        }
        ReadTx::Sqlite(tx) => {
            // An integer overflow turns SQLite's sum into a REAL: MIN brings it back.
            let sql = format!(
                "INSERT INTO usage_buckets{suffix} AS b ({columns}) VALUES ($1, $2, $3, $4, $5, \
                 $6, $7, $8, $9) {}",
                update(&format!("MIN(b.total + excluded.total, {MAX_SUM})"), "MAX")
            );
            for i in 0..tenants.len() {
                sqlx::query(&sql)
                    .bind(tenants[i])
                    .bind(&meters[i])
                    .bind(widths[i])
                    .bind(starts[i])
                    .bind(sums[i])
                    .bind(counts[i])
                    .bind(peaks[i])
                    .bind(latest_ats[i])
                    .bind(latest_values[i])
                    .execute(&mut **tx)
                    .await?;
            }
        }
    }
    Ok(())
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
