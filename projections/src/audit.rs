//! The `audit` read model: every event in the log becomes one entry of its tenant's hash
//! chain (`audit_entries`; events of no tenant chain under the nil tenant, the platform's
//! trail). The entry, its canonical form and the chain check are `domain::audit`'s.

use crate::scope::TenantScope;
use crate::{ProjectionError, Projector, ReadDb, ReadTx, exec, fetch_all};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::aggregate::Aggregate;
use domain::audit::{AuditEntries, AuditLedger, EntriesError, LedgerEvent};
pub use domain::audit::{AuditEntry, GENESIS, first_break};
use domain::event::{Reads, RecordedEvent};
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, Default)]
pub struct AuditTrail;

/// An `audit_entries` row.
#[derive(Debug, sqlx::FromRow)]
struct Row {
    tenant_id: Uuid,
    seq: i64,
    position: i64,
    event_id: Uuid,
    at: DateTime<Utc>,
    actor_kind: String,
    actor_id: Option<String>,
    action: String,
    target_kind: String,
    target_id: String,
    source_ip: Option<String>,
    outcome: String,
    correlation_id: Option<String>,
    prev_hash: String,
    hash: String,
}

impl From<Row> for AuditEntry {
    fn from(r: Row) -> Self {
        Self {
            tenant_id: r.tenant_id,
            seq: r.seq,
            position: r.position,
            event_id: r.event_id,
            at: r.at,
            actor_kind: r.actor_kind,
            actor_id: r.actor_id,
            action: r.action,
            target_kind: r.target_kind,
            target_id: r.target_id,
            source_ip: r.source_ip,
            outcome: r.outcome,
            correlation_id: r.correlation_id,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// What `auditLog` filters on (all optional; together they narrow).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// An actor's id (a user or API key id, a system or webhook name).
    pub actor: Option<String>,
    /// An event type.
    pub action: Option<String>,
    /// A target's id, or its kind (`tenant`, `subscription`, ...).
    pub target: Option<String>,
}

const COLUMNS: &str = "tenant_id, seq, position, event_id, at, actor_kind, actor_id, action, \
                       target_kind, target_id, source_ip, outcome, correlation_id, prev_hash, hash";

impl AuditTrail {
    pub const NAME: &'static str = "audit";

    /// The tenant's entries matching `filter`, newest first, numbered below `before` (a
    /// `seq`; all when `None`), at most `limit`.
    pub async fn entries(
        db: &ReadDb,
        scope: &TenantScope,
        filter: &AuditFilter,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_entries WHERE tenant_id = $1 AND seq < $2 \
             AND ($3 IS NULL OR at >= $3) AND ($4 IS NULL OR at < $4) \
             AND ($5 IS NULL OR actor_id = $5) AND ($6 IS NULL OR action = $6) \
             AND ($7 IS NULL OR target_id = $7 OR target_kind = $7) \
             ORDER BY seq DESC LIMIT $8"
        );
        let rows: Vec<Row> = fetch_all!(
            db,
            Row,
            &sql,
            scope.tenant().as_uuid(),
            before.unwrap_or(i64::MAX),
            filter.from,
            filter.to,
            filter.actor.as_deref(),
            filter.action.as_deref(),
            filter.target.as_deref(),
            limit
        )?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    /// Every chain with a retention set: (tenant, days, archived up to).
    pub async fn retained(db: &ReadDb) -> Result<Vec<(Uuid, i64, i64)>, sqlx::Error> {
        fetch_all!(
            db,
            (Uuid, i64, i64),
            "SELECT tenant_id, days, archived_up_to FROM audit_retention WHERE days IS NOT NULL \
             ORDER BY tenant_id"
        )
    }

    /// Every entry whose actor is `actor_id`, across all chains, oldest first, at most
    /// `limit` (a data subject's access request: the subject's own actions, wherever).
    pub async fn by_actor(
        db: &ReadDb,
        actor_id: &str,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_entries WHERE actor_id = $1 ORDER BY position LIMIT $2"
        );
        let rows: Vec<Row> = fetch_all!(db, Row, &sql, actor_id, limit)?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    /// A tenant's whole chain in order (`None`: the platform's), for verification and
    /// export.
    pub async fn chain(db: &ReadDb, tenant: Option<Uuid>) -> Result<Vec<AuditEntry>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM audit_entries WHERE tenant_id = $1 ORDER BY seq");
        let rows: Vec<Row> = fetch_all!(db, Row, &sql, tenant.unwrap_or_else(Uuid::nil))?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }
}

/// The `AuditEntries` port over the read model.
#[derive(Debug, Clone)]
pub struct AuditFromReadModel {
    db: ReadDb,
}

impl AuditFromReadModel {
    pub fn new(db: ReadDb) -> Self {
        Self { db }
    }
}

fn entries_error(e: sqlx::Error) -> EntriesError {
    EntriesError(e.to_string())
}

#[async_trait]
impl AuditEntries for AuditFromReadModel {
    async fn span(
        &self,
        tenant: Uuid,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Option<(i64, i64)>, EntriesError> {
        // Entries are numbered in log order; times follow it, but a commit may be stamped a
        // little before an earlier one: the span runs from the first entry at or after
        // `from` to the last before `to`, and everything numbered between is exported.
        let first: Vec<(i64,)> = fetch_all!(
            &self.db,
            (i64,),
            "SELECT seq FROM audit_entries WHERE tenant_id = $1 AND ($2 IS NULL OR at >= $2) \
             AND ($3 IS NULL OR at < $3) ORDER BY seq LIMIT 1",
            tenant,
            from,
            to
        )
        .map_err(entries_error)?;
        let last: Vec<(i64,)> = fetch_all!(
            &self.db,
            (i64,),
            "SELECT seq FROM audit_entries WHERE tenant_id = $1 AND ($2 IS NULL OR at >= $2) \
             AND ($3 IS NULL OR at < $3) ORDER BY seq DESC LIMIT 1",
            tenant,
            from,
            to
        )
        .map_err(entries_error)?;
        Ok(first.first().zip(last.first()).map(|((f,), (l,))| (*f, *l)))
    }

    async fn page(
        &self,
        tenant: Uuid,
        first: i64,
        last: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, EntriesError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_entries WHERE tenant_id = $1 AND seq >= $2 \
             AND seq <= $3 ORDER BY seq LIMIT $4"
        );
        let rows: Vec<Row> =
            fetch_all!(&self.db, Row, &sql, tenant, first, last, limit).map_err(entries_error)?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    async fn hash_of(&self, tenant: Uuid, seq: i64) -> Result<Option<String>, EntriesError> {
        if seq == 0 {
            return Ok(Some(GENESIS.to_owned()));
        }
        let row: Vec<(String,)> = fetch_all!(
            &self.db,
            (String,),
            "SELECT hash FROM audit_entries WHERE tenant_id = $1 AND seq = $2",
            tenant,
            seq
        )
        .map_err(entries_error)?;
        Ok(row.into_iter().next().map(|(h,)| h))
    }
}

#[async_trait]
impl Projector for AuditTrail {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    /// 2: refusals' outcome, the index by actor. 3: retention and archived cuts.
    fn version(&self) -> u32 {
        3
    }

