//! Users: sign-up, e-mail verification, sessions, password changes and resets, and the TOTP
//! second factor. Also the e-mail claim that keeps e-mail addresses unique.
//!
//! Secrets never reach this module in clear: passwords arrive as argon2id hashes, one-time
//! tokens as hashes, personal data and the TOTP secret sealed (see [`crate::personal_data`]).
//! Checking a password or a TOTP code needs a hasher and a clock, so the edge checks them
//! against this state and then issues the command that records the outcome.

use crate::aggregate::Aggregate;
use crate::ids::{SessionId, UserId};
use crate::personal_data::Sealed;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// An e-mail address, trimmed and lower-cased: `local@domain.tld`, at most 254 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Self, UserError> {
        let email = input.trim().to_lowercase();
        let Some((local, domain)) = email.split_once('@') else {
            return Err(UserError::InvalidEmail);
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2 && labels.iter().all(|l| label_ok(l));
        if email.len() > 254 || !local_ok || !domain_ok {
            return Err(UserError::InvalidEmail);
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password a user chose, checked against the policy: 10 to 128 characters, at least 5
/// different ones, and not one of the passwords every attacker tries first.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword(String);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(<redacted>)")
    }
}

const COMMON_PASSWORDS: &[&str] = &[
    "password123",
    "password1234",
    "1234567890",
    "12345678910",
    "qwertyuiop",
    "iloveyou123",
    "letmein1234",
    "administrator",
    "welcome1234",
    "passw0rd123",
];

