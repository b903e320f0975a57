//! Identity use cases, the session half: log in (password, then the second factor), log out,
//! change the password, enroll in and confirm TOTP. The edge applies rate limits between the
//! steps of a log-in (the TOTP limit counts only attempts that got past the password), builds
//! the contexts and presents the results; these decide and write. A failed log-in is recorded
//! on the account under a command of its own, so a retried idempotency key never meets one.

use crate::{CommandContext, CommandError, CommandOutcome, Executor, LoadError};
use chrono::{DateTime, Duration, Utc};
use domain::credentials::{Credentials, CredentialsError, OneTimeCodes};
use domain::ids::{SessionId, SubjectId, UserId};
use domain::personal_data::{PersonalData, PersonalDataError, Sealed};
use domain::user::{LoginFailure, NewPassword, SecretHash, User, UserCommand, UserError};

/// How many recovery codes TOTP confirmation hands out.
pub const RECOVERY_CODES: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum LogInError {
    #[error("wrong e-mail address or password")]
    WrongPassword,
    #[error(transparent)]
    User(#[from] UserError),
    #[error("this account needs a TOTP code (totpCode) or a recovery code (recoveryCode)")]
    SecondFactorRequired,
    #[error("wrong TOTP code")]
    WrongSecondFactor,
    /// A log-in's command id was seen before. Log-ins are never replayed: every one checks
    /// every factor and starts a session of its own.
    #[error("this log-in was already made; log in again")]
    Replayed,
    #[error(transparent)]
    PersonalData(#[from] PersonalDataError),
}

/// The user's state as this process reads it now.
async fn user_state<E: std::error::Error + 'static>(
    exec: &Executor,
    user: UserId,
) -> Result<User, CommandError<E>> {
    Ok(exec
        .load::<User>(user.as_uuid())
        .await
        .map_err(LoadError::into_command)?
        .state)
}

async fn record_failure(
    exec: &Executor,
    fail_ctx: &CommandContext,
    now: DateTime<Utc>,
    user: UserId,
    reason: LoginFailure,
) -> Result<(), CommandError<LogInError>> {
    exec.execute::<User>(
        user.as_uuid(),
        &UserCommand::RecordFailedLogin { reason, at: now },
        fail_ctx,
    )
    .await
    .map_err(|e| e.map_rejection(LogInError::User))?;
    Ok(())
}

/// The first step of a log-in: the password, then the verified address. A failure is recorded
/// on the account (`fail_ctx`: a command of its own). Returns the account's state for the
/// second step.
pub async fn check_password(
    exec: &Executor,
    credentials: &dyn Credentials,
    fail_ctx: &CommandContext,
    now: DateTime<Utc>,
    user: UserId,
    password: &str,
) -> Result<User, CommandError<LogInError>> {
    let state = user_state(exec, user).await?;
    let matches = match &state.password {
        Some(hash) => credentials.password_matches(password, hash).await,
        None => false,
    };
    if !matches {
        record_failure(exec, fail_ctx, now, user, LoginFailure::WrongPassword).await?;
        return Err(CommandError::Rejected(LogInError::WrongPassword));
    }
    if !state.email_verified {
        record_failure(exec, fail_ctx, now, user, LoginFailure::EmailNotVerified).await?;
        return Err(CommandError::Rejected(UserError::EmailNotVerified.into()));
    }
    Ok(state)
}

/// What the caller gave as a second factor.
#[derive(Clone, Default)]
pub struct SecondFactor {
    pub totp_code: Option<String>,
    pub recovery_code: Option<String>,
}

impl std::fmt::Debug for SecondFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondFactor")
            .field("totp_code", &self.totp_code.as_ref().map(|_| "<given>"))
            .field(
                "recovery_code",
                &self.recovery_code.as_ref().map(|_| "<given>"),
            )
            .finish()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct LoggedIn {
    pub session: SessionId,
    pub expires_at: DateTime<Utc>,
    pub outcome: CommandOutcome,
}

impl AsRef<CommandOutcome> for LoggedIn {
    fn as_ref(&self) -> &CommandOutcome {
        &self.outcome
    }
}

/// Opens a sealed TOTP secret (`None` once the user was forgotten).
async fn open_secret(
    personal: &dyn PersonalData,
    user: UserId,
    sealed: &Sealed,
) -> Result<Option<String>, PersonalDataError> {
    personal
        .open(SubjectId::from_uuid(user.as_uuid()), sealed)
        .await
}

/// What `factor` proves against the account's TOTP secret `sealed`: a TOTP code's time step
/// (matched here), or a recovery code's hash (checked when the command spends it). A wrong
/// TOTP code is recorded as a failed attempt.
async fn second_factor(
    exec: &Executor,
    (personal, credentials, codes): (&dyn PersonalData, &dyn Credentials, &dyn OneTimeCodes),
    fail_ctx: &CommandContext,
    now: DateTime<Utc>,
    (user, sealed): (UserId, &Sealed),
    factor: &SecondFactor,
) -> Result<(Option<i64>, Option<SecretHash>), CommandError<LogInError>> {
    let rejected = |e: LogInError| CommandError::Rejected(e);
    let secret = open_secret(personal, user, sealed)
        .await
        .map_err(|e| rejected(e.into()))?;
    let step = match (&factor.totp_code, &secret) {
        (Some(code), Some(secret)) => codes.matching_step(secret, code, now),
        _ => None,
    };
    match (&factor.totp_code, &factor.recovery_code, step) {
        (Some(_), _, Some(step)) => Ok((Some(step), None)),
        (None, Some(code), _) => Ok((None, Some(credentials.hash_token(code.trim())))),
        (None, None, _) => Err(rejected(LogInError::SecondFactorRequired)),
        _ => {
            record_failure(exec, fail_ctx, now, user, LoginFailure::WrongSecondFactor).await?;
            Err(rejected(LogInError::WrongSecondFactor))
        }
    }
}

/// Runs a command that spends a second factor; a code the account refuses (a used or unknown
/// recovery code, a TOTP code already spent) is recorded as a failed attempt.
async fn spending_factor(
    exec: &Executor,
    (ctx, fail_ctx): (&CommandContext, &CommandContext),
    now: DateTime<Utc>,
    user: UserId,
    command: &UserCommand,
) -> Result<CommandOutcome, CommandError<LogInError>> {
    match exec.execute::<User>(user.as_uuid(), command, ctx).await {
        Err(CommandError::Rejected(
            error @ (UserError::InvalidRecoveryCode | UserError::TotpCodeReused),
        )) => {
            record_failure(exec, fail_ctx, now, user, LoginFailure::WrongSecondFactor).await?;
            Err(CommandError::Rejected(error.into()))
        }
        other => other.map_err(|e| e.map_rejection(LogInError::User)),
    }
}

/// The second step: the second factor when the account has one (a TOTP code's time step is
/// spent, a recovery code works once), then a session of `ttl`. A command id seen before is
/// refused (`Replayed`): a log-in is never answered from a stored result.
#[expect(
    clippy::too_many_arguments,
    reason = "the ports, both contexts and the input"
)]
pub async fn start_session(
    exec: &Executor,
    personal: &dyn PersonalData,
    credentials: &dyn Credentials,
    codes: &dyn OneTimeCodes,
    (ctx, fail_ctx): (&CommandContext, &CommandContext),
    now: DateTime<Utc>,
    (user, state): (UserId, &User),
    factor: &SecondFactor,
    ttl: Duration,
) -> Result<LoggedIn, CommandError<LogInError>> {
    let rejected = |e: LogInError| CommandError::Rejected(e);
    let (totp_step, recovery_code) = match &state.totp {
        Some(sealed) => {
            let ports = (personal, credentials, codes);
            second_factor(exec, ports, fail_ctx, now, (user, sealed), factor).await?
        }
        None => (None, None),
    };
    let session = SessionId::from_uuid(ctx.new_id("session"));
    // Whole seconds, as the token carries them.
    let expires_at = DateTime::from_timestamp((now + ttl).timestamp(), 0).unwrap_or(now + ttl);
    let command = UserCommand::StartSession {
        session_id: session,
        expires_at,
        recovery_code,
        totp_step,
        at: now,
    };
    let outcome = spending_factor(exec, (ctx, fail_ctx), now, user, &command).await?;
    // A stored result is never handed out again: the factors checked on this request were
    // not the ones the first request passed (a replayed decision that was refused, a wrong
    // recovery code say, still finds the first result by its command id).
    if outcome.replayed {
        return Err(rejected(LogInError::Replayed));
    }
    Ok(LoggedIn {
        session,
        expires_at,
        outcome,
    })
}

