//! The objects of a tenant's access list: members, invites and API keys, with the GraphQL
//! enums of roles and key scopes.

use super::loaders::ApiKeyRow;
use super::services;
use crate::error::{ApiError, GqlResult};
use async_graphql::{Context, Enum, ID, Object};
use chrono::{DateTime, Utc};
use domain::access::{ApiKeyScope, Role};
use domain::ids::SubjectId;
use projections::tenant_access::{InviteView, MemberView};

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Role")]
pub enum RoleValue {
    Owner,
    Admin,
    Member,
    Viewer,
}

impl From<Role> for RoleValue {
    fn from(role: Role) -> Self {
        match role {
            Role::Owner => Self::Owner,
            Role::Admin => Self::Admin,
            Role::Member => Self::Member,
            Role::Viewer => Self::Viewer,
        }
    }
}

impl From<RoleValue> for Role {
    fn from(role: RoleValue) -> Self {
        match role {
            RoleValue::Owner => Self::Owner,
            RoleValue::Admin => Self::Admin,
            RoleValue::Member => Self::Member,
            RoleValue::Viewer => Self::Viewer,
        }
    }
}

fn role_of(text: &str) -> Option<RoleValue> {
    text.parse::<Role>().ok().map(RoleValue::from)
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "ApiKeyScope")]
pub enum ScopeValue {
    ReadOnly,
    ReadWrite,
    Admin,
}

impl From<ApiKeyScope> for ScopeValue {
    fn from(scope: ApiKeyScope) -> Self {
        match scope {
            ApiKeyScope::ReadOnly => Self::ReadOnly,
            ApiKeyScope::ReadWrite => Self::ReadWrite,
            ApiKeyScope::Admin => Self::Admin,
        }
    }
}

impl From<ScopeValue> for ApiKeyScope {
    fn from(scope: ScopeValue) -> Self {
        match scope {
            ScopeValue::ReadOnly => Self::ReadOnly,
            ScopeValue::ReadWrite => Self::ReadWrite,
            ScopeValue::Admin => Self::Admin,
        }
    }
}

pub struct MemberNode(pub(crate) MemberView);

#[Object(name = "Member")]
impl MemberNode {
    async fn user_id(&self) -> ID {
        ID(self.0.user_id.to_string())
    }
    /// Null once the member's personal data was erased.
    async fn email(&self, ctx: &Context<'_>) -> GqlResult<Option<String>> {
        Ok(services(ctx)
            .vault
            .open(SubjectId::from_uuid(self.0.user_id), &self.0.sealed_email())
            .await?)
    }
    async fn role(&self) -> Option<RoleValue> {
        role_of(&self.0.role)
    }
    async fn joined_at(&self) -> DateTime<Utc> {
        self.0.joined_at
    }
}

pub struct InviteNode(pub(crate) InviteView);

#[Object(name = "Invite")]
impl InviteNode {
    async fn id(&self) -> ID {
        ID(self.0.invite_id.to_string())
    }
    async fn email(&self, ctx: &Context<'_>) -> GqlResult<Option<String>> {
        let sealed = self.0.sealed_email();
        Ok(services(ctx)
            .vault
            .open(SubjectId::from_uuid(self.0.invite_id), &sealed)
            .await?)
    }
    async fn role(&self) -> Option<RoleValue> {
        role_of(&self.0.role)
    }
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

pub struct ApiKeyNode(pub(crate) ApiKeyRow);

#[Object(name = "ApiKey")]
impl ApiKeyNode {
    async fn id(&self) -> ID {
        ID(self.0.view.key_id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.view.name
    }
    async fn scope(&self) -> GqlResult<ScopeValue> {
        Ok(self
            .0
            .view
            .scope
            .parse::<ApiKeyScope>()
            .map(ScopeValue::from)
            .map_err(ApiError::internal)?)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.view.created_at
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.view.revoked_at
    }
    /// Updated at most once a minute.
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }
}
