//! The audit area's use cases: exporting a tenant's chain with a signed digest (the CLI runs
//! it directly, GraphQL asks for it and the `audit_exports` reactor runs it), and the ledger
//! of the digests issued (see `domain::audit`).

use crate::{CommandContext, CommandError, CommandOutcome, Executor};
use chrono::{DateTime, Utc};
use domain::aggregate::Aggregate;
use domain::audit::export::{
    Digest, DigestSigner, ERASED, ExportFormat, ExportProgress, ExportTarget, ExportTargets,
    TargetError, header, write_entry,
};
use domain::audit::ledger::ExportStatus;
use domain::audit::{
    AuditEntries, AuditLedger, ChainCheck, GENESIS, LedgerCommand, LedgerError, LedgerEvent,
};
use domain::event::{Reads, RecordedEvent};
use domain::ids::{SubjectId, TenantId};
use domain::personal_data::PersonalData;
use domain::reactor::{ReactionError, Reactor, decoded};
use domain::user::User;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// Entries read per page while exporting.
pub const PAGE: i64 = 2_000;
/// Bytes gathered before they are handed to the target.
const CHUNK: usize = 1 << 20;

/// What the export use case needs besides the write path.
#[derive(Debug, Clone, Copy)]
pub struct AuditPorts<'a> {
    pub entries: &'a dyn AuditEntries,
    pub vault: &'a dyn PersonalData,
    pub signer: &'a dyn DigestSigner,
}