    fn reads(&self) -> Reads {
        Reads::everything()
    }

    fn tables(&self) -> &'static [&'static str] {
        &["audit_entries", "audit_retention"]
    }

    async fn create_tables(
        &self,
        tx: &mut ReadTx<'_>,
        suffix: &str,
    ) -> Result<(), ProjectionError> {
        let (id, time) = tx.id_and_time_types();
        for ddl in [
            format!(
                "CREATE TABLE audit_entries{suffix} (tenant_id {id} NOT NULL, seq BIGINT NOT NULL, \
                 position BIGINT NOT NULL, event_id {id} NOT NULL, at {time} NOT NULL, \
                 actor_kind TEXT NOT NULL, actor_id TEXT, action TEXT NOT NULL, \
                 target_kind TEXT NOT NULL, target_id TEXT NOT NULL, source_ip TEXT, \
                 outcome TEXT NOT NULL, correlation_id TEXT, prev_hash TEXT NOT NULL, \
                 hash TEXT NOT NULL, PRIMARY KEY (tenant_id, seq))"
            ),
            format!(
                "CREATE INDEX audit_entries{suffix}_by_time ON audit_entries{suffix} (tenant_id, at)"
            ),
            format!(
                "CREATE INDEX audit_entries{suffix}_by_actor ON audit_entries{suffix} (actor_id, position)"
            ),
            format!(
                "CREATE TABLE audit_retention{suffix} (tenant_id {id} PRIMARY KEY, days BIGINT, \
                 archived_up_to BIGINT NOT NULL)"
            ),
        ] {
            tx.execute_ddl(&ddl).await?;
        }
        Ok(())
    }

