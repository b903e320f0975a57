//! Tenant webhooks: one notification endpoint per tenant ([`WebhookEndpoint`], stream
//! `webhook_endpoint-<tenant id>`) to which the platform posts what a tenant's systems may
//! want to act on (today: a usage allowance at 80% and at 100%), signed the Standard
//! Webhooks way (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64
//! HMAC-SHA256>`).
//!
//! No secret is ever in an event: the endpoint records a random key id, and the signing
//! secret is derived from the platform's master key and that id ([`Webhooks::secret`]).
//! Setting the endpoint again keeps the key unless a rotation is asked for.
//!
//! Deliveries are at least once and never hold other tenants back: the `tenant_webhooks`
//! reactor tries a few times, then records the outcome (delivered, or failed with the
//! reason) on the endpoint's stream, where the most recent [`RECENT`] are kept for the
//! tenant to see. The `webhook-id` derives from the event that caused the message, so a
//! receiver recognises a redelivery.

use crate::aggregate::Aggregate;
use crate::ids::TenantId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use uuid::Uuid;

/// Longest endpoint URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// How many deliveries the endpoint's state remembers (the latest).
pub const RECENT: usize = 50;

/// An endpoint URL: `https://` (or `http://` where the platform allows it, for endpoints on
/// a trusted network), with a host, without credentials, at most [`MAX_URL_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub fn parse(text: &str, allow_http: bool) -> Result<Self, WebhookError> {
        let invalid = |why: &str| Err(WebhookError::InvalidUrl(why.to_owned()));
        if text.len() > MAX_URL_BYTES {
            return invalid("longer than 2048 bytes");
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return invalid("it contains spaces or control characters");
        }
        let rest = if let Some(rest) = text.strip_prefix("https://") {
            rest
        } else if let Some(rest) = text.strip_prefix("http://") {
            if !allow_http {
                return invalid("it must start with https:// (plain http is not allowed here)");
            }
            rest
        } else {
            return invalid("it must start with https://");
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return invalid("it must not carry a user name or password");
        }
        let host = authority
            .rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(authority, |(host, _)| host);
        if host.is_empty() {
            return invalid("it has no host");
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// The endpoint answered 2xx.
    Delivered { http_status: u16 },
    /// Given up after the attempts: the last answer or error.
    Failed { reason: String },
}

/// One message and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The `webhook-id` sent.
    pub webhook_id: String,
    /// The message's `type` (`usage.allowance_warning`, ...).
    pub event_type: String,
    #[serde(flatten)]
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub url: Option<WebhookUrl>,
    /// Names the signing secret (derived from the master key and this id).
    pub key_id: Option<Uuid>,
    pub set_at: Option<DateTime<Utc>>,
    /// The latest deliveries, oldest first.
    pub deliveries: VecDeque<Delivery>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WebhookCommand {
    /// Sets (or changes) the endpoint; `new_key` is used when there is no key yet or a
    /// rotation is asked for.
    Set {
        tenant: TenantId,
        url: WebhookUrl,
        new_key: Uuid,
        rotate: bool,
        at: DateTime<Utc>,
    },
    Remove {
        at: DateTime<Utc>,
    },
    /// Records a delivery (nothing when this `webhook-id` is already among the latest).
    Record(Delivery),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WebhookEvent {
    EndpointSet {
        tenant_id: TenantId,
        url: WebhookUrl,
        key_id: Uuid,
        at: DateTime<Utc>,
    },
    EndpointRemoved {
        at: DateTime<Utc>,
    },
    DeliveryRecorded(Delivery),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("invalid webhook URL: {0}")]
    InvalidUrl(String),
    #[error("no webhook endpoint is set")]
    NotSet,
}

impl Aggregate for WebhookEndpoint {
    const CATEGORY: &'static str = "webhook_endpoint";
    type Command = WebhookCommand;
    type Event = WebhookEvent;
    type Error = WebhookError;

    fn decide(&self, command: &WebhookCommand) -> Result<Vec<WebhookEvent>, WebhookError> {
        Ok(match command {
            WebhookCommand::Set {
                tenant,
                url,
                new_key,
                rotate,
                at,
            } => {
                let key_id = match self.key_id {
                    Some(key) if !rotate => key,
                    _ => *new_key,
                };
                if self.url.as_ref() == Some(url) && self.key_id == Some(key_id) {
                    return Ok(vec![]);
                }
                vec![WebhookEvent::EndpointSet {
                    tenant_id: *tenant,
                    url: url.clone(),
                    key_id,
                    at: *at,
                }]
            }
            WebhookCommand::Remove { at } => {
                if self.url.is_none() {
                    return Err(WebhookError::NotSet);
                }
                vec![WebhookEvent::EndpointRemoved { at: *at }]
            }
            WebhookCommand::Record(delivery) => {
                if self
                    .deliveries
                    .iter()
                    .any(|d| d.webhook_id == delivery.webhook_id)
                {
                    return Ok(vec![]);
                }
                vec![WebhookEvent::DeliveryRecorded(delivery.clone())]
            }
        })
    }

