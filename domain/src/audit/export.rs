//! Export files of an audit chain and their digest.
//!
//! **Files.** `jsonl`: one JSON object per line with the keys of [`COLUMNS`] in that order.
//! `csv`: RFC 4180, a header line of [`COLUMNS`], then one record per entry; an empty field
//! is `null` (no nullable field is ever the empty string). Numbers are decimal, `at` is
//! written as in the canonical form. `actor_email` is not part of the chain: it shows who the
//! actor was while that can be read, `"erased"` once the person was forgotten, and is empty
//! for actors that are not people.
//!
//! **Digest** (`<file>.digest.json`): the tenant, the range asked for, the first and last
//! `seq` and log position, the entry count, the SHA-256 of the file's bytes, the chain's hash
//! before the first entry (`chain_prev`) and after the last (`chain_head`), the SHA-256 of the
//! previous digest issued for the tenant, the time, the signing key and an Ed25519
//! signature. The signature covers [`Digest::signed_bytes`]: the digest's compact JSON without
//! `signature`, keys in the order of the struct below.

use super::{AuditEntry, ChainBreak, ChainCheck, format_at, hex};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

impl ExportFormat {
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jsonl => "jsonl",
            Self::Csv => "csv",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "jsonl" => Some(Self::Jsonl),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }
}

/// The fields of an exported entry, in order.
pub const COLUMNS: [&str; 16] = [
    "tenant_id",
    "seq",
    "position",
    "event_id",
    "at",
    "actor_kind",
    "actor_id",
    "actor_email",
    "action",
    "target_kind",
    "target_id",
    "source_ip",
    "outcome",
    "correlation_id",
    "prev_hash",
    "hash",
];

/// What an erased person's e-mail shows as.
pub const ERASED: &str = "erased";

/// The file's first bytes (the CSV header), if the format has any.
pub fn header(format: ExportFormat) -> Vec<u8> {
    match format {
        ExportFormat::Jsonl => Vec::new(),
        ExportFormat::Csv => format!("{}\r\n", COLUMNS.join(",")).into_bytes(),
    }
}

fn fields(entry: &AuditEntry, email: Option<&str>) -> [Option<String>; 16] {
    [
        Some(entry.tenant_id.to_string()),
        Some(entry.seq.to_string()),
        Some(entry.position.to_string()),
        Some(entry.event_id.to_string()),
        Some(format_at(entry.at)),
        Some(entry.actor_kind.clone()),
        entry.actor_id.clone(),
        email.map(str::to_owned),
        Some(entry.action.clone()),
        Some(entry.target_kind.clone()),
        Some(entry.target_id.clone()),
        entry.source_ip.clone(),
        Some(entry.outcome.clone()),
        entry.correlation_id.clone(),
        Some(entry.prev_hash.clone()),
        Some(entry.hash.clone()),
    ]
}

/// Appends `entry` (and the actor's e-mail as shown) to `out` as one line of `format`.
pub fn write_entry(
    format: ExportFormat,
    entry: &AuditEntry,
    email: Option<&str>,
    out: &mut Vec<u8>,
) {
    match format {
        ExportFormat::Jsonl => {
            let mut map = serde_json::Map::new();
            for (name, value) in COLUMNS.iter().zip(fields(entry, email)) {
                let value = match (*name, value) {
                    (_, None) => serde_json::Value::Null,
                    ("seq", _) => entry.seq.into(),
                    ("position", _) => entry.position.into(),
                    (_, Some(text)) => text.into(),
                };
                map.insert((*name).to_owned(), value);
            }
            // Keys in COLUMNS order: written by hand, not through the map's own order.
            out.push(b'{');
            for (i, name) in COLUMNS.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let _ = serde_json::to_writer(&mut *out, name);
                out.push(b':');
                let _ = serde_json::to_writer(&mut *out, &map[*name]);
            }
            out.extend_from_slice(b"}\n");
        }
        ExportFormat::Csv => {
            for (i, value) in fields(entry, email).iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if let Some(value) = value {
                    if value.contains([',', '"', '\r', '\n']) || value.is_empty() {
                        out.push(b'"');
                        out.extend_from_slice(value.replace('"', "\"\"").as_bytes());
                        out.push(b'"');
                    } else {
                        out.extend_from_slice(value.as_bytes());
                    }
                }
            }
            out.extend_from_slice(b"\r\n");
        }
    }
}

