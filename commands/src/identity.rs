//! Identity use cases, the account half: sign up, verify the address, have a verification
//! or password-reset token issued, reset the password. The edge (GraphQL) builds the context
//! (the IP sealed under the user's key) and applies rate limits; these decide and write, and
//! queue the mails they need with their events (the outbox, [`crate::mail`], sends them). Log-in, log-out, password changes and TOTP are in [`crate::sessions`].

use crate::{CommandContext, CommandError, CommandOutcome, Executor, LoadError};
use chrono::{DateTime, Duration, Utc};
use domain::aggregate::Aggregate;
use domain::credentials::{Credentials, CredentialsError};
use domain::ids::{SubjectId, UserId};
use domain::mail::MailKind;
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

/// The account that owns the address, if any and still in use (from the write model: e-mail
/// claims, then the account).
pub async fn account_of(
    exec: &Executor,
    personal: &dyn PersonalData,
    email: &Email,
) -> Result<Option<UserId>, LoadError> {
    let Some(user) = exec
        .load::<EmailClaim>(email_index(personal, email))
        .await?
        .state
        .user
    else {
        return Ok(None);
    };
    // A deleted or forgotten account is no account: it answers like an unknown address.
    let state = exec.load::<User>(user.as_uuid()).await?.state;
    Ok((state.deleted_at.is_none() && state.forgotten_at.is_none()).then_some(user))
}

#[derive(Debug, Clone)]
pub struct SignUp {
    /// The new account's id, should the address be free (`ctx.new_id("user")`).
    pub user: UserId,
    pub email: Email,
    pub password: NewPassword,
}

/// What a sign-up did. The edge answers the same whichever it was.
#[derive(Debug, Clone)]
pub struct SignedUp {
    /// The account the address belongs to now.
    pub user: UserId,
    /// Whether the account is new (else the address had one: see `UserCommand::SignUpAgain`).
    pub created: bool,
    pub outcome: CommandOutcome,
}

impl AsRef<CommandOutcome> for SignedUp {
    fn as_ref(&self) -> &CommandOutcome {
        &self.outcome
    }
}

