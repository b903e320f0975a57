//! Who belongs to a tenant: invites, acceptance, roles, removal, and API keys. Each
//! mutation parses its arguments, calls a use case of `commands::access` and presents the
//! result.

use super::loaders::ApiKeyRow;
use super::tenancy::{
    ApiKeyNode, ApiKeyPayload, InviteNode, InvitePayload, MemberNode, MemberPayload,
    RemovedPayload, RoleValue, ScopeValue, TenantPayload, request_context, tenant_after,
    tenant_arg,
};
use super::{principal, services, uuid_arg};
use crate::auth::{Principal, grant};
use crate::error::{ApiError, GqlResult};
use crate::services::Services;
use async_graphql::{Context, ID, Object};
use chrono::Utc;
use commands::CommandOutcome;
use commands::access::{AccessChange, accept_invite, change_access, create_api_key, invite_member};
use domain::access::{InviteToken, Permission, TenantAccess};
use domain::aggregate::Aggregate;
use domain::ids::{ApiKeyId, InviteId, TenantId, UserId};
use domain::user::Email;
use projections::tenant_access::{TenantAccessDirectory, TenantScope};

/// An access change by the caller; `NOT_FOUND` for another tenant's API key.
async fn change(
    ctx: &Context<'_>,
    tenant: TenantId,
    key: Option<&ID>,
    change: AccessChange,
) -> Result<CommandOutcome, ApiError> {
    let (services, principal) = (services(ctx), principal(ctx));
    let by = principal.accessor_for(tenant)?;
    let cmd_ctx = request_context(ctx, key).await?;
    services.counted(
        TenantAccess::CATEGORY,
        change_access(&services.executor, &cmd_ctx, Utc::now(), tenant, by, change).await,
    )
}

async fn member_after(
    services: &Services,
    principal: &Principal,
    tenant: TenantId,
    user: UserId,
    outcome: &CommandOutcome,
) -> Result<MemberNode, ApiError> {
    services
        .written(outcome.position, &[TenantAccessDirectory::NAME])
        .await?;
    let grant = grant(services, principal, tenant, Permission::Read).await?;
    services.metrics.read_queries(1);
    TenantAccessDirectory::members(&services.read_db, &[TenantScope::from(&grant)])
        .await?
        .into_iter()
        .find(|m| m.user_id == user.as_uuid())
        .map(MemberNode)
        .ok_or_else(|| ApiError::NotFound("no such member".into()))
}

#[derive(Default)]
pub struct AccessMutation;

#[Object]
impl AccessMutation {
    /// Invites someone by e-mail with a role (admins; owners to invite owners). The invite
    /// token goes to that address.
    async fn invite_member(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        email: String,
        role: RoleValue,
        idempotency_key: Option<ID>,
    ) -> GqlResult<InvitePayload> {
        let (services, principal) = (services(ctx), principal(ctx));
        let tenant = tenant_arg(&tenant_id)?;
        let email = Email::parse(&email)?;
        let grant = grant(services, &principal, tenant, Permission::ManageMembers).await?;
        let by = principal.accessor_for(tenant)?;
        services
            .quotas
            .invites_per_sender
            .attempt("invite", &principal.caller_id().to_string())?;
        services
            .quotas
            .invites_per_tenant
            .attempt("invite", &tenant.to_string())?;
        let cmd_ctx = request_context(ctx, idempotency_key.as_ref()).await?;
        let invited = services.counted(
            TenantAccess::CATEGORY,
            invite_member(
                &services.executor,
                services.vault.as_ref(),
                services.credentials.as_ref(),
                &cmd_ctx,
                Utc::now(),
                tenant,
                by,
                (email.clone(), role.into()),
            )
            .await,
        )?;
        let (invite, outcome) = (invited.invite, invited.outcome);
        let scope = TenantScope::from(&grant);
        services
            .written(outcome.position, &[TenantAccessDirectory::NAME])
            .await?;
        services.metrics.read_queries(1);
        let view = TenantAccessDirectory::invites(&services.read_db, &[scope])
            .await?
            .into_iter()
            .find(|i| i.invite_id == invite.as_uuid())
            .ok_or_else(|| ApiError::NotFound("the invite was used or revoked".into()))?;
        Ok(InvitePayload {
            invite: InviteNode(view),
            position: outcome.position.0.to_string(),
        })
    }

    /// Withdraws a pending invite.
    async fn revoke_invite(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        invite_id: ID,
        idempotency_key: Option<ID>,
    ) -> GqlResult<RemovedPayload> {
        let tenant = tenant_arg(&tenant_id)?;
        let invite = InviteId::from_uuid(uuid_arg("inviteId", &invite_id)?);
        let outcome = change(
            ctx,
            tenant,
            idempotency_key.as_ref(),
            AccessChange::RevokeInvite(invite),
        )
        .await?;
        Ok(RemovedPayload {
            id: invite_id,
            position: outcome.position.0.to_string(),
        })
    }