/// One export: whose chain (`None`: the platform's), which stretch of time, which format.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRequest {
    pub tenant: Option<TenantId>,
    pub export_id: Uuid,
    pub format: ExportFormat,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl ExportRequest {
    fn chain(&self) -> Uuid {
        self.tenant.map_or_else(Uuid::nil, |t| t.as_uuid())
    }

    fn ctx(&self, ctx: &CommandContext) -> CommandContext {
        for_chain(ctx, self.tenant)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("reading the audit entries: {0}")]
    Entries(String),
    #[error("writing the export: {0}")]
    Target(#[from] TargetError),
    /// The stored chain does not verify: exporting it would hand on an altered trail.
    #[error("the stored audit chain breaks at entry {seq}: {reason}")]
    ChainBroken { seq: i64, reason: &'static str },
    #[error("reading personal data: {0}")]
    PersonalData(String),
}

/// A finished export.
#[derive(Debug, Clone)]
pub struct Exported {
    pub digest: Digest,
    /// The SHA-256 of the digest file (the next digest's `previous_digest_sha256`).
    pub digest_sha256: String,
    pub entries_location: String,
    pub digest_location: String,
    pub outcome: CommandOutcome,
}

/// Asks for an export (GraphQL): the `audit_exports` reactor makes it.
pub async fn request_export(
    exec: &Executor,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    request: &ExportRequest,
) -> Result<CommandOutcome, CommandError<LedgerError>> {
    let command = LedgerCommand::RequestExport {
        export_id: request.export_id,
        format: request.format,
        from: request.from,
        to: request.to,
        at: now,
    };
    on_ledger(exec, ctx, request.tenant, &command).await
}

/// Records a read of `chain`'s trail (`what`: the field read, `filter`: as given).
pub async fn record_read(
    exec: &Executor,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    chain: Option<TenantId>,
    what: &str,
    filter: &str,
) -> Result<CommandOutcome, CommandError<LedgerError>> {
    let command = LedgerCommand::RecordRead {
        what: what.to_owned(),
        filter: filter.to_owned(),
        at: now,
    };
    on_ledger(exec, ctx, chain, &command).await
}

/// Runs `command` on `chain`'s ledger (the platform's when `None`), its events the tenant's.
async fn on_ledger(
    exec: &Executor,
    ctx: &CommandContext,
    chain: Option<TenantId>,
    command: &LedgerCommand,
) -> Result<CommandOutcome, CommandError<LedgerError>> {
    exec.execute::<AuditLedger>(
        chain.map_or_else(Uuid::nil, |t| t.as_uuid()),
        command,
        &for_chain(ctx, chain),
    )
    .await
}

/// `ctx` with its events marked as `chain`'s (the platform's, unmarked, when `None`).
fn for_chain(ctx: &CommandContext, chain: Option<TenantId>) -> CommandContext {
    match chain {
        Some(t) => ctx.clone().for_tenant(t),
        None => ctx.clone(),
    }
}

/// Records a request refused for a security reason in `chain`'s trail (the platform's
/// when `None`).
pub async fn record_refusal(
    exec: &Executor,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    chain: Option<TenantId>,
    code: &str,
    operation: &str,
) -> Result<CommandOutcome, CommandError<LedgerError>> {
    let command = LedgerCommand::RecordRefusal {
        code: code.to_owned(),
        operation: operation.to_owned(),
        at: now,
    };
    on_ledger(exec, ctx, chain, &command).await
}

/// Records that an export failed (the reactor, after its attempts).
pub async fn fail_export(
    exec: &Executor,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    request: &ExportRequest,
    reason: &str,
) -> Result<CommandOutcome, CommandError<LedgerError>> {
    let command = LedgerCommand::FailExport {
        export_id: request.export_id,
        reason: reason.chars().take(500).collect(),
        at: now,
    };
    on_ledger(exec, ctx, request.tenant, &command).await
}

/// The e-mail `user` (with its account's `state`) is shown with, beside audit entries and
/// in access requests: the address while it can be read, `erased` once the person was
/// forgotten; `None` without an account.
pub async fn shown_email(
    vault: &dyn PersonalData,
    user: Uuid,
    state: &User,
) -> Result<Option<String>, domain::personal_data::PersonalDataError> {
    let Some(sealed) = &state.email else {
        return Ok(None);
    };
    Ok(Some(
        vault
            .open(SubjectId::from_uuid(user), sealed)
            .await?
            .unwrap_or_else(|| ERASED.to_owned()),
    ))
}

/// Shows actors' e-mails beside entries: read once per user, `erased` once forgotten.
struct Emails<'a> {
    exec: &'a Executor,
    vault: &'a dyn PersonalData,
    known: HashMap<String, Option<String>>,
}

impl Emails<'_> {
    async fn of(&mut self, kind: &str, id: Option<&str>) -> Result<Option<String>, ExportError> {
        let (Some(id), "user") = (id, kind) else {
            return Ok(None);
        };
        if let Some(known) = self.known.get(id) {
            return Ok(known.clone());
        }
        let shown = match Uuid::parse_str(id) {
            Err(_) => None,
            Ok(user) => {
                let state = self
                    .exec
                    .load::<User>(user)
                    .await
                    .map_err(|e| ExportError::Entries(e.to_string()))?
                    .state;
                shown_email(self.vault, user, &state)
                    .await
                    .map_err(|e| ExportError::PersonalData(e.to_string()))?
            }
        };
        self.known.insert(id.to_owned(), shown.clone());
        Ok(shown)
    }
}

