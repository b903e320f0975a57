//! The tenant directory: one row per tenant (id, name, slug, status, plan, settings, created
//! and updated times), on SQLite and PostgreSQL with one set of queries.

use crate::{ProjectionError, Projector, ReadDb, ReadTx, decode, exec, fetch_all};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::aggregate::Aggregate;
use domain::event::{Reads, RecordedEvent};
use domain::ids::TenantId;
use domain::subscription::Subscription;
use domain::tenant::{Tenant, TenantEvent, TenantStatus, tenant_of_stream};
use sqlx::types::Json;
use std::collections::BTreeMap;
use uuid::Uuid;

/// The plan of a tenant without a live subscription (the free plan's key).
pub const PLACEHOLDER_PLAN: &str = "free";

/// The status of a tenant whose data was deleted after its retention period: a fact the
/// directory shows, beside the aggregate's own statuses (`TenantStatus::as_str`).
pub const DELETED: &str = "deleted";

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
    /// How many of the tenant's events the directory has applied.
    pub changes: i64,
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
    changes: i64,
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
            changes: row.changes,
        }
    }
}

const COLUMNS: &str =
    "tenant_id, name, slug, status, plan, settings, created_at, updated_at, changes";

impl TenantDirectory {
    /// The projector's name and the view queries read.
    pub const NAME: &'static str = "tenant_directory";

    /// One tenant, if the directory has it.
    pub async fn get(db: &ReadDb, id: TenantId) -> Result<Option<TenantView>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM tenant_directory WHERE tenant_id = $1");
        let row = fetch_all!(db, Row, &sql, id.as_uuid())?.into_iter().next();
        Ok(row.map(TenantView::from))
    }

    /// The scoped tenants the directory has (one query), ordered by id.
    pub async fn scoped(
        db: &ReadDb,
        scopes: &[crate::tenant_access::TenantScope],
    ) -> Result<Vec<TenantView>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM tenant_directory WHERE tenant_id IN ({{tenants}}) ORDER BY tenant_id"
        );
        let rows: Vec<Row> = crate::scope::fetch_for(db, &sql, scopes).await?;
        Ok(rows.into_iter().map(TenantView::from).collect())
    }

    /// Every tenant (operators only), ordered by id, after `after` (exclusive), at most `limit`.
    pub async fn list(
        db: &ReadDb,
        after: Option<TenantId>,
        limit: u32,
    ) -> Result<Vec<TenantView>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM tenant_directory WHERE tenant_id > $1 ORDER BY tenant_id LIMIT $2"
        );
        let after = after.map_or(Uuid::nil(), |t| t.as_uuid());
        let rows = fetch_all!(db, Row, &sql, after, i64::from(limit))?;
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

/// A new row, for a tenant provisioned in this batch (later events of the batch folded in).
#[derive(Debug)]
struct NewRow {
    name: String,
    slug: String,
    status: &'static str,
    settings: BTreeMap<String, String>,
    created_at: DateTime<Utc>,
}

/// What a batch changes for one tenant.
#[derive(Debug, Default)]
struct Patch {
    insert: Option<NewRow>,
    name: Option<String>,
    status: Option<&'static str>,
    settings: Option<BTreeMap<String, String>>,
    updated_at: Option<DateTime<Utc>>,
    /// Events of this batch for the tenant.
    changes: i64,
}

