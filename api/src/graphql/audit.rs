//! The audit trail on the tenant: `tenant { auditLog(filter, first, after) }` for admins and
//! owners, newest first, from the `audit` read model (`projections::audit`).

use super::connection::{decode_cursor, encode_cursor, page_size};
use crate::auth::grant;
use crate::error::{ApiError, GqlResult};
use crate::services::Services;
use async_graphql::connection::{Connection, Edge};
use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use commands::audit::ExportRequest;
use domain::access::Permission;
use domain::aggregate::Aggregate;
use domain::audit::AuditLedger;
use domain::audit::export::ExportFormat;
use domain::audit::ledger::ExportStatus;
use domain::ids::TenantId;
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
#[graphql(complex)]
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
    /// As stored: sealed under the actor's key (shown opened by the `sourceIp` resolver).
    #[graphql(skip)]
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

/// The actor's e-mail, shown beside an entry while it can be read (`erased` once the person
/// was forgotten); `None` for actors that are not people.
async fn actor_email(
    services: &Services,
    kind: &str,
    id: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let (Some(id), "user") = (id, kind) else {
        return Ok(None);
    };
    let Ok(user) = uuid::Uuid::parse_str(id) else {
        return Ok(None);
    };
    let state = services
        .executor
        .load_current::<domain::user::User>(user)
        .await?
        .state;
    Ok(commands::audit::shown_email(services.vault.as_ref(), user, &state).await?)
}

#[ComplexObject]
impl AuditEntryObject {
    /// The address the request came from while it can be read; `erased` once the person
    /// (or the API key's record) was forgotten. The entry's hash covers the sealed value.
    async fn source_ip(&self, ctx: &Context<'_>) -> GqlResult<Option<String>> {
        let (Some(sealed), Some(id)) = (&self.source_ip, self.actor_id.as_deref()) else {
            return Ok(None);
        };
        if !matches!(self.actor_kind.as_str(), "user" | "api_key") {
            return Ok(None);
        }
        let Ok(subject) = uuid::Uuid::parse_str(id) else {
            return Ok(None);
        };
        let opened = super::services(ctx)
            .vault
            .open(
                domain::ids::SubjectId::from_uuid(subject),
                &domain::personal_data::Sealed::from_sealed_text(sealed.clone()),
            )
            .await;
        Ok(match opened {
            Ok(Some(ip)) => Some(ip),
            Ok(None) => Some(domain::audit::export::ERASED.to_owned()),
            Err(_) => None,
        })
    }

    /// The actor's e-mail while it can be read; `erased` once the person was forgotten;
    /// null for actors that are not people.
    async fn actor_email(&self, ctx: &Context<'_>) -> GqlResult<Option<String>> {
        Ok(actor_email(
            super::services(ctx),
            &self.actor_kind,
            self.actor_id.as_deref(),
        )
        .await?)
    }
}