impl NewPassword {
    pub fn parse(password: &str) -> Result<Self, UserError> {
        let chars = password.chars().count();
        if !(10..=128).contains(&chars) {
            return Err(UserError::WeakPassword(
                "a password needs 10 to 128 characters",
            ));
        }
        if password.chars().collect::<BTreeSet<_>>().len() < 5 {
            return Err(UserError::WeakPassword(
                "a password needs at least 5 different characters",
            ));
        }
        if COMMON_PASSWORDS.contains(&password.to_lowercase().as_str()) {
            return Err(UserError::WeakPassword("this password is too common"));
        }
        Ok(Self(password.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A one-way hash of a secret (a password hash in PHC format, or a token's SHA-256).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretHash(String);

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash(<redacted>)")
    }
}

impl SecretHash {
    pub fn new(hash: String) -> Self {
        Self(hash)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginFailure {
    WrongPassword,
    EmailNotVerified,
    WrongSecondFactor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordChangeReason {
    Changed,
    Reset,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    SignUp {
        user_id: UserId,
        email: Sealed,
        /// The blind index of the e-mail address (see the e-mail claim).
        email_index: Uuid,
        password: SecretHash,
        verification: SecretHash,
        verification_expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// A new verification token (the last one was lost or expired).
    IssueVerification {
        verification: SecretHash,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    VerifyEmail {
        token: SecretHash,
        at: DateTime<Utc>,
    },
    /// The edge checked the password (and the second factor, when enabled).
    StartSession {
        session_id: SessionId,
        expires_at: DateTime<Utc>,
        /// A recovery code spent instead of a TOTP code.
        recovery_code: Option<SecretHash>,
        /// The time step of the TOTP code the edge accepted: each step's code works once.
        totp_step: Option<i64>,
        at: DateTime<Utc>,
    },
    RecordFailedLogin {
        reason: LoginFailure,
        at: DateTime<Utc>,
    },
    EndSession {
        session_id: SessionId,
        at: DateTime<Utc>,
    },
    RequestPasswordReset {
        token: SecretHash,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    ResetPassword {
        token: SecretHash,
        password: SecretHash,
        at: DateTime<Utc>,
    },
    /// The edge checked the current password. Every other session ends.
    ChangePassword {
        password: SecretHash,
        keep_session: SessionId,
        at: DateTime<Utc>,
    },
    StartTotpEnrollment {
        secret: Sealed,
        at: DateTime<Utc>,
    },
    /// The edge checked a code against the pending secret.
    EnableTotp {
        recovery_codes: Vec<SecretHash>,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UserEvent {
    UserSignedUp {
        user_id: UserId,
        email: Sealed,
        email_index: Uuid,
        password: SecretHash,
        verification: SecretHash,
        verification_expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    EmailVerificationIssued {
        verification: SecretHash,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    EmailVerified {
        at: DateTime<Utc>,
    },
    SessionStarted {
        session_id: SessionId,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    RecoveryCodeUsed {
        code: SecretHash,
        at: DateTime<Utc>,
    },
    /// A TOTP code (of time step `step`) was spent on a log-in.
    TotpCodeUsed {
        step: i64,
        at: DateTime<Utc>,
    },
    LoginFailed {
        reason: LoginFailure,
        at: DateTime<Utc>,
    },
    SessionEnded {
        session_id: SessionId,
        at: DateTime<Utc>,
    },
    PasswordResetRequested {
        token: SecretHash,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// Every session but `kept_session` ended with it.
    PasswordChanged {
        password: SecretHash,
        reason: PasswordChangeReason,
        kept_session: Option<SessionId>,
        at: DateTime<Utc>,
    },
    TotpEnrollmentStarted {
        secret: Sealed,
        at: DateTime<Utc>,
    },
    TotpEnabled {
        recovery_codes: Vec<SecretHash>,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("not a valid e-mail address")]
    InvalidEmail,
    #[error("weak password: {0}")]
    WeakPassword(&'static str),
    #[error("an account with this e-mail address already exists")]
    EmailTaken,
    #[error("no such user")]
    NotFound,
    #[error("the account already exists")]
    AlreadySignedUp,
    #[error("the token is invalid or has expired")]
    InvalidToken,
    #[error("the e-mail address is already verified")]
    AlreadyVerified,
    #[error("the e-mail address is not verified yet")]
    EmailNotVerified,
    #[error("no TOTP enrollment is pending")]
    NoTotpEnrollment,
    #[error("the second factor is already enabled")]
    TotpAlreadyEnabled,
    #[error("the recovery code is invalid or was used")]
    InvalidRecoveryCode,
    #[error("this TOTP code was already used; wait for the next one")]
    TotpCodeReused,
}

/// A pending one-time token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingToken {
    pub hash: SecretHash,
    pub expires_at: DateTime<Utc>,
}

impl PendingToken {
    fn matches(&self, token: &SecretHash, at: DateTime<Utc>) -> bool {
        &self.hash == token && at < self.expires_at
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: Option<UserId>,
    pub email: Option<Sealed>,
    pub email_index: Option<Uuid>,
    pub email_verified: bool,
    pub password: Option<SecretHash>,
    pub verification: Option<PendingToken>,
    pub password_reset: Option<PendingToken>,
    /// Live sessions and when each expires (expired ones are dropped as new ones start).
    pub sessions: BTreeMap<SessionId, DateTime<Utc>>,
    pub totp_pending: Option<Sealed>,
    pub totp: Option<Sealed>,
    pub recovery_codes: BTreeSet<String>,
    /// The time step of the last TOTP code spent (a code works once).
    #[serde(default)]
    pub totp_last_step: Option<i64>,
}

impl User {
    fn require(&self) -> Result<(), UserError> {
        self.id.map(drop).ok_or(UserError::NotFound)
    }

    /// Whether `session` is live at `at`.
    pub fn session_is_live(&self, session: SessionId, at: DateTime<Utc>) -> bool {
        self.sessions.get(&session).is_some_and(|exp| at < *exp)
    }

    pub fn totp_enabled(&self) -> bool {
        self.totp.is_some()
    }
}

impl Aggregate for User {
    const CATEGORY: &'static str = "user";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;

    fn decide(&self, command: &UserCommand) -> Result<Vec<UserEvent>, UserError> {
        use UserCommand as C;
        use UserEvent as E;
        Ok(match command {
            C::SignUp {
                user_id,
                email,
                email_index,
                password,
                verification,
                verification_expires_at,
                at,
            } => {
                if self.id.is_some() {
                    return Err(UserError::AlreadySignedUp);
                }
                vec![E::UserSignedUp {
                    user_id: *user_id,
                    email: email.clone(),
                    email_index: *email_index,
                    password: password.clone(),
                    verification: verification.clone(),
                    verification_expires_at: *verification_expires_at,
                    at: *at,
                }]
            }
            C::IssueVerification {
                verification,
                expires_at,
                at,
            } => {
                self.require()?;
                if self.email_verified {
                    return Err(UserError::AlreadyVerified);
                }
                vec![E::EmailVerificationIssued {
                    verification: verification.clone(),
                    expires_at: *expires_at,
                    at: *at,
                }]
            }
            C::VerifyEmail { token, at } => {
                self.require()?;
                // A verified address has no pending token: any token is refused, so the
                // answer never depends on the account's state.
                if !self
                    .verification
                    .as_ref()
                    .is_some_and(|t| t.matches(token, *at))
                {
                    return Err(UserError::InvalidToken);
                }
                vec![E::EmailVerified { at: *at }]
            }
            C::StartSession {
                session_id,
                expires_at,
                recovery_code,
                totp_step,
                at,
            } => {
                self.require()?;
                if !self.email_verified {
                    return Err(UserError::EmailNotVerified);
                }
                if self.sessions.contains_key(session_id) {
                    return Ok(vec![]);
                }
                let mut events = vec![];
                if let Some(step) = totp_step {
                    if self.totp_last_step.is_some_and(|last| *step <= last) {
                        return Err(UserError::TotpCodeReused);
                    }
                    events.push(E::TotpCodeUsed {
                        step: *step,
                        at: *at,
                    });
                }
                if let Some(code) = recovery_code {
                    if !self.recovery_codes.contains(code.as_str()) {
                        return Err(UserError::InvalidRecoveryCode);
                    }
                    events.push(E::RecoveryCodeUsed {
                        code: code.clone(),
                        at: *at,
                    });
                }
                events.push(E::SessionStarted {
                    session_id: *session_id,
                    expires_at: *expires_at,
                    at: *at,
                });
                events
            }
            C::RecordFailedLogin { reason, at } => {
                self.require()?;
                vec![E::LoginFailed {
                    reason: *reason,
                    at: *at,
                }]
            }
            C::EndSession { session_id, at } => {
                self.require()?;
                if !self.sessions.contains_key(session_id) {
                    return Ok(vec![]);
                }
                vec![E::SessionEnded {
                    session_id: *session_id,
                    at: *at,
                }]
            }
            C::RequestPasswordReset {
                token,
                expires_at,
                at,
            } => {
                self.require()?;
                vec![E::PasswordResetRequested {
                    token: token.clone(),
                    expires_at: *expires_at,
                    at: *at,
                }]
            }
            C::ResetPassword {
                token,
                password,
                at,
            } => {
                self.require()?;
                if !self
                    .password_reset
                    .as_ref()
                    .is_some_and(|t| t.matches(token, *at))
                {
                    return Err(UserError::InvalidToken);
                }
                let mut events = vec![];
                // Following the link proves the address as well as a verification would.
                if !self.email_verified {
                    events.push(E::EmailVerified { at: *at });
                }
                events.push(E::PasswordChanged {
                    password: password.clone(),
                    reason: PasswordChangeReason::Reset,
                    kept_session: None,
                    at: *at,
                });
                events
            }
            C::ChangePassword {
                password,
                keep_session,
                at,
            } => {
                self.require()?;
                vec![E::PasswordChanged {
                    password: password.clone(),
                    reason: PasswordChangeReason::Changed,
                    kept_session: Some(*keep_session),
                    at: *at,
                }]
            }
            C::StartTotpEnrollment { secret, at } => {
                self.require()?;
                if self.totp.is_some() {
                    return Err(UserError::TotpAlreadyEnabled);
                }
                vec![E::TotpEnrollmentStarted {
                    secret: secret.clone(),
                    at: *at,
                }]
            }
            C::EnableTotp { recovery_codes, at } => {
                self.require()?;
                if self.totp.is_some() {
                    return Err(UserError::TotpAlreadyEnabled);
                }
                if self.totp_pending.is_none() {
                    return Err(UserError::NoTotpEnrollment);
                }
                vec![E::TotpEnabled {
                    recovery_codes: recovery_codes.clone(),
                    at: *at,
                }]
            }
        })
    }

    fn evolve(&mut self, event: &UserEvent) {
        use UserEvent as E;
        match event {
            E::UserSignedUp {
                user_id,
                email,
                email_index,
                password,
                verification,
                verification_expires_at,
                ..
            } => {
                self.id = Some(*user_id);
                self.email = Some(email.clone());
                self.email_index = Some(*email_index);
                self.password = Some(password.clone());
                self.verification = Some(PendingToken {
                    hash: verification.clone(),
                    expires_at: *verification_expires_at,
                });
            }
            E::EmailVerificationIssued {
                verification,
                expires_at,
                ..
            } => {
                self.verification = Some(PendingToken {
                    hash: verification.clone(),
                    expires_at: *expires_at,
                });
            }
            E::EmailVerified { .. } => {
                self.email_verified = true;
                self.verification = None;
            }
            E::SessionStarted {
                session_id,
                expires_at,
                at,
            } => {
                self.sessions.retain(|_, exp| *exp > *at);
                self.sessions.insert(*session_id, *expires_at);
            }
            E::RecoveryCodeUsed { code, .. } => {
                self.recovery_codes.remove(code.as_str());
            }
            E::TotpCodeUsed { step, .. } => self.totp_last_step = Some(*step),
            E::LoginFailed { .. } => {}
            E::SessionEnded { session_id, .. } => {
                self.sessions.remove(session_id);
            }
            E::PasswordResetRequested {
                token, expires_at, ..
            } => {
                self.password_reset = Some(PendingToken {
                    hash: token.clone(),
                    expires_at: *expires_at,
                });
            }
            E::PasswordChanged {
                password,
                kept_session,
                ..
            } => {
                self.password = Some(password.clone());
                self.password_reset = None;
                self.sessions
                    .retain(|id, _| Some(*id) == kept_session.as_ref().copied());
            }
            E::TotpEnrollmentStarted { secret, .. } => self.totp_pending = Some(secret.clone()),
            E::TotpEnabled { recovery_codes, .. } => {
                self.totp = self.totp_pending.take();
                self.recovery_codes = recovery_codes
                    .iter()
                    .map(|c| c.as_str().to_owned())
                    .collect();
            }
        }
    }
}

/// Keeps e-mail addresses unique: one stream per address (named by its blind index), claimed
/// in the same atomic append as the sign-up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmailClaim {
    pub user: Option<UserId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EmailClaimEvent {
    EmailClaimed { user_id: UserId },
}

impl EmailClaim {
    /// The claim's events when `user` signs up with this address.
    pub fn claim(&self, user: UserId) -> Result<Vec<EmailClaimEvent>, UserError> {
        match self.user {
            Some(owner) if owner == user => Ok(vec![]),
            Some(_) => Err(UserError::EmailTaken),
            None => Ok(vec![EmailClaimEvent::EmailClaimed { user_id: user }]),
        }
    }
}

impl Aggregate for EmailClaim {
    const CATEGORY: &'static str = "email";
    type Command = UserId;
    type Event = EmailClaimEvent;
    type Error = UserError;

    fn decide(&self, user: &UserId) -> Result<Vec<EmailClaimEvent>, UserError> {
        self.claim(*user)
    }

    fn evolve(&mut self, event: &EmailClaimEvent) {
        let EmailClaimEvent::EmailClaimed { user_id } = event;
        self.user = Some(*user_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::aggregate::{at, given};
    use chrono::Duration;

    fn hash(s: &str) -> SecretHash {
        SecretHash::new(s.to_owned())
    }

    fn session(n: u128) -> SessionId {
        SessionId::from_uuid(Uuid::from_u128(n))
    }

    fn signed_up() -> UserEvent {
        UserEvent::UserSignedUp {
            user_id: UserId::from_uuid(Uuid::nil()),
            email: Sealed::from_sealed_text("sealed".into()),
            email_index: Uuid::nil(),
            password: hash("pw"),
            verification: hash("verify"),
            verification_expires_at: at(2),
            at: at(0),
        }
    }

    #[test]
    fn emails_parse_normalised_and_refuse_nonsense() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").map(|e| e.0),
            Ok("ada@example.com".into())
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@exa_mple.com",
            "ada..x@example.com",
            "ada@-example.com",
        ] {
            assert_eq!(Email::parse(bad), Err(UserError::InvalidEmail), "{bad}");
        }
    }

    #[test]
    fn weak_passwords_are_refused_with_the_reason() {
        assert!(matches!(
            NewPassword::parse("short"),
            Err(UserError::WeakPassword(_))
        ));
        assert!(matches!(
            NewPassword::parse("aaaaaaaaaaaa"),
            Err(UserError::WeakPassword(_))
        ));
        assert!(matches!(
            NewPassword::parse("Password123"),
            Err(UserError::WeakPassword(_))
        ));
        assert!(NewPassword::parse("correct horse battery").is_ok());
        assert_eq!(
            format!("{:?}", NewPassword::parse("correct horse battery")),
            "Ok(NewPassword(<redacted>))"
        );
    }

    #[test]
    fn a_session_needs_a_verified_email() {
        let user = given::<User>([signed_up()]);
        let start = UserCommand::StartSession {
            session_id: session(1),
            expires_at: at(5),
            recovery_code: None,
            totp_step: None,
            at: at(1),
        };
        user.when(&start).then_refused(UserError::EmailNotVerified);
        let verify = |token: &str, when: u32| UserCommand::VerifyEmail {
            token: hash(token),
            at: at(when),
        };
        user.when(&verify("nope", 1))
            .then_refused(UserError::InvalidToken);
        user.when(&verify("verify", 3))
            .then_refused(UserError::InvalidToken);
        let verified = user
            .when(&verify("verify", 1))
            .then([UserEvent::EmailVerified { at: at(1) }]);
        // A token works once.
        verified
            .when(&verify("verify", 1))
            .then_refused(UserError::InvalidToken);
        let live = verified.when(&start).then([UserEvent::SessionStarted {
            session_id: session(1),
            expires_at: at(5),
            at: at(1),
        }]);
        assert!(live.state().session_is_live(session(1), at(4)));
        assert!(!live.state().session_is_live(session(1), at(5)), "expired");
    }

    #[test]
    fn a_password_change_ends_every_other_session_and_a_reset_ends_all() {
        let (s1, s2) = (session(1), session(2));
        let user = given::<User>([
            signed_up(),
            UserEvent::EmailVerified { at: at(0) },
            UserEvent::SessionStarted {
                session_id: s1,
                expires_at: at(9),
                at: at(1),
            },
            UserEvent::SessionStarted {
                session_id: s2,
                expires_at: at(9),
                at: at(1),
            },
        ]);
        let change = UserCommand::ChangePassword {
            password: hash("new"),
            keep_session: s1,
            at: at(2),
        };
        let changed = user.when(&change).then_accepted();
        assert!(changed.state().session_is_live(s1, at(3)));
        assert!(!changed.state().session_is_live(s2, at(3)));

        let request = UserCommand::RequestPasswordReset {
            token: hash("reset"),
            expires_at: at(4),
            at: at(2),
        };
        let requested = changed.when(&request).then_accepted();
        let reset = UserCommand::ResetPassword {
            token: hash("reset"),
            password: hash("newer"),
            at: at(3),
        };
        let done = requested.when(&reset).then_accepted();
        assert!(!done.state().session_is_live(s1, at(3)));
        // A reset token works once.
        done.when(&reset).then_refused(UserError::InvalidToken);
    }

    #[test]
    fn recovery_codes_work_once() {
        let user = given::<User>([
            signed_up(),
            UserEvent::EmailVerified { at: at(0) },
            UserEvent::TotpEnrollmentStarted {
                secret: Sealed::from_sealed_text("s".into()),
                at: at(0),
            },
            UserEvent::TotpEnabled {
                recovery_codes: vec![hash("rc1")],
                at: at(0),
            },
        ]);
        assert!(user.state().totp_enabled());
        let start = |id: u128| UserCommand::StartSession {
            session_id: session(id),
            expires_at: at(9) + Duration::hours(1),
            recovery_code: Some(hash("rc1")),
            totp_step: None,
            at: at(1),
        };
        let used = user.when(&start(1)).then_accepted();
        used.when(&start(2))
            .then_refused(UserError::InvalidRecoveryCode);
    }

    #[test]
    fn a_totp_code_works_once() {
        let user = given::<User>([signed_up(), UserEvent::EmailVerified { at: at(0) }]);
        let start = |id: u128, step: i64| UserCommand::StartSession {
            session_id: session(id),
            expires_at: at(9),
            recovery_code: None,
            totp_step: Some(step),
            at: at(1),
        };
        let used = user.when(&start(1, 100)).then_accepted();
        used.when(&start(2, 100))
            .then_refused(UserError::TotpCodeReused);
        // Nor an older one.
        used.when(&start(2, 99))
            .then_refused(UserError::TotpCodeReused);
        used.when(&start(2, 101)).then_accepted();
    }

    #[test]
    fn an_email_is_claimed_once() {
        let a = UserId::from_uuid(Uuid::from_u128(1));
        let b = UserId::from_uuid(Uuid::from_u128(2));
        let claimed = given::<EmailClaim>([])
            .when(&a)
            .then([EmailClaimEvent::EmailClaimed { user_id: a }]);
        claimed.when(&b).then_refused(UserError::EmailTaken);
        claimed.when(&a).then_nothing();
    }
}