/// Folds a batch into one patch per tenant, so the batch costs a few statements rather than
/// one per event.
fn fold(events: &[RecordedEvent]) -> Result<BTreeMap<Uuid, Patch>, ProjectionError> {
    let mut patches: BTreeMap<Uuid, Patch> = BTreeMap::new();
    for event in events {
        let decoded = decode::<Tenant>(event)?;
        if matches!(
            decoded,
            TenantEvent::TenantResourceAdded { .. } | TenantEvent::TenantResourceRemoved { .. }
        ) {
            // Resource counts belong to the areas that own the resources, not to the directory.
            continue;
        }
        let patch = patches.entry(tenant_of(event)?).or_default();
        patch.updated_at = Some(event.recorded_at);
        patch.changes += 1;
        let (name, status, settings) = match decoded {
            TenantEvent::TenantProvisioned {
                name,
                slug,
                settings,
                at,
                ..
            } => {
                patch.insert = Some(NewRow {
                    name: name.as_str().to_owned(),
                    slug: slug.as_str().to_owned(),
                    status: TenantStatus::Active.as_str(),
                    settings: settings.entries().clone(),
                    created_at: at,
                });
                (None, None, None)
            }
            TenantEvent::TenantRenamed { name, .. } => (Some(name.as_str().to_owned()), None, None),
            TenantEvent::TenantSettingsChanged { settings, .. } => {
                (None, None, Some(settings.entries().clone()))
            }
            TenantEvent::TenantSuspended { .. } => {
                (None, Some(TenantStatus::Suspended.as_str()), None)
            }
            TenantEvent::TenantReactivated { .. } => {
                (None, Some(TenantStatus::Active.as_str()), None)
            }
            TenantEvent::TenantClosed { .. } => (None, Some(TenantStatus::Closed.as_str()), None),
            TenantEvent::TenantDataDeleted { .. } => (None, Some(DELETED), Some(BTreeMap::new())),
            TenantEvent::TenantResourceAdded { .. } | TenantEvent::TenantResourceRemoved { .. } => {
                (None, None, None)
            }
        };
        match &mut patch.insert {
            Some(row) => {
                if let Some(name) = name {
                    row.name = name;
                }
                if let Some(status) = status {
                    row.status = status;
                }
                if let Some(settings) = settings {
                    row.settings = settings;
                }
            }
            None => {
                patch.name = name.or(patch.name.take());
                patch.status = status.or(patch.status.take());
                patch.settings = settings.or(patch.settings.take());
            }
        }
    }
    Ok(patches)
}

