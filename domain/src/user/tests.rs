//! Given/when/then tests of the User and EmailClaim aggregates.

use super::*;
use crate::testing::aggregate::{at, given};
use chrono::Duration;

fn hash(s: &str) -> SecretHash {
    SecretHash::new(s.to_owned())
}

fn session(n: u128) -> SessionId {
    SessionId::from_uuid(Uuid::from_u128(n))
}

fn mail(kind: crate::mail::MailKind) -> crate::mail::QueuedMail {
    crate::mail::QueuedMail {
        mail_id: Uuid::now_v7(),
        subject: crate::ids::SubjectId::from_uuid(Uuid::nil()),
        to: Sealed::from_sealed_text("sealed".into()),
        kind,
        token: Some(Sealed::from_sealed_text("sealed token".into())),
        expires_at: Some(at(4)),
    }
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
        password: None,
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
        mail: mail(crate::mail::MailKind::PasswordReset),
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

#[test]
fn disabling_totp_spends_a_code_and_forgets_the_secret() {
    let disable = |step: Option<i64>, code: Option<&str>| UserCommand::DisableTotp {
        totp_step: step,
        recovery_code: code.map(hash),
        at: at(2),
    };
    let plain = given::<User>([signed_up(), UserEvent::EmailVerified { at: at(0) }]);
    plain
        .when(&disable(Some(5), None))
        .then_refused(UserError::TotpNotEnabled);
    let on = given::<User>([
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
    on.when(&disable(None, Some("not-a-code")))
        .then_refused(UserError::InvalidRecoveryCode);
    on.when(&disable(None, None))
        .then_refused(UserError::InvalidRecoveryCode);
    let off = on.when(&disable(None, Some("rc1"))).then_accepted();
    assert!(!off.state().totp_enabled());
    assert!(off.state().recovery_codes.is_empty());
    off.when(&disable(None, Some("rc1")))
        .then_refused(UserError::TotpNotEnabled);
}

/// A second sign-up for an unverified address replaces the pending password and mails a new
/// token; for a verified one it only tells the owner. Either way it is accepted.
#[test]
fn signing_up_again_replaces_pending_credentials_or_notifies_the_owner() {
    use crate::mail::MailKind;
    let again = UserCommand::SignUpAgain {
        password: hash("second"),
        verification: hash("verify-2"),
        verification_expires_at: at(5),
        verification_mail: mail(MailKind::Verification),
        notice: mail(MailKind::SignUpAttempt),
        at: at(1),
    };
    let pending = given::<User>([signed_up()]).when(&again).then_accepted();
    assert_eq!(pending.state().password, Some(hash("second")));
    let old_token = UserCommand::VerifyEmail {
        token: hash("verify"),
        password: None,
        at: at(1),
    };
    pending
        .when(&old_token)
        .then_refused(UserError::InvalidToken);

    let verified = given::<User>([signed_up(), UserEvent::EmailVerified { at: at(0) }]);
    let UserCommand::SignUpAgain { notice, .. } = &again else {
        unreachable!()
    };
    let told = verified.when(&again).then([UserEvent::MailQueued {
        mail: notice.clone(),
        at: at(1),
    }]);
    assert_eq!(told.state().password, Some(hash("pw")));
    given::<User>([])
        .when(&again)
        .then_refused(UserError::NotFound);
}
