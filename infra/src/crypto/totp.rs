//! TOTP (RFC 6238): 6 digits, 30-second steps, HMAC-SHA1, as every authenticator app
//! expects. A code is accepted one step either side of now, for clock drift.

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;

const STEP: i64 = 30;
const DIGITS: u32 = 6;
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

#[derive(Clone)]
pub struct Totp {
    secret: Vec<u8>,
}

impl std::fmt::Debug for Totp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Totp(<redacted>)")
    }
}

impl Totp {
    /// A new random 160-bit secret.
    pub fn generate() -> Self {
        let mut secret = vec![0u8; 20];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        Self { secret }
    }

    /// From its base32 form (as shown to the user); `None` if malformed.
    pub fn from_base32(text: &str) -> Option<Self> {
        let mut bits: u64 = 0;
        let mut count = 0;
        let mut secret = Vec::new();
        for c in text.trim_end_matches('=').bytes() {
            let value = BASE32.iter().position(|b| *b == c.to_ascii_uppercase())?;
            bits = (bits << 5) | value as u64;
            count += 5;
            if count >= 8 {
                count -= 8;
                secret.push((bits >> count) as u8);
            }
        }
        (!secret.is_empty()).then_some(Self { secret })
    }

    pub fn to_base32(&self) -> String {
        let mut out = String::new();
        let (mut bits, mut count) = (0u64, 0);
        for byte in &self.secret {
            bits = (bits << 8) | u64::from(*byte);
            count += 8;
            while count >= 5 {
                count -= 5;
                out.push(BASE32[((bits >> count) & 31) as usize] as char);
            }
        }
        if count > 0 {
            out.push(BASE32[((bits << (5 - count)) & 31) as usize] as char);
        }
        out
    }

    /// The `otpauth://` URI authenticator apps scan.
    pub fn uri(&self, issuer: &str, account: &str) -> String {
        let enc = |s: &str| {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        };
        format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP}",
            enc(issuer),
            enc(account),
            self.to_base32(),
            enc(issuer)
        )
    }

    /// The code for the step containing `at`.
    pub fn code_at(&self, at: DateTime<Utc>) -> String {
        self.code_for_step(at.timestamp().div_euclid(STEP))
    }

    fn code_for_step(&self, step: i64) -> String {
        let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(&step.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        let offset = usize::from(digest[19] & 0x0f);
        let binary = u32::from_be_bytes([
            digest[offset] & 0x7f,
            digest[offset + 1],
            digest[offset + 2],
            digest[offset + 3],
        ]);
        format!("{:06}", binary % 10u32.pow(DIGITS))
    }

    /// Whether `code` is valid at `at` (one step of drift either way).
    pub fn verify(&self, code: &str, at: DateTime<Utc>) -> bool {
        self.matching_step(code, at).is_some()
    }

    /// The time step whose code `code` is, if it is valid at `at` (so the caller can refuse a
    /// code seen before).
    pub fn matching_step(&self, code: &str, at: DateTime<Utc>) -> Option<i64> {
        let code = code.trim();
        let step = at.timestamp().div_euclid(STEP);
        if code.len() != DIGITS as usize {
            return None;
        }
        (step - 1..=step + 1).find(|s| self.code_for_step(*s) == code)
    }

    /// The raw secret, for sealing.
    pub fn to_sealable(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.secret)
    }

    pub fn from_sealable(text: &str) -> Option<Self> {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()
            .filter(|s| !s.is_empty())
            .map(|secret| Self { secret })
    }
}

/// The `OneTimeCodes` port.
#[derive(Debug, Clone, Copy, Default)]
pub struct TotpCodes;

impl domain::credentials::OneTimeCodes for TotpCodes {
    fn new_secret(&self) -> String {
        Totp::generate().to_sealable()
    }

    fn matching_step(&self, secret: &str, code: &str, at: DateTime<Utc>) -> Option<i64> {
        Totp::from_sealable(secret)?.matching_step(code, at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rfc_6238_test_vector() {
        // RFC 6238 appendix B, SHA-1, T = 59 s: 94287082 (8 digits), so 287082 with 6.
        let totp = Totp {
            secret: b"12345678901234567890".to_vec(),
        };
        let at = DateTime::from_timestamp(59, 0).expect("time");
        assert_eq!(totp.code_at(at), "287082");
        assert!(totp.verify("287082", at));
        assert!(!totp.verify("287083", at));
        let later = DateTime::from_timestamp(59 + 90, 0).expect("time");
        assert!(!totp.verify("287082", later), "three steps later");
    }

    #[test]
    fn base32_round_trips() {
        let totp = Totp::generate();
        let back = Totp::from_base32(&totp.to_base32()).expect("parses");
        assert_eq!(back.secret, totp.secret);
        assert!(
            totp.uri("Tenantry", "ada@example.com")
                .starts_with("otpauth://totp/Tenantry:ada%40example.com?secret=")
        );
    }
}
