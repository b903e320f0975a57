//! Identity use cases, the account half: sign up, verify the address, have a verification
//! or password-reset token issued, reset the password. The edge (GraphQL) builds the context
//! (the IP sealed under the user's key), applies rate limits and sends the e-mails; these
//! decide and write. Log-in, log-out, password changes and TOTP are in [`crate::sessions`].

use crate::{CommandContext, CommandError, CommandOutcome, Executor, LoadError};
use chrono::{DateTime, Duration, Utc};
use domain::aggregate::Aggregate;
use domain::credentials::{Credentials, CredentialsError};
use domain::ids::{SubjectId, UserId};
use domain::personal_data::{PersonalData, PersonalDataError};
use domain::user::{Email, EmailClaim, NewPassword, User, UserCommand, UserError, UserToken};
use uuid::Uuid;

/// How long e-mailed tokens stay valid.
pub const VERIFICATION_VALID_HOURS: i64 = 48;
pub const RESET_VALID_MINUTES: i64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum SignUpError {
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    PersonalData(#[from] PersonalDataError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

/// The blind index that finds an account by its address (and keys its e-mail claim).
pub fn email_index(personal: &dyn PersonalData, email: &Email) -> Uuid {
    personal.blind_index("email", email.as_str())
}

/// The account that owns the address, if any (from the write model: e-mail claims).
pub async fn account_of(
    exec: &Executor,
    personal: &dyn PersonalData,
    email: &Email,
) -> Result<Option<UserId>, LoadError> {
    Ok(exec
        .load::<EmailClaim>(email_index(personal, email))
        .await?
        .state
        .user)
}

#[derive(Debug, Clone)]
pub struct SignUp {
    /// The new account's id (`ctx.new_id("user")`: the edge seals the request's IP under it).
    pub user: UserId,
    pub email: Email,
    pub password: NewPassword,
}

/// An account as signed up; the verification token when this call wrote it (a retry cannot
/// show it again: only its hash is stored).
#[derive(Debug, Clone)]
pub struct SignedUp {
    pub user: UserId,
    pub verification: Option<UserToken>,
    pub outcome: CommandOutcome,
}

impl AsRef<CommandOutcome> for SignedUp {
    fn as_ref(&self) -> &CommandOutcome {
        &self.outcome
    }
}

/// Creates an account and claims its address, in one atomic append (two sign-ups racing for
/// one address cannot both win).
pub async fn sign_up(
    exec: &Executor,
    personal: &dyn PersonalData,
    credentials: &dyn Credentials,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    input: SignUp,
) -> Result<SignedUp, CommandError<SignUpError>> {
    let rejected = |e: SignUpError| CommandError::Rejected(e);
    let user = input.user;
    let subject = SubjectId::from_uuid(user.as_uuid());
    let index = email_index(personal, &input.email);
    let email = personal
        .seal(subject, input.email.as_str())
        .await
        .map_err(|e| rejected(e.into()))?;
    let password = credentials
        .hash_password(input.password.expose())
        .await
        .map_err(|e| rejected(e.into()))?;
    let token = UserToken {
        user,
        secret: credentials.new_token(),
    };
    let command = UserCommand::SignUp {
        user_id: user,
        email,
        email_index: index,
        password,
        verification: credentials.hash_token(&token.secret),
        verification_expires_at: now + Duration::hours(VERIFICATION_VALID_HOURS),
        at: now,
    };
    let outcome = exec
        .execute_with::<User, EmailClaim, SignUpError>(
            user.as_uuid(),
            Some(index),
            ctx,
            |state, claim| Ok((state.decide(&command)?, claim.claim(user)?)),
        )
        .await?;
    Ok(SignedUp {
        user,
        verification: (!outcome.replayed).then_some(token),
        outcome,
    })
}

/// Runs a command on a user's stream; an unknown user is an invalid token (a token names its
/// user, and must not tell whether that user exists).
async fn by_token(
    exec: &Executor,
    ctx: &CommandContext,
    user: UserId,
    command: &UserCommand,
) -> Result<CommandOutcome, CommandError<UserError>> {
    exec.execute::<User>(user.as_uuid(), command, ctx)
        .await
        .map_err(|error| match error {
            CommandError::Rejected(UserError::NotFound) => {
                CommandError::Rejected(UserError::InvalidToken)
            }
            other => other,
        })
}

/// Verifies the address with the mailed `token`. The verifier also gives a password: the one
/// set at sign-up (which stays), or a new one that replaces it. Whoever signed up first with
/// someone else's address never learns the token, and the mailbox holder who verifies never
/// validates a password they did not set: no pre-registration takeover.
pub async fn verify_email(
    exec: &Executor,
    credentials: &dyn Credentials,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    token: &UserToken,
    password: &str,
) -> Result<CommandOutcome, CommandError<UserError>> {
    let state = exec
        .load::<User>(token.user.as_uuid())
        .await
        .map_err(LoadError::into_command)?
        .state;
    let same = match &state.password {
        Some(hash) => credentials.password_matches(password, hash).await,
        None => false,
    };
    let password = if same {
        None
    } else {
        let fresh = NewPassword::parse(password).map_err(CommandError::Rejected)?;
        Some(
            credentials
                .hash_password(fresh.expose())
                .await
                .map_err(|e| {
                    CommandError::Store(domain::event_store::EventStoreError::Backend(
                        e.to_string().into(),
                    ))
                })?,
        )
    };
    let command = UserCommand::VerifyEmail {
        token: credentials.hash_token(&token.secret),
        password,
        at: now,
    };
    by_token(exec, ctx, token.user, &command).await
}

/// What a mailed token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// A new verification token (for an account not verified yet).
    Verification,
    PasswordReset,
}

/// A token issued to an account: the token when this call wrote it (a retry with the same
/// command id issues nothing again).
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: Option<UserToken>,
    pub outcome: CommandOutcome,
}

