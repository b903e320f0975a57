//! The audit trail's model: an entry of a tenant's hash chain ([`AuditEntry`], made from a
//! recorded event by the `audit` read model), the chain check ([`ChainCheck`]), the export
//! files and their signed digest ([`export`]), and the tenant's ledger of issued digests
//! ([`AuditLedger`], stream `audit_ledger-<tenant id>`; the nil id is the platform's).
//!
//! An entry: the tenant, its number in the tenant's chain (`seq`, from 1), the log position
//! and event id, the time, the actor (kind and id: a user, an API key, a system component, a
//! webhook source, or anonymous), the action (the event type), the target (the stream's
//! category and id), the source IP, the outcome (`ok`: what is in the log happened;
//! `refused`: a request refused for a security reason, recorded as such), the correlation id,
//! and two hashes.
//!
//! **Canonical form.** `hash = hex(SHA-256(prev_hash + "\n" + canonical))`, where `prev_hash`
//! is the previous entry's hash in the same tenant's chain (64 zeros for the first) and
//! `canonical` is the compact JSON array
//! `[tenant_id, seq, position, event_id, at, actor_kind, actor_id, action, target_kind,
//! target_id, source_ip, outcome, correlation_id]` — ids as lowercase hyphenated UUIDs,
//! numbers as JSON integers, `at` as RFC 3339 UTC with microseconds (`...T10:00:00.000000Z`),
//! absent values as `null`, strings JSON-escaped (serde_json's compact form). Everything in it
//! comes from the event, so a rebuild reproduces every hash. Personal data (an actor's
//! e-mail) is never in it: it is shown beside the entry while it can be read, so erasing a
//! person breaks no chain.

pub mod export;
pub mod ledger;

pub use ledger::{AuditLedger, LedgerCommand, LedgerError, LedgerEvent};

use crate::event::{Actor, RecordedEvent};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The `prev_hash` of a chain's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry, as stored and as exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub tenant_id: Uuid,
    pub seq: i64,
    pub position: i64,
    pub event_id: Uuid,
    pub at: DateTime<Utc>,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    pub source_ip: Option<String>,
    pub outcome: String,
    pub correlation_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The outcome of an entry whose event happened.
pub const OK: &str = "ok";
/// The outcome of an entry recording a refused request.
pub const REFUSED: &str = "refused";

