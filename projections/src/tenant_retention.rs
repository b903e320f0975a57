//! Closed tenants waiting for their data to be deleted: one row per tenant from its
//! `TenantClosed` (when it is due, and the event that started the clock, whose id the deletion
//! command's id derives from) until its `TenantDataDeleted`. The retention job reads the due
//! rows on every tick, instead of scanning the log from the start.

use crate::{ProjectionError, Projector, ReadDb, ReadTx, decode, exec, fetch_all};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::aggregate::Aggregate;
use domain::event::{Reads, RecordedEvent};
use domain::ids::{CorrelationId, EventId, TenantId};
use domain::tenant::{Tenant, TenantEvent};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, Default)]
pub struct TenantRetention;

/// A tenant whose data is due for deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingDeletion {
    pub tenant: TenantId,
    pub due: DateTime<Utc>,
    pub closed_by: EventId,
    pub correlation: Option<CorrelationId>,
}

impl TenantRetention {
    pub const NAME: &'static str = "tenant_retention";

    /// Tenants due at `now`, soonest first, at most `limit`.
    pub async fn due(
        db: &ReadDb,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PendingDeletion>, sqlx::Error> {
        let sql = "SELECT tenant_id, due, closed_by, correlation_id FROM tenant_retention \
                   WHERE due <= $1 ORDER BY due, tenant_id LIMIT $2";
        type Row = (Uuid, DateTime<Utc>, Uuid, Option<Uuid>);
        let rows = fetch_all!(db, Row, sql, now, i64::from(limit))?;
        Ok(rows
            .into_iter()
            .map(|(tenant, due, closed_by, correlation)| PendingDeletion {
                tenant: TenantId::from_uuid(tenant),
                due,
                closed_by: EventId::from_uuid(closed_by),
                correlation: correlation.map(CorrelationId::from_uuid),
            })
            .collect())
    }
}

#[async_trait]
impl Projector for TenantRetention {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn reads(&self) -> Reads {
        Reads::categories(&[Tenant::CATEGORY])
    }

    fn tables(&self) -> &'static [&'static str] {
        &[Self::NAME]
    }

    async fn create_tables(
        &self,
        tx: &mut ReadTx<'_>,
        suffix: &str,
    ) -> Result<(), ProjectionError> {
        let (id, time) = tx.id_and_time_types();
        tx.execute_ddl(&format!(
            "CREATE TABLE tenant_retention{suffix} (tenant_id {id} PRIMARY KEY, due {time} NOT NULL, \
             closed_by {id} NOT NULL, correlation_id {id})"
        ))
        .await?;
        tx.execute_ddl(&format!(
            "CREATE INDEX tenant_retention{suffix}_due ON tenant_retention{suffix} (due)"
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
        for event in events {
            let Some(tenant) = event.stream.aggregate_id(Tenant::CATEGORY) else {
                continue;
            };
            let decoded = decode::<Tenant>(event)?;
            match decoded {
                TenantEvent::TenantClosed {
                    delete_data_after, ..
                } => {
                    exec!(
                        &mut *tx,
                        &format!(
                            "INSERT INTO tenant_retention{suffix} (tenant_id, due, closed_by, correlation_id) \
                             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO UPDATE SET \
                             due = excluded.due, closed_by = excluded.closed_by, \
                             correlation_id = excluded.correlation_id"
                        ),
                        tenant,
                        delete_data_after,
                        event.event_id.as_uuid(),
                        event.metadata.correlation_id.map(|c| c.as_uuid())
                    )?;
                }
                TenantEvent::TenantDataDeleted { .. } => {
                    exec!(
                        &mut *tx,
                        &format!("DELETE FROM tenant_retention{suffix} WHERE tenant_id = $1"),
                        tenant
                    )?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}
