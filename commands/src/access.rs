//! Access use cases: invite someone, revoke an invite, accept one, change a member's role,
//! remove a member, create and revoke API keys. Members and API keys are counted against the
//! tenant's plan limits (`crate::billing::effective_limit`), inside the access decision, so
//! concurrent creates cannot pass a limit. Each runs a TenantAccess command, whose rules
//! decide who may do it; growing access also reads the tenant's state (only an active tenant
//! grows: `domain::access::check_growth`), both streams appended with exact versions.

use crate::{CommandContext, CommandError, CommandOutcome, Executor, LoadError};
use chrono::{DateTime, Duration, Utc};
use domain::access::{
    AccessCommand, AccessError, Accessor, ApiKeyScope, ApiKeyToken, GrowthRefused, InviteToken,
    Role, TenantAccess, check_growth, may_grow,
};
use domain::aggregate::Aggregate;
use domain::credentials::Credentials;
use domain::ids::{ApiKeyId, InviteId, SubjectId, TenantId, UserId};
use domain::mail::MailKind;
use domain::personal_data::{PersonalData, PersonalDataError};
use domain::plan::LimitKey;
use domain::tenant::Tenant;
use domain::user::{Email, User};

/// How long an invite can be accepted.
pub const INVITE_VALID_DAYS: i64 = 7;