/// Exports `request`'s stretch of the chain to `target` and signs its digest: the entries
/// (checked link by link as they are read: a broken stored chain is refused, not handed
/// on), then the digest, recorded in the tenant's ledger after the previous one.
/// `progress(done, total)` is called after each page.
pub async fn export(
    exec: &Executor,
    ports: AuditPorts<'_>,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    request: &ExportRequest,
    target: &dyn ExportTarget,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<Exported, CommandError<ExportError>> {
    let entries_error =
        |e: domain::audit::EntriesError| CommandError::Rejected(ExportError::Entries(e.0));
    let target_error = |e: TargetError| CommandError::Rejected(ExportError::Target(e));
    let chain = request.chain();
    let span = ports
        .entries
        .span(chain, request.from, request.to)
        .await
        .map_err(entries_error)?;
    let total = span.map_or(0, |(first, last)| {
        u64::try_from(last - first + 1).unwrap_or(0)
    });
    let mut emails = Emails {
        exec,
        vault: ports.vault,
        known: HashMap::new(),
    };
    let mut writer = target.open("").await.map_err(target_error)?;
    let mut sha = Sha256::new();
    let mut buffer = header(request.format);
    let mut check: Option<ChainCheck> = None;
    let mut chain_prev = GENESIS.to_owned();
    let (mut first, mut last) = (None, None);
    let mut count = 0_u64;
    // The stretch must link to what precedes it: the entry before (when the read model still
    // holds it; an archived one is linked through the archive's digest), or the genesis.
    let expected_prev = match span {
        Some((1, _)) => Some(GENESIS.to_owned()),
        Some((first, _)) => ports
            .entries
            .hash_of(chain, first - 1)
            .await
            .map_err(entries_error)?,
        None => None,
    };
    if let Some((from_seq, to_seq)) = span {
        let mut next = from_seq;
        while next <= to_seq {
            let page = ports
                .entries
                .page(chain, next, to_seq, PAGE)
                .await
                .map_err(entries_error)?;
            let Some(last_of_page) = page.last() else {
                break;
            };
            next = last_of_page.seq + 1;
            for entry in &page {
                if check.is_none()
                    && expected_prev
                        .as_deref()
                        .is_some_and(|p| p != entry.prev_hash)
                {
                    return Err(CommandError::Rejected(ExportError::ChainBroken {
                        seq: entry.seq,
                        reason: "its prev_hash is not the previous entry's hash",
                    }));
                }
                let check = check.get_or_insert_with(|| {
                    chain_prev.clone_from(&entry.prev_hash);
                    ChainCheck::after(entry.seq - 1, &entry.prev_hash)
                });
                check.push(entry).map_err(|b| {
                    CommandError::Rejected(ExportError::ChainBroken {
                        seq: b.seq,
                        reason: b.reason,
                    })
                })?;
                let email = emails
                    .of(&entry.actor_kind, entry.actor_id.as_deref())
                    .await
                    .map_err(CommandError::Rejected)?;
                write_entry(request.format, entry, email.as_deref(), &mut buffer);
                first.get_or_insert((entry.seq, entry.position));
                last = Some((entry.seq, entry.position));
                count += 1;
            }
            if buffer.len() >= CHUNK {
                sha.update(&buffer);
                writer.write(&buffer).await.map_err(target_error)?;
                buffer.clear();
            }
            progress(count, total);
        }
    }
    sha.update(&buffer);
    writer.write(&buffer).await.map_err(target_error)?;
    let entries_location = writer.finish().await.map_err(target_error)?;
    let chain_head = check
        .as_ref()
        .map_or_else(|| chain_prev.clone(), |c| c.head().to_owned());
    let file_sha256 = domain::audit::hex(&sha.finalize());

    // Sign over the ledger's head; if another digest was issued meanwhile, sign again.
    let ctx = request.ctx(ctx);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let ledger = exec
            .load::<AuditLedger>(chain)
            .await
            .map_err(|e| CommandError::Rejected(ExportError::Entries(e.to_string())))?
            .state;
        let mut digest = Digest {
            version: Digest::VERSION,
            tenant_id: chain,
            format: request.format,
            from: request.from,
            to: request.to,
            first_seq: first.map(|f| f.0),
            last_seq: last.map(|l| l.0),
            first_position: first.map(|f| f.1),
            last_position: last.map(|l| l.1),
            entry_count: count,
            file_sha256: file_sha256.clone(),
            chain_prev: chain_prev.clone(),
            chain_head: chain_head.clone(),
            previous_digest_sha256: ledger.head.clone(),
            exported_at: now,
            public_key: ports.signer.public_key(),
            signature: None,
        };
        digest.signature = Some(ports.signer.sign(&digest.signed_bytes()));
        let bytes = digest.to_file();
        let digest_sha256 = Digest::sha256_of_file(&bytes);
        let mut writer = target.open(".digest.json").await.map_err(target_error)?;
        writer.write(&bytes).await.map_err(target_error)?;
        let digest_location = writer.finish().await.map_err(target_error)?;
        let command = LedgerCommand::IssueDigest {
            export_id: request.export_id,
            format: request.format,
            from: request.from,
            to: request.to,
            previous: ledger.head.clone(),
            digest_sha256: digest_sha256.clone(),
            first_seq: digest.first_seq,
            last_seq: digest.last_seq,
            entry_count: count,
            location: entries_location.clone(),
            at: now,
        };
        match exec.execute::<AuditLedger>(chain, &command, &ctx).await {
            Ok(outcome) => {
                return Ok(Exported {
                    digest,
                    digest_sha256,
                    entries_location,
                    digest_location,
                    outcome,
                });
            }
            Err(CommandError::Rejected(LedgerError::DigestChainMoved)) if attempts < 5 => {}
            Err(e) => return Err(e.map_rejection(ExportError::Ledger)),
        }
    }
}