#[derive(Deserialize)]
struct JsonLine {
    tenant_id: Uuid,
    seq: i64,
    position: i64,
    event_id: Uuid,
    at: DateTime<Utc>,
    actor_kind: String,
    actor_id: Option<String>,
    actor_email: Option<String>,
    action: String,
    target_kind: String,
    target_id: String,
    source_ip: Option<String>,
    outcome: String,
    correlation_id: Option<String>,
    prev_hash: String,
    hash: String,
}

/// Splits one CSV record (without its line end) into fields; `None` marks an empty field.
fn csv_fields(line: &str) -> Result<Vec<Option<String>>, String> {
    let mut fields = Vec::with_capacity(COLUMNS.len());
    let mut chars = line.chars().peekable();
    loop {
        let field = if chars.peek() == Some(&'"') {
            chars.next();
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        value.push('"');
                    }
                    Some('"') => break,
                    Some(c) => value.push(c),
                    None => return Err("an unterminated quoted field".into()),
                }
            }
            Some(value)
        } else {
            let mut value = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '"' {
                    return Err("a quote inside an unquoted field".into());
                }
                value.push(c);
                chars.next();
            }
            (!value.is_empty()).then_some(value)
        };
        fields.push(field);
        match chars.next() {
            None => return Ok(fields),
            Some(',') => {}
            Some(c) => return Err(format!("{c:?} after a quoted field")),
        }
    }
}

/// Reads one line of `format` (without its line end) back into an entry and the e-mail shown.
pub fn parse_entry(
    format: ExportFormat,
    line: &str,
) -> Result<(AuditEntry, Option<String>), String> {
    match format {
        ExportFormat::Jsonl => {
            let l: JsonLine = serde_json::from_str(line).map_err(|e| e.to_string())?;
            Ok((
                AuditEntry {
                    tenant_id: l.tenant_id,
                    seq: l.seq,
                    position: l.position,
                    event_id: l.event_id,
                    at: l.at,
                    actor_kind: l.actor_kind,
                    actor_id: l.actor_id,
                    action: l.action,
                    target_kind: l.target_kind,
                    target_id: l.target_id,
                    source_ip: l.source_ip,
                    outcome: l.outcome,
                    correlation_id: l.correlation_id,
                    prev_hash: l.prev_hash,
                    hash: l.hash,
                },
                l.actor_email,
            ))
        }
        ExportFormat::Csv => {
            let f = csv_fields(line)?;
            if f.len() != COLUMNS.len() {
                return Err(format!("{} fields, not {}", f.len(), COLUMNS.len()));
            }
            let mut f = f.into_iter();
            let mut next = |name: &str| -> Result<Option<String>, String> {
                f.next().ok_or_else(|| format!("no {name}"))
            };
            let mut required = |name: &str| -> Result<String, String> {
                next(name)?.ok_or_else(|| format!("{name} is empty"))
            };
            let uuid = |text: String, name: &str| {
                Uuid::parse_str(&text).map_err(|e| format!("{name}: {e}"))
            };
            let number =
                |text: String, name: &str| text.parse::<i64>().map_err(|e| format!("{name}: {e}"));
            let tenant_id = uuid(required("tenant_id")?, "tenant_id")?;
            let seq = number(required("seq")?, "seq")?;
            let position = number(required("position")?, "position")?;
            let event_id = uuid(required("event_id")?, "event_id")?;
            let at = DateTime::parse_from_rfc3339(&required("at")?)
                .map_err(|e| format!("at: {e}"))?
                .with_timezone(&Utc);
            let actor_kind = required("actor_kind")?;
            let mut optional = |name: &str| next(name);
            let actor_id = optional("actor_id")?;
            let actor_email = optional("actor_email")?;
            let mut required = |name: &str| -> Result<String, String> {
                optional(name)?.ok_or_else(|| format!("{name} is empty"))
            };
            let action = required("action")?;
            let target_kind = required("target_kind")?;
            let target_id = required("target_id")?;
            let mut optional = |name: &str| next(name);
            let source_ip = optional("source_ip")?;
            let outcome = optional("outcome")?.ok_or("outcome is empty")?;
            let correlation_id = optional("correlation_id")?;
            let prev_hash = optional("prev_hash")?.ok_or("prev_hash is empty")?;
            let hash = optional("hash")?.ok_or("hash is empty")?;
            Ok((
                AuditEntry {
                    tenant_id,
                    seq,
                    position,
                    event_id,
                    at,
                    actor_kind,
                    actor_id,
                    action,
                    target_kind,
                    target_id,
                    source_ip,
                    outcome,
                    correlation_id,
                    prev_hash,
                    hash,
                },
                actor_email,
            ))
        }
    }
}

