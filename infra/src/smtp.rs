//! The SMTP adapter of the Mailer port (lettre). Plain SMTP on the configured host and port,
//! as a local relay or a test server speaks it; a relay that needs TLS sits in front.

use async_trait::async_trait;
use domain::mailer::{Mail, MailError, Mailer};
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SmtpConfigError {
    #[error("the sender address {0:?} is not valid")]
    From(String),
}

impl SmtpMailer {
    pub fn new(host: &str, port: u16, from: &str) -> Result<Self, SmtpConfigError> {
        let from: Mailbox = from
            .parse()
            .map_err(|_| SmtpConfigError::From(from.to_owned()))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(std::time::Duration::from_secs(10)))
            .build();
        Ok(Self { transport, from })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: Mail) -> Result<(), MailError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|_| MailError("the recipient address is not valid".into()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject)
            .body(mail.body)
            .map_err(|e| MailError(e.to_string()))?;
        // The server's reply may quote the recipient: report only what kind of failure it was.
        self.transport.send(message).await.map(drop).map_err(|e| {
            let kind = if e.is_permanent() {
                "the SMTP server refused the message"
            } else if e.is_transient() {
                "the SMTP server is temporarily refusing messages"
            } else if e.is_timeout() {
                "the SMTP server timed out"
            } else {
                "the SMTP server could not be reached"
            };
            MailError(kind.into())
        })
    }
}