/// The name of the reactor that makes requested exports.
pub const AUDIT_EXPORTS: &str = "audit_exports";

/// Makes each export asked for through `request_export`: the entries and the signed
/// digest at the configured target, the digest recorded in the ledger, or the failure
/// recorded when the export cannot be made (a target that refuses, a broken stored chain).
/// A store that cannot be reached fails the reaction instead: the runner tries again.
#[derive(Debug, Clone)]
pub struct AuditExports {
    exec: Executor,
    entries: Arc<dyn AuditEntries>,
    vault: Arc<dyn PersonalData>,
    signer: Arc<dyn DigestSigner>,
    targets: Arc<dyn ExportTargets>,
    progress: Arc<dyn ExportProgress>,
}

impl AuditExports {
    pub fn new(
        exec: Executor,
        entries: Arc<dyn AuditEntries>,
        vault: Arc<dyn PersonalData>,
        signer: Arc<dyn DigestSigner>,
        targets: Arc<dyn ExportTargets>,
        progress: Arc<dyn ExportProgress>,
    ) -> Self {
        Self {
            exec,
            entries,
            vault,
            signer,
            targets,
            progress,
        }
    }

    async fn make(&self, event: &RecordedEvent) -> Result<(), ReactionError> {
        let Some(LedgerEvent::ExportRequested {
            export_id,
            format,
            from,
            to,
            ..
        }) = decoded::<AuditLedger>(event)?
        else {
            return Ok(());
        };
        let chain = event
            .stream
            .as_str()
            .strip_prefix(AuditLedger::CATEGORY)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or_else(|| ReactionError::at(event, "a ledger stream without a tenant id"))?;
        let failed = |e: String| ReactionError::at(event, e);
        let ledger = self
            .exec
            .load::<AuditLedger>(chain)
            .await
            .map_err(|e| failed(e.to_string()))?
            .state;
        if !matches!(
            ledger.exports.get(&export_id).map(|r| &r.status),
            Some(ExportStatus::Requested)
        ) {
            return Ok(()); // made (or given up on) already
        }
        let request = ExportRequest {
            tenant: (!chain.is_nil()).then(|| TenantId::from_uuid(chain)),
            export_id,
            format,
            from,
            to,
        };
        let ctx = CommandContext::caused_by(event, AUDIT_EXPORTS);
        let now = Utc::now();
        let made = match self.targets.target(chain, export_id, format) {
            Err(e) => Err(CommandError::Rejected(ExportError::Target(e))),
            Ok(target) => {
                let progress = |done, total| self.progress.report(export_id, done, total);
                export(
                    &self.exec,
                    AuditPorts {
                        entries: self.entries.as_ref(),
                        vault: self.vault.as_ref(),
                        signer: self.signer.as_ref(),
                    },
                    &ctx,
                    now,
                    &request,
                    target.as_ref(),
                    &progress,
                )
                .await
            }
        };
        match made {
            Ok(_) => Ok(()),
            Err(CommandError::Rejected(e)) => {
                tracing::warn!(export = %export_id, error = %e, "audit export failed");
                fail_export(&self.exec, &ctx, now, &request, &e.to_string())
                    .await
                    .map(|_| ())
                    .map_err(|e| failed(e.to_string()))
            }
            Err(e) => Err(failed(e.to_string())),
        }
    }
}