#[derive(Debug, thiserror::Error)]
pub enum ChangeAccessError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Growth(#[from] GrowthRefused),
    #[error(transparent)]
    PersonalData(#[from] PersonalDataError),
}

/// Runs one access command on `tenant`, reading the tenant's state too when the command could
/// grow access.
async fn run(
    exec: &Executor,
    ctx: &CommandContext,
    tenant: TenantId,
    command: &AccessCommand,
) -> Result<CommandOutcome, CommandError<ChangeAccessError>> {
    let ctx = ctx.clone().for_tenant(tenant);
    exec.execute_with::<TenantAccess, Tenant, ChangeAccessError>(
        tenant.as_uuid(),
        may_grow(command).then_some(tenant.as_uuid()),
        &ctx,
        |access, state| {
            let events = access.decide(command)?;
            check_growth(command, access, state)?;
            Ok((events, vec![]))
        },
    )
    .await
}

/// What members with the right role change in a tenant's access list.
#[derive(Debug, Clone, Copy)]
pub enum AccessChange {
    RevokeInvite(InviteId),
    /// Admins change roles; only owners make or unmake owners; the last owner stays.
    ChangeRole {
        user: UserId,
        role: Role,
    },
    /// Removes a member (or leaves, when it is the caller); the last owner stays.
    RemoveMember(UserId),
    RevokeApiKey(ApiKeyId),
}

pub async fn change_access(
    exec: &Executor,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    tenant: TenantId,
    by: Accessor,
    change: AccessChange,
) -> Result<CommandOutcome, CommandError<ChangeAccessError>> {
    let command = match change {
        AccessChange::RevokeInvite(invite_id) => AccessCommand::RevokeInvite {
            by,
            invite_id,
            at: now,
        },
        AccessChange::ChangeRole { user, role } => AccessCommand::ChangeRole {
            by,
            user,
            role,
            at: now,
        },
        AccessChange::RemoveMember(user) => AccessCommand::RemoveMember { by, user, at: now },
        AccessChange::RevokeApiKey(key_id) => AccessCommand::RevokeApiKey {
            by,
            key_id,
            at: now,
        },
    };
    run(exec, ctx, tenant, &command).await
}

/// An invite as written (its token went into the queued mail only).
#[derive(Debug, Clone)]
pub struct Invited {
    pub invite: InviteId,
    pub expires_at: DateTime<Utc>,
    pub outcome: CommandOutcome,
}

impl AsRef<CommandOutcome> for Invited {
    fn as_ref(&self) -> &CommandOutcome {
        &self.outcome
    }
}

/// Invites `email` with `role` (admins; owners to invite owners). The address is sealed under
/// the invite's own key (the invitee may not be a user yet); the token's hash is stored, and
/// the token itself goes out in the mail queued with the invite.
#[expect(
    clippy::too_many_arguments,
    reason = "the ports, the context and the input"
)]
pub async fn invite_member(
    exec: &Executor,
    personal: &dyn PersonalData,
    credentials: &dyn Credentials,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    tenant: TenantId,
    by: Accessor,
    (email, role): (Email, Role),
) -> Result<Invited, CommandError<ChangeAccessError>> {
    let invite = InviteId::from_uuid(ctx.new_id("invite"));
    let subject = SubjectId::from_uuid(invite.as_uuid());
    let sealed = personal
        .seal(subject, email.as_str())
        .await
        .map_err(|e| CommandError::Rejected(e.into()))?;
    let secret = credentials.new_token();
    let expires_at = now + Duration::days(INVITE_VALID_DAYS);
    let token = InviteToken {
        tenant,
        invite,
        secret: secret.clone(),
    };
    let mail = crate::mail::queue(
        personal,
        (ctx.new_id("mail"), subject),
        &email,
        MailKind::Invite {
            tenant_id: tenant,
            role,
        },
        Some((&token.to_text(), expires_at)),
    )
    .await
    .map_err(|e| CommandError::Rejected(e.into()))?;
    let command = AccessCommand::Invite {
        by,
        invite_id: invite,
        email: sealed,
        email_index: personal.blind_index("email", email.as_str()),
        role,
        token: credentials.hash_token(&secret),
        expires_at,
        mail,
        at: now,
    };
    let outcome = run(exec, ctx, tenant, &command).await?;
    Ok(Invited {
        invite,
        expires_at,
        outcome,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum AcceptInviteError {
    #[error(transparent)]
    Change(#[from] ChangeAccessError),
    #[error("the invite token is invalid")]
    InvalidToken,
    #[error("no such user")]
    NoSuchUser,
}

/// Joins a tenant with an invite's token; the user's verified address must be the one
/// invited. An unknown tenant or invite is an invalid token, telling nothing more.
pub async fn accept_invite(
    exec: &Executor,
    credentials: &dyn Credentials,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    user: UserId,
    token: &InviteToken,
) -> Result<CommandOutcome, CommandError<AcceptInviteError>> {
    let state = exec
        .load::<User>(user.as_uuid())
        .await
        .map_err(LoadError::into_command)?
        .state;
    let (Some(email), Some(email_index)) = (state.email, state.email_index) else {
        return Err(CommandError::Rejected(AcceptInviteError::NoSuchUser));
    };
    let max_members = crate::billing::effective_limit(exec, token.tenant, LimitKey::Members, now)
        .await
        .map_err(LoadError::into_command)?;
    let command = AccessCommand::AcceptInvite {
        invite_id: token.invite,
        token: credentials.hash_token(&token.secret),
        user,
        user_email: email,
        user_email_index: email_index,
        max_members,
        at: now,
    };
    run(exec, ctx, token.tenant, &command)
        .await
        .map_err(|error| match error {
            CommandError::Rejected(ChangeAccessError::Access(AccessError::NotFound))
            | CommandError::Rejected(ChangeAccessError::Growth(GrowthRefused::NoSuchTenant)) => {
                CommandError::Rejected(AcceptInviteError::InvalidToken)
            }
            other => other.map_rejection(AcceptInviteError::Change),
        })
}

/// A key as created: its token when this call wrote it (shown once; only its hash is stored).
#[derive(Debug, Clone)]
pub struct CreatedApiKey {
    pub key: ApiKeyId,
    pub token: Option<ApiKeyToken>,
    pub outcome: CommandOutcome,
}

impl AsRef<CommandOutcome> for CreatedApiKey {
    fn as_ref(&self) -> &CommandOutcome {
        &self.outcome
    }
}

/// Creates an API key (admins; a key never mints a key above its own scope).
#[expect(
    clippy::too_many_arguments,
    reason = "the port, the context and the input"
)]
pub async fn create_api_key(
    exec: &Executor,
    credentials: &dyn Credentials,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    tenant: TenantId,
    by: Accessor,
    name: String,
    scope: ApiKeyScope,
) -> Result<CreatedApiKey, CommandError<ChangeAccessError>> {
    let key = ApiKeyId::from_uuid(ctx.new_id("api-key"));
    let secret = credentials.new_token();
    let max_keys = crate::billing::effective_limit(exec, tenant, LimitKey::ApiKeys, now)
        .await
        .map_err(LoadError::into_command)?;
    let command = AccessCommand::CreateApiKey {
        by,
        key_id: key,
        name,
        scope,
        secret: credentials.hash_token(&secret),
        max_keys,
        at: now,
    };
    let outcome = run(exec, ctx, tenant, &command).await?;
    let token = (outcome.appended > 0 && !outcome.replayed).then_some(ApiKeyToken {
        tenant,
        key,
        secret,
    });
    Ok(CreatedApiKey {
        key,
        token,
        outcome,
    })
}