    /// Chains the batch's events onto each tenant's last entry (read once per tenant per
    /// batch), then inserts them: one statement on PostgreSQL, one per entry on SQLite.
    async fn apply(
        &self,
        tx: &mut ReadTx<'_>,
        suffix: &str,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut heads: HashMap<Uuid, (i64, String)> = HashMap::new();
        let mut entries = Vec::with_capacity(events.len());
        let last_sql = format!(
            "SELECT seq, hash FROM audit_entries{suffix} WHERE tenant_id = $1 \
             ORDER BY seq DESC LIMIT 1"
        );
        for event in events {
            let tenant = event.tenant_id.map_or_else(Uuid::nil, |t| t.as_uuid());
            let (seq, prev) = match heads.get(&tenant) {
                Some(head) => head.clone(),
                None => {
                    let last: Option<(i64, String)> = match tx {
                        ReadTx::Postgres(tx) => {
                            sqlx::query_as(&last_sql)
                                .bind(tenant)
                                .fetch_optional(&mut **tx)
                                .await?
                        }
                        ReadTx::Sqlite(tx) => {
                            sqlx::query_as(&last_sql)
                                .bind(tenant)
                                .fetch_optional(&mut **tx)
                                .await?
                        }
                    };
                    last.unwrap_or((0, GENESIS.to_owned()))
                }
            };
            let entry = AuditEntry::of(event, tenant, seq + 1, &prev);
            heads.insert(tenant, (entry.seq, entry.hash.clone()));
            entries.push(entry);
        }
        let insert = format!("INSERT INTO audit_entries{suffix} ({COLUMNS})");
        match tx {
            ReadTx::Postgres(tx) => {
                let column = |f: fn(&AuditEntry) -> Option<String>| -> Vec<Option<String>> {
                    entries.iter().map(f).collect()
                };
                sqlx::query(&format!(
                    "{insert} SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], \
                     $4::uuid[], $5::timestamptz[], $6::text[], $7::text[], $8::text[], \
                     $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], \
                     $14::text[], $15::text[])"
                ))
                .bind(entries.iter().map(|e| e.tenant_id).collect::<Vec<_>>())
                .bind(entries.iter().map(|e| e.seq).collect::<Vec<_>>())
                .bind(entries.iter().map(|e| e.position).collect::<Vec<_>>())
                .bind(entries.iter().map(|e| e.event_id).collect::<Vec<_>>())
                .bind(entries.iter().map(|e| e.at).collect::<Vec<_>>())
                .bind(column(|e| Some(e.actor_kind.clone())))
                .bind(column(|e| e.actor_id.clone()))
                .bind(column(|e| Some(e.action.clone())))
                .bind(column(|e| Some(e.target_kind.clone())))
                .bind(column(|e| Some(e.target_id.clone())))
                .bind(column(|e| e.source_ip.clone()))
                .bind(column(|e| Some(e.outcome.clone())))
                .bind(column(|e| e.correlation_id.clone()))
                .bind(column(|e| Some(e.prev_hash.clone())))
                .bind(column(|e| Some(e.hash.clone())))
                .execute(&mut **tx)
                .await?;
            }
            ReadTx::Sqlite(tx) => {
                let sql = format!(
                    "{insert} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                     $14, $15)"
                );
                for e in &entries {
                    sqlx::query(&sql)
                        .bind(e.tenant_id)
                        .bind(e.seq)
                        .bind(e.position)
                        .bind(e.event_id)
                        .bind(e.at)
                        .bind(&e.actor_kind)
                        .bind(&e.actor_id)
                        .bind(&e.action)
                        .bind(&e.target_kind)
                        .bind(&e.target_id)
                        .bind(&e.source_ip)
                        .bind(&e.outcome)
                        .bind(&e.correlation_id)
                        .bind(&e.prev_hash)
                        .bind(&e.hash)
                        .execute(&mut **tx)
                        .await?;
                }
            }
        }
        // Retention: the setting, and the cut of archived entries (after the inserts: the
        // entries recording the archive come after the ones it removes).
        for event in events {
            if event.stream.category() != AuditLedger::CATEGORY {
                continue;
            }
            let tenant = event.tenant_id.map_or_else(Uuid::nil, |t| t.as_uuid());
            match domain::aggregate::decode_event::<AuditLedger>(
                &event.event_type,
                event.schema_version,
                event.payload.clone(),
            ) {
                Ok(LedgerEvent::RetentionSet { days, .. }) => {
                    exec!(
                        tx,
                        &format!(
                            "INSERT INTO audit_retention{suffix} (tenant_id, days, archived_up_to) \
                             VALUES ($1, $2, 0) ON CONFLICT (tenant_id) DO UPDATE SET days = excluded.days"
                        ),
                        tenant,
                        days.map(i64::from)
                    )?;
                }
                Ok(LedgerEvent::EntriesArchived { up_to_seq, .. }) => {
                    exec!(
                        tx,
                        &format!(
                            "DELETE FROM audit_entries{suffix} WHERE tenant_id = $1 AND seq <= $2"
                        ),
                        tenant,
                        up_to_seq
                    )?;
                    exec!(
                        tx,
                        &format!(
                            "INSERT INTO audit_retention{suffix} (tenant_id, days, archived_up_to) \
                             VALUES ($1, NULL, $2) ON CONFLICT (tenant_id) DO UPDATE SET \
                             archived_up_to = excluded.archived_up_to"
                        ),
                        tenant,
                        up_to_seq
                    )?;
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(ProjectionError::Event {
                        position: event.position.0,
                        reason: e.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}
