//! Sessions: log-in (with the TOTP second factor or a recovery code), log-out, password
//! change, TOTP enrollment and confirmation.

use super::identity::{
    LogInInput, LogInPayload, LogOutPayload, RecoveryCodes, TotpEnrollment, UserPayload,
    client_key, decoy_hash, hash_off_thread, run_user, user_by_email, user_context, user_node,
    verify_off_thread,
};
use super::{meta, principal, services};
use crate::error::{ApiError, GqlError, GqlResult};
use crate::services::Services;
use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Duration, Utc};
use domain::event::Actor;
use domain::ids::{SessionId, SubjectId, UserId};
use domain::personal_data::Sealed;
use domain::session_token::SessionClaims;
use domain::user::{Email, LoginFailure, NewPassword, User, UserCommand, UserError};
use infra::crypto::{Totp, hash_token, new_token};

const RECOVERY_CODES: usize = 10;

/// A user's TOTP secret, opened from its sealed form (`None` once the user was forgotten).
async fn open_totp(
    services: &Services,
    user: UserId,
    sealed: &Sealed,
) -> Result<Option<Totp>, ApiError> {
    let secret = services
        .vault
        .open(SubjectId::from_uuid(user.as_uuid()), sealed)
        .await?;
    Ok(secret.as_deref().and_then(Totp::from_sealable))
}

#[derive(Default)]
pub struct SessionMutation;

