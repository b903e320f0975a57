//! The TOTP second factor: enrolling (the secret arrives sealed), enabling it with a set of
//! recovery codes, and spending a code or a recovery code once on a log-in.

use super::{SecretHash, User, UserError, UserEvent};
use crate::personal_data::Sealed;
use chrono::{DateTime, Utc};

impl User {
    pub fn totp_enabled(&self) -> bool {
        self.totp.is_some()
    }

    pub(super) fn start_totp_enrollment(
        &self,
        secret: &Sealed,
        at: DateTime<Utc>,
    ) -> Result<Vec<UserEvent>, UserError> {
        if self.totp.is_some() {
            return Err(UserError::TotpAlreadyEnabled);
        }
        Ok(vec![UserEvent::TotpEnrollmentStarted {
            secret: secret.clone(),
            at,
        }])
    }

    /// The edge checked a code against the pending secret.
    pub(super) fn enable_totp(
        &self,
        recovery_codes: &[SecretHash],
        at: DateTime<Utc>,
    ) -> Result<Vec<UserEvent>, UserError> {
        if self.totp.is_some() {
            return Err(UserError::TotpAlreadyEnabled);
        }
        if self.totp_pending.is_none() {
            return Err(UserError::NoTotpEnrollment);
        }
        Ok(vec![UserEvent::TotpEnabled {
            recovery_codes: recovery_codes.to_vec(),
            at,
        }])
    }

    /// Turns TOTP off, spending the code that proved the factor: a TOTP code (its time step,
    /// which the edge matched against the secret) or a recovery code (its hash, checked here).
    pub(super) fn disable_totp(
        &self,
        totp_step: Option<i64>,
        recovery_code: Option<&SecretHash>,
        at: DateTime<Utc>,
    ) -> Result<Vec<UserEvent>, UserError> {
        if self.totp.is_none() {
            return Err(UserError::TotpNotEnabled);
        }
        let spent = match (totp_step, recovery_code) {
            (Some(step), _) => self.spend_totp_code(step, at)?,
            (None, Some(code)) => self.spend_recovery_code(code, at)?,
            (None, None) => return Err(UserError::InvalidRecoveryCode),
        };
        Ok(vec![spent, UserEvent::TotpDisabled { at }])
    }

    /// A TOTP code of time step `step` works once, and no older one after it.
    pub(super) fn spend_totp_code(
        &self,
        step: i64,
        at: DateTime<Utc>,
    ) -> Result<UserEvent, UserError> {
        if self.totp_last_step.is_some_and(|last| step <= last) {
            return Err(UserError::TotpCodeReused);
        }
        Ok(UserEvent::TotpCodeUsed { step, at })
    }

    /// A recovery code works once.
    pub(super) fn spend_recovery_code(
        &self,
        code: &SecretHash,
        at: DateTime<Utc>,
    ) -> Result<UserEvent, UserError> {
        if !self.recovery_codes.contains(code.as_str()) {
            return Err(UserError::InvalidRecoveryCode);
        }
        Ok(UserEvent::RecoveryCodeUsed {
            code: code.clone(),
            at,
        })
    }
}
