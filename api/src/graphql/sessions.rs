//! Sessions: log-in (with the TOTP second factor or a recovery code), log-out, password
//! change, TOTP enrollment and confirmation. Each resolver applies the rate limits, calls a
//! use case of `commands::sessions` and presents the result.

use super::identity::{
    LogInInput, LogInPayload, LogOutPayload, RecoveryCodes, TotpEnrollment, UserPayload,
    client_key, user_by_email, user_context, user_node,
};
use super::{meta, principal, services};
use crate::error::{ApiError, GqlError, GqlResult};
use crate::services::{RequestMeta, Services};
use async_graphql::{Context, ID, Object};
use chrono::{Duration, Utc};
use commands::CommandContext;
use commands::sessions::{
    SecondFactor, change_password, check_password, confirm_totp, disable_totp, enroll_totp,
    log_out, start_session,
};
use domain::aggregate::Aggregate;
use domain::event::Actor;
use domain::ids::{SubjectId, UserId};
use domain::session_token::SessionClaims;
use domain::user::{Email, NewPassword, User};
use infra::crypto::Totp;

#[derive(Default)]
pub struct SessionMutation;

#[Object]
impl SessionMutation {
    /// Logs in; returns a session token. Failed attempts are recorded on the account. Takes no
    /// idempotency key: every log-in checks every factor and starts its own session.
    async fn log_in(&self, ctx: &Context<'_>, input: LogInInput) -> GqlResult<LogInPayload> {
        let (services, meta) = (services(ctx), meta(ctx));
        services.limiter.attempt("log_in", &client_key(&meta))?;
        let wrong = || ApiError::Unauthenticated("wrong e-mail address or password".into());
        let Ok(email) = Email::parse(&input.email) else {
            return Err(GqlError::from(wrong()));
        };
        // Failures count per client and account, with growing delays: an attacker's wrong
        // passwords slow the attacker down, never the owner on another client.
        let pair = format!("{}|{}", client_key(&meta), services.email_index(&email));
        services.backoff.check(&pair)?;
        let _hashing = services.hashing_slot()?;
        let Some(user_id) = user_by_email(services, &email).await? else {
            services.credentials.decoy_check(&input.password).await;
            services.backoff.failed(&pair);
            return Err(GqlError::from(wrong()));
        };
        // No idempotency key: a retried log-in is a new log-in, with every factor checked
        // again, and starts a session of its own (a stored result must never stand in for a
        // factor this request did not pass).
        let (ctx_cmd, fail_ctx) =
            checking_contexts(services, user_id, Actor::Anonymous, None, &meta).await?;
        let now = Utc::now();
        // Not a command of its own (a failure is recorded as one, and counted there).
        let user = check_password(
            &services.executor,
            services.credentials.as_ref(),
            &fail_ctx,
            now,
            user_id,
            &input.password,
        )
        .await
        .map_err(|error| {
            services.backoff.failed(&pair);
            ApiError::from(error)
        })?;
        services.backoff.succeeded(&pair);
        if user.totp.is_some() {
            // Counted only past the password: guessing codes needs the password first.
            services.limiter.attempt("totp", &user_id.to_string())?;
        }
        let factor = SecondFactor {
            totp_code: input.totp_code,
            recovery_code: input.recovery_code,
        };
        let ttl = Duration::from_std(services.config.session_ttl).unwrap_or(Duration::hours(12));
        let logged_in = services.counted(
            User::CATEGORY,
            start_session(
                &services.executor,
                services.vault.as_ref(),
                services.credentials.as_ref(),
                services.codes.as_ref(),
                (&ctx_cmd, &fail_ctx),
                now,
                (user_id, &user),
                &factor,
                ttl,
            )
            .await,
        )?;
        let token = services.signer.sign(&SessionClaims {
            user: user_id,
            session: logged_in.session,
            expires_at: logged_in.expires_at,
        });
        Ok(LogInPayload {
            token,
            expires_at: logged_in.expires_at,
            user: user_node(services, user_id).await?,
            position: logged_in.outcome.position.0.to_string(),
        })
    }

    /// Ends the current session: its token stops working at once.
    async fn log_out(
        &self,
        ctx: &Context<'_>,
        idempotency_key: Option<ID>,
    ) -> GqlResult<LogOutPayload> {
        let (services, meta, principal) = (services(ctx), meta(ctx), principal(ctx));
        let (user, session) = principal.user()?;
        let ctx_cmd = user_context(
            services,
            user,
            principal.actor(),
            idempotency_key.as_ref(),
            &meta,
        )
        .await?;
        let outcome = services.counted(
            User::CATEGORY,
            log_out(&services.executor, &ctx_cmd, Utc::now(), user, session).await,
        )?;
        Ok(LogOutPayload {
            position: outcome.position.0.to_string(),
        })
    }

