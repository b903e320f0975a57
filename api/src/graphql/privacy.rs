//! Data subjects' rights: `deleteAccount` (the user, with the password; the last-owner rule
//! applies), `forgetSubject` (platform operators: erasure without deletion) and
//! `exportSubjectData` (the user, or operators: everything held about a person, as one JSON
//! document). Erasure is crypto-shredding (`commands::privacy`).

use super::{principal, services};
use crate::error::{ApiError, GqlResult};
use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::Utc;
use commands::privacy::{delete_account, forget_subject};
use domain::aggregate::Aggregate;
use domain::ids::{TenantId, UserId};
use domain::user::User;
use projections::tenant_access::TenantScope;
use serde_json::json;

#[derive(SimpleObject)]
pub struct ErasurePayload {
    pub position: String,
}

fn user_arg(id: &ID) -> Result<UserId, ApiError> {
    uuid::Uuid::parse_str(id.as_str())
        .map(UserId::from_uuid)
        .map_err(|_| ApiError::bad_input("userId", "not a user id"))
}

/// Every tenant `user` belongs to (the access read model).
async fn memberships(
    services: &crate::services::Services,
    user: UserId,
) -> Result<Vec<TenantScope>, ApiError> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = TenantScope::memberships(&services.read_db, user, after, 500).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.tenant());
        let full = page.len() == 500;
        all.extend(page);
        if !full {
            break;
        }
    }
    Ok(all)
}

#[derive(Default)]
pub struct PrivacyQuery;

#[Object]
impl PrivacyQuery {
    /// Everything held about a person, as one JSON document (an access request): the
    /// profile, memberships, live sessions and the audit entries where they acted. The
    /// person themself, or a platform operator. Personal fields of a forgotten person read
    /// `erased`.
    async fn export_subject_data(
        &self,
        ctx: &Context<'_>,
        user_id: Option<ID>,
    ) -> GqlResult<String> {
        let (services, principal) = (services(ctx), principal(ctx));
        let user = match &user_id {
            Some(id) => {
                let user = user_arg(id)?;
                if principal.user().ok().map(|(me, _)| me) != Some(user) {
                    principal.require_operator()?;
                }
                user
            }
            None => principal.user()?.0,
        };
        let state = services.executor.load::<User>(user.as_uuid()).await?.state;
        if state.id.is_none() {
            return Err(ApiError::NotFound("no such user".into()).into());
        }
        let email =
            commands::audit::shown_email(services.vault.as_ref(), user.as_uuid(), &state).await?;
        let memberships: Vec<_> = memberships(services, user)
            .await?
            .into_iter()
            .map(|m| json!({"tenant_id": m.tenant().to_string(), "role": m.role().as_str()}))
            .collect();
        let entries =
            projections::audit::AuditTrail::by_actor(&services.read_db, &user.to_string(), 100_000)
                .await?;
        let entries: Vec<_> = entries
            .iter()
            .map(|e| {
                json!({
                    "tenant_id": e.tenant_id, "seq": e.seq, "position": e.position,
                    "at": domain::audit::format_at(e.at), "action": e.action,
                    "target_kind": e.target_kind, "target_id": e.target_id,
                    "outcome": e.outcome, "hash": e.hash,
                })
            })
            .collect();
        let document = json!({
            "format": "tenantry.subject-data/1",
            "generated_at": Utc::now(),
            "subject": {
                "user_id": user.to_string(),
                "email": email,
                "email_verified": state.email_verified,
                "second_factor": state.totp.is_some(),
                "forgotten_at": state.forgotten_at,
                "deleted_at": state.deleted_at,
            },
            "memberships": memberships,
            "sessions": state.sessions.iter().map(|(id, expires)| json!({"session_id": id.to_string(), "expires_at": expires})).collect::<Vec<_>>(),
            "audit_entries_as_actor": entries,
        });
        Ok(document.to_string())
    }
}

#[derive(Default)]
pub struct PrivacyMutation;

#[Object]
impl PrivacyMutation {
    /// Deletes the caller's account (with the current password): leaves every tenant, ends
    /// every session and erases the person's data. Refused (CONFLICT, naming them) while the
    /// caller is the last owner of an open tenant.
    async fn delete_account(
        &self,
        ctx: &Context<'_>,
        password: String,
        idempotency_key: Option<ID>,
    ) -> GqlResult<ErasurePayload> {
        let (services, principal) = (services(ctx), principal(ctx));
        let (user, _) = principal.user()?;
        services
            .limiter
            .attempt("change_password", &user.to_string())?;
        let _hashing = services.hashing_slot()?;
        let state = services.executor.load::<User>(user.as_uuid()).await?.state;
        let matches = match &state.password {
            Some(hash) => services.credentials.password_matches(&password, hash).await,
            None => false,
        };
        if !matches {
            return Err(ApiError::Unauthenticated("the password is wrong".into()).into());
        }
        let tenants: Vec<TenantId> = memberships(services, user)
            .await?
            .iter()
            .map(TenantScope::tenant)
            .collect();
        let cmd_ctx = super::tenancy::request_context(ctx, idempotency_key.as_ref()).await?;
        let outcome = services.counted(
            User::CATEGORY,
            delete_account(
                &services.executor,
                services.vault.as_ref(),
                &cmd_ctx,
                Utc::now(),
                user,
                &tenants,
            )
            .await,
        )?;
        Ok(ErasurePayload {
            position: outcome.position.0.to_string(),
        })
    }

    /// Erases a person's data (platform operators): their key is destroyed, so their e-mail,
    /// IP addresses and second-factor secret read as erased everywhere, in every read model
    /// and rebuild; the account stays (it can no longer receive mail or sign in by e-mail).
    async fn forget_subject(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        idempotency_key: Option<ID>,
    ) -> GqlResult<ErasurePayload> {
        let (services, principal) = (services(ctx), principal(ctx));
        principal.require_operator()?;
        let user = user_arg(&user_id)?;
        let cmd_ctx = super::tenancy::request_context(ctx, idempotency_key.as_ref()).await?;
        let outcome = services.counted(
            User::CATEGORY,
            forget_subject(
                &services.executor,
                services.vault.as_ref(),
                &cmd_ctx,
                Utc::now(),
                user,
            )
            .await,
        )?;
        Ok(ErasurePayload {
            position: outcome.position.0.to_string(),
        })
    }
}
