//! The mail outbox (see `domain::mail`): use cases queue mails with the events they are about
//! ([`queue`]); the [`MailOutbox`] reactor renders and sends them and records each outcome on
//! the mail's own stream.
//!
//! Delivery is at-least-once with deduplication: before sending, the reactor looks at the
//! mail's delivery stream and skips a mail whose outcome is recorded; the outcome is recorded
//! with a command id derived from the queuing event, so a redelivered event records nothing
//! twice. Only a crash between the mail server's acceptance and that record can send a mail
//! twice, and then with the same `Message-ID`. A mail server that is down or busy is retried
//! (a few times at once, then by the runner with growing pauses, holding back later mails
//! rather than reordering them); one that refuses a message for good is recorded as such and
//! the outbox moves on. A mail whose token expired before it could go out is not sent.

use crate::access::INVITE_VALID_DAYS;
use crate::identity::{RESET_VALID_MINUTES, VERIFICATION_VALID_HOURS};
use crate::{CommandContext, Executor};
use chrono::{DateTime, Utc};
use domain::access::TenantAccess;
use domain::aggregate::Aggregate;
use domain::event::{Reads, RecordedEvent};
use domain::ids::SubjectId;
use domain::mail::{
    DeliveryEvent, MailDelivery, MailKind, NotSentReason, QueuedMail, RecordDelivery,
};
use domain::mailer::{Mail, MailError, Mailer};
use domain::personal_data::{PersonalData, PersonalDataError};
use domain::reactor::{ReactionError, Reactor, decoded};
use domain::subscription::Subscription;
use domain::tenant::Tenant;
use domain::user::{Email, User};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The reactor's name (its checkpoint, and part of the ids of the outcomes it records).
pub const OUTBOX: &str = "mail_outbox";

/// A mail for `subject` at `to`, its address and token sealed under the subject's key.
pub async fn queue(
    personal: &dyn PersonalData,
    (mail_id, subject): (Uuid, SubjectId),
    to: &Email,
    kind: MailKind,
    token: Option<(&str, DateTime<Utc>)>,
) -> Result<QueuedMail, PersonalDataError> {
    let sealed_token = match token {
        Some((token, _)) => Some(personal.seal(subject, token).await?),
        None => None,
    };
    Ok(QueuedMail {
        mail_id,
        subject,
        to: personal.seal(subject, to.as_str()).await?,
        kind,
        token: sealed_token,
        expires_at: token.map(|(_, expires)| expires),
    })
}

/// The queued mails an event carries.
pub fn queued_mails(event: &RecordedEvent) -> Result<Vec<QueuedMail>, ReactionError> {
    use domain::access::AccessEvent;
    use domain::subscription::SubscriptionEvent;
    use domain::user::UserEvent;
    if let Some(UserEvent::MailQueued { mail, .. }) = decoded::<User>(event)? {
        return Ok(vec![mail]);
    }
    if let Some(AccessEvent::InviteMailQueued { mail, .. }) = decoded::<TenantAccess>(event)? {
        return Ok(vec![mail]);
    }
    if let Some(
        SubscriptionEvent::AllowanceWarned { mails, .. }
        | SubscriptionEvent::AllowanceReached { mails, .. },
    ) = decoded::<Subscription>(event)?
    {
        return Ok(mails);
    }
    Ok(vec![])
}

/// Sends the queued mails (see the module documentation).
#[derive(Debug, Clone)]
pub struct MailOutbox {
    exec: Executor,
    personal: Arc<dyn PersonalData>,
    mailer: Arc<dyn Mailer>,
    public_url: String,
    /// Pauses between the attempts of one reaction (then the runner retries it later).
    pauses: Vec<Duration>,
}

impl MailOutbox {
    /// `public_url`: the web app's address, which the mails' links point to.
    pub fn new(
        exec: Executor,
        personal: Arc<dyn PersonalData>,
        mailer: Arc<dyn Mailer>,
        public_url: impl Into<String>,
    ) -> Self {
        Self {
            exec,
            personal,
            mailer,
            public_url: public_url.into(),
            pauses: vec![Duration::from_millis(250), Duration::from_secs(1)],
        }
    }

    /// A page of the web app.
    fn page(&self, page: &str) -> String {
        format!("{}/{page}", self.public_url.trim_end_matches('/'))
    }

    /// A page of the web app that receives `token`.
    fn link(&self, page: &str, token: &str) -> String {
        format!("{}?token={token}", self.page(page))
    }

    async fn deliver(&self, cause: &RecordedEvent, mail: &QueuedMail) -> Result<(), ReactionError> {
        let failed = |reason: String| ReactionError::at(cause, reason);
        let delivery = self
            .exec
            .load::<MailDelivery>(mail.mail_id)
            .await
            .map_err(|e| failed(e.to_string()))?;
        if delivery.state.outcome.is_some() {
            return Ok(());
        }
        let now = Utc::now();
        let not_sent = |reason, attempts| DeliveryEvent::MailNotSent {
            reason,
            attempts,
            at: Utc::now(),
        };
        let outcome = if mail.expires_at.is_some_and(|expires| expires <= now) {
            not_sent(NotSentReason::Expired, 0)
        } else {
            match self.render(mail).await.map_err(|e| failed(e.to_string()))? {
                None => not_sent(NotSentReason::SubjectForgotten, 0),
                Some(message) => match self.send(message).await {
                    Ok(attempts) => DeliveryEvent::MailSent {
                        attempts,
                        at: Utc::now(),
                    },
                    Err((error, attempts)) if error.permanent => {
                        tracing::warn!(reactor = OUTBOX, mail.id = %mail.mail_id, error = %error, "e-mail refused for good; not retried");
                        not_sent(NotSentReason::Refused(error.reason), attempts)
                    }
                    Err((error, attempts)) => {
                        tracing::warn!(reactor = OUTBOX, mail.id = %mail.mail_id, attempts, error = %error, "e-mail not sent; will retry");
                        return Err(failed(error.to_string()));
                    }
                },
            }
        };
        match &outcome {
            DeliveryEvent::MailSent { .. } => {
                tracing::info!(reactor = OUTBOX, mail.id = %mail.mail_id, "e-mail sent");
            }
            DeliveryEvent::MailNotSent { reason, .. } => {
                tracing::info!(reactor = OUTBOX, mail.id = %mail.mail_id, reason = ?reason, "e-mail not sent");
            }
        }
        let ctx = CommandContext::caused_by(cause, OUTBOX);
        self.exec
            .execute::<MailDelivery>(mail.mail_id, &RecordDelivery(outcome), &ctx)
            .await
            .map(drop)
            .map_err(|e| failed(e.to_string()))
    }