    /// Changes the password; every other session ends.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_password: String,
        idempotency_key: Option<ID>,
    ) -> GqlResult<UserPayload> {
        let (services, meta, principal) = (services(ctx), meta(ctx), principal(ctx));
        let (user_id, session) = principal.user()?;
        services
            .limiter
            .attempt("change_password", &user_id.to_string())?;
        let password = NewPassword::parse(&new_password)?;
        let _hashing = services.hashing_slot()?;
        let ctx_cmd = user_context(
            services,
            user_id,
            principal.actor(),
            idempotency_key.as_ref(),
            &meta,
        )
        .await?;
        let outcome = services.counted(
            User::CATEGORY,
            change_password(
                &services.executor,
                services.credentials.as_ref(),
                &ctx_cmd,
                Utc::now(),
                (user_id, session),
                &current_password,
                &password,
            )
            .await,
        )?;
        Ok(UserPayload {
            user: user_node(services, user_id).await?,
            position: outcome.position.0.to_string(),
        })
    }

    /// Starts TOTP enrollment: add the secret to an authenticator app, then `confirmTotp`.
    /// Needs the current password, so a stolen session alone cannot bind the account to an
    /// attacker's authenticator.
    async fn enroll_totp(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        idempotency_key: Option<ID>,
    ) -> GqlResult<TotpEnrollment> {
        let (services, meta, principal) = (services(ctx), meta(ctx), principal(ctx));
        let (user_id, _) = principal.user()?;
        // Guessing the password with a session: limited like `changePassword`.
        services
            .limiter
            .attempt("change_password", &user_id.to_string())?;
        let _hashing = services.hashing_slot()?;
        let subject = SubjectId::from_uuid(user_id.as_uuid());
        let (ctx_cmd, fail_ctx) = checking_contexts(
            services,
            user_id,
            principal.actor(),
            idempotency_key.as_ref(),
            &meta,
        )
        .await?;
        let enrollment = services.counted(
            User::CATEGORY,
            enroll_totp(
                &services.executor,
                services.vault.as_ref(),
                services.credentials.as_ref(),
                services.codes.as_ref(),
                (&ctx_cmd, &fail_ctx),
                Utc::now(),
                user_id,
                &current_password,
            )
            .await,
        )?;
        let outcome = enrollment.outcome;
        let totp = Totp::from_sealable(&enrollment.secret)
            .ok_or_else(|| ApiError::internal("the TOTP secret could not be read"))?;
        let user = user_node(services, user_id).await?;
        let account = match &user.state.email {
            Some(sealed) => services
                .vault
                .open(subject, sealed)
                .await?
                .unwrap_or_default(),
            None => String::new(),
        };
        Ok(TotpEnrollment {
            secret: totp.to_base32(),
            otpauth_uri: totp.uri("Tenantry", &account),
            position: outcome.position.0.to_string(),
        })
    }

    /// Turns TOTP on with a code from the app; returns one-time recovery codes.
    async fn confirm_totp(
        &self,
        ctx: &Context<'_>,
        code: String,
        idempotency_key: Option<ID>,
    ) -> GqlResult<RecoveryCodes> {
        let (services, meta, principal) = (services(ctx), meta(ctx), principal(ctx));
        let (user_id, _) = principal.user()?;
        services.limiter.attempt("totp", &user_id.to_string())?;
        let ctx_cmd = user_context(
            services,
            user_id,
            principal.actor(),
            idempotency_key.as_ref(),
            &meta,
        )
        .await?;
        let confirmed = services.counted(
            User::CATEGORY,
            confirm_totp(
                &services.executor,
                services.vault.as_ref(),
                services.credentials.as_ref(),
                services.codes.as_ref(),
                &ctx_cmd,
                Utc::now(),
                user_id,
                &code,
            )
            .await,
        )?;
        let (codes, outcome) = (confirmed.recovery_codes, confirmed.outcome);
        Ok(RecoveryCodes {
            recovery_codes: codes,
            position: outcome.position.0.to_string(),
        })
    }

    /// Turns TOTP off: the current password and a current TOTP code or an unused recovery
    /// code (which is spent). Log-in then needs the password only.
    async fn disable_totp(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        totp_code: Option<String>,
        recovery_code: Option<String>,
        idempotency_key: Option<ID>,
    ) -> GqlResult<UserPayload> {
        let (services, meta, principal) = (services(ctx), meta(ctx), principal(ctx));
        let (user_id, _) = principal.user()?;
        services.limiter.attempt("totp", &user_id.to_string())?;
        let _hashing = services.hashing_slot()?;
        let (ctx_cmd, fail_ctx) = checking_contexts(
            services,
            user_id,
            principal.actor(),
            idempotency_key.as_ref(),
            &meta,
        )
        .await?;
        let outcome = services.counted(
            User::CATEGORY,
            disable_totp(
                &services.executor,
                services.vault.as_ref(),
                services.credentials.as_ref(),
                services.codes.as_ref(),
                (&ctx_cmd, &fail_ctx),
                Utc::now(),
                user_id,
                &current_password,
                &SecondFactor {
                    totp_code,
                    recovery_code,
                },
            )
            .await,
        )?;
        Ok(UserPayload {
            user: user_node(services, user_id).await?,
            position: outcome.position.0.to_string(),
        })
    }
}

/// The contexts of a use case that checks a password or a second factor: its own command,
/// and a fresh one for each failed attempt it records (a retried key must never meet one).
async fn checking_contexts(
    services: &Services,
    user: UserId,
    actor: Actor,
    key: Option<&ID>,
    meta: &RequestMeta,
) -> Result<(CommandContext, CommandContext), ApiError> {
    Ok((
        user_context(services, user, actor.clone(), key, meta).await?,
        user_context(services, user, actor, None, meta).await?,
    ))
}
