//! Who is calling: a session token (`ses1.…`) or a tenant API key (`tk1.…`) in
//! `Authorization: Bearer …` (or in the WebSocket's `connection_init` payload). Both are
//! checked against the write model on every request, through the executor's cached states
//! that the log watch keeps current (`Executor::load_current`): logging out, changing the
//! password, revoking a key or removing a member takes effect on the next request in the
//! process that did it, and within half a second in every other process.
//!
//! Tenant access goes through [`grant`], which returns the [`Authorized`] proof that
//! tenant-scoped read-model queries require.

use crate::error::ApiError;
use crate::services::Services;
use chrono::Utc;
use domain::access::{API_KEY_PREFIX, Accessor, ApiKeyToken, Authorized, Permission, TenantAccess};
use domain::aggregate::Aggregate;
use domain::event::Actor;
use domain::ids::{ApiKeyId, SessionId, SubjectId, TenantId, UserId};
use domain::session_token::TokenError;
use domain::tenant::{Tenant, TenantStatus};
use domain::user::User;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
    User {
        user: UserId,
        session: SessionId,
        /// A platform operator (configured at start-up).
        operator: bool,
    },
    ApiKey {
        tenant: TenantId,
        key: ApiKeyId,
    },
}

impl Principal {
    pub fn actor(&self) -> Actor {
        match self {
            Self::Anonymous => Actor::Anonymous,
            Self::User { user, .. } => Actor::User { id: *user },
            Self::ApiKey { key, .. } => Actor::ApiKey { id: *key },
        }
    }

    /// Whose key seals this caller's personal data (its IP address).
    pub fn subject(&self) -> Option<SubjectId> {
        match self {
            Self::Anonymous => None,
            Self::User { user, .. } => Some(SubjectId::from_uuid(user.as_uuid())),
            Self::ApiKey { key, .. } => Some(SubjectId::from_uuid(key.as_uuid())),
        }
    }

    /// The id that scopes this caller's idempotency keys.
    pub fn caller_id(&self) -> Uuid {
        match self {
            Self::Anonymous => Uuid::nil(),
            Self::User { user, .. } => user.as_uuid(),
            Self::ApiKey { key, .. } => key.as_uuid(),
        }
    }

    pub fn accessor(&self) -> Result<Accessor, ApiError> {
        match self {
            Self::Anonymous => Err(ApiError::login_required()),
            Self::User { user, .. } => Ok(Accessor::User(*user)),
            Self::ApiKey { key, .. } => Ok(Accessor::ApiKey(*key)),
        }
    }

    /// Who acts on `tenant`: a user, or an API key of that very tenant (another tenant's key
    /// is told the tenant does not exist, as non-members are).
    pub fn accessor_for(&self, tenant: TenantId) -> Result<Accessor, ApiError> {
        if let Self::ApiKey { tenant: own, .. } = self
            && *own != tenant
        {
            return Err(ApiError::NotFound("no such tenant".into()));
        }
        self.accessor()
    }

    /// The logged-in user (API keys act for a tenant, not a person).
    pub fn user(&self) -> Result<(UserId, SessionId), ApiError> {
        match self {
            Self::User { user, session, .. } => Ok((*user, *session)),
            Self::Anonymous => Err(ApiError::login_required()),
            Self::ApiKey { .. } => Err(ApiError::Forbidden(
                "this needs a user's session; API keys cannot do it".into(),
            )),
        }
    }

    pub fn require_operator(&self) -> Result<(), ApiError> {
        match self {
            Self::User { operator: true, .. } => Ok(()),
            Self::Anonymous => Err(ApiError::login_required()),
            _ => Err(ApiError::Forbidden("platform operators only".into())),
        }
    }
}

fn rejected(error: TokenError) -> ApiError {
    ApiError::Unauthenticated(format!("{error}; log in again"))
}

/// Resolves a bearer token (none: anonymous).
pub async fn authenticate(services: &Services, token: Option<&str>) -> Result<Principal, ApiError> {
    let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(Principal::Anonymous);
    };
    if token.starts_with(API_KEY_PREFIX) {
        return api_key(services, token).await;
    }
    let claims = services
        .signer
        .verify(token, Utc::now())
        .map_err(rejected)?;
    let operator = checked(services, claims.user.as_uuid(), |user: &User| {
        if !user.session_is_live(claims.session, Utc::now()) {
            return Err(ApiError::Unauthenticated(
                "the session has ended (logged out or password changed); log in again".into(),
            ));
        }
        Ok(user
            .email_index
            .is_some_and(|index| services.operators.contains(&index)))
    })
    .await?;
    Ok(Principal::User {
        user: claims.user,
        session: claims.session,
        operator,
    })
}

async fn api_key(services: &Services, token: &str) -> Result<Principal, ApiError> {
    let invalid = || ApiError::Unauthenticated("the API key is invalid or was revoked".into());
    let ApiKeyToken {
        tenant,
        key,
        secret,
    } = ApiKeyToken::parse(token).map_err(|_| invalid())?;
    checked(services, tenant.as_uuid(), |access: &TenantAccess| {
        let grant = access
            .api_keys
            .get(&key)
            .filter(|g| !g.revoked)
            .ok_or_else(invalid)?;
        if !services.credentials.token_matches(&secret, &grant.secret) {
            return Err(invalid());
        }
        // A key acts with its creator's rights at most: once its creator left the tenant,
        // it stops.
        if access.role_of(Accessor::ApiKey(key)).is_none() {
            return Err(ApiError::Unauthenticated(
                "the API key's creator is no longer a member of the tenant; create a new key"
                    .into(),
            ));
        }
        Ok(())
    })
    .await?;
    // A suspended or closed tenant's keys are refused outright, whatever they would do.
    checked(services, tenant.as_uuid(), |t: &Tenant| match t.status {
        Some(TenantStatus::Active) => Ok(()),
        Some(TenantStatus::Suspended) => Err(ApiError::Forbidden(
            "the tenant is suspended: its API keys are refused until it is reactivated".into(),
        )),
        Some(TenantStatus::Closed) => Err(ApiError::Forbidden(
            "the tenant is closed: its API keys no longer work".into(),
        )),
        None => Err(invalid()),
    })
    .await?;
    services.key_usage.record(tenant, key).await;
    Ok(Principal::ApiKey { tenant, key })
}

/// Checks `permission` on `tenant` against its access state; returns the proof read models
/// ask for. Callers that are not members get NOT_FOUND, as if the tenant did not exist.
pub async fn grant(
    services: &Services,
    principal: &Principal,
    tenant: TenantId,
    permission: Permission,
) -> Result<Authorized, ApiError> {
    let accessor = principal.accessor_for(tenant)?;
    checked(services, tenant.as_uuid(), |access: &TenantAccess| {
        Ok(access.grant(tenant, accessor, permission)?)
    })
    .await
}

/// Runs `check` over aggregate `id`'s state as [`commands::Executor::load_current`] has it
/// (usually from the cache, without a read). What it grants stands; what it refuses is
/// checked again over a fresh read, because a grant made by another server (a new session,
/// a new member) may not have reached this server's cache yet. So revocations take effect
/// within the cache's bound, and grants at once.
async fn checked<A: Aggregate, T>(
    services: &Services,
    id: Uuid,
    check: impl Fn(&A) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let cached = services.executor.load_current::<A>(id).await?;
    match check(&cached.state) {
        Ok(granted) => Ok(granted),
        Err(_) => check(&services.executor.load::<A>(id).await?.state),
    }
}