/// Ends a session: its token stops working at once.
pub async fn log_out(
    exec: &Executor,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    user: UserId,
    session: SessionId,
) -> Result<CommandOutcome, CommandError<UserError>> {
    let command = UserCommand::EndSession {
        session_id: session,
        at: now,
    };
    exec.execute::<User>(user.as_uuid(), &command, ctx).await
}

#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    #[error("the current password is wrong")]
    WrongCurrentPassword,
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

/// Changes the password after checking the current one; every other session ends. A retry of
/// a change that went through (same command id) answers with the first outcome, although the
/// "current" password is the new one by then.
pub async fn change_password(
    exec: &Executor,
    credentials: &dyn Credentials,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    (user, session): (UserId, SessionId),
    current: &str,
    new: &NewPassword,
) -> Result<CommandOutcome, CommandError<ChangePasswordError>> {
    let rejected = |e: ChangePasswordError| CommandError::Rejected(e);
    if ctx.derived
        && let Some(first) = exec.store().find_command(ctx.command_id).await?
    {
        let version = exec
            .load::<User>(user.as_uuid())
            .await
            .map_err(LoadError::into_command)?
            .version;
        return Ok(CommandOutcome {
            version,
            position: first.last_position,
            appended: 0,
            replayed: true,
        });
    }
    let state = user_state(exec, user).await?;
    let matches = match &state.password {
        Some(hash) => credentials.password_matches(current, hash).await,
        None => false,
    };
    if !matches {
        return Err(rejected(ChangePasswordError::WrongCurrentPassword));
    }
    let password = credentials
        .hash_password(new.expose())
        .await
        .map_err(|e| rejected(e.into()))?;
    let command = UserCommand::ChangePassword {
        password,
        keep_session: session,
        at: now,
    };
    exec.execute::<User>(user.as_uuid(), &command, ctx)
        .await
        .map_err(|e| e.map_rejection(ChangePasswordError::User))
}