    /// Joins a tenant with the token from an invite e-mail. The caller's verified e-mail
    /// address must be the one invited.
    async fn accept_invite(
        &self,
        ctx: &Context<'_>,
        token: String,
        idempotency_key: Option<ID>,
    ) -> GqlResult<TenantPayload> {
        let (services, principal) = (services(ctx), principal(ctx));
        let (user, _) = principal.user()?;
        let token = InviteToken::parse(&token)
            .map_err(|_| ApiError::bad_input("token", "the invite token is invalid"))?;
        let tenant = token.tenant;
        let cmd_ctx = request_context(ctx, idempotency_key.as_ref()).await?;
        let accepted = services.counted(
            TenantAccess::CATEGORY,
            accept_invite(
                &services.executor,
                services.credentials.as_ref(),
                &cmd_ctx,
                Utc::now(),
                user,
                &token,
            )
            .await,
        );
        let outcome = match accepted {
            Ok(outcome) => outcome,
            Err(error) => return Err(super::billing::explain_limit(services, error).await.into()),
        };
        Ok(TenantPayload {
            tenant: tenant_after(
                services,
                &principal,
                tenant,
                &outcome,
                &[TenantAccessDirectory::NAME],
            )
            .await?,
            position: outcome.position.0.to_string(),
        })
    }

    /// Admins change members' roles; only owners make or unmake owners. The last owner
    /// cannot be demoted.
    async fn change_member_role(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        user_id: ID,
        role: RoleValue,
        idempotency_key: Option<ID>,
    ) -> GqlResult<MemberPayload> {
        let (services, principal) = (services(ctx), principal(ctx));
        let tenant = tenant_arg(&tenant_id)?;
        let user = UserId::from_uuid(uuid_arg("userId", &user_id)?);
        let role = role.into();
        let outcome = change(
            ctx,
            tenant,
            idempotency_key.as_ref(),
            AccessChange::ChangeRole { user, role },
        )
        .await?;
        Ok(MemberPayload {
            member: member_after(services, &principal, tenant, user, &outcome).await?,
            position: outcome.position.0.to_string(),
        })
    }

    /// Removes a member (or leaves, when it is the caller). The last owner cannot go.
    async fn remove_member(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        user_id: ID,
        idempotency_key: Option<ID>,
    ) -> GqlResult<RemovedPayload> {
        let tenant = tenant_arg(&tenant_id)?;
        let user = UserId::from_uuid(uuid_arg("userId", &user_id)?);
        let outcome = change(
            ctx,
            tenant,
            idempotency_key.as_ref(),
            AccessChange::RemoveMember(user),
        )
        .await?;
        Ok(RemovedPayload {
            id: user_id,
            position: outcome.position.0.to_string(),
        })
    }

    /// Creates an API key (admins); its secret is in the response, once.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        name: String,
        scope: ScopeValue,
        idempotency_key: Option<ID>,
    ) -> GqlResult<ApiKeyPayload> {
        let (services, principal) = (services(ctx), principal(ctx));
        let tenant = tenant_arg(&tenant_id)?;
        let readable =
            TenantScope::from(&grant(services, &principal, tenant, Permission::ManageKeys).await?);
        let by = principal.accessor_for(tenant)?;
        let cmd_ctx = request_context(ctx, idempotency_key.as_ref()).await?;
        let created = services.counted(
            TenantAccess::CATEGORY,
            create_api_key(
                &services.executor,
                services.credentials.as_ref(),
                &cmd_ctx,
                Utc::now(),
                tenant,
                by,
                name,
                scope.into(),
            )
            .await,
        );
        let created = match created {
            Ok(created) => created,
            Err(error) => return Err(super::billing::explain_limit(services, error).await.into()),
        };
        let api_key = api_key_after(services, readable, created.key, &created.outcome).await?;
        Ok(ApiKeyPayload {
            api_key,
            // A replayed request cannot show the secret again: it was never stored.
            secret: created.token.map(|t| t.to_text()),
            position: created.outcome.position.0.to_string(),
        })
    }

    /// Revokes an API key (admins): it stops working at once.
    async fn revoke_api_key(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        api_key_id: ID,
        idempotency_key: Option<ID>,
    ) -> GqlResult<ApiKeyPayload> {
        let (services, principal) = (services(ctx), principal(ctx));
        let tenant = tenant_arg(&tenant_id)?;
        let key = ApiKeyId::from_uuid(uuid_arg("apiKeyId", &api_key_id)?);
        let scope =
            TenantScope::from(&grant(services, &principal, tenant, Permission::ManageKeys).await?);
        let outcome = change(
            ctx,
            tenant,
            idempotency_key.as_ref(),
            AccessChange::RevokeApiKey(key),
        )
        .await?;
        Ok(ApiKeyPayload {
            api_key: api_key_after(services, scope, key, &outcome).await?,
            secret: None,
            position: outcome.position.0.to_string(),
        })
    }
}

/// The key as written, read with the permission checked before the write (a key that revoked
/// itself can no longer pass a check, but may see the result of its own request).
async fn api_key_after(
    services: &Services,
    scope: TenantScope,
    key: ApiKeyId,
    outcome: &CommandOutcome,
) -> Result<ApiKeyNode, ApiError> {
    services
        .written(outcome.position, &[TenantAccessDirectory::NAME])
        .await?;
    services.metrics.read_queries(1);
    let view = TenantAccessDirectory::api_keys(&services.read_db, &[scope])
        .await?
        .into_iter()
        .find(|k| k.key_id == key.as_uuid())
        .ok_or_else(|| ApiError::NotFound("no such API key".into()))?;
    let last_used_at = services
        .key_usage
        .last_used(&[key])
        .await
        .map_err(ApiError::internal)?
        .get(&key)
        .copied();
    Ok(ApiKeyNode(ApiKeyRow { view, last_used_at }))
}
