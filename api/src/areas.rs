//! Every area of the platform, registered once: its projectors and reactors (run by the
//! projection runner), its periodic jobs, its GraphQL objects and its DataLoaders. The CLI,
//! the server and the benchmarks take their lists from here, so an area added here is run,
//! served, listed by `tenantry projections status` and rebuildable, with no name written twice.
//!
//! | area | projectors | jobs | GraphQL | loaders |
//! | --- | --- | --- | --- | --- |
//! | identity | — | — | `identity`, `sessions` | — |
//! | tenancy | `tenant_directory`, `tenant_retention`, reactor `slug_claims` | `tenant_data_retention` | `tenancy`, `live` | tenants |
//! | access | `tenant_access` | — | `access` | members, invites, API keys, key usage |
//! | mail | reactor `mail_outbox` | — | — | — |
//! | billing | `billing`, reactors `suspend_unpaid`, `payments_sync` (with Stripe) | `subscription_renewals` | `billing` | — |
//! | metering | `usage`, reactor `usage_thresholds` | — | `metering` | — |
//! | webhooks | reactor `tenant_webhooks` | — | `webhooks` | — |
//! | audit | `audit`, reactors `audit_exports`, `subject_erasure` | — | `audit`, `privacy` | — |

#![expect(
    missing_debug_implementations,
    reason = "merged GraphQL roots: their parts hold nothing worth printing"
)]

use crate::graphql::{
    access, audit, billing, identity, live, loaders, metering, privacy, sessions, tenancy, webhooks,
};
use crate::services::Services;
use async_graphql::dataloader::DataLoader;
use async_graphql::{MergedObject, MergedSubscription};
use chrono::Utc;
use commands::Executor;
use commands::mail::MailOutbox;
use commands::tenancy::{DueDeletion, SlugClaims, record_data_deleted};
use domain::reactor::Reactor;
use domain::tenant::TenantError;
use projections::audit::AuditTrail;
use projections::billing::BillingReadModel;
use projections::jobs::Job;
use projections::tenant_access::TenantAccessDirectory;
use projections::tenant_directory::TenantDirectory;
use projections::tenant_retention::TenantRetention;
use projections::usage::UsageReadModel;
use projections::{Projector, ReadDb, reacting};
use std::sync::Arc;
use std::time::Duration;

#[derive(MergedObject, Default)]
pub struct QueryRoot(
    identity::IdentityQuery,
    tenancy::TenancyQuery,
    billing::BillingQuery,
    audit::AuditQuery,
    privacy::PrivacyQuery,
);

#[derive(MergedObject, Default)]
pub struct MutationRoot(
    identity::IdentityMutation,
    sessions::SessionMutation,
    tenancy::TenancyMutation,
    access::AccessMutation,
    billing::BillingMutation,
    metering::MeteringMutation,
    webhooks::WebhooksMutation,
    audit::AuditMutation,
    privacy::PrivacyMutation,
);

#[derive(MergedSubscription, Default)]
pub struct SubscriptionRoot(live::TenancySubscription);

/// Every read model the API serves; a client's consistency position (`atPosition`,
/// `X-Consistency-Position`) on a query that names none waits for all of them.
pub const READ_MODELS: &[&str] = &[
    TenantDirectory::NAME,
    TenantAccessDirectory::NAME,
    BillingReadModel::NAME,
    UsageReadModel::NAME,
    AuditTrail::NAME,
];