/// The digest of one export file (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub version: u32,
    pub tenant_id: Uuid,
    pub format: ExportFormat,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    pub first_position: Option<i64>,
    pub last_position: Option<i64>,
    pub entry_count: u64,
    pub file_sha256: String,
    pub chain_prev: String,
    pub chain_head: String,
    pub previous_digest_sha256: Option<String>,
    pub exported_at: DateTime<Utc>,
    /// The Ed25519 public key that signed it (base64).
    pub public_key: String,
    /// The Ed25519 signature (base64) over [`Digest::signed_bytes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl Digest {
    pub const VERSION: u32 = 1;

    /// What the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let unsigned = Self {
            signature: None,
            ..self.clone()
        };
        serde_json::to_vec(&unsigned).unwrap_or_default()
    }

    /// The digest file's bytes (what the next digest's `previous_digest_sha256` hashes).
    pub fn to_file(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    pub fn sha256_of_file(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }
}

/// What a verification found wrong, the first bad entry first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// An entry that breaks the chain or cannot be read (its line in the file, from 1).
    Entry {
        line: u64,
        seq: Option<i64>,
        reason: String,
    },
    /// The file as a whole disagrees with its digest.
    File(String),
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Entry {
                line,
                seq: Some(seq),
                reason,
            } => write!(f, "entry seq {seq} (line {line}): {reason}"),
            Self::Entry {
                line,
                seq: None,
                reason,
            } => write!(f, "line {line}: {reason}"),
            Self::File(reason) => f.write_str(reason),
        }
    }
}

/// Checks an export file against its digest as its bytes arrive ([`FileCheck::feed`]):
/// the file's hash, each entry's place in the chain (starting after `chain_prev`), and at
/// the end the count, the first and last numbers and positions and the chain head.
#[derive(Debug)]
pub struct FileCheck {
    format: ExportFormat,
    expected: Digest,
    sha: Sha256,
    pending: Vec<u8>,
    header_left: bool,
    line: u64,
    chain: ChainCheck,
    count: u64,
    first: Option<(i64, i64)>,
    last: Option<(i64, i64)>,
    first_bad: Option<Finding>,
    /// Inside a quoted CSV field.
    in_quotes: bool,
    /// Skipping the rest of an over-long record.
    overflow: bool,
}

/// The longest record `FileCheck` reads (entries are a few hundred bytes).
pub const MAX_RECORD: usize = 1 << 20;

impl FileCheck {
    pub fn new(digest: &Digest) -> Self {
        Self {
            format: digest.format,
            expected: digest.clone(),
            sha: Sha256::new(),
            pending: Vec::with_capacity(1024),
            header_left: digest.format == ExportFormat::Csv,
            line: 0,
            chain: ChainCheck::after(digest.first_seq.map_or(0, |s| s - 1), &digest.chain_prev),
            count: 0,
            first: None,
            last: None,
            first_bad: None,
            in_quotes: false,
            overflow: false,
        }
    }

