//! Tenants and who belongs to them: queries, mutations (create, rename, settings, close,
//! suspend/reactivate; invites, roles, removal, API keys) and live subscriptions.

use super::connection::page;
use super::loaders::{ApiKeysLoader, InvitesLoader, LoadError, MembersLoader};
use super::{consistent, idempotency, meta, principal, services, uuid_arg};
use crate::auth::{Principal, grant};
use crate::error::{ApiError, GqlError, GqlResult};
use crate::services::Services;
use async_graphql::connection::Connection;
use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Duration, Utc};
use commands::tenancy::{
    CreateTenant, Founder, OperatorAction, TenantChange, change_tenant, create_tenant,
    operate_tenant,
};
use commands::{CommandContext, CommandOutcome};
use domain::access::{ApiKeyScope, Permission, Role};
use domain::aggregate::Aggregate;
use domain::ids::{ApiKeyId, SubjectId, TenantId};
use domain::tenant::{Slug, Tenant, TenantName, TenantSettings, TenantStatus};
use projections::tenant_access::{
    ApiKeyView, InviteView, MemberView, TenantAccessDirectory, TenantScope,
};
use projections::tenant_directory::{DELETED, TenantDirectory, TenantView};
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Role")]
pub enum RoleValue {
    Owner,
    Admin,
    Member,
    Viewer,
}

impl From<Role> for RoleValue {
    fn from(role: Role) -> Self {
        match role {
            Role::Owner => Self::Owner,
            Role::Admin => Self::Admin,
            Role::Member => Self::Member,
            Role::Viewer => Self::Viewer,
        }
    }
}

impl From<RoleValue> for Role {
    fn from(role: RoleValue) -> Self {
        match role {
            RoleValue::Owner => Self::Owner,
            RoleValue::Admin => Self::Admin,
            RoleValue::Member => Self::Member,
            RoleValue::Viewer => Self::Viewer,
        }
    }
}

fn role_of(text: &str) -> Option<RoleValue> {
    text.parse::<Role>().ok().map(RoleValue::from)
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "ApiKeyScope")]
pub enum ScopeValue {
    ReadOnly,
    ReadWrite,
    Admin,
}