#[async_trait::async_trait]
impl Reactor for AuditExports {
    fn name(&self) -> &'static str {
        AUDIT_EXPORTS
    }

    fn reads(&self) -> Reads {
        Reads::categories(&[AuditLedger::CATEGORY])
    }

    async fn react(&self, events: &[RecordedEvent]) -> Result<(), ReactionError> {
        for event in events {
            self.make(event).await?;
        }
        Ok(())
    }
}

/// The name of the job that archives entries beyond their tenant's retention.
pub const AUDIT_ARCHIVE: &str = "audit_archive";

/// Sets how many days `tenant`'s audit entries are kept in the read model (`None`: for
/// ever), at most the plan's `RETENTION_DAYS`. Older entries are archived (exported, with a
/// signed digest) and then cut by the `audit_archive` job.
pub async fn set_retention(
    exec: &Executor,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    tenant: TenantId,
    days: Option<u32>,
) -> Result<CommandOutcome, CommandError<LedgerError>> {
    let max =
        crate::billing::effective_limit(exec, tenant, domain::plan::LimitKey::RetentionDays, now)
            .await
            .map_err(crate::LoadError::into_command)?
            .value()
            .map(|m| u32::try_from(m).unwrap_or(u32::MAX));
    exec.execute::<AuditLedger>(
        tenant.as_uuid(),
        &LedgerCommand::SetRetention { days, max, at: now },
        &ctx.clone().for_tenant(tenant),
    )
    .await
}

/// Archives `chain`'s entries recorded before `cutoff`: exports them to `target` with a
/// signed digest (issued in the ledger like any export), then records the cut
/// (`EntriesArchived`), on which the read model removes them. What remains still verifies:
/// its first entry's `prev_hash` is the archive digest's `chain_head`. `None` when nothing
/// is due.
pub async fn archive(
    exec: &Executor,
    ports: AuditPorts<'_>,
    ctx: &CommandContext,
    now: DateTime<Utc>,
    chain: Uuid,
    cutoff: DateTime<Utc>,
    targets: &dyn ExportTargets,
) -> Result<Option<Exported>, CommandError<ExportError>> {
    let due = ports
        .entries
        .span(chain, None, Some(cutoff))
        .await
        .map_err(|e| CommandError::Rejected(ExportError::Entries(e.0)))?;
    if due.is_none() {
        return Ok(None);
    }
    let request = ExportRequest {
        tenant: (!chain.is_nil()).then(|| TenantId::from_uuid(chain)),
        export_id: ctx.new_id("audit-archive"),
        format: ExportFormat::Jsonl,
        from: None,
        to: Some(cutoff),
    };
    let target = targets
        .target(chain, request.export_id, request.format)
        .map_err(|e| CommandError::Rejected(ExportError::Target(e)))?;
    let exported = export(exec, ports, ctx, now, &request, target.as_ref(), &|_, _| {}).await?;
    let Some(up_to_seq) = exported.digest.last_seq else {
        return Ok(Some(exported));
    };
    let command = LedgerCommand::ArchiveEntries {
        up_to_seq,
        digest_sha256: exported.digest_sha256.clone(),
        location: exported.entries_location.clone(),
        at: now,
    };
    // A command of its own (the export's digest was recorded under `ctx`'s command id).
    let cut = request
        .ctx(ctx)
        .with_command_id(domain::ids::CommandId::from_uuid(
            ctx.new_id("audit-archive-cut"),
        ));
    exec.execute::<AuditLedger>(chain, &command, &cut)
        .await
        .map_err(|e| e.map_rejection(ExportError::Ledger))?;
    Ok(Some(exported))
}
