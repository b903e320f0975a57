//! Live updates: subscriptions woken by the projection runner's commit announcements for the
//! caller's tenant, re-checking the caller's access before every push.

use super::tenancy::{MemberNode, TenantNode, tenant_arg, tenant_node};
use super::{principal, services};
use crate::auth::{Principal, grant};
use crate::error::{ApiError, GqlError};
use crate::services::Services;
use async_graphql::{Context, ID, Subscription};
use domain::access::Permission;
use domain::ids::TenantId;
use futures_util::Stream;
use projections::runner::ProjectionUpdate;
use projections::tenant_access::{TenantAccessDirectory, TenantScope};
use projections::tenant_directory::TenantDirectory;
use std::sync::Arc;

#[derive(Default)]
pub struct TenancySubscription;

/// Waits for the next committed batch of `projection` that touched `tenant`. A receiver
/// that lagged behind treats the gap as a change.
async fn next_change(
    updates: &mut tokio::sync::broadcast::Receiver<ProjectionUpdate>,
    projection: &str,
    tenant: TenantId,
) -> bool {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match updates.recv().await {
            Ok(update) if update.projection == projection && update.tenants.contains(&tenant) => {
                return true;
            }
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => return true,
            Err(RecvError::Closed) => return false,
        }
    }
}

struct Watch {
    services: Arc<Services>,
    principal: Principal,
    tenant: TenantId,
    updates: tokio::sync::broadcast::Receiver<ProjectionUpdate>,
    done: bool,
}

async fn watch(ctx: &Context<'_>, tenant_id: &ID) -> Result<Watch, ApiError> {
    let services = services(ctx).clone();
    let principal = principal(ctx);
    let tenant = tenant_arg(tenant_id)?;
    // Subscribe before the check, so no change between the two is missed.
    let updates = services.updates.subscribe();
    grant(&services, &principal, tenant, Permission::Read).await?;
    Ok(Watch {
        services,
        principal,
        tenant,
        updates,
        done: false,
    })
}

#[Subscription]
impl TenancySubscription {
    /// The tenant, each time its directory entry changes. Ends (with an error) when the
    /// caller loses access.
    async fn tenant_updated(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
    ) -> Result<impl Stream<Item = Result<TenantNode, GqlError>> + use<>, GqlError> {
        let watch = watch(ctx, &tenant_id).await?;
        Ok(futures_util::stream::unfold(watch, |mut w| async move {
            if w.done || !next_change(&mut w.updates, TenantDirectory::NAME, w.tenant).await {
                return None;
            }
            let item = match grant(&w.services, &w.principal, w.tenant, Permission::Read).await {
                Ok(grant) => tenant_node(&w.services, TenantScope::from(&grant)).await,
                Err(e) => Err(e),
            };
            w.done = item.is_err();
            Some((item.map_err(GqlError), w))
        }))
    }

    /// The tenant's members, each time they change (joined, role changed, removed).
    async fn members_changed(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
    ) -> Result<impl Stream<Item = Result<Vec<MemberNode>, GqlError>> + use<>, GqlError> {
        let watch = watch(ctx, &tenant_id).await?;
        Ok(futures_util::stream::unfold(watch, |mut w| async move {
            if w.done || !next_change(&mut w.updates, TenantAccessDirectory::NAME, w.tenant).await {
                return None;
            }
            let item = match grant(&w.services, &w.principal, w.tenant, Permission::Read).await {
                Ok(grant) => TenantAccessDirectory::members(
                    &w.services.read_db,
                    &[TenantScope::from(&grant)],
                )
                .await
                .map(|rows| rows.into_iter().map(MemberNode).collect())
                .map_err(ApiError::from),
                Err(e) => Err(e),
            };
            w.done = item.is_err();
            Some((item.map_err(GqlError), w))
        }))
    }
}