/// Signs up with an address. A free address gets a new account, claimed in the same atomic
/// append (two sign-ups racing for one address cannot both win), and a verification mail.
/// An address that has an account is not an error, so that nobody learns which addresses
/// have one: a pending (unverified) account gets the new password and a fresh verification
/// mail, a verified one a mail telling its owner (`UserCommand::SignUpAgain`). Both paths hash
/// the password and write one append.
pub async fn sign_up(
    exec: &Executor,
    personal: &dyn PersonalData,
    credentials: &dyn Credentials,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    input: SignUp,
) -> Result<SignedUp, CommandError<SignUpError>> {
    let rejected = |e: SignUpError| CommandError::Rejected(e);
    let index = email_index(personal, &input.email);
    let password = credentials
        .hash_password(input.password.expose())
        .await
        .map_err(|e| rejected(e.into()))?;
    let secret = credentials.new_token();
    let verification = credentials.hash_token(&secret);
    let expires_at = now + Duration::hours(VERIFICATION_VALID_HOURS);
    let verification_mail = async |user: UserId| {
        let token = UserToken {
            user,
            secret: secret.clone(),
        };
        crate::mail::queue(
            personal,
            (ctx.new_id("mail"), SubjectId::from_uuid(user.as_uuid())),
            &input.email,
            MailKind::Verification,
            Some((&token.to_text(), expires_at)),
        )
        .await
        .map_err(|e| rejected(e.into()))
    };
    let owner = exec
        .load::<EmailClaim>(index)
        .await
        .map_err(LoadError::into_command)?
        .state
        .user;
    if owner.is_none_or(|owner| owner == input.user) {
        let user = input.user;
        let command = UserCommand::SignUp {
            user_id: user,
            email: personal
                .seal(SubjectId::from_uuid(user.as_uuid()), input.email.as_str())
                .await
                .map_err(|e| rejected(e.into()))?,
            email_index: index,
            password: password.clone(),
            verification: verification.clone(),
            verification_expires_at: expires_at,
            mail: verification_mail(user).await?,
            at: now,
        };
        let signed_up = exec
            .execute_with::<User, EmailClaim, SignUpError>(
                user.as_uuid(),
                Some(index),
                ctx,
                |state, claim| Ok((state.decide(&command)?, claim.claim(user)?)),
            )
            .await;
        match signed_up {
            Ok(outcome) => {
                return Ok(SignedUp {
                    user,
                    created: true,
                    outcome,
                });
            }
            // Claimed since it was read: the address has an account after all.
            Err(CommandError::Rejected(SignUpError::User(UserError::EmailTaken))) => {}
            Err(other) => return Err(other),
        }
    }
    let owner = match owner {
        Some(owner) if owner != input.user => owner,
        _ => exec
            .load::<EmailClaim>(index)
            .await
            .map_err(LoadError::into_command)?
            .state
            .user
            .ok_or(CommandError::Rejected(SignUpError::User(
                UserError::EmailTaken,
            )))?,
    };
    let command = UserCommand::SignUpAgain {
        password,
        verification,
        verification_expires_at: expires_at,
        verification_mail: verification_mail(owner).await?,
        notice: crate::mail::queue(
            personal,
            (ctx.new_id("notice"), SubjectId::from_uuid(owner.as_uuid())),
            &input.email,
            MailKind::SignUpAttempt,
            None,
        )
        .await
        .map_err(|e| rejected(e.into()))?,
        at: now,
    };
    let outcome = exec
        .execute::<User>(owner.as_uuid(), &command, ctx)
        .await
        .map_err(|e| e.map_rejection(SignUpError::User))?;
    Ok(SignedUp {
        user: owner,
        created: false,
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

#[derive(Debug, thiserror::Error)]
pub enum IssueTokenError {
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    PersonalData(#[from] PersonalDataError),
}

/// Issues a fresh one-time token to `user`, whose address is `email`, and queues the mail that
/// carries it (refused with `AlreadyVerified` for a verification an account no longer needs:
/// the edge must answer whoever asked the same either way).
pub async fn issue_token(
    exec: &Executor,
    (personal, credentials): (&dyn PersonalData, &dyn Credentials),
    ctx: &CommandContext,
    now: DateTime<Utc>,
    (user, email): (UserId, &Email),
    purpose: TokenPurpose,
) -> Result<CommandOutcome, CommandError<IssueTokenError>> {
    let token = UserToken {
        user,
        secret: credentials.new_token(),
    };
    let hash = credentials.hash_token(&token.secret);
    let (kind, expires_at) = match purpose {
        TokenPurpose::Verification => (
            MailKind::Verification,
            now + Duration::hours(VERIFICATION_VALID_HOURS),
        ),
        TokenPurpose::PasswordReset => (
            MailKind::PasswordReset,
            now + Duration::minutes(RESET_VALID_MINUTES),
        ),
    };
    let mail = crate::mail::queue(
        personal,
        (ctx.new_id("mail"), SubjectId::from_uuid(user.as_uuid())),
        email,
        kind,
        Some((&token.to_text(), expires_at)),
    )
    .await
    .map_err(|e| CommandError::Rejected(e.into()))?;
    let command = match purpose {
        TokenPurpose::Verification => UserCommand::IssueVerification {
            verification: hash,
            expires_at,
            mail,
            at: now,
        },
        TokenPurpose::PasswordReset => UserCommand::RequestPasswordReset {
            token: hash,
            expires_at,
            mail,
            at: now,
        },
    };
    exec.execute::<User>(user.as_uuid(), &command, ctx)
        .await
        .map_err(|e| e.map_rejection(IssueTokenError::User))
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
