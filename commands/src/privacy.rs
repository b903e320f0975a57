//! Data subjects' rights: erasure (an operator forgets a person; a person deletes their own
//! account) by crypto-shredding: the events stay as they are, the subject's key is destroyed,
//! and everything sealed under it (e-mail, IP addresses, TOTP secret) reads as erased
//! everywhere, in every read model and in every rebuild. Billing and usage carry no personal
//! data, so no figure changes.

use crate::access::{AccessChange, change_access};
use crate::{CommandContext, CommandError, CommandOutcome, Executor};
use chrono::{DateTime, Utc};
use domain::access::{Accessor, Role, TenantAccess};
use domain::ids::{SubjectId, TenantId, UserId};
use domain::personal_data::PersonalData;
use domain::tenant::{Tenant, TenantStatus};
use domain::user::{User, UserCommand, UserError};

#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error(transparent)]
    User(#[from] UserError),
    /// The last owner of open tenants must hand them over or close them first.
    #[error("the last owner of {} open tenant(s) must hand them over or close them first", .0.len())]
    LastOwner(Vec<TenantId>),
    #[error("leaving a tenant: {0}")]
    Leaving(String),
    #[error("destroying the subject's key: {0}")]
    PersonalData(String),
}

/// Forgets `user` (an operator's erasure): the event first, then the key. A crash between
/// the two is mended by running it again (the key is destroyed whether the event is new or
/// not).
pub async fn forget_subject(
    exec: &Executor,
    vault: &dyn PersonalData,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    user: UserId,
) -> Result<CommandOutcome, CommandError<ErasureError>> {
    erase(exec, vault, ctx, user, &UserCommand::Forget { at: now }).await
}

/// Runs `command` (which forgets the subject) on `user`'s stream, then destroys the key.
async fn erase(
    exec: &Executor,
    vault: &dyn PersonalData,
    ctx: &CommandContext,
    user: UserId,
    command: &UserCommand,
) -> Result<CommandOutcome, CommandError<ErasureError>> {
    let outcome = exec
        .execute::<User>(user.as_uuid(), command, ctx)
        .await
        .map_err(|e| e.map_rejection(ErasureError::User))?;
    vault
        .forget(SubjectId::from_uuid(user.as_uuid()))
        .await
        .map_err(|e| CommandError::Rejected(ErasureError::PersonalData(e.to_string())))?;
    Ok(outcome)
}

/// Deletes `user`'s own account. `memberships` are the tenants the user belongs to (the
/// access read model's answer; each is checked again here on its own stream). Refused while
/// the user is the last owner of an open tenant; else the user leaves every open tenant,
/// the account is deleted (sessions ended) and the subject forgotten.
pub async fn delete_account(
    exec: &Executor,
    vault: &dyn PersonalData,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    user: UserId,
    memberships: &[TenantId],
) -> Result<CommandOutcome, CommandError<ErasureError>> {
    let load_error =
        |e: crate::LoadError| CommandError::Rejected(ErasureError::Leaving(e.to_string()));
    let mut open = Vec::new();
    let mut last_owner = Vec::new();
    for tenant in memberships {
        let state = exec
            .load::<Tenant>(tenant.as_uuid())
            .await
            .map_err(load_error)?
            .state;
        if state.status == Some(TenantStatus::Closed) {
            continue;
        }
        let access = exec
            .load::<TenantAccess>(tenant.as_uuid())
            .await
            .map_err(load_error)?
            .state;
        let Some(member) = access.members.get(&user) else {
            continue;
        };
        let owners = access
            .members
            .values()
            .filter(|m| m.role == Role::Owner)
            .count();
        if member.role == Role::Owner && owners == 1 {
            last_owner.push(*tenant);
        } else {
            open.push(*tenant);
        }
    }
    if !last_owner.is_empty() {
        return Err(CommandError::Rejected(ErasureError::LastOwner(last_owner)));
    }
    for tenant in open {
        // One command per tenant, each with an id of its own derived from this one.
        let leave = ctx
            .clone()
            .with_command_id(domain::ids::CommandId::from_uuid(uuid::Uuid::new_v5(
                &ctx.command_id.as_uuid(),
                tenant.as_uuid().as_bytes(),
            )));
        match change_access(
            exec,
            &leave,
            now,
            tenant,
            Accessor::User(user),
            AccessChange::RemoveMember(user),
        )
        .await
        {
            Ok(_)
            | Err(CommandError::Rejected(crate::access::ChangeAccessError::Access(
                domain::access::AccessError::NoSuchMember,
            ))) => {}
            Err(e) => {
                return Err(CommandError::Rejected(ErasureError::Leaving(e.to_string())));
            }
        }
    }
    erase(
        exec,
        vault,
        ctx,
        user,
        &UserCommand::DeleteAccount { at: now },
    )
    .await
}

/// The name of the reactor that destroys forgotten subjects' keys.
pub const SUBJECT_ERASURE: &str = "subject_erasure";

/// Destroys the key of every subject forgotten in the log (`SubjectForgotten`). The use
/// cases destroy it at once too; this makes it certain after a crash between the event and
/// the key's destruction, in any process (destroying a destroyed key is nothing).
#[derive(Debug, Clone)]
pub struct SubjectErasure {
    vault: std::sync::Arc<dyn PersonalData>,
}

impl SubjectErasure {
    pub fn new(vault: std::sync::Arc<dyn PersonalData>) -> Self {
        Self { vault }
    }
}

#[async_trait::async_trait]
impl domain::reactor::Reactor for SubjectErasure {
    fn name(&self) -> &'static str {
        SUBJECT_ERASURE
    }

    fn reads(&self) -> domain::event::Reads {
        use domain::aggregate::Aggregate;
        domain::event::Reads::categories(&[User::CATEGORY])
    }

    async fn react(
        &self,
        events: &[domain::event::RecordedEvent],
    ) -> Result<(), domain::reactor::ReactionError> {
        for event in events {
            if let Some(domain::user::UserEvent::SubjectForgotten { .. }) =
                domain::reactor::decoded::<User>(event)?
                && let Some(user) = event
                    .stream
                    .aggregate_id(<User as domain::aggregate::Aggregate>::CATEGORY)
            {
                self.vault
                    .forget(SubjectId::from_uuid(user))
                    .await
                    .map_err(|e| domain::reactor::ReactionError::at(event, e))?;
            }
        }
        Ok(())
    }
}
