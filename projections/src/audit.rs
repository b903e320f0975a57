//! The audit trail: every event in the log becomes one entry of its tenant's hash chain
//! (`audit_entries`; events of no tenant chain under the nil tenant, the platform's trail).
//!
//! An entry: the tenant, its number in the tenant's chain (`seq`, from 1), the log position
//! and event id, the time, the actor (kind and id: a user, an API key, a system component, a
//! webhook source, or anonymous), the action (the event type), the target (the stream's
//! category and id), the source IP, the outcome (`ok`: what is in the log happened), the
//! correlation id, and two hashes.
//!
//! **Canonical form.** `hash = hex(SHA-256(prev_hash + "\n" + canonical))`, where `prev_hash`
//! is the previous entry's hash in the same tenant's chain (64 zeros for the first) and
//! `canonical` is the compact JSON array
//! `[tenant_id, seq, position, event_id, at, actor_kind, actor_id, action, target_kind,
//! target_id, source_ip, outcome, correlation_id]` — ids as lowercase hyphenated UUIDs,
//! numbers as JSON integers, `at` as RFC 3339 UTC with microseconds (`...T10:00:00.000000Z`),
//! absent values as `null`, strings JSON-escaped (serde_json's compact form). Everything in it
//! comes from the event, so a rebuild reproduces every hash.

use crate::scope::TenantScope;
use crate::{ProjectionError, Projector, ReadDb, ReadTx, fetch_all};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use domain::event::{Actor, Reads, RecordedEvent};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use uuid::Uuid;

/// The `prev_hash` of a chain's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Copy, Default)]
pub struct AuditTrail;

/// One audit entry, as stored and as exported.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditEntry {
    pub tenant_id: Uuid,
    pub seq: i64,
    pub position: i64,
    pub event_id: Uuid,
    pub at: DateTime<Utc>,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    pub source_ip: Option<String>,
    pub outcome: String,
    pub correlation_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEntry {
    /// The entry `event` becomes as number `seq` of `tenant`'s chain, after `prev_hash`.
    pub fn of(event: &RecordedEvent, tenant: Uuid, seq: i64, prev_hash: &str) -> Self {
        let (actor_kind, actor_id) = match &event.metadata.actor {
            Actor::System { name } => ("system", Some(name.clone())),
            Actor::User { id } => ("user", Some(id.to_string())),
            Actor::ApiKey { id } => ("api_key", Some(id.to_string())),
            Actor::Webhook { source } => ("webhook", Some(source.clone())),
            Actor::Anonymous => ("anonymous", None),
        };
        let category = event.stream.category().to_owned();
        let target_id = event
            .stream
            .as_str()
            .strip_prefix(&category)
            .and_then(|rest| rest.strip_prefix('-'))
            .unwrap_or(event.stream.as_str())
            .to_owned();
        let mut entry = Self {
            tenant_id: tenant,
            seq,
            position: i64::try_from(event.position.0).unwrap_or(i64::MAX),
            event_id: event.event_id.as_uuid(),
            at: event.recorded_at,
            actor_kind: actor_kind.to_owned(),
            actor_id,
            action: event.event_type.clone(),
            target_kind: category,
            target_id,
            source_ip: event.metadata.source_ip.clone(),
            outcome: "ok".to_owned(),
            correlation_id: event.metadata.correlation_id.map(|c| c.to_string()),
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        entry.hash = entry.computed_hash();
        entry
    }

    /// The canonical encoding (see the module's documentation).
    pub fn canonical(&self) -> String {
        serde_json::json!([
            self.tenant_id.to_string(),
            self.seq,
            self.position,
            self.event_id.to_string(),
            self.at.to_rfc3339_opts(SecondsFormat::Micros, true),
            self.actor_kind,
            self.actor_id,
            self.action,
            self.target_kind,
            self.target_id,
            self.source_ip,
            self.outcome,
            self.correlation_id,
        ])
        .to_string()
    }

    /// What `hash` must be, given `prev_hash` and the fields.
    pub fn computed_hash(&self) -> String {
        let digest = Sha256::new()
            .chain_update(self.prev_hash.as_bytes())
            .chain_update(b"\n")
            .chain_update(self.canonical().as_bytes())
            .finalize();
        digest.iter().map(|b| format!("{b:02x}")).collect()
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
        fetch_all!(
            db,
            AuditEntry,
            &sql,
            scope.tenant().as_uuid(),
            before.unwrap_or(i64::MAX),
            filter.from,
            filter.to,
            filter.actor.as_deref(),
            filter.action.as_deref(),
            filter.target.as_deref(),
            limit
        )
    }

    /// A tenant's whole chain in order (`None`: the platform's), for verification and
    /// export.
    pub async fn chain(db: &ReadDb, tenant: Option<Uuid>) -> Result<Vec<AuditEntry>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM audit_entries WHERE tenant_id = $1 ORDER BY seq");
        fetch_all!(db, AuditEntry, &sql, tenant.unwrap_or_else(Uuid::nil))
    }
}

/// Where the first entry of `entries` (one tenant's chain from its start, in order) breaks
/// the chain: a hash that does not match its fields, a `prev_hash` that is not the previous
/// entry's hash, or a gap in the numbering. `None` when the chain is intact.
pub fn first_break(entries: &[AuditEntry]) -> Option<(i64, &'static str)> {
    let mut prev = GENESIS.to_owned();
    for (i, entry) in entries.iter().enumerate() {
        if entry.seq != i64::try_from(i).unwrap_or(i64::MAX) + 1 {
            return Some((
                entry.seq,
                "out of sequence (an entry is missing, added or moved)",
            ));
        }
        if entry.prev_hash != prev {
            return Some((entry.seq, "its prev_hash is not the previous entry's hash"));
        }
        if entry.computed_hash() != entry.hash {
            return Some((entry.seq, "its hash does not match its contents"));
        }
        prev.clone_from(&entry.hash);
    }
    None
}

#[async_trait]
impl Projector for AuditTrail {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn reads(&self) -> Reads {
        Reads::everything()
    }

    fn tables(&self) -> &'static [&'static str] {
        &["audit_entries"]
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
        Ok(())
    }
}