#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    PersonalData(#[from] PersonalDataError),
    #[error("this enrollment was already confirmed")]
    AlreadyConfirmed,
    #[error("TOTP is already confirmed; its recovery codes were shown once")]
    CodesShownOnce,
    #[error("the code does not match; check the app's clock")]
    WrongCode,
    #[error("the pending TOTP secret could not be opened")]
    SecretUnreadable,
    #[error("the current password is wrong")]
    WrongPassword,
    #[error(
        "turning TOTP off needs a current TOTP code (totpCode) or a recovery code (recoveryCode)"
    )]
    SecondFactorRequired,
}

impl TotpError {
    /// A refused password or second factor (checked as a log-in checks them), as the TOTP
    /// use cases report it.
    fn from_log_in(error: CommandError<LogInError>) -> CommandError<Self> {
        error.map_rejection(|e| match e {
            LogInError::WrongPassword => Self::WrongPassword,
            LogInError::User(UserError::InvalidRecoveryCode) => Self::WrongCode,
            LogInError::User(e) => Self::User(e),
            LogInError::PersonalData(e) => Self::PersonalData(e),
            LogInError::SecondFactorRequired => Self::SecondFactorRequired,
            LogInError::WrongSecondFactor | LogInError::Replayed => Self::WrongCode,
        })
    }
}

/// A TOTP enrollment: the pending secret as stored (a retry shows the first one).
#[derive(Clone)]
pub struct Enrollment {
    pub secret: String,
    pub outcome: CommandOutcome,
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrollment")
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

impl AsRef<CommandOutcome> for Enrollment {
    fn as_ref(&self) -> &CommandOutcome {
        &self.outcome
    }
}

/// Starts TOTP enrollment with a new secret, sealed under the user's key.
#[expect(
    clippy::too_many_arguments,
    reason = "the ports, both contexts and the input"
)]
pub async fn enroll_totp(
    exec: &Executor,
    personal: &dyn PersonalData,
    credentials: &dyn Credentials,
    codes: &dyn OneTimeCodes,
    (ctx, fail_ctx): (&CommandContext, &CommandContext),
    now: DateTime<Utc>,
    user: UserId,
    password: &str,
) -> Result<Enrollment, CommandError<TotpError>> {
    let rejected = |e: TotpError| CommandError::Rejected(e);
    // A stolen session alone must not be able to bind the account to an attacker's app.
    check_password(exec, credentials, fail_ctx, now, user, password)
        .await
        .map_err(TotpError::from_log_in)?;
    let fresh = codes.new_secret();
    let sealed = personal
        .seal(SubjectId::from_uuid(user.as_uuid()), &fresh)
        .await
        .map_err(|e| rejected(e.into()))?;
    let command = UserCommand::StartTotpEnrollment {
        secret: sealed,
        at: now,
    };
    let outcome = exec
        .execute::<User>(user.as_uuid(), &command, ctx)
        .await
        .map_err(|e| e.map_rejection(TotpError::User))?;
    let state = user_state(exec, user).await?;
    let secret = match &state.totp_pending {
        Some(pending) => open_secret(personal, user, pending)
            .await
            .map_err(|e| rejected(e.into()))?
            .unwrap_or(fresh),
        None if outcome.replayed => return Err(rejected(TotpError::AlreadyConfirmed)),
        None => fresh,
    };
    Ok(Enrollment { secret, outcome })
}

