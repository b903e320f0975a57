//! The Tenant object (with its nested lists of members, invites and keys), the operators'
//! tenant summary, and the helpers that read a tenant after a check or a write.

use super::connection::page;
use super::loaders::{ApiKeysLoader, InvitesLoader, LoadError, MembersLoader};
use super::members::{ApiKeyNode, InviteNode, MemberNode, RoleValue};
use super::uuid_arg;
use crate::auth::{Principal, grant};
use crate::error::{ApiError, GqlResult};
use crate::services::Services;
use async_graphql::connection::Connection;
use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use commands::CommandOutcome;
use domain::access::{Permission, Role};
use domain::ids::TenantId;
use domain::tenant::TenantStatus;
use projections::tenant_access::TenantScope;
use projections::tenant_directory::{DELETED, TenantDirectory, TenantView};
use uuid::Uuid;

/// Where a tenant is in its life; `DELETED` once its data was deleted after the retention
/// period.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "TenantStatus")]
pub enum StatusValue {
    Active,
    Suspended,
    Closed,
    Deleted,
}

impl StatusValue {
    /// The directory's stored status.
    pub(crate) fn of(text: &str) -> Result<Self, ApiError> {
        if text == DELETED {
            return Ok(Self::Deleted);
        }
        match text.parse::<TenantStatus>() {
            Ok(TenantStatus::Active) => Ok(Self::Active),
            Ok(TenantStatus::Suspended) => Ok(Self::Suspended),
            Ok(TenantStatus::Closed) => Ok(Self::Closed),
            Err(error) => Err(ApiError::internal(error)),
        }
    }
}

#[derive(SimpleObject, Clone)]
pub struct Setting {
    pub key: String,
    pub value: String,
}

#[derive(InputObject)]
pub struct SettingInput {
    pub key: String,
    pub value: String,
}

/// A tenant the caller may read (its scope came from an authorization check).
pub struct TenantNode {
    scope: TenantScope,
    view: TenantView,
}

impl TenantNode {
    pub fn new(scope: TenantScope, view: TenantView) -> Self {
        Self { scope, view }
    }

    pub fn display_name(&self) -> &str {
        &self.view.name
    }

    fn require_admin(&self) -> Result<(), ApiError> {
        if self.scope.role() < Role::Admin {
            return Err(ApiError::Forbidden(
                "only admins and owners see this".into(),
            ));
        }
        Ok(())
    }
}