    fn evolve(&mut self, event: &WebhookEvent) {
        match event {
            WebhookEvent::EndpointSet {
                url, key_id, at, ..
            } => {
                self.url = Some(url.clone());
                self.key_id = Some(*key_id);
                self.set_at = Some(*at);
            }
            // The key stays: setting an endpoint again signs with the secret the tenant has.
            WebhookEvent::EndpointRemoved { .. } => {
                self.url = None;
                self.set_at = None;
            }
            WebhookEvent::DeliveryRecorded(delivery) => {
                self.deliveries.push_back(delivery.clone());
                while self.deliveries.len() > RECENT {
                    self.deliveries.pop_front();
                }
            }
        }
    }
}

/// A message to post: its `webhook-id`, and the JSON body (`{"type", "timestamp", "data"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookMessage {
    pub id: String,
    pub event_type: String,
    pub body: String,
}

/// Why a post failed; `permanent` when trying again cannot help (the endpoint answered 4xx
/// other than 408 and 429, or the URL cannot be reached by construction).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct PostError {
    pub reason: String,
    pub permanent: bool,
}

/// Signing and posting (the adapter holds the master key and the HTTP client).
#[async_trait]
pub trait Webhooks: Send + Sync + std::fmt::Debug + 'static {
    /// The signing secret of `tenant`'s key `key_id` (`whsec_<base64>`), derived from the
    /// platform's master key.
    fn secret(&self, tenant: TenantId, key_id: Uuid) -> String;
    /// Posts `message` signed with `secret` at `now`; the HTTP status of a 2xx answer.
    async fn post(
        &self,
        url: &WebhookUrl,
        secret: &str,
        message: &WebhookMessage,
        now: DateTime<Utc>,
    ) -> Result<u16, PostError>;
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::testing::aggregate::{at, given};

    fn url(text: &str) -> WebhookUrl {
        WebhookUrl::parse(text, false).unwrap()
    }

    #[test]
    fn urls_are_https_with_a_host_and_no_credentials() {
        assert!(WebhookUrl::parse("https://hooks.example.com/tenantry?x=1", false).is_ok());
        assert!(WebhookUrl::parse("https://hooks.example.com:8443/in", false).is_ok());
        for bad in [
            "http://hooks.example.com/",
            "ftp://hooks.example.com/",
            "https://",
            "https://:443/x",
            "https://user:pw@hooks.example.com/",
            "https://hooks.example.com/a b",
            "hooks.example.com",
        ] {
            assert!(WebhookUrl::parse(bad, false).is_err(), "{bad}");
        }
        assert!(WebhookUrl::parse("http://127.0.0.1:9000/in", true).is_ok());
        let long = format!("https://h.example.com/{}", "a".repeat(MAX_URL_BYTES));
        assert!(WebhookUrl::parse(&long, false).is_err());
    }

    #[test]
    fn the_key_stays_until_rotated_and_deliveries_are_recorded_once() {
        let tenant = TenantId::from_uuid(Uuid::from_u128(1));
        let set = |u: &str, key: u128, rotate: bool| WebhookCommand::Set {
            tenant,
            url: url(u),
            new_key: Uuid::from_u128(key),
            rotate,
            at: at(1),
        };
        let first = given::<WebhookEndpoint>([])
            .when(&set("https://a.example.com/", 7, false))
            .then_accepted();
        assert_eq!(first.state().key_id, Some(Uuid::from_u128(7)));
        first
            .when(&set("https://a.example.com/", 8, false))
            .then_nothing();
        let moved = first
            .when(&set("https://b.example.com/", 8, false))
            .then_accepted();
        assert_eq!(moved.state().key_id, Some(Uuid::from_u128(7)));
        let rotated = moved
            .when(&set("https://b.example.com/", 9, true))
            .then_accepted();
        assert_eq!(rotated.state().key_id, Some(Uuid::from_u128(9)));

        let delivery = |id: &str| Delivery {
            webhook_id: id.to_owned(),
            event_type: "usage.allowance_warning".into(),
            status: DeliveryStatus::Delivered { http_status: 204 },
            attempts: 1,
            at: at(2),
        };
        let recorded = rotated
            .when(&WebhookCommand::Record(delivery("msg_1")))
            .then_accepted();
        recorded
            .when(&WebhookCommand::Record(delivery("msg_1")))
            .then_nothing();
        let removed = recorded
            .when(&WebhookCommand::Remove { at: at(3) })
            .then_accepted();
        assert!(removed.state().url.is_none());
        removed
            .when(&WebhookCommand::Remove { at: at(4) })
            .then_refused(WebhookError::NotSet);
    }

    #[test]
    fn only_the_latest_deliveries_are_kept() {
        let mut endpoint = WebhookEndpoint::default();
        for i in 0..RECENT + 5 {
            endpoint.evolve(&WebhookEvent::DeliveryRecorded(Delivery {
                webhook_id: format!("msg_{i}"),
                event_type: "t".into(),
                status: DeliveryStatus::Failed {
                    reason: "503".into(),
                },
                attempts: 3,
                at: at(1),
            }));
        }
        assert_eq!(endpoint.deliveries.len(), RECENT);
        assert_eq!(endpoint.deliveries[0].webhook_id, "msg_5");
    }
}
