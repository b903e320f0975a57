//! DataLoaders: nested lists (members, invites, API keys, tenants) are loaded for every
//! tenant in the response at once, one query per list type, however many tenants there are.
//! One set of loaders per request, so nothing is cached across callers.

use crate::services::Services;
use async_graphql::dataloader::Loader;
use chrono::{DateTime, Utc};
use domain::ids::ApiKeyId;
use domain::key_usage::KeyUsageError;
use projections::QueryError;
use projections::tenant_access::{
    ApiKeyView, InviteView, MemberView, TenantAccessDirectory, TenantScope,
};
use projections::tenant_directory::{TenantDirectory, TenantView};
use std::collections::HashMap;
use std::sync::Arc;

pub type LoadError = Arc<QueryError>;

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
                let rows = $query(&self.0.read_db, scopes).await.map_err(Arc::new)?;
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
list_loader!(ApiKeysLoader, ApiKeyView, TenantAccessDirectory::api_keys);

/// When API keys were last used (from the `KeyUsage` port), for every key in the response at
/// once.
pub struct KeyUsageLoader(pub Arc<Services>);

impl Loader<ApiKeyId> for KeyUsageLoader {
    type Value = DateTime<Utc>;
    type Error = Arc<KeyUsageError>;

    async fn load(
        &self,
        keys: &[ApiKeyId],
    ) -> Result<HashMap<ApiKeyId, DateTime<Utc>>, Self::Error> {
        self.0.metrics.read_queries(1);
        self.0.key_usage.last_used(keys).await.map_err(Arc::new)
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
            .map_err(Arc::new)?;
        Ok(rows
            .into_iter()
            .filter_map(|view| {
                let scope = scopes.iter().find(|s| s.tenant() == view.id)?;
                Some((*scope, view))
            })
            .collect())
    }
}
