//! Sessions: starting one once the edge has checked the password (and the second factor,
//! spending a TOTP code or a recovery code), recording failed log-ins, ending one.

use super::{SecretHash, User, UserError, UserEvent};
use crate::ids::SessionId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Why a log-in failed, as recorded for rate limits and the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginFailure {
    WrongPassword,
    EmailNotVerified,
    WrongSecondFactor,
}

impl User {
    /// Whether `session` is live at `at`.
    pub fn session_is_live(&self, session: SessionId, at: DateTime<Utc>) -> bool {
        self.sessions.get(&session).is_some_and(|exp| at < *exp)
    }

    pub(super) fn start_session(
        &self,
        session_id: SessionId,
        expires_at: DateTime<Utc>,
        recovery_code: Option<&SecretHash>,
        totp_step: Option<i64>,
        at: DateTime<Utc>,
    ) -> Result<Vec<UserEvent>, UserError> {
        if !self.email_verified {
            return Err(UserError::EmailNotVerified);
        }
        if self.sessions.contains_key(&session_id) {
            return Ok(vec![]);
        }
        let mut events = vec![];
        if let Some(step) = totp_step {
            events.push(self.spend_totp_code(step, at)?);
        }
        if let Some(code) = recovery_code {
            events.push(self.spend_recovery_code(code, at)?);
        }
        events.push(UserEvent::SessionStarted {
            session_id,
            expires_at,
            at,
        });
        Ok(events)
    }

    pub(super) fn record_failed_login(
        &self,
        reason: LoginFailure,
        at: DateTime<Utc>,
    ) -> Vec<UserEvent> {
        vec![UserEvent::LoginFailed { reason, at }]
    }

    pub(super) fn end_session(&self, session_id: SessionId, at: DateTime<Utc>) -> Vec<UserEvent> {
        if !self.sessions.contains_key(&session_id) {
            return vec![];
        }
        vec![UserEvent::SessionEnded { session_id, at }]
    }
}