    /// Takes the file's next bytes. A record longer than [`MAX_RECORD`] is a finding and is
    /// not buffered further: a hostile file costs bounded memory.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        let mut start = 0;
        for (i, b) in bytes.iter().enumerate() {
            // A CSV record may hold line breaks inside quotes.
            if self.format == ExportFormat::Csv && *b == b'"' {
                self.in_quotes = !self.in_quotes;
            }
            if *b == b'\n' && !self.in_quotes {
                let piece = &bytes[start..=i];
                start = i + 1;
                if self.overflow {
                    // The end of an over-long record: counted, not read.
                    self.line += 1;
                    self.overflow = false;
                } else if self.pending.is_empty() {
                    self.take_line(piece);
                } else {
                    self.pending.extend_from_slice(piece);
                    let line = std::mem::take(&mut self.pending);
                    self.take_line(&line);
                    self.pending = line;
                    self.pending.clear();
                }
            }
        }
        let rest = &bytes[start..];
        if self.overflow {
            return;
        }
        if self.pending.len() + rest.len() > MAX_RECORD {
            if self.first_bad.is_none() {
                self.first_bad = Some(Finding::Entry {
                    line: self.line + 1,
                    seq: None,
                    reason: format!("a record longer than {MAX_RECORD} bytes"),
                });
            }
            self.overflow = true;
            self.pending.clear();
        } else {
            self.pending.extend_from_slice(rest);
        }
    }

    fn take_line(&mut self, raw: &[u8]) {
        self.line += 1;
        if self.first_bad.is_some() {
            return;
        }
        let text = raw
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(raw);
        if self.header_left {
            self.header_left = false;
            if text != COLUMNS.join(",").as_bytes() {
                self.first_bad = Some(Finding::Entry {
                    line: self.line,
                    seq: None,
                    reason: "the CSV header is not the export's".into(),
                });
            }
            return;
        }
        let parsed = std::str::from_utf8(text)
            .map_err(|e| e.to_string())
            .and_then(|t| parse_entry(self.format, t));
        match parsed {
            Err(reason) => {
                self.first_bad = Some(Finding::Entry {
                    line: self.line,
                    seq: None,
                    reason: format!("unreadable: {reason}"),
                });
            }
            Ok((entry, _)) => {
                if entry.tenant_id != self.expected.tenant_id {
                    self.first_bad = Some(Finding::Entry {
                        line: self.line,
                        seq: Some(entry.seq),
                        reason: "another tenant's entry".into(),
                    });
                    return;
                }
                if let Err(ChainBreak { seq, reason }) = self.chain.push(&entry) {
                    self.first_bad = Some(Finding::Entry {
                        line: self.line,
                        seq: Some(seq),
                        reason: reason.into(),
                    });
                    return;
                }
                self.count += 1;
                self.first.get_or_insert((entry.seq, entry.position));
                self.last = Some((entry.seq, entry.position));
            }
        }
    }

    /// Everything found wrong, the first bad entry first; empty when the file is intact.
    pub fn finish(mut self) -> (u64, Vec<Finding>) {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.take_line(&rest);
        }
        let mut findings: Vec<Finding> = self.first_bad.take().into_iter().collect();
        let d = &self.expected;
        let file_sha = hex(&self.sha.finalize_reset());
        if findings.is_empty() {
            if self.count != d.entry_count {
                findings.push(Finding::File(format!(
                    "{} entries, the digest says {}",
                    self.count, d.entry_count
                )));
            }
            if self.first.map(|f| f.0) != d.first_seq || self.last.map(|l| l.0) != d.last_seq {
                findings.push(Finding::File(
                    "the first or last entry is not the digest's".into(),
                ));
            }
            if self.first.map(|f| f.1) != d.first_position
                || self.last.map(|l| l.1) != d.last_position
            {
                findings.push(Finding::File(
                    "the first or last log position is not the digest's".into(),
                ));
            }
            if self.chain.head() != d.chain_head {
                findings.push(Finding::File(
                    "the chain's head is not the digest's (entries are missing at the end)".into(),
                ));
            }
        }
        if file_sha != d.file_sha256 {
            findings.push(Finding::File(format!(
                "the file's SHA-256 is {file_sha}, the digest says {}",
                d.file_sha256
            )));
        }
        (self.count, findings)
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::super::{GENESIS, OK};
    use super::*;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let mut e = AuditEntry {
                    tenant_id: Uuid::from_u128(7),
                    seq,
                    position: seq * 3,
                    event_id: Uuid::from_u128(seq as u128),
                    at: DateTime::from_timestamp(1_700_000_000 + seq, 1_000).unwrap(),
                    actor_kind: "webhook".into(),
                    actor_id: Some(format!("a,\"b\"\nc{seq}")),
                    action: "X".into(),
                    target_kind: "tenant".into(),
                    target_id: "t".into(),
                    source_ip: None,
                    outcome: OK.into(),
                    correlation_id: None,
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = e.computed_hash();
                prev.clone_from(&e.hash);
                e
            })
            .collect()
    }

    fn export(format: ExportFormat, entries: &[AuditEntry]) -> (Vec<u8>, Digest) {
        let mut file = header(format);
        for e in entries {
            write_entry(format, e, Some("a@example.com"), &mut file);
        }
        let digest = Digest {
            version: Digest::VERSION,
            tenant_id: Uuid::from_u128(7),
            format,
            from: None,
            to: None,
            first_seq: entries.first().map(|e| e.seq),
            last_seq: entries.last().map(|e| e.seq),
            first_position: entries.first().map(|e| e.position),
            last_position: entries.last().map(|e| e.position),
            entry_count: entries.len() as u64,
            file_sha256: hex(&Sha256::digest(&file)),
            chain_prev: entries
                .first()
                .map_or(GENESIS.to_owned(), |e| e.prev_hash.clone()),
            chain_head: entries
                .last()
                .map_or(GENESIS.to_owned(), |e| e.hash.clone()),
            previous_digest_sha256: None,
            exported_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            public_key: String::new(),
            signature: None,
        };
        (file, digest)
    }

    fn check(file: &[u8], digest: &Digest, chunk: usize) -> Vec<Finding> {
        let mut check = FileCheck::new(digest);
        for piece in file.chunks(chunk) {
            check.feed(piece);
        }
        check.finish().1
    }

    #[test]
    fn both_formats_read_back_what_was_written_in_any_chunking() {
        for format in [ExportFormat::Jsonl, ExportFormat::Csv] {
            let entries = chain(5);
            let (file, digest) = export(format, &entries);
            for chunk in [1, 7, 64, file.len()] {
                assert_eq!(check(&file, &digest, chunk), vec![], "{format:?} {chunk}");
            }
            let text = String::from_utf8(file).unwrap();
            let line = if format == ExportFormat::Csv {
                // The record of entry 1, whose actor id holds a line break.
                let body = &text[text.find("\r\n").unwrap() + 2..];
                body[..body.find("\r\n00000000").unwrap()].to_owned()
            } else {
                text.lines().next().unwrap().to_owned()
            };
            let (entry, email) = parse_entry(format, &line).unwrap();
            assert_eq!(entry, entries[0]);
            assert_eq!(email.as_deref(), Some("a@example.com"));
        }
    }

    #[test]
    fn an_endless_record_is_a_finding_not_a_memory_sink() {
        let (_, digest) = export(ExportFormat::Csv, &chain(1));
        let mut check = FileCheck::new(&digest);
        check.feed(b"\"");
        for _ in 0..3 {
            check.feed(&vec![b'x'; MAX_RECORD]);
        }
        assert!(check.pending.len() <= MAX_RECORD);
        let (_, findings) = check.finish();
        assert!(
            findings[0].to_string().contains("longer than"),
            "{findings:?}"
        );
    }

    #[test]
    fn a_removed_or_moved_entry_is_named() {
        let entries = chain(4);
        let (_, digest) = export(ExportFormat::Jsonl, &entries);
        let without = [&entries[..1], &entries[2..]].concat();
        let (file, _) = export(ExportFormat::Jsonl, &without);
        let findings = check(&file, &digest, 4096);
        assert_eq!(
            findings[0],
            Finding::Entry {
                line: 2,
                seq: Some(3),
                reason: "out of sequence (an entry is missing, added or moved)".into()
            }
        );
    }
}