impl AuditEntry {
    /// The entry `event` becomes as number `seq` of `tenant`'s chain, after `prev_hash`.
    pub fn of(event: &RecordedEvent, tenant: Uuid, seq: i64, prev_hash: &str) -> Self {
        let (actor_kind, actor_id) = actor_of(&event.metadata.actor);
        let category = event.stream.category().to_owned();
        let target_id = event
            .stream
            .as_str()
            .strip_prefix(&category)
            .and_then(|rest| rest.strip_prefix('-'))
            .unwrap_or(event.stream.as_str())
            .to_owned();
        let mut entry = Self {
            tenant_id: tenant,
            seq,
            position: i64::try_from(event.position.0).unwrap_or(i64::MAX),
            event_id: event.event_id.as_uuid(),
            at: event.recorded_at,
            actor_kind: actor_kind.to_owned(),
            actor_id,
            action: event.event_type.clone(),
            target_kind: category,
            target_id,
            source_ip: event.metadata.source_ip.clone(),
            outcome: outcome_of(event).to_owned(),
            correlation_id: event.metadata.correlation_id.map(|c| c.to_string()),
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        entry.hash = entry.computed_hash();
        entry
    }

    /// The canonical encoding (see the module's documentation).
    pub fn canonical(&self) -> String {
        let mut out = Vec::with_capacity(256);
        self.write_canonical(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends the canonical encoding to `out`.
    pub fn write_canonical(&self, out: &mut Vec<u8>) {
        fn text(out: &mut Vec<u8>, s: &str) {
            // Writing JSON into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, s);
        }
        fn opt(out: &mut Vec<u8>, s: Option<&str>) {
            match s {
                Some(s) => text(out, s),
                None => out.extend_from_slice(b"null"),
            }
        }
        let mut uuid = Uuid::encode_buffer();
        out.extend_from_slice(b"[\"");
        out.extend_from_slice(
            self.tenant_id
                .hyphenated()
                .encode_lower(&mut uuid)
                .as_bytes(),
        );
        out.extend_from_slice(b"\",");
        out.extend_from_slice(itoa(self.seq).as_bytes());
        out.push(b',');
        out.extend_from_slice(itoa(self.position).as_bytes());
        out.extend_from_slice(b",\"");
        out.extend_from_slice(
            self.event_id
                .hyphenated()
                .encode_lower(&mut uuid)
                .as_bytes(),
        );
        out.extend_from_slice(b"\",\"");
        out.extend_from_slice(format_at(self.at).as_bytes());
        out.extend_from_slice(b"\",");
        text(out, &self.actor_kind);
        out.push(b',');
        opt(out, self.actor_id.as_deref());
        out.push(b',');
        text(out, &self.action);
        out.push(b',');
        text(out, &self.target_kind);
        out.push(b',');
        text(out, &self.target_id);
        out.push(b',');
        opt(out, self.source_ip.as_deref());
        out.push(b',');
        text(out, &self.outcome);
        out.push(b',');
        opt(out, self.correlation_id.as_deref());
        out.push(b']');
    }

    /// What `hash` must be, given `prev_hash` and the fields.
    pub fn computed_hash(&self) -> String {
        let mut scratch = Vec::with_capacity(256);
        self.hash_with(&mut scratch)
    }

    /// [`Self::computed_hash`] with a buffer the caller reuses.
    pub fn hash_with(&self, scratch: &mut Vec<u8>) -> String {
        scratch.clear();
        self.write_canonical(scratch);
        let digest = Sha256::new()
            .chain_update(self.prev_hash.as_bytes())
            .chain_update(b"\n")
            .chain_update(&scratch[..])
            .finalize();
        hex(&digest)
    }
}

fn itoa(n: i64) -> String {
    n.to_string()
}

/// `refused` for a recorded refusal, else `ok` (what is in the log happened). Only the
/// ledger's events are decoded to tell.
fn outcome_of(event: &RecordedEvent) -> &'static str {
    use crate::aggregate::{Aggregate, decode_event};
    if event.stream.category() == AuditLedger::CATEGORY
        && matches!(
            decode_event::<AuditLedger>(
                &event.event_type,
                event.schema_version,
                event.payload.clone()
            ),
            Ok(LedgerEvent::RequestRefused { .. })
        )
    {
        REFUSED
    } else {
        OK
    }
}

/// `at` as the canonical form writes it.
pub fn format_at(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An actor as an entry shows it: its kind and id.
pub fn actor_of(actor: &Actor) -> (&'static str, Option<String>) {
    match actor {
        Actor::System { name } => ("system", Some(name.clone())),
        Actor::User { id } => ("user", Some(id.to_string())),
        Actor::ApiKey { id } => ("api_key", Some(id.to_string())),
        Actor::Webhook { source } => ("webhook", Some(source.clone())),
        Actor::Anonymous => ("anonymous", None),
    }
}

/// Checks a chain (or a stretch of one) entry by entry, in order: each entry's `seq` follows
/// the previous one's, its `prev_hash` is the previous entry's hash, and its hash matches its
/// contents. The first failure is kept.
#[derive(Debug, Clone)]
pub struct ChainCheck {
    next_seq: i64,
    prev: String,
    scratch: Vec<u8>,
    checked: u64,
}

/// Where and why a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The `seq` the bad entry carries.
    pub seq: i64,
    pub reason: &'static str,
}

impl ChainCheck {
    /// A check of a chain from its first entry.
    pub fn from_start() -> Self {
        Self::after(0, GENESIS)
    }

    /// A check of a stretch whose first entry is number `seq + 1`, after an entry hashed
    /// `prev_hash`.
    pub fn after(seq: i64, prev_hash: &str) -> Self {
        Self {
            next_seq: seq + 1,
            prev: prev_hash.to_owned(),
            scratch: Vec::with_capacity(256),
            checked: 0,
        }
    }

    /// Checks the next entry.
    pub fn push(&mut self, entry: &AuditEntry) -> Result<(), ChainBreak> {
        let fail = |reason| {
            Err(ChainBreak {
                seq: entry.seq,
                reason,
            })
        };
        if entry.seq != self.next_seq {
            return fail("out of sequence (an entry is missing, added or moved)");
        }
        if entry.prev_hash != self.prev {
            return fail("its prev_hash is not the previous entry's hash");
        }
        if entry.hash_with(&mut self.scratch) != entry.hash {
            return fail("its hash does not match its contents");
        }
        self.next_seq += 1;
        self.prev.clone_from(&entry.hash);
        self.checked += 1;
        Ok(())
    }

    /// The hash of the last entry checked (the chain's head so far).
    pub fn head(&self) -> &str {
        &self.prev
    }

    pub fn checked(&self) -> u64 {
        self.checked
    }
}

/// Where the first entry of `entries` (one tenant's chain from its start, in order) breaks
/// the chain. `None` when the chain is intact.
pub fn first_break(entries: &[AuditEntry]) -> Option<(i64, &'static str)> {
    let mut check = ChainCheck::from_start();
    entries
        .iter()
        .find_map(|e| check.push(e).err())
        .map(|b| (b.seq, b.reason))
}

/// Why the entries could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit entries: {0}")]
pub struct EntriesError(pub String);

/// A tenant's audit chain as stored (the `audit` read model implements it).
#[async_trait]
pub trait AuditEntries: Send + Sync + std::fmt::Debug + 'static {
    /// The numbers of the first and last entries of `tenant`'s chain recorded in
    /// `[from, to)` (all of it without bounds), or `None` when there are none.
    async fn span(
        &self,
        tenant: Uuid,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Option<(i64, i64)>, EntriesError>;
    /// Entries numbered `first..=last` in order, at most `limit`.
    async fn page(
        &self,
        tenant: Uuid,
        first: i64,
        last: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, EntriesError>;
    /// The hash of entry `seq` ([`GENESIS`] for 0), when the read model still holds it.
    async fn hash_of(&self, tenant: Uuid, seq: i64) -> Result<Option<String>, EntriesError>;
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn entry(seq: i64, prev: &str) -> AuditEntry {
        let mut e = AuditEntry {
            tenant_id: Uuid::from_u128(7),
            seq,
            position: seq * 10,
            event_id: Uuid::from_u128(seq as u128),
            at: DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456Z")
                .unwrap()
                .with_timezone(&Utc),
            actor_kind: "user".into(),
            actor_id: Some("u\"1".into()),
            action: "TenantRenamed".into(),
            target_kind: "tenant".into(),
            target_id: "x".into(),
            source_ip: None,
            outcome: OK.into(),
            correlation_id: None,
            prev_hash: prev.into(),
            hash: String::new(),
        };
        e.hash = e.computed_hash();
        e
    }

    #[test]
    fn the_canonical_form_is_the_documented_json_array() {
        let e = entry(1, GENESIS);
        let expected = serde_json::json!([
            "00000000-0000-0000-0000-000000000007",
            1,
            10,
            "00000000-0000-0000-0000-000000000001",
            "2026-01-02T03:04:05.123456Z",
            "user",
            "u\"1",
            "TenantRenamed",
            "tenant",
            "x",
            null,
            "ok",
            null
        ])
        .to_string();
        assert_eq!(e.canonical(), expected);
        let digest = Sha256::digest(format!("{GENESIS}\n{expected}").as_bytes());
        assert_eq!(e.hash, hex(&digest));
    }

    #[test]
    fn the_check_names_the_first_bad_entry() {
        let a = entry(1, GENESIS);
        let b = entry(2, &a.hash);
        let c = entry(3, &b.hash);
        assert_eq!(first_break(&[a.clone(), b.clone(), c.clone()]), None);
        let mut changed = b.clone();
        changed.action = "TenantClosed".into();
        assert_eq!(first_break(&[a.clone(), changed, c.clone()]).unwrap().0, 2);
        assert_eq!(first_break(&[a.clone(), c.clone()]).unwrap().0, 3);
        assert_eq!(first_break(&[b.clone(), a.clone()]).unwrap().0, 2);
        let mut check = ChainCheck::after(1, &a.hash);
        check.push(&b).unwrap();
        check.push(&c).unwrap();
        assert_eq!(check.head(), c.hash);
    }
}
