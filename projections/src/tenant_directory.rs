//! The tenant directory: one row per tenant (id, name, slug, status, plan, settings, created
//! and updated times), on SQLite and PostgreSQL with one set of queries.

use crate::{ProjectionError, Projector, ReadDb, ReadTx, exec};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::aggregate::decode_event;
use domain::event::RecordedEvent;
use domain::ids::TenantId;
use domain::tenant::{Tenant, TenantEvent, tenant_of_stream};
use sqlx::types::Json;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Until subscriptions exist every tenant is on this plan.
pub const PLACEHOLDER_PLAN: &str = "free";

#[derive(Debug, Clone, Copy, Default)]
pub struct TenantDirectory;

/// A row of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantView {
    pub id: TenantId,
    pub name: String,
    pub slug: String,
    /// `active`, `suspended`, `closed` or `deleted` (closed and its data deleted).
    pub status: String,
    pub plan: String,
    pub settings: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: Uuid,
    name: String,
    slug: String,
    status: String,
    plan: String,
    settings: Json<BTreeMap<String, String>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for TenantView {
    fn from(row: Row) -> Self {
        Self {
            id: TenantId::from_uuid(row.tenant_id),
            name: row.name,
            slug: row.slug,
            status: row.status,
            plan: row.plan,
            settings: row.settings.0,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

const COLUMNS: &str = "tenant_id, name, slug, status, plan, settings, created_at, updated_at";

impl TenantDirectory {
    /// One tenant, if the directory has it.
    pub async fn get(db: &ReadDb, id: TenantId) -> Result<Option<TenantView>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM tenant_directory WHERE tenant_id = $1");
        let row: Option<Row> = match db {
            ReadDb::Sqlite { reader, .. } => {
                sqlx::query_as(&sql)
                    .bind(id.as_uuid())
                    .fetch_optional(reader)
                    .await?
            }
            ReadDb::Postgres(pool) => {
                sqlx::query_as(&sql)
                    .bind(id.as_uuid())
                    .fetch_optional(pool)
                    .await?
            }
        };
        Ok(row.map(TenantView::from))
    }

    /// Tenants ordered by id, after `after` (exclusive), at most `limit`.
    pub async fn list(
        db: &ReadDb,
        after: Option<TenantId>,
        limit: u32,
    ) -> Result<Vec<TenantView>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM tenant_directory WHERE tenant_id > $1 ORDER BY tenant_id LIMIT $2"
        );
        let after = after.map_or(Uuid::nil(), |t| t.as_uuid());
        let rows: Vec<Row> = match db {
            ReadDb::Sqlite { reader, .. } => {
                sqlx::query_as(&sql)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(reader)
                    .await?
            }
            ReadDb::Postgres(pool) => {
                sqlx::query_as(&sql)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(rows.into_iter().map(TenantView::from).collect())
    }
}

fn tenant_of(event: &RecordedEvent) -> Result<Uuid, ProjectionError> {
    tenant_of_stream(&event.stream)
        .map(|t| t.as_uuid())
        .ok_or_else(|| ProjectionError::Event {
            position: event.position.0,
            reason: format!("stream {} is not a tenant stream", event.stream),
        })
}

#[async_trait]
impl Projector for TenantDirectory {
    fn name(&self) -> &'static str {
        "tenant_directory"
    }

    /// 2: deleted tenant data shows as status `deleted` with no settings.
    fn version(&self) -> u32 {
        2
    }

    fn handles(&self, event_type: &str) -> bool {
        matches!(
            event_type,
            "TenantProvisioned"
                | "TenantRenamed"
                | "TenantSettingsChanged"
                | "TenantSuspended"
                | "TenantReactivated"
                | "TenantClosed"
                | "TenantDataDeleted"
        )
    }

    fn tables(&self) -> &'static [&'static str] {
        &["tenant_directory"]
    }

    async fn create_tables(
        &self,
        tx: &mut ReadTx<'_>,
        suffix: &str,
    ) -> Result<(), ProjectionError> {
        let ddl = match tx {
            ReadTx::Postgres(_) => format!(
                "CREATE TABLE tenant_directory{suffix} (tenant_id UUID PRIMARY KEY, name TEXT NOT NULL, \
                 slug TEXT NOT NULL, status TEXT NOT NULL, plan TEXT NOT NULL, settings JSONB NOT NULL, \
                 created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL)"
            ),
            ReadTx::Sqlite(_) => format!(
                "CREATE TABLE tenant_directory{suffix} (tenant_id BLOB PRIMARY KEY, name TEXT NOT NULL, \
                 slug TEXT NOT NULL, status TEXT NOT NULL, plan TEXT NOT NULL, settings TEXT NOT NULL, \
                 created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
            ),
        };
        tx.execute_ddl(&ddl).await?;
        tx.execute_ddl(&format!(
            "CREATE INDEX tenant_directory{suffix}_slug ON tenant_directory{suffix} (slug)"
        ))
        .await?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &mut ReadTx<'_>,
        suffix: &str,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let table = format!("tenant_directory{suffix}");
        let set = |column: &str| {
            format!("UPDATE {table} SET {column} = $1, updated_at = $2 WHERE tenant_id = $3")
        };
        for event in events {
            let decoded = decode_event::<Tenant>(
                &event.event_type,
                event.schema_version,
                event.payload.clone(),
            )
            .map_err(|e| ProjectionError::Event {
                position: event.position.0,
                reason: e.to_string(),
            })?;
            let id = tenant_of(event)?;
            let at = event.recorded_at;
            match decoded {
                TenantEvent::TenantProvisioned {
                    name,
                    slug,
                    settings,
                    at: created,
                    ..
                } => {
                    exec!(
                        &mut *tx,
                        &format!(
                            "INSERT INTO {table} ({COLUMNS}) VALUES ($1, $2, $3, 'active', $4, $5, $6, $7) \
                             ON CONFLICT (tenant_id) DO NOTHING"
                        ),
                        id,
                        name.as_str(),
                        slug.as_str(),
                        PLACEHOLDER_PLAN,
                        Json(settings.entries()),
                        created,
                        at
                    )?;
                }
                TenantEvent::TenantRenamed { name, .. } => {
                    exec!(&mut *tx, &set("name"), name.as_str(), at, id)?;
                }
                TenantEvent::TenantSettingsChanged { settings, .. } => {
                    exec!(&mut *tx, &set("settings"), Json(settings.entries()), at, id)?;
                }
                TenantEvent::TenantSuspended { .. } => {
                    exec!(&mut *tx, &set("status"), "suspended", at, id)?;
                }
                TenantEvent::TenantReactivated { .. } => {
                    exec!(&mut *tx, &set("status"), "active", at, id)?;
                }
                TenantEvent::TenantClosed { .. } => {
                    exec!(&mut *tx, &set("status"), "closed", at, id)?;
                }
                TenantEvent::TenantDataDeleted { .. } => {
                    let sql = format!(
                        "UPDATE {table} SET status = 'deleted', settings = $1, updated_at = $2 WHERE tenant_id = $3"
                    );
                    exec!(
                        &mut *tx,
                        &sql,
                        Json(BTreeMap::<String, String>::new()),
                        at,
                        id
                    )?;
                }
                TenantEvent::TenantResourceAdded { .. }
                | TenantEvent::TenantResourceRemoved { .. } => {}
            }
        }
        Ok(())
    }
}