/// Writes the patches: on PostgreSQL one INSERT and one UPDATE for the whole batch (arrays
/// unnested server-side); on SQLite, where a statement costs no network round trip, one per
/// tenant.
async fn write(
    tx: &mut ReadTx<'_>,
    table: &str,
    patches: BTreeMap<Uuid, Patch>,
) -> Result<(), ProjectionError> {
    match tx {
        ReadTx::Postgres(tx) => {
            let (
                mut ids,
                mut names,
                mut slugs,
                mut statuses,
                mut settings,
                mut created,
                mut updated,
            ) = (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
            let (mut u_ids, mut u_names, mut u_statuses, mut u_settings, mut u_updated) =
                (vec![], vec![], vec![], vec![], vec![]);
            let (mut changes, mut u_changes) = (vec![], vec![]);
            for (id, patch) in patches {
                let at = patch.updated_at.unwrap_or_else(Utc::now);
                if let Some(row) = patch.insert {
                    ids.push(id);
                    names.push(row.name);
                    slugs.push(row.slug);
                    statuses.push(row.status.to_owned());
                    settings.push(Json(row.settings));
                    created.push(row.created_at);
                    updated.push(at);
                    changes.push(patch.changes);
                } else {
                    u_ids.push(id);
                    u_names.push(patch.name);
                    u_statuses.push(patch.status.map(str::to_owned));
                    u_settings.push(patch.settings.map(Json));
                    u_updated.push(at);
                    u_changes.push(patch.changes);
                }
            }
            let conn: &mut sqlx::PgConnection = tx;
            if !ids.is_empty() {
                let plans = vec![PLACEHOLDER_PLAN.to_owned(); ids.len()];
                sqlx::query(&format!(
                    "INSERT INTO {table} ({COLUMNS}) SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], \
                     $4::text[], $5::text[], $6::jsonb[], $7::timestamptz[], $8::timestamptz[], $9::bigint[]) \
                     ON CONFLICT (tenant_id) DO NOTHING"
                ))
                .bind(ids)
                .bind(names)
                .bind(slugs)
                .bind(statuses)
                .bind(plans)
                .bind(settings)
                .bind(created)
                .bind(updated)
                .bind(changes)
                .execute(&mut *conn)
                .await?;
            }
            if !u_ids.is_empty() {
                sqlx::query(&format!(
                    "UPDATE {table} AS t SET name = coalesce(u.name, t.name), status = coalesce(u.status, t.status), \
                     settings = coalesce(u.settings, t.settings), updated_at = u.updated_at, \
                     changes = t.changes + u.changes \
                     FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::timestamptz[], $6::bigint[]) \
                     AS u(id, name, status, settings, updated_at, changes) WHERE t.tenant_id = u.id"
                ))
                .bind(u_ids)
                .bind(u_names)
                .bind(u_statuses)
                .bind(u_settings)
                .bind(u_updated)
                .bind(u_changes)
                .execute(&mut *conn)
                .await?;
            }
        }
        ReadTx::Sqlite(_) => {
            let insert = format!(
                "INSERT INTO {table} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (tenant_id) DO NOTHING"
            );
            let update = format!(
                "UPDATE {table} SET name = coalesce($1, name), status = coalesce($2, status), \
                 settings = coalesce($3, settings), updated_at = $4, changes = changes + $5 \
                 WHERE tenant_id = $6"
            );
            for (id, patch) in patches {
                let at = patch.updated_at.unwrap_or_else(Utc::now);
                if let Some(row) = patch.insert {
                    exec!(
                        &mut *tx,
                        &insert,
                        id,
                        row.name,
                        row.slug,
                        row.status,
                        PLACEHOLDER_PLAN,
                        Json(row.settings),
                        row.created_at,
                        at,
                        patch.changes
                    )?;
                } else {
                    exec!(
                        &mut *tx,
                        &update,
                        patch.name,
                        patch.status,
                        patch.settings.map(Json),
                        at,
                        patch.changes,
                        id
                    )?;
                }
            }
        }
    }
    Ok(())
}

#[async_trait]
impl Projector for TenantDirectory {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    /// 2: deleted tenant data shows as status `deleted` with no settings.
    /// 3: `changes` counts the events applied per tenant.
    /// 4: the plan follows the tenant's subscription.
    fn version(&self) -> u32 {
        4
    }

    fn reads(&self) -> Reads {
        Reads::categories(&[Tenant::CATEGORY, Subscription::CATEGORY])
    }

    fn tables(&self) -> &'static [&'static str] {
        &[Self::NAME]
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
                 created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL, \
                 changes BIGINT NOT NULL)"
            ),
            ReadTx::Sqlite(_) => format!(
                "CREATE TABLE tenant_directory{suffix} (tenant_id BLOB PRIMARY KEY, name TEXT NOT NULL, \
                 slug TEXT NOT NULL, status TEXT NOT NULL, plan TEXT NOT NULL, settings TEXT NOT NULL, \
                 created_at TEXT NOT NULL, updated_at TEXT NOT NULL, \
                 changes INTEGER NOT NULL)"
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
        let (tenants, subscriptions): (Vec<_>, Vec<_>) = events
            .iter()
            .cloned()
            .partition(|e| e.stream.aggregate_id(Tenant::CATEGORY).is_some());
        let patches = fold(&tenants)?;
        write(tx, &format!("tenant_directory{suffix}"), patches).await?;
        // A subscription needs an active tenant: its row exists by now.
        for event in &subscriptions {
            let Some(tenant) = event.stream.aggregate_id(Subscription::CATEGORY) else {
                continue;
            };
            use domain::subscription::SubscriptionEvent as S;
            let plan = match decode::<Subscription>(event)? {
                S::SubscriptionStarted { plan, .. } | S::PlanChanged { plan, .. } => {
                    plan.key.as_str().to_owned()
                }
                S::PeriodRenewed {
                    changed_to: Some((plan, _)),
                    ..
                } => plan.key.as_str().to_owned(),
                S::SubscriptionCancelled { .. } => PLACEHOLDER_PLAN.to_owned(),
                _ => continue,
            };
            exec!(
                &mut *tx,
                &format!("UPDATE tenant_directory{suffix} SET plan = $1 WHERE tenant_id = $2"),
                plan,
                tenant
            )?;
        }
        Ok(())
    }
}