impl AsRef<CommandOutcome> for Issued {
    fn as_ref(&self) -> &CommandOutcome {
        &self.outcome
    }
}

/// Issues a fresh one-time token to `user` (refused with `AlreadyVerified` for a verification
/// an account no longer needs: the edge must answer whoever asked the same either way).
pub async fn issue_token(
    exec: &Executor,
    credentials: &dyn Credentials,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    user: UserId,
    purpose: TokenPurpose,
) -> Result<Issued, CommandError<UserError>> {
    let token = UserToken {
        user,
        secret: credentials.new_token(),
    };
    let hash = credentials.hash_token(&token.secret);
    let command = match purpose {
        TokenPurpose::Verification => UserCommand::IssueVerification {
            verification: hash,
            expires_at: now + Duration::hours(VERIFICATION_VALID_HOURS),
            at: now,
        },
        TokenPurpose::PasswordReset => UserCommand::RequestPasswordReset {
            token: hash,
            expires_at: now + Duration::minutes(RESET_VALID_MINUTES),
            at: now,
        },
    };
    let outcome = exec.execute::<User>(user.as_uuid(), &command, ctx).await?;
    Ok(Issued {
        token: (!outcome.replayed).then_some(token),
        outcome,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ResetPasswordError {
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

/// Sets a new password with the token from the reset e-mail; every session ends.
pub async fn reset_password(
    exec: &Executor,
    credentials: &dyn Credentials,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    token: &UserToken,
    password: &NewPassword,
) -> Result<CommandOutcome, CommandError<ResetPasswordError>> {
    let password = credentials
        .hash_password(password.expose())
        .await
        .map_err(|e| CommandError::Rejected(e.into()))?;
    let command = UserCommand::ResetPassword {
        token: credentials.hash_token(&token.secret),
        password,
        at: now,
    };
    by_token(exec, ctx, token.user, &command)
        .await
        .map_err(|e| e.map_rejection(ResetPasswordError::User))
}
