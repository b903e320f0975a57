//! A tenant's audit ledger (stream `audit_ledger-<tenant id>`, the nil id for the platform):
//! the exports asked for and the digests issued. The digests form a chain of their own: each
//! names the SHA-256 of the one issued before it, and the ledger refuses a digest that does
//! not follow its head, so two exports at once cannot fork it (the loser signs again).

use super::export::ExportFormat;
use crate::aggregate::Aggregate;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Where one export stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ExportStatus {
    Requested,
    Done {
        digest_sha256: String,
        entry_count: u64,
        location: String,
        /// The entries it holds (none for an empty export).
        #[serde(default)]
        first_seq: Option<i64>,
        #[serde(default)]
        last_seq: Option<i64>,
    },
    Failed {
        reason: String,
    },
}

/// One export, as the ledger remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRecord {
    pub format: ExportFormat,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub requested_at: DateTime<Utc>,
    pub status: ExportStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditLedger {
    /// The SHA-256 of the latest digest issued (the digest chain's head).
    pub head: Option<String>,
    pub exports: BTreeMap<Uuid, ExportRecord>,
    /// How many days entries are kept in the read model (`None`: for ever).
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// Entries numbered up to this were archived and cut from the read model.
    #[serde(default)]
    pub archived_up_to: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LedgerCommand {
    /// Asks for an export to be made (the `audit_exports` reactor makes it).
    RequestExport {
        export_id: Uuid,
        format: ExportFormat,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    },
    /// Records a digest signed over `previous` (the head the exporter read).
    IssueDigest {
        export_id: Uuid,
        format: ExportFormat,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        previous: Option<String>,
        digest_sha256: String,
        first_seq: Option<i64>,
        last_seq: Option<i64>,
        entry_count: u64,
        location: String,
        at: DateTime<Utc>,
    },
    FailExport {
        export_id: Uuid,
        reason: String,
        at: DateTime<Utc>,
    },
    /// Records a request refused for a reason that matters to security (FORBIDDEN,
    /// NOT_FOUND on another tenant, RATE_LIMITED, a failed log-in): the entry's outcome is
    /// `refused`.
    RecordRefusal {
        /// The API's error code.
        code: String,
        /// The field or endpoint refused (`renameTenant`, `logIn`, ...).
        operation: String,
        at: DateTime<Utc>,
    },
    /// Keeps entries `days` days (`None`: for ever), at most `max` (the plan's retention).
    SetRetention {
        days: Option<u32>,
        max: Option<u32>,
        at: DateTime<Utc>,
    },
    /// Records that the entries up to `up_to_seq` were archived (their export's digest is
    /// `digest_sha256`, issued in this ledger) and are cut from the read model.
    ArchiveEntries {
        up_to_seq: i64,
        digest_sha256: String,
        location: String,
        at: DateTime<Utc>,
    },
    /// Records that someone read the trail (each read is itself in the trail).
    RecordRead {
        /// What was read (`auditLog`, `platformAuditLog`).
        what: String,
        /// The filter used, as given.
        filter: String,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LedgerEvent {
    ExportRequested {
        export_id: Uuid,
        format: ExportFormat,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    },
    DigestIssued {
        export_id: Uuid,
        format: ExportFormat,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        previous: Option<String>,
        digest_sha256: String,
        first_seq: Option<i64>,
        last_seq: Option<i64>,
        entry_count: u64,
        location: String,
        at: DateTime<Utc>,
    },
    ExportFailed {
        export_id: Uuid,
        reason: String,
        at: DateTime<Utc>,
    },
    LogRead {
        what: String,
        filter: String,
        at: DateTime<Utc>,
    },
    RequestRefused {
        code: String,
        operation: String,
        at: DateTime<Utc>,
    },
    RetentionSet {
        days: Option<u32>,
        at: DateTime<Utc>,
    },
    EntriesArchived {
        up_to_seq: i64,
        digest_sha256: String,
        location: String,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("another digest was issued meanwhile: sign again over the new head")]
    DigestChainMoved,
    #[error("no such export")]
    UnknownExport,
    #[error("the export has ended already")]
    ExportEnded,
    #[error("`from` must be before `to`")]
    EmptyRange,
    #[error("the plan keeps audit entries at most {max} days")]
    RetentionBeyondPlan { max: u32 },
    #[error("keep entries at least one day")]
    RetentionTooShort,
    #[error("the archive's digest is not one this ledger issued for exactly the entries cut")]
    UnknownDigest,
    #[error("an export of this trail is already running")]
    ExportRunning,
}

impl Aggregate for AuditLedger {
    const CATEGORY: &'static str = "audit_ledger";
    type Command = LedgerCommand;
    type Event = LedgerEvent;
    type Error = LedgerError;

    fn decide(&self, command: &LedgerCommand) -> Result<Vec<LedgerEvent>, LedgerError> {
        Ok(match command {
            LedgerCommand::RequestExport {
                export_id,
                format,
                from,
                to,
                at,
                ..
            } => {
                if self.exports.contains_key(export_id) {
                    return Ok(vec![]);
                }
                // One at a time per trail: exports are heavy, and a queue of them is a way to
                // fill a disk.
                if self
                    .exports
                    .values()
                    .any(|r| r.status == ExportStatus::Requested)
                {
                    return Err(LedgerError::ExportRunning);
                }
                if let (Some(from), Some(to)) = (from, to)
                    && from >= to
                {
                    return Err(LedgerError::EmptyRange);
                }
                vec![LedgerEvent::ExportRequested {
                    export_id: *export_id,
                    format: *format,
                    from: *from,
                    to: *to,
                    at: *at,
                }]
            }
            LedgerCommand::IssueDigest {
                export_id,
                format,
                from,
                to,
                previous,
                digest_sha256,
                first_seq,
                last_seq,
                entry_count,
                location,
                at,
            } => {
                if let Some(record) = self.exports.get(export_id) {
                    match &record.status {
                        ExportStatus::Requested => {}
                        ExportStatus::Done { .. } => return Ok(vec![]),
                        ExportStatus::Failed { .. } => return Err(LedgerError::ExportEnded),
                    }
                }
                if *previous != self.head {
                    return Err(LedgerError::DigestChainMoved);
                }
                vec![LedgerEvent::DigestIssued {
                    export_id: *export_id,
                    format: *format,
                    from: *from,
                    to: *to,
                    previous: previous.clone(),
                    digest_sha256: digest_sha256.clone(),
                    first_seq: *first_seq,
                    last_seq: *last_seq,
                    entry_count: *entry_count,
                    location: location.clone(),
                    at: *at,
                }]
            }
            LedgerCommand::FailExport {
                export_id,
                reason,
                at,
            } => match self.exports.get(export_id).map(|r| &r.status) {
                None => return Err(LedgerError::UnknownExport),
                Some(ExportStatus::Requested) => vec![LedgerEvent::ExportFailed {
                    export_id: *export_id,
                    reason: reason.clone(),
                    at: *at,
                }],
                Some(_) => vec![],
            },
            LedgerCommand::RecordRefusal {
                code,
                operation,
                at,
            } => vec![LedgerEvent::RequestRefused {
                code: code.chars().take(64).collect(),
                operation: operation.chars().take(64).collect(),
                at: *at,
            }],
            LedgerCommand::SetRetention { days, max, at } => {
                if *days == Some(0) {
                    return Err(LedgerError::RetentionTooShort);
                }
                if let Some(max) = max
                    && days.is_none_or(|d| d > *max)
                {
                    return Err(LedgerError::RetentionBeyondPlan { max: *max });
                }
                if *days == self.retention_days {
                    return Ok(vec![]);
                }
                vec![LedgerEvent::RetentionSet {
                    days: *days,
                    at: *at,
                }]
            }
            LedgerCommand::ArchiveEntries {
                up_to_seq,
                digest_sha256,
                location,
                at,
            } => {
                if *up_to_seq <= self.archived_up_to {
                    return Ok(vec![]);
                }
                // The digest must be this ledger's, for exactly the entries after the last cut
                // up to the new one.
                let issued = self.exports.values().any(|r| {
                    matches!(&r.status, ExportStatus::Done { digest_sha256: d, first_seq: Some(first), last_seq: Some(last), .. }
                        if d == digest_sha256 && *first <= self.archived_up_to + 1 && *last == *up_to_seq)
                });
                if !issued {
                    return Err(LedgerError::UnknownDigest);
                }
                vec![LedgerEvent::EntriesArchived {
                    up_to_seq: *up_to_seq,
                    digest_sha256: digest_sha256.clone(),
                    location: location.clone(),
                    at: *at,
                }]
            }
            LedgerCommand::RecordRead { what, filter, at } => vec![LedgerEvent::LogRead {
                what: what.chars().take(64).collect(),
                filter: filter.chars().take(1_000).collect(),
                at: *at,
            }],
        })
    }

    fn evolve(&mut self, event: &LedgerEvent) {
        match event {
            LedgerEvent::ExportRequested {
                export_id,
                format,
                from,
                to,
                at,
            } => {
                self.exports.insert(
                    *export_id,
                    ExportRecord {
                        format: *format,
                        from: *from,
                        to: *to,
                        requested_at: *at,
                        status: ExportStatus::Requested,
                    },
                );
            }
            LedgerEvent::DigestIssued {
                export_id,
                format,
                from,
                to,
                digest_sha256,
                first_seq,
                last_seq,
                entry_count,
                location,
                at,
                ..
            } => {
                self.head = Some(digest_sha256.clone());
                let record = self.exports.entry(*export_id).or_insert(ExportRecord {
                    format: *format,
                    from: *from,
                    to: *to,
                    requested_at: *at,
                    status: ExportStatus::Requested,
                });
                record.status = ExportStatus::Done {
                    digest_sha256: digest_sha256.clone(),
                    entry_count: *entry_count,
                    location: location.clone(),
                    first_seq: *first_seq,
                    last_seq: *last_seq,
                };
            }
            LedgerEvent::LogRead { .. } | LedgerEvent::RequestRefused { .. } => {}
            LedgerEvent::RetentionSet { days, .. } => self.retention_days = *days,
            LedgerEvent::EntriesArchived { up_to_seq, .. } => {
                self.archived_up_to = self.archived_up_to.max(*up_to_seq);
            }
            LedgerEvent::ExportFailed {
                export_id, reason, ..
            } => {
                if let Some(record) = self.exports.get_mut(export_id) {
                    record.status = ExportStatus::Failed {
                        reason: reason.clone(),
                    };
                }
            }
        }
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::testing::aggregate::{at, given};

    fn issue(export: u128, previous: Option<&str>, digest: &str) -> LedgerCommand {
        LedgerCommand::IssueDigest {
            export_id: Uuid::from_u128(export),
            format: ExportFormat::Jsonl,
            from: None,
            to: None,
            previous: previous.map(str::to_owned),
            digest_sha256: digest.into(),
            first_seq: Some(1),
            last_seq: Some(3),
            entry_count: 3,
            location: "file:///tmp/a.jsonl".into(),
            at: at(1),
        }
    }

    #[test]
    fn digests_chain_and_a_stale_head_is_refused() {
        let first = given::<AuditLedger>([])
            .when(&issue(1, None, "aa"))
            .then_accepted();
        assert_eq!(first.state().head.as_deref(), Some("aa"));
        first.when(&issue(1, None, "aa")).then_nothing();
        first
            .when(&issue(2, None, "bb"))
            .then_refused(LedgerError::DigestChainMoved);
        let second = first.when(&issue(2, Some("aa"), "bb")).then_accepted();
        assert_eq!(second.state().head.as_deref(), Some("bb"));
    }

    #[test]
    fn a_requested_export_ends_once() {
        let requested = given::<AuditLedger>([])
            .when(&LedgerCommand::RequestExport {
                export_id: Uuid::from_u128(1),
                format: ExportFormat::Csv,
                from: Some(at(1)),
                to: Some(at(2)),
                at: at(3),
            })
            .then_accepted();
        let failed = requested
            .when(&LedgerCommand::FailExport {
                export_id: Uuid::from_u128(1),
                reason: "disk full".into(),
                at: at(4),
            })
            .then_accepted();
        failed
            .when(&issue(1, None, "aa"))
            .then_refused(LedgerError::ExportEnded);
        given::<AuditLedger>([])
            .when(&LedgerCommand::RequestExport {
                export_id: Uuid::from_u128(1),
                format: ExportFormat::Csv,
                from: Some(at(2)),
                to: Some(at(2)),
                at: at(3),
            })
            .then_refused(LedgerError::EmptyRange);
        let _ = failed.state().exports.get(&Uuid::from_u128(1)).unwrap();
    }
}
