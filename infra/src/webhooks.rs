//! The tenant webhooks adapter (`domain::webhook::Webhooks`): signing secrets derived from
//! the master key, and posts signed the Standard Webhooks way over reqwest (rustls).
//!
//! Signature: `webhook-signature: v1,<base64 of HMAC-SHA256 over "<webhook-id>.<webhook-
//! timestamp>.<body>">`, keyed with the bytes the secret `whsec_<base64>` encodes. Redirects
//! are not followed (a webhook that answers 3xx has moved; following it would let an
//! endpoint point the platform elsewhere). Error reasons never carry the URL, which may hold
//! a token.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use domain::ids::TenantId;
use domain::webhook::{PostError, WebhookMessage, WebhookUrl, Webhooks};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;
use uuid::Uuid;

use crate::crypto::MasterKey;

/// How long one post may take (connect, send, answer).
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct HttpWebhooks {
    /// The master key's webhook-secret key (never the master key itself).
    key: [u8; 32],
    client: reqwest::Client,
}

impl std::fmt::Debug for HttpWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpWebhooks").finish_non_exhaustive()
    }
}

impl HttpWebhooks {
    pub fn new(master: &MasterKey) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Tenantry-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            key: master.derive("tenant-webhook-secret"),
            client,
        })
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The `webhook-signature` value of `message` at `timestamp` under `secret` (`whsec_...`).
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|b64| STANDARD.decode(b64).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec());
    let signed = format!("{id}.{timestamp}.");
    let mac = hmac(&key, &[signed.as_bytes(), body.as_bytes()]);
    format!("v1,{}", STANDARD.encode(mac))
}

#[async_trait]
impl Webhooks for HttpWebhooks {
    fn secret(&self, tenant: TenantId, key_id: Uuid) -> String {
        let bytes = hmac(&self.key, &[tenant.as_uuid().as_bytes(), key_id.as_bytes()]);
        format!("whsec_{}", STANDARD.encode(bytes))
    }

    async fn post(
        &self,
        url: &WebhookUrl,
        secret: &str,
        message: &WebhookMessage,
        now: DateTime<Utc>,
    ) -> Result<u16, PostError> {
        let timestamp = now.timestamp();
        let answer = self
            .client
            .post(url.as_str())
            .header("content-type", "application/json")
            .header("webhook-id", &message.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                sign(secret, &message.id, timestamp, &message.body),
            )
            .body(message.body.clone())
            .send()
            .await
            .map_err(|e| PostError {
                permanent: e.is_builder(),
                reason: e.without_url().to_string(),
            })?;
        let status = answer.status();
        if status.is_success() {
            return Ok(status.as_u16());
        }
        // 408 and 429 say "later"; 5xx may pass; another 4xx (or a redirect) will not change.
        let transient = status.is_server_error()
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
        Err(PostError {
            reason: format!("the endpoint answered {status}"),
            permanent: !transient,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_differ_by_tenant_and_key_and_repeat() {
        let hooks = HttpWebhooks::new(&MasterKey::generate()).expect("client");
        let (a, b) = (
            TenantId::from_uuid(Uuid::from_u128(1)),
            TenantId::from_uuid(Uuid::from_u128(2)),
        );
        let key = Uuid::from_u128(9);
        assert_eq!(hooks.secret(a, key), hooks.secret(a, key));
        assert_ne!(hooks.secret(a, key), hooks.secret(b, key));
        assert_ne!(hooks.secret(a, key), hooks.secret(a, Uuid::from_u128(10)));
        assert!(hooks.secret(a, key).starts_with("whsec_"));
    }
}