    /// Tries to send, pausing between attempts while the failure may pass: how many attempts
    /// it took, or the last error and how many were made.
    async fn send(&self, message: Mail) -> Result<u32, (MailError, u32)> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.mailer.send(message.clone()).await {
                Ok(()) => return Ok(attempts),
                Err(error) if error.permanent => return Err((error, attempts)),
                Err(error) => match self.pauses.get(attempts as usize - 1) {
                    Some(pause) => tokio::time::sleep(*pause).await,
                    None => return Err((error, attempts)),
                },
            }
        }
    }

    async fn tenant_name(
        &self,
        tenant: domain::ids::TenantId,
    ) -> Result<String, PersonalDataError> {
        let tenant = self
            .exec
            .load::<Tenant>(tenant.as_uuid())
            .await
            .map_err(|e| PersonalDataError::Store(e.to_string()))?
            .state;
        Ok(tenant
            .name
            .as_ref()
            .map_or("a tenant", |n| n.as_str())
            .to_owned())
    }

    /// The message, or `None` when its subject was forgotten.
    async fn render(&self, mail: &QueuedMail) -> Result<Option<Mail>, PersonalDataError> {
        let Some(to) = self.personal.open(mail.subject, &mail.to).await? else {
            return Ok(None);
        };
        let token = match &mail.token {
            Some(sealed) => match self.personal.open(mail.subject, sealed).await? {
                Some(token) => token,
                None => return Ok(None),
            },
            None => String::new(),
        };
        let (subject, body) = match mail.kind {
            MailKind::Verification => (
                "Verify your e-mail address".to_owned(),
                format!(
                    "Welcome to Tenantry.\n\nVerify your address: {}\n\nToken: {token}\n\nThe token is valid for {VERIFICATION_VALID_HOURS} hours. When you verify, give the password you chose: only a password you set yourself stays valid.\n",
                    self.link("verify-email", &token)
                ),
            ),
            MailKind::PasswordReset => (
                "Reset your password".to_owned(),
                format!(
                    "Someone asked to reset your Tenantry password. If it was you: {}\n\nToken: {token}\n\nThe token is valid for {RESET_VALID_MINUTES} minutes. If it was not you, ignore this message.\n",
                    self.link("reset-password", &token)
                ),
            ),
            MailKind::SignUpAttempt => (
                "Sign-up attempt with your e-mail address".to_owned(),
                format!(
                    "Someone tried to create a Tenantry account with this address, which already has one. Nothing was changed.\n\nIf it was you, log in: {}\nForgot your password? Reset it: {}\n\nIf it was not you, ignore this message.\n",
                    self.page("log-in"),
                    self.page("forgot-password")
                ),
            ),
            MailKind::AllowanceWarning {
                tenant_id,
                key,
                percent,
                period_end,
            } => {
                let name = self.tenant_name(tenant_id).await?;
                (
                    format!(
                        "{name} has used {percent}% of its {} allowance",
                        key.as_str()
                    ),
                    format!(
                        "{name} has used {percent}% of its plan's {} allowance for this period, which ends {}. \
                         At 100% the actions that consume it are refused until the period ends or the plan is upgraded; \
                         deleting, cleaning up and restoring keep working.\n\nPlans: {}\n",
                        key.as_str(),
                        period_end.format("%Y-%m-%d %H:%M UTC"),
                        self.page("billing")
                    ),
                )
            }
            MailKind::Invite { tenant_id, role } => {
                let name = self.tenant_name(tenant_id).await?;
                (
                    format!("You are invited to {name} on Tenantry"),
                    format!(
                        "You are invited to join {name} as {}.\n\nAccept: {}\n\nToken: {token}\n\nThe invite is valid for {INVITE_VALID_DAYS} days. Log in (or sign up with this address) first.\n",
                        role.as_str(),
                        self.link("accept-invite", &token),
                    ),
                )
            }
        };
        Ok(Some(Mail {
            id: mail.mail_id,
            to,
            subject,
            body,
        }))
    }
}

#[async_trait::async_trait]
impl Reactor for MailOutbox {
    fn name(&self) -> &'static str {
        OUTBOX
    }

    fn reads(&self) -> Reads {
        Reads::categories(&[
            User::CATEGORY,
            TenantAccess::CATEGORY,
            Subscription::CATEGORY,
        ])
    }

    async fn react(&self, events: &[RecordedEvent]) -> Result<(), ReactionError> {
        for event in events {
            for mail in queued_mails(event)? {
                self.deliver(event, &mail).await?;
            }
        }
        Ok(())
    }
}
