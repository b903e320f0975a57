//! Tenancy use cases: create a tenant (provision it and found its access), rename it, change
//! its settings, close it, suspend and reactivate it (operators), and record its data deleted
//! once the retention period is over. GraphQL, the CLI and the retention job call these; they
//! only parse, call and present.

use crate::{Claim, CommandContext, CommandError, CommandOutcome, Executor};
use chrono::{DateTime, Duration, Utc};
use domain::access::{AccessCommand, AccessError, Accessor, Permission, TenantAccess};
use domain::aggregate::Aggregate;
use domain::ids::{CorrelationId, EventId, TenantId, UserId};
use domain::tenant::{
    Slug, SlugClaim, Tenant, TenantCommand, TenantError, TenantName, TenantSettings,
};
use domain::user::User;

/// The name data-deletion commands are issued under (part of their derived command ids).
pub const RETENTION: &str = "tenant_data_retention";

/// Who founds a new tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Founder {
    /// The user becomes its first owner.
    User(UserId),
    /// A platform operator provisions it without an owner yet (the CLI without `--owner`):
    /// nobody can reach it through the API until an owner is named.
    Operator,
}

#[derive(Debug, Clone)]
pub struct CreateTenant {
    pub name: TenantName,
    pub slug: Slug,
    pub settings: TenantSettings,
    pub founder: Founder,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateTenantError {
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("the owner named has no account")]
    NoSuchOwner,
}

#[derive(Debug, Clone, Copy)]
pub struct Created {
    pub tenant: TenantId,
    pub outcome: CommandOutcome,
}

impl AsRef<CommandOutcome> for Created {
    fn as_ref(&self) -> &CommandOutcome {
        &self.outcome
    }
}

/// Provisions a tenant and, for a user founder, makes them its owner, in one atomic append.
/// The tenant id derives from the command id when it came from an idempotency key, so a retry
/// names the same tenant and writes nothing.
pub async fn create_tenant(
    exec: &Executor,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    input: CreateTenant,
) -> Result<Created, CommandError<CreateTenantError>> {
    let tenant = TenantId::from_uuid(ctx.new_id("tenant"));
    let ctx = ctx.clone().for_tenant(tenant);
    let slug = input.slug;
    let provision = TenantCommand::Provision {
        tenant_id: tenant,
        name: input.name,
        slug: slug.clone(),
        settings: input.settings,
        at: now,
    };
    let found = match input.founder {
        Founder::User(owner) => {
            let user = exec
                .load::<User>(owner.as_uuid())
                .await
                .map_err(crate::LoadError::into_command)?
                .state;
            let owner_email = user
                .email
                .ok_or(CommandError::Rejected(CreateTenantError::NoSuchOwner))?;
            Some(AccessCommand::Found {
                owner,
                owner_email,
                at: now,
            })
        }
        Founder::Operator => None,
    };
    // The slug is claimed in the same atomic append: two tenants cannot share one.
    let claim = Claim {
        id: SlugClaim::id_of(&slug),
        command: tenant,
        refused: CreateTenantError::Tenant,
    };
    let outcome = exec
        .execute_claiming::<Tenant, TenantAccess, SlugClaim, CreateTenantError>(
            tenant.as_uuid(),
            Some(tenant.as_uuid()),
            Some(claim),
            &ctx,
            |state, access| {
                let access_events = match &found {
                    Some(found) => access.decide(found)?,
                    None => vec![],
                };
                Ok((state.decide(&provision)?, access_events))
            },
        )
        .await?;
    Ok(Created { tenant, outcome })
}

/// What a member may change about a tenant.
#[derive(Debug, Clone)]
pub enum TenantChange {
    /// Admins and owners.
    Rename(TenantName),
    /// Admins and owners; replaces every setting.
    ChangeSettings(TenantSettings),
    /// Owners; the data is deleted once `retention` has passed.
    Close { retention: Duration },
}

impl TenantChange {
    pub fn permission(&self) -> Permission {
        match self {
            Self::Rename(_) | Self::ChangeSettings(_) => Permission::ManageTenant,
            Self::Close { .. } => Permission::Close,
        }
    }