#[Object(name = "Tenant")]
impl TenantNode {
    async fn id(&self) -> ID {
        ID(self.view.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.view.name
    }
    async fn slug(&self) -> &str {
        &self.view.slug
    }
    async fn status(&self) -> GqlResult<StatusValue> {
        Ok(StatusValue::of(&self.view.status)?)
    }
    /// The plan the tenant is on: its live subscription's, else `free`.
    async fn plan(&self) -> &str {
        &self.view.plan
    }
    /// The subscription (admins and owners; null if the tenant never subscribed). With
    /// `asOf` (a time) or `asOfPosition` (a log position), as it was then: its stream folded
    /// up to that moment.
    async fn subscription(
        &self,
        ctx: &Context<'_>,
        as_of: Option<DateTime<Utc>>,
        as_of_position: Option<String>,
    ) -> GqlResult<Option<super::billing::SubscriptionObject>> {
        self.require_admin()?;
        let services = super::services(ctx);
        let as_of = match (as_of, as_of_position) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_input(
                    "asOfPosition",
                    "give `asOf` or `asOfPosition`, not both",
                )
                .into());
            }
            (Some(at), None) => Some(commands::AsOf::Time(at)),
            (None, Some(position)) => Some(commands::AsOf::Position(domain::event::Position(
                position
                    .parse::<u64>()
                    .map_err(|_| ApiError::bad_input("asOfPosition", "not a log position"))?,
            ))),
            (None, None) => None,
        };
        Ok(match as_of {
            Some(as_of) => super::billing::subscription_as_of(services, &self.scope, as_of).await?,
            None => super::billing::subscription_of(services, &self.scope).await?,
        })
    }
    /// Every limit in force and what is used of it (admins and owners).
    async fn entitlements(
        &self,
        ctx: &Context<'_>,
    ) -> GqlResult<Vec<super::billing::EntitlementObject>> {
        self.require_admin()?;
        Ok(super::billing::entitlements_of(super::services(ctx), &self.scope).await?)
    }
    /// A meter's total over `[from, to)` (the current billing period by default).
    async fn usage(
        &self,
        ctx: &Context<'_>,
        meter: String,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> GqlResult<super::metering::UsageTotal> {
        Ok(
            super::metering::usage_of(super::services(ctx), &self.scope, &meter, (from, to))
                .await?,
        )
    }
    /// A meter's totals per hour or day over `[from, to)` (UTC buckets, at most 1,000), for
    /// charts.
    async fn usage_series(
        &self,
        ctx: &Context<'_>,
        meter: String,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: super::metering::UsageBucket,
    ) -> GqlResult<Vec<super::metering::UsagePoint>> {
        Ok(super::metering::usage_series_of(
            super::services(ctx),
            &self.scope,
            &meter,
            (from, to),
            bucket,
        )
        .await?)
    }
    /// Whether the usage event the tenant reported as `id` counted, and where.
    async fn usage_event(
        &self,
        ctx: &Context<'_>,
        id: String,
    ) -> GqlResult<super::metering::UsageExplanation> {
        Ok(super::metering::usage_event_of(super::services(ctx), &self.scope, &id).await?)
    }
    /// The tenant's webhook endpoint, its signing secret and latest deliveries (admins and
    /// owners; null when none is set).
    async fn webhook_endpoint(
        &self,
        ctx: &Context<'_>,
    ) -> GqlResult<Option<super::webhooks::WebhookEndpointObject>> {
        self.require_admin()?;
        Ok(super::webhooks::webhook_endpoint_of(super::services(ctx), &self.scope).await?)
    }
    /// The tenant's audit trail, newest first (admins and owners): every change, who made it,
    /// from where, hash-chained (see `prevHash` and `hash`).
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        filter: Option<super::audit::AuditLogFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<Connection<String, super::audit::AuditEntryObject>> {
        self.require_admin()?;
        super::audit::record_read(ctx, Some(self.scope.tenant()), "auditLog", filter.as_ref())
            .await?;
        Ok(
            super::audit::audit_log_of(super::services(ctx), &self.scope, filter, first, after)
                .await?,
        )
    }
    /// How long the tenant's audit entries are kept (admins and owners).
    async fn audit_retention(
        &self,
        ctx: &Context<'_>,
    ) -> GqlResult<super::audit::AuditRetentionObject> {
        self.require_admin()?;
        Ok(super::audit::retention_of(super::services(ctx), &self.scope).await?)
    }
    /// The tenant's audit exports, newest first (admins and owners): status, progress while
    /// running, the digest and where to download when done.
    async fn audit_exports(
        &self,
        ctx: &Context<'_>,
    ) -> GqlResult<Vec<super::audit::AuditExportObject>> {
        self.require_admin()?;
        Ok(super::audit::exports_of(super::services(ctx), &self.scope).await?)
    }
    /// The features the tenant's plan grants.
    async fn features(&self, ctx: &Context<'_>) -> GqlResult<Vec<String>> {
        Ok(super::billing::features_of(super::services(ctx), &self.scope).await?)
    }
    async fn settings(&self) -> Vec<Setting> {
        self.view
            .settings
            .iter()
            .map(|(key, value)| Setting {
                key: key.clone(),
                value: value.clone(),
            })
            .collect()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.view.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.view.updated_at
    }
    /// The caller's role here.
    async fn my_role(&self) -> RoleValue {
        self.scope.role().into()
    }

    #[graphql(complexity = "super::connection::list_complexity(first, child_complexity)")]
    async fn members(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<Connection<String, MemberNode>> {
        Ok(
            nested::<MembersLoader, _, _>(ctx, self.scope, first, after, |m| {
                (sort_key(m.joined_at, m.user_id), MemberNode(m))
            })
            .await?,
        )
    }

    /// Pending invites (admins and owners).
    #[graphql(complexity = "super::connection::list_complexity(first, child_complexity)")]
    async fn invites(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<Connection<String, InviteNode>> {
        self.require_admin()?;
        Ok(
            nested::<InvitesLoader, _, _>(ctx, self.scope, first, after, |i| {
                (sort_key(i.created_at, i.invite_id), InviteNode(i))
            })
            .await?,
        )
    }

    /// API keys, revoked ones included (admins and owners).
    #[graphql(complexity = "super::connection::list_complexity(first, child_complexity)")]
    async fn api_keys(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<Connection<String, ApiKeyNode>> {
        self.require_admin()?;
        Ok(
            nested::<ApiKeysLoader, _, _>(ctx, self.scope, first, after, |k| {
                (sort_key(k.view.created_at, k.view.key_id), ApiKeyNode(k))
            })
            .await?,
        )
    }
}

/// A list item's stable sort key: when it appeared, then its id (for ties).
fn sort_key(at: DateTime<Utc>, id: Uuid) -> String {
    format!("{:020}|{id}", at.timestamp_micros())
}

/// One page of a tenant's nested list, through the request's DataLoader for that list.
async fn nested<L, V, N>(
    ctx: &Context<'_>,
    scope: TenantScope,
    first: Option<i32>,
    after: Option<String>,
    item: impl Fn(V) -> (String, N),
) -> Result<Connection<String, N>, ApiError>
where
    L: Loader<TenantScope, Value = Vec<V>, Error = LoadError>,
    V: Clone + Send + Sync + 'static,
    N: async_graphql::OutputType,
{
    let rows = ctx
        .data_unchecked::<DataLoader<L>>()
        .load_one(scope)
        .await
        .map_err(ApiError::internal)?
        .unwrap_or_default();
    page(rows.into_iter().map(item).collect(), first, after)
}

/// A tenant as operators see it in the platform-wide list.
#[derive(SimpleObject)]
pub struct TenantSummary {
    pub id: ID,
    pub name: String,
    pub slug: String,
    pub status: StatusValue,
    pub plan: String,
    pub created_at: DateTime<Utc>,
}

pub(crate) fn tenant_arg(id: &ID) -> Result<TenantId, ApiError> {
    uuid_arg("tenantId", id).map(TenantId::from_uuid)
}

pub(crate) async fn tenant_node(
    services: &Services,
    scope: TenantScope,
) -> Result<TenantNode, ApiError> {
    services.metrics.read_queries(1);
    let view = TenantDirectory::scoped(&services.read_db, &[scope])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::NotFound("no such tenant".into()))?;
    Ok(TenantNode::new(scope, view))
}

/// The tenant after a write, once the read models the write changed (`read_models`) have it.
pub(crate) async fn tenant_after(
    services: &Services,
    principal: &Principal,
    tenant: TenantId,
    outcome: &CommandOutcome,
    read_models: &[&str],
) -> Result<TenantNode, ApiError> {
    services.written(outcome.position, read_models).await?;
    let grant = grant(services, principal, tenant, Permission::Read).await?;
    tenant_node(services, TenantScope::from(&grant)).await
}