/// Records the read of a trail in that trail (each read of the audit log is an entry).
pub(crate) async fn record_read(
    ctx: &Context<'_>,
    chain: Option<TenantId>,
    what: &str,
    filter: Option<&AuditLogFilter>,
) -> Result<(), ApiError> {
    let services = super::services(ctx);
    let cmd_ctx = super::tenancy::request_context(ctx, None).await?;
    let filter = filter.map_or_else(String::new, |f| {
        serde_json::json!({
            "from": f.from, "to": f.to, "actor": f.actor, "action": f.action, "target": f.target,
        })
        .to_string()
    });
    commands::audit::record_read(
        &services.executor,
        &cmd_ctx,
        Utc::now(),
        chain,
        what,
        &filter,
    )
    .await?;
    Ok(())
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum AuditExportFormat {
    Jsonl,
    Csv,
}

impl From<AuditExportFormat> for ExportFormat {
    fn from(f: AuditExportFormat) -> Self {
        match f {
            AuditExportFormat::Jsonl => Self::Jsonl,
            AuditExportFormat::Csv => Self::Csv,
        }
    }
}

impl From<ExportFormat> for AuditExportFormat {
    fn from(f: ExportFormat) -> Self {
        match f {
            ExportFormat::Jsonl => Self::Jsonl,
            ExportFormat::Csv => Self::Csv,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum AuditExportStatus {
    /// Asked for; being made.
    Running,
    Done,
    Failed,
}

#[derive(SimpleObject)]
pub struct AuditExportProgress {
    pub done: u64,
    pub total: u64,
}

/// One export of the tenant's trail and where it stands.
#[derive(SimpleObject)]
pub struct AuditExportObject {
    pub id: ID,
    pub format: AuditExportFormat,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub requested_at: DateTime<Utc>,
    pub status: AuditExportStatus,
    /// While it runs in the server that makes it.
    pub progress: Option<AuditExportProgress>,
    pub entry_count: Option<u64>,
    /// The SHA-256 of its signed digest (the next digest names it).
    pub digest_sha256: Option<String>,
    /// Where the entries are (`file://` on the server, or `s3://`).
    pub location: Option<String>,
    /// Where to download the entries (with the caller's credentials); the digest is at the
    /// same URL + `/digest`. Null for exports written to S3.
    pub download_url: Option<String>,
    pub error: Option<String>,
}

/// `tenant { auditExports }`: the tenant's exports, newest first.
pub(crate) async fn exports_of(
    services: &Services,
    scope: &TenantScope,
) -> Result<Vec<AuditExportObject>, ApiError> {
    let chain = scope.tenant().as_uuid();
    let ledger = services
        .executor
        .load_current::<AuditLedger>(chain)
        .await?
        .state;
    let mut exports: Vec<AuditExportObject> = ledger
        .exports
        .into_iter()
        .map(|(id, record)| {
            let (status, entry_count, digest_sha256, location, error) = match record.status {
                ExportStatus::Requested => (AuditExportStatus::Running, None, None, None, None),
                ExportStatus::Done {
                    digest_sha256,
                    entry_count,
                    location,
                    ..
                } => (
                    AuditExportStatus::Done,
                    Some(entry_count),
                    Some(digest_sha256),
                    Some(location),
                    None,
                ),
                ExportStatus::Failed { reason } => {
                    (AuditExportStatus::Failed, None, None, None, Some(reason))
                }
            };
            let download_url = location
                .as_deref()
                .filter(|l| l.starts_with("file://"))
                .map(|_| {
                    format!(
                        "{}/audit/exports/{chain}/{id}",
                        services.config.public_url.trim_end_matches('/')
                    )
                });
            AuditExportObject {
                id: ID(id.to_string()),
                format: record.format.into(),
                from: record.from,
                to: record.to,
                requested_at: record.requested_at,
                status,
                progress: services
                    .audit
                    .progress
                    .of(id)
                    .map(|(done, total)| AuditExportProgress { done, total }),
                entry_count,
                digest_sha256,
                location,
                download_url,
                error,
            }
        })
        .collect();
    exports.sort_by_key(|e| std::cmp::Reverse(e.requested_at));
    Ok(exports)
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The platform's Ed25519 public key (base64) that signs audit export digests:
    /// `tenantry audit verify FILE --public-key KEY`.
    async fn audit_public_key(&self, ctx: &Context<'_>) -> String {
        super::services(ctx).audit.signer.public_key()
    }

    /// Any tenant's audit trail, or without `tenantId` the platform's own (platform
    /// operators only). Each read is itself recorded in the trail read.
    async fn platform_audit_log(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
        filter: Option<AuditLogFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<Connection<String, AuditEntryObject>> {
        super::principal(ctx).require_operator()?;
        let tenant = tenant_id
            .as_ref()
            .map(super::tenancy::tenant_arg)
            .transpose()?;
        let chain = tenant.unwrap_or_else(|| TenantId::from_uuid(uuid::Uuid::nil()));
        let scope = TenantScope::from(&domain::access::Authorized::platform_operator(chain));
        record_read(ctx, tenant, "platformAuditLog", filter.as_ref()).await?;
        Ok(audit_log_of(super::services(ctx), &scope, filter, first, after).await?)
    }
}

#[derive(SimpleObject)]
pub struct ExportAuditLogPayload {
    pub export: AuditExportObject,
    pub position: String,
}

/// How long the tenant's audit entries stay in the trail before they are archived.
#[derive(SimpleObject)]
pub struct AuditRetentionObject {
    /// Days entries are kept (null: for ever); at most the plan's `RETENTION_DAYS`.
    pub days: Option<u32>,
    /// Entries numbered up to this were archived (exported with a signed digest, listed in
    /// `auditExports`) and cut from the trail; what remains starts after it.
    pub archived_up_to: i64,
}

/// `tenant { auditRetention }`.
pub(crate) async fn retention_of(
    services: &Services,
    scope: &TenantScope,
) -> Result<AuditRetentionObject, ApiError> {
    let ledger = services
        .executor
        .load_current::<AuditLedger>(scope.tenant().as_uuid())
        .await?
        .state;
    Ok(AuditRetentionObject {
        days: ledger.retention_days,
        archived_up_to: ledger.archived_up_to,
    })
}

#[derive(SimpleObject)]
pub struct SetAuditRetentionPayload {
    pub retention: AuditRetentionObject,
    pub position: String,
}

#[derive(Default)]
pub struct AuditMutation;

#[Object]
impl AuditMutation {
    /// Keeps the tenant's audit entries `days` days (null: for ever; admins and owners), at
    /// most the plan's `RETENTION_DAYS` (PLAN_LIMIT_EXCEEDED beyond). Older entries are
    /// archived with a signed digest, then cut from the trail; what remains still verifies.
    async fn set_audit_retention(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        days: Option<u32>,
        idempotency_key: Option<ID>,
    ) -> GqlResult<SetAuditRetentionPayload> {
        let (services, principal) = (super::services(ctx), super::principal(ctx));
        let tenant = super::tenancy::tenant_arg(&tenant_id)?;
        let grant = grant(services, &principal, tenant, Permission::ManageTenant).await?;
        let cmd_ctx = super::tenancy::request_context(ctx, idempotency_key.as_ref()).await?;
        let outcome = services.counted(
            AuditLedger::CATEGORY,
            commands::audit::set_retention(&services.executor, &cmd_ctx, Utc::now(), tenant, days)
                .await,
        )?;
        Ok(SetAuditRetentionPayload {
            retention: retention_of(services, &TenantScope::from(&grant)).await?,
            position: outcome.position.0.to_string(),
        })
    }

    /// Exports the tenant's trail (admins and owners) with a digest signed by the platform
    /// key; the export runs as a job: follow it in `tenant { auditExports }`, download it when
    /// done.
    async fn export_audit_log(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        #[graphql(default_with = "AuditExportFormat::Jsonl")] format: AuditExportFormat,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        idempotency_key: Option<ID>,
    ) -> GqlResult<ExportAuditLogPayload> {
        let (services, principal) = (super::services(ctx), super::principal(ctx));
        let tenant = super::tenancy::tenant_arg(&tenant_id)?;
        let grant = grant(services, &principal, tenant, Permission::ManageTenant).await?;
        if let (Some(from), Some(to)) = (from, to)
            && from >= to
        {
            return Err(ApiError::bad_input("to", "`to` must be after `from`").into());
        }
        let cmd_ctx = super::tenancy::request_context(ctx, idempotency_key.as_ref()).await?;
        let request = ExportRequest {
            tenant: Some(tenant),
            export_id: cmd_ctx.new_id("audit-export"),
            format: format.into(),
            from,
            to,
        };
        let outcome = services.counted(
            AuditLedger::CATEGORY,
            commands::audit::request_export(&services.executor, &cmd_ctx, Utc::now(), &request)
                .await,
        )?;
        let export = exports_of(services, &TenantScope::from(&grant))
            .await?
            .into_iter()
            .find(|e| e.id.0 == request.export_id.to_string())
            .ok_or_else(|| ApiError::internal("the export was asked for but is not listed"))?;
        Ok(ExportAuditLogPayload {
            export,
            position: outcome.position.0.to_string(),
        })
    }
}