    fn command(self, at: DateTime<Utc>) -> TenantCommand {
        match self {
            Self::Rename(name) => TenantCommand::Rename { name, at },
            Self::ChangeSettings(settings) => TenantCommand::ChangeSettings { settings, at },
            Self::Close { retention } => TenantCommand::Close { at, retention },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChangeTenantError {
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error(transparent)]
    Access(#[from] AccessError),
}

/// A member's change, decided together with their permission on the same access state (both
/// streams appended with exact expectations, so a role removed meanwhile refuses it).
pub async fn change_tenant(
    exec: &Executor,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    tenant: TenantId,
    by: Accessor,
    change: TenantChange,
) -> Result<CommandOutcome, CommandError<ChangeTenantError>> {
    let permission = change.permission();
    let command = change.command(now);
    let ctx = ctx.clone().for_tenant(tenant);
    exec.execute_with::<Tenant, TenantAccess, ChangeTenantError>(
        tenant.as_uuid(),
        Some(tenant.as_uuid()),
        &ctx,
        |state, access| {
            access.authorize(by, permission)?;
            Ok((state.decide(&command)?, vec![]))
        },
    )
    .await
}

/// What platform operators do to any tenant without being its members (checked by the
/// caller: the API's operator list, or the CLI, which is an operator's tool).
#[derive(Debug, Clone)]
pub enum OperatorAction {
    Suspend {
        reason: String,
    },
    Reactivate,
    /// What members may do, done by an operator.
    Change(TenantChange),
}

pub async fn operate_tenant(
    exec: &Executor,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    tenant: TenantId,
    action: OperatorAction,
) -> Result<CommandOutcome, CommandError<TenantError>> {
    let command = match action {
        OperatorAction::Suspend { reason } => TenantCommand::Suspend { reason, at: now },
        OperatorAction::Reactivate => TenantCommand::Reactivate { at: now },
        OperatorAction::Change(change) => change.command(now),
    };
    exec.execute::<Tenant>(tenant.as_uuid(), &command, &ctx.clone().for_tenant(tenant))
        .await
}

/// A closed tenant whose retention period has run out, with the `TenantClosed` event that
/// started its clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueDeletion {
    pub tenant: TenantId,
    pub due: DateTime<Utc>,
    pub closed_by: EventId,
    pub correlation: Option<CorrelationId>,
}

/// Records that a closed tenant's data is deleted. The command id derives from the closing
/// event, so several processes doing this at once, or again after a restart, write it once
/// (the later ones get the first outcome back, `replayed`). The Tenant aggregate refuses it
/// before the retention period is over.
pub async fn record_data_deleted(
    exec: &Executor,
    now: DateTime<Utc>,
    due: &DueDeletion,
) -> Result<CommandOutcome, CommandError<TenantError>> {
    let ctx =
        CommandContext::caused_by_id(due.closed_by, due.correlation, Some(due.tenant), RETENTION);
    exec.execute::<Tenant>(
        due.tenant.as_uuid(),
        &TenantCommand::RecordDataDeleted { at: now },
        &ctx,
    )
    .await
}

/// The name slug claims of tenants provisioned before slugs were claimed are made under.
pub const SLUG_CLAIMS: &str = "slug_claims";

/// Claims the slug of every provisioned tenant that has no claim yet: tenants created before
/// slugs were claimed (a new tenant claims its slug in the same append as its provisioning,
/// and finds its claim here already made). Of two such tenants with one slug, the first
/// provisioned keeps it; the other is logged for an operator and left as it is (slugs cannot
/// be renamed). Each claim's command id derives from the provisioning event, so a
/// redelivered event claims nothing twice.
#[derive(Debug, Clone)]
pub struct SlugClaims {
    exec: Executor,
}

impl SlugClaims {
    pub fn new(exec: Executor) -> Self {
        Self { exec }
    }
}

#[async_trait::async_trait]
impl domain::reactor::Reactor for SlugClaims {
    fn name(&self) -> &'static str {
        SLUG_CLAIMS
    }

    fn reads(&self) -> domain::event::Reads {
        domain::event::Reads::categories(&[Tenant::CATEGORY])
    }

    async fn react(
        &self,
        events: &[domain::event::RecordedEvent],
    ) -> Result<(), domain::reactor::ReactionError> {
        for event in events {
            let failed = |reason: String| domain::reactor::ReactionError::at(event, reason);
            let Some(domain::tenant::TenantEvent::TenantProvisioned {
                tenant_id, slug, ..
            }) = domain::reactor::decoded::<Tenant>(event)?
            else {
                continue;
            };
            let ctx = CommandContext::caused_by(event, SLUG_CLAIMS);
            match self
                .exec
                .execute::<SlugClaim>(SlugClaim::id_of(&slug), &tenant_id, &ctx)
                .await
            {
                Ok(outcome) if outcome.appended > 0 && !outcome.replayed => {
                    tracing::info!(reactor = SLUG_CLAIMS, tenant.id = %tenant_id, "slug claimed for a tenant provisioned before slugs were claimed");
                }
                Ok(_) => {}
                Err(CommandError::Rejected(TenantError::SlugTaken)) => {
                    let owner = self
                        .exec
                        .load::<SlugClaim>(SlugClaim::id_of(&slug))
                        .await
                        .ok()
                        .and_then(|claim| claim.state.tenant);
                    tracing::warn!(reactor = SLUG_CLAIMS, tenant.id = %tenant_id, slug.owner = ?owner.map(|t| t.to_string()), "two tenants share a slug (both provisioned before slugs were claimed); the first keeps it");
                }
                Err(error) => return Err(failed(error.to_string())),
            }
        }
        Ok(())
    }
}
