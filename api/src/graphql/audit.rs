//! The audit trail on the tenant: `tenant { auditLog(filter, first, after) }` for admins and
//! owners, newest first, from the `audit` read model (`projections::audit`).

use super::connection::{decode_cursor, encode_cursor, page_size};
use crate::error::ApiError;
use crate::services::Services;
use async_graphql::connection::{Connection, Edge};
use async_graphql::{InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use projections::audit::{AuditEntry, AuditFilter, AuditTrail};
use projections::tenant_access::TenantScope;

#[derive(InputObject, Default)]
pub struct AuditLogFilter {
    /// Entries at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Entries before this time.
    pub to: Option<DateTime<Utc>>,
    /// An actor's id: a user or API key id, a system component or webhook source name.
    pub actor: Option<String>,
    /// An action (event type), e.g. `MemberInvited`.
    pub action: Option<String>,
    /// A target's id, or its kind (`tenant`, `subscription`, ...).
    pub target: Option<String>,
}

/// One entry of the tenant's hash-chained audit trail.
#[derive(SimpleObject)]
pub struct AuditEntryObject {
    /// Its number in the tenant's chain, from 1.
    pub seq: i64,
    /// The log position of the event it records.
    pub position: String,
    pub event_id: String,
    pub at: DateTime<Utc>,
    /// `user`, `api_key`, `system`, `webhook` or `anonymous`.
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

impl From<AuditEntry> for AuditEntryObject {
    fn from(e: AuditEntry) -> Self {
        Self {
            seq: e.seq,
            position: e.position.to_string(),
            event_id: e.event_id.to_string(),
            at: e.at,
            actor_kind: e.actor_kind,
            actor_id: e.actor_id,
            action: e.action,
            target_kind: e.target_kind,
            target_id: e.target_id,
            source_ip: e.source_ip,
            outcome: e.outcome,
            correlation_id: e.correlation_id,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

pub(crate) async fn audit_log_of(
    services: &Services,
    scope: &TenantScope,
    filter: Option<AuditLogFilter>,
    first: Option<i32>,
    after: Option<String>,
) -> Result<Connection<String, AuditEntryObject>, ApiError> {
    let size = page_size(first)?;
    let before =
        match decode_cursor(after.as_deref())? {
            Some(cursor) => Some(cursor.parse::<i64>().map_err(|_| {
                ApiError::bad_input("after", "`after` is not a cursor from this API")
            })?),
            None => None,
        };
    let filter = filter.unwrap_or_default();
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && from >= to
    {
        return Err(ApiError::bad_input("to", "`to` must be after `from`"));
    }
    let filter = AuditFilter {
        from: filter.from,
        to: filter.to,
        actor: filter.actor,
        action: filter.action,
        target: filter.target,
    };
    services.metrics.read_queries(1);
    let limit = i64::try_from(size).unwrap_or(100) + 1;
    let mut entries = AuditTrail::entries(&services.read_db, scope, &filter, before, limit).await?;
    let has_next = entries.len() > size;
    entries.truncate(size);
    let mut connection = Connection::new(before.is_some(), has_next);
    connection.edges.extend(
        entries
            .into_iter()
            .map(|e| Edge::new(encode_cursor(&e.seq.to_string()), AuditEntryObject::from(e))),
    );
    Ok(connection)
}