/// Why an export could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(pub String);

/// Where an export goes (a file, an S3 prefix). An export is two objects: the entries (at
/// the target's base name) and the digest (the base name + `.digest.json`).
#[async_trait::async_trait]
pub trait ExportTarget: Send + Sync + std::fmt::Debug {
    /// Starts writing the object at the base name + `suffix`.
    async fn open(&self, suffix: &str) -> Result<Box<dyn ExportWriter>, TargetError>;
}

/// One object being written, in order; nothing is visible under its name before `finish`.
#[async_trait::async_trait]
pub trait ExportWriter: Send {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), TargetError>;
    /// Completes the object; its location (`file:///...`, `s3://bucket/key`).
    async fn finish(self: Box<Self>) -> Result<String, TargetError>;
}

/// The platform's digest signing key (the adapter holds the private half).
pub trait DigestSigner: Send + Sync + std::fmt::Debug {
    /// The public key, base64.
    fn public_key(&self) -> String;
    /// An Ed25519 signature of `message`, base64.
    fn sign(&self, message: &[u8]) -> String;
}

/// Where the exports the API asks for go (a directory of the server's, or an S3 prefix).
pub trait ExportTargets: Send + Sync + std::fmt::Debug {
    fn target(
        &self,
        chain: Uuid,
        export_id: Uuid,
        format: ExportFormat,
    ) -> Result<Box<dyn ExportTarget>, TargetError>;
}

/// Where a running export's progress is shown (in memory: it is not history).
pub trait ExportProgress: Send + Sync + std::fmt::Debug {
    fn report(&self, export_id: Uuid, done: u64, total: u64);
}
