//! The SMTP adapter of the Mailer port (lettre, TLS by rustls with the Mozilla root
//! certificates, plus an optional extra CA for a private mail server). The server is given
//! as a URL:
//!
//! | form | connection |
//! | --- | --- |
//! | `smtps://user:password@host:port` | implicit TLS (port 465 by default) |
//! | `smtp://user:password@host:port` | STARTTLS, required (port 587 by default) |
//! | `smtp://host:port?tls=opportunistic` | STARTTLS when the server offers it |
//! | `smtp://host:port?tls=none`, or `host:port` | plain SMTP, for a relay on a trusted network |
//!
//! User name and password are percent-decoded. Credentials are refused where they would
//! travel in clear (`tls=none`, `tls=opportunistic`, `host:port`). Nothing here logs or
//! prints the password.

use async_trait::async_trait;
use domain::mailer::{Mail, MailError, Mailer};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The domain of `Message-ID`s (the sender's).
    id_domain: String,
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
    #[error(
        "the SMTP server must be `smtps://[user:password@]host[:port]`, `smtp://[user:password@]host[:port][?tls=required|opportunistic|none]` or `host:port`: {0}"
    )]
    Url(String),
    #[error(
        "SMTP credentials would travel in clear: use `smtps://`, or `smtp://` with STARTTLS required"
    )]
    CredentialsInClear,
    #[error("the SMTP CA certificate is not valid PEM: {0}")]
    Certificate(String),
    #[error("TLS for the SMTP server could not be set up: {0}")]
    Tls(String),
}

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    Implicit,
    StartTlsRequired,
    StartTlsOpportunistic,
    Plain,
}

impl SmtpMailer {
    /// A mailer for the server `url` (see the module documentation), sending as `from`;
    /// `extra_ca` (PEM) is trusted besides the usual roots.
    pub fn from_url(
        url: &str,
        from: &str,
        extra_ca: Option<&[u8]>,
    ) -> Result<Self, SmtpConfigError> {
        let from: Mailbox = from
            .parse()
            .map_err(|_| SmtpConfigError::From(from.to_owned()))?;
        let bad = |why: &str| SmtpConfigError::Url(why.to_owned());
        let (host, port, security, credentials) = if url.contains("://") {
            let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
            let host = parsed
                .host_str()
                .ok_or_else(|| bad("no host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let tls = parsed
                .query_pairs()
                .find(|(k, _)| k == "tls")
                .map(|(_, v)| v.into_owned());
            let (security, default_port) = match (parsed.scheme(), tls.as_deref()) {
                ("smtps", None) => (Security::Implicit, 465),
                ("smtp", None | Some("required")) => (Security::StartTlsRequired, 587),
                ("smtp", Some("opportunistic")) => (Security::StartTlsOpportunistic, 587),
                ("smtp", Some("none")) => (Security::Plain, 25),
                ("smtp" | "smtps", Some(other)) => {
                    return Err(bad(&format!("unknown tls={other}")));
                }
                (scheme, _) => return Err(bad(&format!("unknown scheme {scheme}"))),
            };
            let decode = |s: &str| {
                percent_decode(s).ok_or_else(|| bad("the user name or password is not valid"))
            };
            let credentials = match (parsed.username(), parsed.password()) {
                ("", None) => None,
                (user, password) => Some(Credentials::new(
                    decode(user)?,
                    decode(password.unwrap_or_default())?,
                )),
            };
            (
                host,
                parsed.port().unwrap_or(default_port),
                security,
                credentials,
            )
        } else {
            let (host, port) = url
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_owned(), p.parse().ok()?)))
                .ok_or_else(|| bad("expected host:port"))?;
            (host, port, Security::Plain, None)
        };
        if credentials.is_some()
            && matches!(security, Security::Plain | Security::StartTlsOpportunistic)
        {
            return Err(SmtpConfigError::CredentialsInClear);
        }
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .timeout(Some(std::time::Duration::from_secs(10)));
        if security != Security::Plain {
            let mut tls = TlsParameters::builder(host.clone());
            if let Some(pem) = extra_ca {
                if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                    return Err(SmtpConfigError::Certificate(
                        "no BEGIN CERTIFICATE block".into(),
                    ));
                }
                let ca = Certificate::from_pem(pem)
                    .map_err(|e| SmtpConfigError::Certificate(e.to_string()))?;
                tls = tls.add_root_certificate(ca);
            }
            let tls = tls
                .build()
                .map_err(|e| SmtpConfigError::Tls(e.to_string()))?;
            builder = builder.tls(match security {
                Security::Implicit => Tls::Wrapper(tls),
                Security::StartTlsRequired => Tls::Required(tls),
                Security::StartTlsOpportunistic | Security::Plain => Tls::Opportunistic(tls),
            });
        }
        if let Some(credentials) = credentials {
            builder = builder.credentials(credentials);
        }
        let id_domain = from.email.domain().to_owned();
        Ok(Self {
            transport: builder.build(),
            from,
            id_domain,
        })
    }
}