#[Object]
impl SessionMutation {
    /// Logs in; returns a session token. Failed attempts are recorded on the account.
    async fn log_in(
        &self,
        ctx: &Context<'_>,
        input: LogInInput,
        idempotency_key: Option<ID>,
    ) -> GqlResult<LogInPayload> {
        let (services, meta) = (services(ctx), meta(ctx));
        services.limiter.attempt("log_in", &client_key(&meta))?;
        let wrong = || ApiError::Unauthenticated("wrong e-mail address or password".into());
        let Ok(email) = Email::parse(&input.email) else {
            return Err(GqlError::from(wrong()));
        };
        services
            .limiter
            .attempt("log_in_account", &services.email_index(&email).to_string())?;
        let Some(user_id) = user_by_email(services, &email).await? else {
            verify_off_thread(input.password, decoy_hash()).await?;
            return Err(GqlError::from(wrong()));
        };
        let user = services
            .executor
            .load::<User>(user_id.as_uuid())
            .await?
            .state;
        let hash = user.password.clone().unwrap_or_else(decoy_hash);
        let ctx_cmd = user_context(
            services,
            user_id,
            Actor::Anonymous,
            idempotency_key.as_ref(),
            &meta,
        )
        .await?;
        // Failures are recorded under commands of their own: a retried key must never meet one.
        let fail_ctx = user_context(services, user_id, Actor::Anonymous, None, &meta).await?;
        let now = Utc::now();
        let fail = |reason| UserCommand::RecordFailedLogin { reason, at: now };
        if !verify_off_thread(input.password, hash).await? {
            run_user(
                services,
                user_id,
                &fail(LoginFailure::WrongPassword),
                &fail_ctx,
            )
            .await?;
            return Err(GqlError::from(wrong()));
        }
        if !user.email_verified {
            run_user(
                services,
                user_id,
                &fail(LoginFailure::EmailNotVerified),
                &fail_ctx,
            )
            .await?;
            return Err(GqlError::from(UserError::EmailNotVerified));
        }
        let mut recovery_code = None;
        let mut totp_step = None;
        if let Some(sealed) = &user.totp {
            services.limiter.attempt("totp", &user_id.to_string())?;
            let totp = open_totp(services, user_id, sealed).await?;
            let step = match (&input.totp_code, &totp) {
                (Some(code), Some(totp)) => totp.matching_step(code, now),
                _ => None,
            };
            match (&input.totp_code, &input.recovery_code, step) {
                (Some(_), _, Some(step)) => totp_step = Some(step),
                (None, Some(code), _) => recovery_code = Some(hash_token(code.trim())),
                (None, None, _) => {
                    return Err(ApiError::Unauthenticated(
                        "this account needs a TOTP code (totpCode) or a recovery code (recoveryCode)".into(),
                    )
                    .into());
                }
                _ => {
                    run_user(
                        services,
                        user_id,
                        &fail(LoginFailure::WrongSecondFactor),
                        &fail_ctx,
                    )
                    .await?;
                    return Err(GqlError::from(ApiError::Unauthenticated(
                        "wrong TOTP code".into(),
                    )));
                }
            }
        }
        let session = SessionId::from_uuid(ctx_cmd.new_id("session"));
        let ttl = Duration::from_std(services.config.session_ttl).unwrap_or(Duration::hours(12));
        // Whole seconds, as the token carries them.
        let expires_at = DateTime::from_timestamp((now + ttl).timestamp(), 0).unwrap_or(now + ttl);
        let command = UserCommand::StartSession {
            session_id: session,
            expires_at,
            recovery_code,
            totp_step,
            at: now,
        };
        let outcome = match run_user(services, user_id, &command, &ctx_cmd).await {
            Err(ApiError::Unauthenticated(message)) => {
                run_user(
                    services,
                    user_id,
                    &fail(LoginFailure::WrongSecondFactor),
                    &fail_ctx,
                )
                .await?;
                return Err(GqlError::from(ApiError::Unauthenticated(message)));
            }
            other => other?,
        };
        let mut expires_at = expires_at;
        if outcome.replayed {
            // A retried log-in: the session the first request started, if it still lives.
            let state = services
                .executor
                .load::<User>(user_id.as_uuid())
                .await?
                .state;
            match state.sessions.get(&session) {
                Some(stored) if state.session_is_live(session, Utc::now()) => expires_at = *stored,
                _ => {
                    return Err(GqlError::from(ApiError::Conflict(
                        "the session this idempotency key started has ended; log in without it"
                            .into(),
                    )));
                }
            }
        }
        let token = services.signer.sign(&SessionClaims {
            user: user_id,
            session,
            expires_at,
        });
        Ok(LogInPayload {
            token,
            expires_at,
            user: user_node(services, user_id).await?,
            position: outcome.position.0.to_string(),
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
        let outcome = run_user(
            services,
            user,
            &UserCommand::EndSession {
                session_id: session,
                at: Utc::now(),
            },
            &ctx_cmd,
        )
        .await?;
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
        let user = services
            .executor
            .load::<User>(user_id.as_uuid())
            .await?
            .state;
        let ctx_cmd = user_context(
            services,
            user_id,
            principal.actor(),
            idempotency_key.as_ref(),
            &meta,
        )
        .await?;
        // A retry of a change that went through: the current password is the new one now.
        if idempotency_key.is_some()
            && let Some(first) = services
                .executor
                .store()
                .find_command(ctx_cmd.command_id)
                .await
                .map_err(ApiError::internal)?
        {
            return Ok(UserPayload {
                user: user_node(services, user_id).await?,
                position: first.last_position.0.to_string(),
            });
        }
        let current = user.password.clone().unwrap_or_else(decoy_hash);
        if !verify_off_thread(current_password, current).await? {
            return Err(
                ApiError::bad_input("currentPassword", "the current password is wrong").into(),
            );
        }
        let password = hash_off_thread(password.expose().to_owned()).await?;
        let command = UserCommand::ChangePassword {
            password,
            keep_session: session,
            at: Utc::now(),
        };
        let outcome = run_user(services, user_id, &command, &ctx_cmd).await?;
        Ok(UserPayload {
            user: user_node(services, user_id).await?,
            position: outcome.position.0.to_string(),
        })
    }

    /// Starts TOTP enrollment: add the secret to an authenticator app, then `confirmTotp`.
    async fn enroll_totp(
        &self,
        ctx: &Context<'_>,
        idempotency_key: Option<ID>,
    ) -> GqlResult<TotpEnrollment> {
        let (services, meta, principal) = (services(ctx), meta(ctx), principal(ctx));
        let (user_id, _) = principal.user()?;
        let subject = SubjectId::from_uuid(user_id.as_uuid());
        let totp = Totp::generate();
        let sealed = services.vault.seal(subject, &totp.to_sealable()).await?;
        let ctx_cmd = user_context(
            services,
            user_id,
            principal.actor(),
            idempotency_key.as_ref(),
            &meta,
        )
        .await?;
        let command = UserCommand::StartTotpEnrollment {
            secret: sealed,
            at: Utc::now(),
        };
        let outcome = run_user(services, user_id, &command, &ctx_cmd).await?;
        let user = user_node(services, user_id).await?;
        // The pending secret as stored: a retried request shows the first one.
        let totp = match &user.state.totp_pending {
            Some(pending) => open_totp(services, user_id, pending).await?.unwrap_or(totp),
            None if outcome.replayed => {
                return Err(GqlError::from(ApiError::Conflict(
                    "this enrollment was already confirmed".into(),
                )));
            }
            None => totp,
        };
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
        let user = services
            .executor
            .load::<User>(user_id.as_uuid())
            .await?
            .state;
        let Some(pending) = &user.totp_pending else {
            return Err(GqlError::from(UserError::NoTotpEnrollment));
        };
        let totp = open_totp(services, user_id, pending)
            .await?
            .ok_or_else(|| ApiError::internal("the pending TOTP secret could not be opened"))?;
        if !totp.verify(&code, Utc::now()) {
            return Err(ApiError::bad_input(
                "code",
                "the code does not match; check the app's clock",
            )
            .into());
        }
        let codes: Vec<String> = (0..RECOVERY_CODES)
            .map(|_| new_token()[..16].to_owned())
            .collect();
        let command = UserCommand::EnableTotp {
            recovery_codes: codes.iter().map(|c| hash_token(c)).collect(),
            at: Utc::now(),
        };
        let ctx_cmd = user_context(
            services,
            user_id,
            principal.actor(),
            idempotency_key.as_ref(),
            &meta,
        )
        .await?;
        let outcome = run_user(services, user_id, &command, &ctx_cmd).await?;
        if outcome.replayed {
            // The codes were shown to the first request; these were never stored.
            return Err(GqlError::from(ApiError::Conflict(
                "TOTP is already confirmed; its recovery codes were shown once".into(),
            )));
        }
        Ok(RecoveryCodes {
            recovery_codes: codes,
            position: outcome.position.0.to_string(),
        })
    }
}