/// TOTP turned on, with its recovery codes (shown once: only their hashes are stored).
#[derive(Clone)]
pub struct Confirmed {
    pub recovery_codes: Vec<String>,
    pub outcome: CommandOutcome,
}

impl std::fmt::Debug for Confirmed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Confirmed")
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

impl AsRef<CommandOutcome> for Confirmed {
    fn as_ref(&self) -> &CommandOutcome {
        &self.outcome
    }
}

/// Turns TOTP on with a code from the app for the pending secret.
#[expect(
    clippy::too_many_arguments,
    reason = "the ports, the context and the input"
)]
pub async fn confirm_totp(
    exec: &Executor,
    personal: &dyn PersonalData,
    credentials: &dyn Credentials,
    codes: &dyn OneTimeCodes,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    user: UserId,
    code: &str,
) -> Result<Confirmed, CommandError<TotpError>> {
    let rejected = |e: TotpError| CommandError::Rejected(e);
    let state = user_state(exec, user).await?;
    let Some(pending) = &state.totp_pending else {
        return Err(rejected(UserError::NoTotpEnrollment.into()));
    };
    let secret = open_secret(personal, user, pending)
        .await
        .map_err(|e| rejected(e.into()))?
        .ok_or(rejected(TotpError::SecretUnreadable))?;
    if codes.matching_step(&secret, code, now).is_none() {
        return Err(rejected(TotpError::WrongCode));
    }
    let recovery_codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| credentials.new_token()[..16].to_owned())
        .collect();
    let command = UserCommand::EnableTotp {
        recovery_codes: recovery_codes
            .iter()
            .map(|c| credentials.hash_token(c))
            .collect(),
        at: now,
    };
    let outcome = exec
        .execute::<User>(user.as_uuid(), &command, ctx)
        .await
        .map_err(|e| e.map_rejection(TotpError::User))?;
    if outcome.replayed {
        // The codes were shown to the first request; these were never stored.
        return Err(rejected(TotpError::CodesShownOnce));
    }
    Ok(Confirmed {
        recovery_codes,
        outcome,
    })
}

/// Turns TOTP off: the current password, then a current TOTP code or an unused recovery
/// code (which is spent). A wrong password or code is recorded as a failed attempt.
#[expect(
    clippy::too_many_arguments,
    reason = "the ports, both contexts and the input"
)]
pub async fn disable_totp(
    exec: &Executor,
    personal: &dyn PersonalData,
    credentials: &dyn Credentials,
    codes: &dyn OneTimeCodes,
    (ctx, fail_ctx): (&CommandContext, &CommandContext),
    now: DateTime<Utc>,
    user: UserId,
    password: &str,
    factor: &SecondFactor,
) -> Result<CommandOutcome, CommandError<TotpError>> {
    let rejected = |e: TotpError| CommandError::Rejected(e);
    let state = check_password(exec, credentials, fail_ctx, now, user, password)
        .await
        .map_err(TotpError::from_log_in)?;
    let Some(sealed) = &state.totp else {
        return Err(rejected(TotpError::User(UserError::TotpNotEnabled)));
    };
    let ports = (personal, credentials, codes);
    let (totp_step, recovery_code) =
        second_factor(exec, ports, fail_ctx, now, (user, sealed), factor)
            .await
            .map_err(TotpError::from_log_in)?;
    let command = UserCommand::DisableTotp {
        totp_step,
        recovery_code,
        at: now,
    };
    spending_factor(exec, (ctx, fail_ctx), now, user, &command)
        .await
        .map_err(TotpError::from_log_in)
}
