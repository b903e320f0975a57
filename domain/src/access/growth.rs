//! A rule over two aggregates: a tenant's access may grow (invites, acceptances, raised roles,
//! new API keys) only while the tenant is active; shrinking it (revoking, removing, lowering)
//! works whatever the tenant's state. Decided on the access state and the tenant's state read
//! together, and appended with both streams' exact versions, so a suspension racing an invite
//! cannot let it through.

use super::{AccessCommand, TenantAccess};
use crate::tenant::{Tenant, TenantStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GrowthRefused {
    #[error("the tenant is suspended")]
    Suspended,
    #[error("the tenant is closed")]
    Closed,
    #[error("no such tenant")]
    NoSuchTenant,
}

/// Whether `command` could grow access at all (a role change only when it raises the role):
/// only then is the tenant's state needed.
pub fn may_grow(command: &AccessCommand) -> bool {
    matches!(
        command,
        AccessCommand::Invite { .. }
            | AccessCommand::AcceptInvite { .. }
            | AccessCommand::ChangeRole { .. }
            | AccessCommand::CreateApiKey { .. }
    )
}

/// Refuses `command` when it grows `access` and `tenant` is not active.
pub fn check_growth(
    command: &AccessCommand,
    access: &TenantAccess,
    tenant: &Tenant,
) -> Result<(), GrowthRefused> {
    let grows = match command {
        AccessCommand::ChangeRole { user, role, .. } => {
            access.members.get(user).is_some_and(|m| *role > m.role)
        }
        other => may_grow(other),
    };
    if !grows {
        return Ok(());
    }
    match tenant.status {
        Some(TenantStatus::Active) => Ok(()),
        Some(TenantStatus::Suspended) => Err(GrowthRefused::Suspended),
        Some(TenantStatus::Closed) => Err(GrowthRefused::Closed),
        None => Err(GrowthRefused::NoSuchTenant),
    }
}