/// `%XX`-decodes a URL's user name or password.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: Mail) -> Result<(), MailError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|_| MailError::permanent("the recipient address is not valid"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .message_id(Some(format!("<{}@{}>", mail.id, self.id_domain)))
            .subject(mail.subject)
            .body(mail.body)
            .map_err(|e| MailError::permanent(e.to_string()))?;
        // The server's reply may quote the recipient: report only what kind of failure it was.
        self.transport.send(message).await.map(drop).map_err(|e| {
            if e.is_permanent() {
                MailError::permanent("the SMTP server refused the message")
            } else if e.is_transient() {
                MailError::transient("the SMTP server is temporarily refusing messages")
            } else if e.is_timeout() {
                MailError::transient("the SMTP server timed out")
            } else if e.is_tls() {
                MailError::transient("the TLS connection to the SMTP server failed")
            } else {
                MailError::transient("the SMTP server could not be reached")
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FROM: &str = "Tenantry <no-reply@tenantry.localhost>";

    #[test]
    fn every_url_form_is_understood_and_clear_credentials_are_refused() {
        for ok in [
            "smtps://user:p%40ss@mail.example.com",
            "smtps://mail.example.com:2465",
            "smtp://user:pass@mail.example.com:587",
            "smtp://mail.example.com?tls=opportunistic",
            "smtp://127.0.0.1:2525?tls=none",
            "127.0.0.1:2525",
        ] {
            assert!(SmtpMailer::from_url(ok, FROM, None).is_ok(), "{ok}");
        }
        for clear in [
            "smtp://user:pass@mail.example.com?tls=none",
            "smtp://user:pass@mail.example.com?tls=opportunistic",
        ] {
            assert!(
                matches!(
                    SmtpMailer::from_url(clear, FROM, None),
                    Err(SmtpConfigError::CredentialsInClear)
                ),
                "{clear}"
            );
        }
        for bad in [
            "http://mail.example.com",
            "smtp://mail.example.com?tls=maybe",
            "mail.example.com",
            "smtp://user:%zz@mail.example.com",
        ] {
            assert!(
                matches!(
                    SmtpMailer::from_url(bad, FROM, None),
                    Err(SmtpConfigError::Url(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            SmtpMailer::from_url("smtps://mail.example.com", FROM, Some(b"not pem")),
            Err(SmtpConfigError::Certificate(_))
        ));
    }

    #[test]
    fn the_password_is_never_printed() {
        let mailer =
            SmtpMailer::from_url("smtps://user:hunter2-secret@mail.example.com", FROM, None)
                .expect("valid");
        assert!(!format!("{mailer:?}").contains("hunter2"));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("p%40ss%3Aword").as_deref(),
            Some("p@ss:word")
        );
        assert_eq!(percent_decode("%4"), None);
    }
}