impl From<ApiKeyScope> for ScopeValue {
    fn from(scope: ApiKeyScope) -> Self {
        match scope {
            ApiKeyScope::ReadOnly => Self::ReadOnly,
            ApiKeyScope::ReadWrite => Self::ReadWrite,
            ApiKeyScope::Admin => Self::Admin,
        }
    }
}

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
    fn of(text: &str) -> Result<Self, ApiError> {
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

impl From<ScopeValue> for ApiKeyScope {
    fn from(scope: ScopeValue) -> Self {
        match scope {
            ScopeValue::ReadOnly => Self::ReadOnly,
            ScopeValue::ReadWrite => Self::ReadWrite,
            ScopeValue::Admin => Self::Admin,
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
    async fn plan(&self) -> &str {
        &self.view.plan
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
                (sort_key(k.created_at, k.key_id), ApiKeyNode(k))
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

pub struct MemberNode(pub(crate) MemberView);

#[Object(name = "Member")]
impl MemberNode {
    async fn user_id(&self) -> ID {
        ID(self.0.user_id.to_string())
    }
    /// Null once the member's personal data was erased.
    async fn email(&self, ctx: &Context<'_>) -> GqlResult<Option<String>> {
        Ok(services(ctx)
            .vault
            .open(SubjectId::from_uuid(self.0.user_id), &self.0.sealed_email())
            .await?)
    }
    async fn role(&self) -> Option<RoleValue> {
        role_of(&self.0.role)
    }
    async fn joined_at(&self) -> DateTime<Utc> {
        self.0.joined_at
    }
}

pub struct InviteNode(pub(crate) InviteView);

#[Object(name = "Invite")]
impl InviteNode {
    async fn id(&self) -> ID {
        ID(self.0.invite_id.to_string())
    }
    async fn email(&self, ctx: &Context<'_>) -> GqlResult<Option<String>> {
        let sealed = self.0.sealed_email();
        Ok(services(ctx)
            .vault
            .open(SubjectId::from_uuid(self.0.invite_id), &sealed)
            .await?)
    }
    async fn role(&self) -> Option<RoleValue> {
        role_of(&self.0.role)
    }
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

pub struct ApiKeyNode(pub(crate) ApiKeyView);

#[Object(name = "ApiKey")]
impl ApiKeyNode {
    async fn id(&self) -> ID {
        ID(self.0.key_id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn scope(&self) -> GqlResult<ScopeValue> {
        Ok(self
            .0
            .scope
            .parse::<ApiKeyScope>()
            .map(ScopeValue::from)
            .map_err(ApiError::internal)?)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
    /// Updated at most once a minute.
    async fn last_used_at(&self, ctx: &Context<'_>) -> GqlResult<Option<DateTime<Utc>>> {
        Ok(ctx
            .data_unchecked::<DataLoader<super::loaders::KeyUsageLoader>>()
            .load_one(ApiKeyId::from_uuid(self.0.key_id))
            .await
            .map_err(ApiError::internal)?)
    }
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

#[derive(Default)]
pub struct TenancyQuery;

#[Object]
impl TenancyQuery {
    /// One of the caller's tenants (NOT_FOUND for any other).
    async fn tenant(
        &self,
        ctx: &Context<'_>,
        id: ID,
        at_position: Option<String>,
    ) -> GqlResult<TenantNode> {
        let tenant = uuid_arg("id", &id).map(TenantId::from_uuid)?;
        consistent(ctx, at_position.as_deref(), crate::areas::READ_MODELS).await?;
        let services = services(ctx);
        let grant = grant(services, &principal(ctx), tenant, Permission::Read).await?;
        Ok(tenant_node(services, TenantScope::from(&grant)).await?)
    }

    /// Every tenant on the platform (platform operators only), ordered by id.
    async fn all_tenants(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<Connection<String, TenantSummary>> {
        principal(ctx).require_operator()?;
        let services = services(ctx);
        let size = super::connection::page_size(first)?;
        let after_id = super::connection::decode_cursor(after.as_deref())?
            .map(|c| Uuid::parse_str(&c).map(TenantId::from_uuid))
            .transpose()
            .map_err(|_| ApiError::bad_input("after", "`after` is not a cursor from this API"))?;
        services.metrics.read_queries(1);
        let rows = TenantDirectory::list(
            &services.read_db,
            after_id,
            u32::try_from(size + 1).unwrap_or(u32::MAX),
        )
        .await?;
        let mut connection = Connection::new(after_id.is_some(), rows.len() > size);
        for view in rows.into_iter().take(size) {
            connection.edges.push(async_graphql::connection::Edge::new(
                super::connection::encode_cursor(&view.id.to_string()),
                TenantSummary {
                    id: ID(view.id.to_string()),
                    name: view.name,
                    slug: view.slug,
                    status: StatusValue::of(&view.status)?,
                    plan: view.plan,
                    created_at: view.created_at,
                },
            ));
        }
        Ok(connection)
    }
}

#[derive(InputObject)]
pub struct CreateTenantInput {
    pub name: String,
    /// 3-63 of a-z, 0-9 and -.
    pub slug: String,
    pub settings: Option<Vec<SettingInput>>,
}

#[derive(SimpleObject)]
pub struct TenantPayload {
    pub tenant: TenantNode,
    /// The log position this mutation wrote; pass it as `atPosition` to read your write.
    pub position: String,
}

#[derive(SimpleObject)]
pub struct MemberPayload {
    pub member: MemberNode,
    pub position: String,
}

#[derive(SimpleObject)]
pub struct InvitePayload {
    pub invite: InviteNode,
    /// Whether the invite e-mail went out (a retry with a new idempotency key sends a new
    /// invite).
    pub email_sent: bool,
    pub position: String,
}

#[derive(SimpleObject)]
pub struct ApiKeyPayload {
    pub api_key: ApiKeyNode,
    /// The key itself, shown this once (only its hash is stored). Send it as
    /// `Authorization: Bearer <secret>`.
    pub secret: Option<String>,
    pub position: String,
}

#[derive(SimpleObject)]
pub struct RemovedPayload {
    /// The id of what was removed.
    pub id: ID,
    pub position: String,
}

fn settings_arg(settings: Option<Vec<SettingInput>>) -> Result<TenantSettings, ApiError> {
    let entries: BTreeMap<String, String> = settings
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.key, s.value))
        .collect();
    Ok(TenantSettings::parse(entries)?)
}

/// The command context of this request: the caller, the request's IP (sealed), and the
/// command id made from the idempotency key.
pub(crate) async fn request_context(
    ctx: &Context<'_>,
    key: Option<&ID>,
) -> Result<CommandContext, ApiError> {
    let (services, principal, meta) = (services(ctx), principal(ctx), meta(ctx));
    services
        .context(
            principal.actor(),
            principal.caller_id(),
            idempotency(key)?,
            principal.subject(),
            &meta,
        )
        .await
}

/// A member's change to a tenant; returns the tenant as written.
async fn tenant_change(
    ctx: &Context<'_>,
    tenant_id: &ID,
    key: Option<&ID>,
    change: TenantChange,
) -> Result<TenantPayload, ApiError> {
    let (services, principal) = (services(ctx), principal(ctx));
    let tenant = tenant_arg(tenant_id)?;
    let by = principal.accessor_for(tenant)?;
    let cmd_ctx = request_context(ctx, key).await?;
    let outcome = services.counted(
        Tenant::CATEGORY,
        change_tenant(&services.executor, &cmd_ctx, Utc::now(), tenant, by, change).await,
    )?;
    Ok(TenantPayload {
        tenant: tenant_after(
            services,
            &principal,
            tenant,
            &outcome,
            &[TenantDirectory::NAME],
        )
        .await?,
        position: outcome.position.0.to_string(),
    })
}

#[derive(Default)]
pub struct TenancyMutation;

#[Object]
impl TenancyMutation {
    /// Creates a tenant; the caller becomes its owner.
    async fn create_tenant(
        &self,
        ctx: &Context<'_>,
        input: CreateTenantInput,
        idempotency_key: Option<ID>,
    ) -> GqlResult<TenantPayload> {
        let (services, principal) = (services(ctx), principal(ctx));
        let (owner, _) = principal.user()?;
        let input = CreateTenant {
            name: TenantName::parse(&input.name)?,
            slug: Slug::parse(&input.slug)?,
            settings: settings_arg(input.settings)?,
            founder: Founder::User(owner),
        };
        let cmd_ctx = request_context(ctx, idempotency_key.as_ref()).await?;
        let created = services.counted(
            Tenant::CATEGORY,
            create_tenant(&services.executor, &cmd_ctx, Utc::now(), input).await,
        )?;
        Ok(TenantPayload {
            tenant: tenant_after(
                services,
                &principal,
                created.tenant,
                &created.outcome,
                &[TenantDirectory::NAME, TenantAccessDirectory::NAME],
            )
            .await?,
            position: created.outcome.position.0.to_string(),
        })
    }

    /// Admins and owners.
    async fn rename_tenant(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        name: String,
        idempotency_key: Option<ID>,
    ) -> GqlResult<TenantPayload> {
        let change = TenantChange::Rename(TenantName::parse(&name)?);
        Ok(tenant_change(ctx, &tenant_id, idempotency_key.as_ref(), change).await?)
    }

    /// Replaces the tenant's settings (admins and owners).
    async fn change_tenant_settings(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        settings: Vec<SettingInput>,
        idempotency_key: Option<ID>,
    ) -> GqlResult<TenantPayload> {
        let change = TenantChange::ChangeSettings(settings_arg(Some(settings))?);
        Ok(tenant_change(ctx, &tenant_id, idempotency_key.as_ref(), change).await?)
    }

    /// Closes the tenant (owners); its data is deleted after the retention period.
    async fn close_tenant(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        idempotency_key: Option<ID>,
    ) -> GqlResult<TenantPayload> {
        let change = TenantChange::Close {
            retention: Duration::days(services(ctx).config.close_retention_days),
        };
        Ok(tenant_change(ctx, &tenant_id, idempotency_key.as_ref(), change).await?)
    }

    /// Platform operators only.
    async fn suspend_tenant(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        reason: String,
        idempotency_key: Option<ID>,
    ) -> GqlResult<RemovedPayload> {
        operator_command(
            ctx,
            tenant_id,
            idempotency_key,
            OperatorAction::Suspend { reason },
        )
        .await
        .map_err(GqlError)
    }

    /// Platform operators only.
    async fn reactivate_tenant(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        idempotency_key: Option<ID>,
    ) -> GqlResult<RemovedPayload> {
        operator_command(ctx, tenant_id, idempotency_key, OperatorAction::Reactivate)
            .await
            .map_err(GqlError)
    }
}

/// Suspension and reactivation: operators act on any tenant without being members.
async fn operator_command(
    ctx: &Context<'_>,
    tenant_id: ID,
    idempotency_key: Option<ID>,
    action: OperatorAction,
) -> Result<RemovedPayload, ApiError> {
    let (services, principal) = (services(ctx), principal(ctx));
    principal.require_operator()?;
    let tenant = tenant_arg(&tenant_id)?;
    let cmd_ctx = request_context(ctx, idempotency_key.as_ref()).await?;
    let outcome = services.counted(
        Tenant::CATEGORY,
        operate_tenant(&services.executor, &cmd_ctx, Utc::now(), tenant, action).await,
    )?;
    Ok(RemovedPayload {
        id: tenant_id,
        position: outcome.position.0.to_string(),
    })
}