/// Every reactor, acting through the server's ports.
pub fn reactors(services: &Services) -> Vec<Arc<dyn Reactor>> {
    let mut reactors: Vec<Arc<dyn Reactor>> = vec![
        Arc::new(MailOutbox::new(
            services.executor.clone(),
            services.vault.clone(),
            services.mailer.clone(),
            services.config.public_url.clone(),
        )),
        Arc::new(SlugClaims::new(services.executor.clone())),
        Arc::new(commands::billing::SuspendUnpaid::new(
            services.executor.clone(),
        )),
        Arc::new(commands::metering::UsageThresholds::new(
            services.executor.clone(),
            services.usage.clone(),
        )),
        Arc::new(commands::webhooks::TenantWebhooks::new(
            services.executor.clone(),
            services.webhooks.clone(),
        )),
        Arc::new(commands::privacy::SubjectErasure::new(
            services.vault.clone(),
        )),
        Arc::new(commands::audit::AuditExports::new(
            services.executor.clone(),
            services.audit.entries.clone(),
            services.vault.clone(),
            services.audit.signer.clone(),
            services.audit.destinations.clone(),
            services.audit.progress.clone(),
        )),
    ];
    if let Some(payments) = &services.payments {
        reactors.push(Arc::new(
            commands::payments::PaymentsSync::new(services.executor.clone(), payments.clone())
                .with_usage(services.usage.clone()),
        ));
    }
    reactors
}

/// The names of [`reactors`] that always run, for commands that list them without running them
/// (`projections status`); a test checks the two agree.
pub const REACTORS: &[&str] = &[
    commands::mail::OUTBOX,
    commands::tenancy::SLUG_CLAIMS,
    commands::billing::SUSPEND_UNPAID,
    commands::metering::USAGE_THRESHOLDS,
    commands::webhooks::TENANT_WEBHOOKS,
    commands::privacy::SUBJECT_ERASURE,
    commands::audit::AUDIT_EXPORTS,
];

/// The reactors that run only with a payment provider configured (not in local mode).
pub const PROVIDER_REACTORS: &[&str] = &[commands::payments::PAYMENTS_SYNC];

/// Every read model's projector (what `projections rebuild` rebuilds; reactors never are).
pub fn read_models() -> Vec<Arc<dyn Projector>> {
    vec![
        Arc::new(TenantDirectory),
        Arc::new(TenantAccessDirectory),
        Arc::new(TenantRetention),
        Arc::new(BillingReadModel),
        Arc::new(UsageReadModel),
        Arc::new(AuditTrail),
    ]
}

/// Everything the projection runner runs: the read models, then the reactors.
pub fn projectors(services: &Services) -> Vec<Arc<dyn Projector>> {
    let mut all = read_models();
    all.extend(reactors(services).into_iter().map(reacting));
    all
}

/// How often the periodic jobs run.
#[derive(Debug, Clone, Copy)]
pub struct JobSettings {
    pub retention_check: Duration,
    pub renewal_check: Duration,
    /// How often audit entries beyond their tenant's retention are archived.
    pub audit_archive_check: Duration,
    /// How long a retention "day" is (a day; shorter in tests).
    pub audit_retention_day: Duration,
}

/// The names of the periodic jobs `jobs` returns (each holds a lease of its name).
pub const JOBS: &[&str] = &[
    commands::tenancy::RETENTION,
    commands::billing::RENEWALS,
    commands::audit::AUDIT_ARCHIVE,
];

/// Every periodic job.
pub fn jobs(services: &Services, settings: JobSettings) -> Vec<Job> {
    let (exec, read_db) = (services.executor.clone(), services.read_db.clone());
    let (renew_exec, renew_db) = (exec.clone(), read_db.clone());
    let archive = (
        exec.clone(),
        read_db.clone(),
        services.vault.clone(),
        services.audit.clone(),
        settings.audit_retention_day,
    );
    vec![
        Job::new(
            commands::audit::AUDIT_ARCHIVE,
            settings.audit_archive_check,
            move || {
                let (exec, read_db, vault, audit, day) = archive.clone();
                archive_due_entries(exec, read_db, vault, audit, day)
            },
        ),
        Job::new(
            commands::tenancy::RETENTION,
            settings.retention_check,
            move || delete_due_tenant_data(exec.clone(), read_db.clone()),
        ),
        Job::new(
            commands::billing::RENEWALS,
            settings.renewal_check,
            move || renew_due_subscriptions(renew_exec.clone(), renew_db.clone()),
        ),
    ]
}

