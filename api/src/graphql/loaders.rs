//! DataLoaders: nested lists (members, invites, API keys, tenants) are loaded for every
//! tenant in the response at once, one query per list type, however many tenants there are.
//! One set of loaders per request, so nothing is cached across callers.

use crate::services::Services;
use async_graphql::dataloader::Loader;
use chrono::{DateTime, Utc};
use domain::ids::ApiKeyId;
use projections::tenant_access::{
    ApiKeyView, InviteView, MemberView, TenantAccessDirectory, TenantScope,
};
use projections::tenant_directory::{TenantDirectory, TenantView};
use std::collections::HashMap;
use std::sync::Arc;

pub type LoadError = Arc<dyn std::error::Error + Send + Sync>;

fn load_error(error: impl std::error::Error + Send + Sync + 'static) -> LoadError {
    Arc::new(error)
}

macro_rules! list_loader {
    ($name:ident, $view:ty, $query:path) => {
        pub struct $name(pub Arc<Services>);

        impl Loader<TenantScope> for $name {
            type Value = Vec<$view>;
            type Error = LoadError;

            async fn load(
                &self,
                scopes: &[TenantScope],
            ) -> Result<HashMap<TenantScope, Vec<$view>>, LoadError> {
                self.0.metrics.read_queries(1);
                let rows = $query(&self.0.read_db, scopes).await.map_err(load_error)?;
                let mut by_tenant: HashMap<TenantScope, Vec<$view>> =
                    scopes.iter().map(|s| (*s, Vec::new())).collect();
                for row in rows {
                    if let Some(scope) = scopes
                        .iter()
                        .find(|s| s.tenant().as_uuid() == row.tenant_id)
                    {
                        by_tenant.entry(*scope).or_default().push(row);
                    }
                }
                Ok(by_tenant)
            }
        }
    };
}

list_loader!(MembersLoader, MemberView, TenantAccessDirectory::members);
list_loader!(InvitesLoader, InviteView, TenantAccessDirectory::invites);
/// An API key with when it was last used.
#[derive(Debug, Clone)]
pub struct ApiKeyRow {
    pub view: ApiKeyView,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// API keys with their last use: the read model's keys, then one look-up of their use through
/// the `KeyUsage` port, in the same load (so a response waits for one DataLoader round, not
/// two).
pub struct ApiKeysLoader(pub Arc<Services>);

impl Loader<TenantScope> for ApiKeysLoader {
    type Value = Vec<ApiKeyRow>;
    type Error = LoadError;

    async fn load(
        &self,
        scopes: &[TenantScope],
    ) -> Result<HashMap<TenantScope, Vec<ApiKeyRow>>, LoadError> {
        self.0.metrics.read_queries(1);
        let rows = TenantAccessDirectory::api_keys(&self.0.read_db, scopes)
            .await
            .map_err(load_error)?;
        let ids: Vec<ApiKeyId> = rows.iter().map(|r| ApiKeyId::from_uuid(r.key_id)).collect();
        let used = self.0.key_usage.last_used(&ids).await.map_err(load_error)?;
        let mut by_tenant: HashMap<TenantScope, Vec<ApiKeyRow>> =
            scopes.iter().map(|s| (*s, Vec::new())).collect();
        for view in rows {
            if let Some(scope) = scopes
                .iter()
                .find(|s| s.tenant().as_uuid() == view.tenant_id)
            {
                let last_used_at = used.get(&ApiKeyId::from_uuid(view.key_id)).copied();
                by_tenant
                    .entry(*scope)
                    .or_default()
                    .push(ApiKeyRow { view, last_used_at });
            }
        }
        Ok(by_tenant)
    }
}

pub struct TenantsLoader(pub Arc<Services>);

impl Loader<TenantScope> for TenantsLoader {
    type Value = TenantView;
    type Error = LoadError;

    async fn load(
        &self,
        scopes: &[TenantScope],
    ) -> Result<HashMap<TenantScope, TenantView>, LoadError> {
        self.0.metrics.read_queries(1);
        let rows = TenantDirectory::scoped(&self.0.read_db, scopes)
            .await
            .map_err(load_error)?;
        Ok(rows
            .into_iter()
            .filter_map(|view| {
                let scope = scopes.iter().find(|s| s.tenant() == view.id)?;
                Some((*scope, view))
            })
            .collect())
    }
}
