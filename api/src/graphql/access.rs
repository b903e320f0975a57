//! Who belongs to a tenant: invites, acceptance, roles, removal, and API keys. Each
//! mutation runs a TenantAccess command, whose rules decide who may do it.

use super::tenancy::{
    ApiKeyNode, ApiKeyPayload, InviteNode, InvitePayload, MemberNode, MemberPayload,
    RemovedPayload, RoleValue, ScopeValue, TenantPayload, command_context, tenant_after,
    tenant_arg, tenant_node,
};
use super::{principal, services, uuid_arg};
use crate::auth::{Principal, api_key_token, grant};
use crate::error::{ApiError, GqlError, GqlResult};
use crate::services::Services;
use async_graphql::{Context, ID, Object};
use chrono::{Duration, Utc};
use commands::{CommandContext, CommandOutcome};
use domain::access::{AccessCommand, Permission, Role, TenantAccess};
use domain::aggregate::Aggregate;
use domain::ids::{ApiKeyId, InviteId, SubjectId, TenantId, UserId};
use domain::mailer::Mail;
use domain::tenant::{Tenant, TenantStatus};
use domain::user::{Email, User};
use infra::crypto::{hash_token, new_token};
use projections::tenant_access::{TenantAccessDirectory, TenantScope};
use uuid::Uuid;

const INVITE_VALID_DAYS: i64 = 7;

async fn run_access(
    services: &Services,
    principal: &Principal,
    tenant: TenantId,
    ctx: &CommandContext,
    command: AccessCommand,
) -> Result<CommandOutcome, ApiError> {
    principal.accessor_for(tenant)?;
    // Growing a tenant's access (invites, roles, keys) needs an active tenant; removing
    // members, invites and keys works whatever its state. Decided on the tenant's state in
    // the same atomic append.
    let may_grow = matches!(
        command,
        AccessCommand::Invite { .. }
            | AccessCommand::AcceptInvite { .. }
            | AccessCommand::ChangeRole { .. }
            | AccessCommand::CreateApiKey { .. }
    );
    // A role change grows access only when it raises the role.
    let grows = |access: &TenantAccess| match &command {
        AccessCommand::ChangeRole { user, role, .. } => {
            access.members.get(user).is_some_and(|m| *role > m.role)
        }
        _ => may_grow,
    };
    let result = services
        .executor
        .execute_with::<TenantAccess, Tenant, ApiError>(
            tenant.as_uuid(),
            may_grow.then_some(tenant.as_uuid()),
            ctx,
            |access, state| {
                let events = access.decide(&command)?;
                if grows(access) {
                    match state.status {
                        Some(TenantStatus::Active) => {}
                        Some(TenantStatus::Suspended) => {
                            return Err(ApiError::Conflict("the tenant is suspended".into()));
                        }
                        Some(TenantStatus::Closed) => {
                            return Err(ApiError::Conflict("the tenant is closed".into()));
                        }
                        None => return Err(ApiError::NotFound("no such tenant".into())),
                    }
                }
                Ok((events, vec![]))
            },
        )
        .await;
    services.counted(TenantAccess::CATEGORY, result)
}