/// Archives every chain's entries older than its retention, one archive per chain per tick.
async fn archive_due_entries(
    exec: Executor,
    read_db: ReadDb,
    vault: Arc<dyn domain::personal_data::PersonalData>,
    audit: crate::services::AuditServices,
    day: Duration,
) -> Result<(), String> {
    let now = Utc::now();
    let retained = AuditTrail::retained(&read_db)
        .await
        .map_err(|e| e.to_string())?;
    for (chain, days, _) in retained {
        let keep = day.saturating_mul(u32::try_from(days).unwrap_or(u32::MAX));
        let Some(cutoff) = chrono::Duration::from_std(keep)
            .ok()
            .and_then(|keep| now.checked_sub_signed(keep))
        else {
            continue;
        };
        let ctx = commands::CommandContext::new(domain::event::Actor::system(
            commands::audit::AUDIT_ARCHIVE,
        ));
        let ports = commands::audit::AuditPorts {
            entries: audit.entries.as_ref(),
            vault: vault.as_ref(),
            signer: audit.signer.as_ref(),
        };
        match commands::audit::archive(
            &exec,
            ports,
            &ctx,
            now,
            chain,
            cutoff,
            audit.destinations.as_ref(),
        )
        .await
        {
            Ok(Some(archived)) => tracing::info!(
                job = commands::audit::AUDIT_ARCHIVE,
                chain = %chain,
                entries = archived.digest.entry_count,
                location = %archived.entries_location,
                "audit entries archived"
            ),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(job = commands::audit::AUDIT_ARCHIVE, chain = %chain, error = %error, "could not archive; will retry");
            }
        }
    }
    Ok(())
}

/// Moves every subscription whose period (or grace period) is over on, one step per tick.
async fn renew_due_subscriptions(exec: Executor, read_db: ReadDb) -> Result<(), String> {
    let now = Utc::now();
    let due = BillingReadModel::due(&read_db, now, 500)
        .await
        .map_err(|e| e.to_string())?;
    for tenant in due {
        if let Err(error) = commands::billing::renew(&exec, now, tenant).await {
            tracing::warn!(job = commands::billing::RENEWALS, tenant.id = %tenant, error = %error, "could not renew; will retry");
        }
    }
    Ok(())
}

/// Records the deletion of every closed tenant whose retention period is over.
async fn delete_due_tenant_data(exec: Executor, read_db: ReadDb) -> Result<(), String> {
    let now = Utc::now();
    let due = TenantRetention::due(&read_db, now, 500)
        .await
        .map_err(|e| e.to_string())?;
    for pending in due {
        let due = DueDeletion {
            tenant: pending.tenant,
            due: pending.due,
            closed_by: pending.closed_by,
            correlation: pending.correlation,
        };
        match record_data_deleted(&exec, now, &due).await {
            Ok(outcome) if !outcome.replayed => {
                tracing::info!(job = commands::tenancy::RETENTION, tenant.id = %due.tenant, "tenant data deletion recorded after its retention period");
            }
            Ok(_) | Err(commands::CommandError::Rejected(TenantError::RetentionNotOver(_))) => {}
            Err(error) => {
                tracing::warn!(job = commands::tenancy::RETENTION, tenant.id = %due.tenant, error = %error, "could not record the deletion; will retry");
            }
        }
    }
    Ok(())
}

/// Gives a request its own DataLoaders (nothing is cached across callers).
pub fn with_loaders(
    request: async_graphql::Request,
    services: &Arc<Services>,
) -> async_graphql::Request {
    request
        .data(DataLoader::new(
            loaders::MembersLoader(services.clone()),
            tokio::spawn,
        ))
        .data(DataLoader::new(
            loaders::InvitesLoader(services.clone()),
            tokio::spawn,
        ))
        .data(DataLoader::new(
            loaders::ApiKeysLoader(services.clone()),
            tokio::spawn,
        ))
        .data(DataLoader::new(
            loaders::TenantsLoader(services.clone()),
            tokio::spawn,
        ))
}
