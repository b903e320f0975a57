//! Tenants and who belongs to them: queries, mutations (create, rename, settings, close,
//! suspend/reactivate; invites, roles, removal, API keys) and live subscriptions.

pub use super::members::{ApiKeyNode, InviteNode, MemberNode, RoleValue, ScopeValue};
use super::tenant::StatusValue;
pub use super::tenant::{SettingInput, TenantNode, TenantSummary};
pub(crate) use super::tenant::{tenant_after, tenant_arg, tenant_node};
use super::{consistent, idempotency, meta, principal, services, uuid_arg};
use crate::auth::grant;
use crate::error::{ApiError, GqlError, GqlResult};
use async_graphql::connection::Connection;
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{Duration, Utc};
use commands::CommandContext;
use commands::tenancy::{
    CreateTenant, Founder, OperatorAction, TenantChange, change_tenant, create_tenant,
    operate_tenant,
};
use domain::access::Permission;
use domain::aggregate::Aggregate;
use domain::ids::TenantId;
use domain::tenant::{Slug, Tenant, TenantName, TenantSettings};
use projections::tenant_access::{TenantAccessDirectory, TenantScope};
use projections::tenant_directory::TenantDirectory;
use std::collections::BTreeMap;
use uuid::Uuid;

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
    /// Its e-mail is queued with it and sent by the mail outbox.
    pub invite: InviteNode,
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
        // The tenants-per-user quota: counted with this user's earlier creations done (they
        // waited for the read models before answering); a retry of a creation that happened
        // is a replay, not one more tenant.
        let _founding = services.founding.lock(owner.as_uuid()).await;
        let limit = services.config.max_tenants_per_user;
        if services
            .executor
            .store()
            .find_command(cmd_ctx.command_id)
            .await
            .map_err(ApiError::internal)?
            .is_none()
        {
            services.metrics.read_queries(1);
            let owned = TenantScope::owned_open(&services.read_db, owner).await?;
            if owned >= limit {
                return Err(ApiError::PlanLimit(format!(
                    "you own {owned} open tenants, the most one user may own ({limit}); close one first"
                ))
                .into());
            }
        }
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