/// An invite token: `<tenant>.<invite>.<secret>`.
fn parse_invite_token(token: &str) -> Result<(TenantId, InviteId, String), ApiError> {
    let invalid = || ApiError::bad_input("token", "the invite token is invalid");
    let mut parts = token.trim().splitn(3, '.');
    let (Some(tenant), Some(invite), Some(secret)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let tenant = Uuid::parse_str(tenant).map_err(|_| invalid())?;
    let invite = Uuid::parse_str(invite).map_err(|_| invalid())?;
    Ok((
        TenantId::from_uuid(tenant),
        InviteId::from_uuid(invite),
        secret.to_owned(),
    ))
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
        let cmd_ctx = command_context(ctx, idempotency_key.as_ref(), tenant).await?;
        let invite = InviteId::from_uuid(cmd_ctx.new_id("invite"));
        let sealed = services
            .vault
            .seal(SubjectId::from_uuid(invite.as_uuid()), email.as_str())
            .await?;
        let secret = new_token();
        let now = Utc::now();
        let command = AccessCommand::Invite {
            by: principal.accessor()?,
            invite_id: invite,
            email: sealed,
            email_index: services.email_index(&email),
            role: role.into(),
            token: hash_token(&secret),
            expires_at: now + Duration::days(INVITE_VALID_DAYS),
            at: now,
        };
        let outcome = run_access(services, &principal, tenant, &cmd_ctx, command).await?;
        let scope = TenantScope::from(&grant);
        let mut email_sent = false;
        if outcome.appended > 0 {
            let token = format!(
                "{}.{}.{secret}",
                tenant.as_uuid().simple(),
                invite.as_uuid().simple()
            );
            let tenant_name = tenant_node(services, scope)
                .await
                .map(|t| t.display_name().to_owned())
                .unwrap_or_default();
            email_sent = services
                .send_mail(Mail {
                    to: email.as_str().to_owned(),
                    subject: format!("You are invited to {tenant_name} on Tenantry"),
                    body: format!(
                        "You are invited to join {tenant_name} as {}.\n\nAccept: {}\n\nToken: {token}\n\nThe invite is valid for {INVITE_VALID_DAYS} days. Log in (or sign up with this address) first.\n",
                        Role::from(role).as_str(),
                        services.link("accept-invite", &token)
                    ),
                })
                .await;
        }
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
            email_sent,
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
        let (services, principal) = (services(ctx), principal(ctx));
        let tenant = tenant_arg(&tenant_id)?;
        let invite = InviteId::from_uuid(uuid_arg("inviteId", &invite_id)?);
        let cmd_ctx = command_context(ctx, idempotency_key.as_ref(), tenant).await?;
        let command = AccessCommand::RevokeInvite {
            by: principal.accessor()?,
            invite_id: invite,
            at: Utc::now(),
        };
        let outcome = run_access(services, &principal, tenant, &cmd_ctx, command).await?;
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
        let (user_id, _) = principal.user()?;
        let (tenant, invite, secret) = parse_invite_token(&token)?;
        let user = services
            .executor
            .load::<User>(user_id.as_uuid())
            .await?
            .state;
        let (Some(email), Some(email_index)) = (user.email, user.email_index) else {
            return Err(GqlError::from(ApiError::NotFound("no such user".into())));
        };
        let cmd_ctx = command_context(ctx, idempotency_key.as_ref(), tenant).await?;
        let command = AccessCommand::AcceptInvite {
            invite_id: invite,
            token: hash_token(&secret),
            user: user_id,
            user_email: email,
            user_email_index: email_index,
            at: Utc::now(),
        };
        let outcome = run_access(services, &principal, tenant, &cmd_ctx, command)
            .await
            .map_err(|e| match e {
                ApiError::NotFound(_) => {
                    ApiError::bad_input("token", "the invite token is invalid")
                }
                other => other,
            })?;
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
        let cmd_ctx = command_context(ctx, idempotency_key.as_ref(), tenant).await?;
        let command = AccessCommand::ChangeRole {
            by: principal.accessor()?,
            user,
            role: role.into(),
            at: Utc::now(),
        };
        let outcome = run_access(services, &principal, tenant, &cmd_ctx, command).await?;
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
        let (services, principal) = (services(ctx), principal(ctx));
        let tenant = tenant_arg(&tenant_id)?;
        let user = UserId::from_uuid(uuid_arg("userId", &user_id)?);
        let cmd_ctx = command_context(ctx, idempotency_key.as_ref(), tenant).await?;
        let command = AccessCommand::RemoveMember {
            by: principal.accessor()?,
            user,
            at: Utc::now(),
        };
        let outcome = run_access(services, &principal, tenant, &cmd_ctx, command).await?;
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
        let cmd_ctx = command_context(ctx, idempotency_key.as_ref(), tenant).await?;
        let key = ApiKeyId::from_uuid(cmd_ctx.new_id("api-key"));
        let secret = new_token();
        let command = AccessCommand::CreateApiKey {
            by: principal.accessor()?,
            key_id: key,
            name,
            scope: scope.into(),
            secret: hash_token(&secret),
            at: Utc::now(),
        };
        let outcome = run_access(services, &principal, tenant, &cmd_ctx, command).await?;
        let api_key = api_key_after(services, readable, key, &outcome).await?;
        Ok(ApiKeyPayload {
            api_key,
            // A replayed request cannot show the secret again: it was never stored.
            secret: (outcome.appended > 0 && !outcome.replayed)
                .then(|| api_key_token(tenant, key, &secret)),
            position: outcome.position.0.to_string(),
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
        let cmd_ctx = command_context(ctx, idempotency_key.as_ref(), tenant).await?;
        let command = AccessCommand::RevokeApiKey {
            by: principal.accessor()?,
            key_id: key,
            at: Utc::now(),
        };
        let outcome = run_access(services, &principal, tenant, &cmd_ctx, command).await?;
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
    TenantAccessDirectory::api_keys(&services.read_db, &[scope])
        .await?
        .into_iter()
        .find(|k| k.key_id == key.as_uuid())
        .map(ApiKeyNode)
        .ok_or_else(|| ApiError::NotFound("no such API key".into()))
}
