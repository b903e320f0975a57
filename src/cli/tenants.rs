//! `tenantry tenants ...`: operator commands on tenants through the write path, and reads of
//! the tenant directory (optionally waiting until it reflects a given position).

use crate::cli::GlobalArgs;
use crate::wiring;
use anyhow::Context;
use commands::CommandContext;
use domain::event::{Actor, Position};
use domain::ids::{CommandId, TenantId};
use domain::tenant::{Slug, Tenant, TenantCommand, TenantName, TenantSettings};
use projections::read_your_writes::wait_for;
use projections::tenant_directory::{TenantDirectory, TenantView};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, clap::Args)]
pub struct TenantsArgs {
    #[command(subcommand)]
    pub command: TenantsCommand,
    /// Makes the command idempotent: running it again with the same key writes nothing and
    /// prints the first outcome.
    #[arg(long, global = true)]
    pub idempotency_key: Option<Uuid>,
}

#[derive(Debug, clap::Subcommand)]
pub enum TenantsCommand {
    /// Creates a tenant.
    Provision {
        #[arg(long)]
        name: String,
        #[arg(long)]
        slug: String,
        /// A setting, as key=value (repeatable).
        #[arg(long = "setting", value_parser = parse_setting)]
        settings: Vec<(String, String)>,
    },
    Rename {
        id: Uuid,
        #[arg(long)]
        name: String,
    },
    /// Replaces the tenant's settings.
    Settings {
        id: Uuid,
        #[arg(long = "setting", value_parser = parse_setting)]
        settings: Vec<(String, String)>,
    },
    Suspend {
        id: Uuid,
        #[arg(long)]
        reason: String,
    },
    Reactivate {
        id: Uuid,
    },
    /// Closes the tenant; its data is deleted after the retention period.
    Close {
        id: Uuid,
        #[arg(long, default_value_t = 30)]
        retention_days: u32,
    },
    /// One tenant from the directory.
    Show {
        id: Uuid,
        /// Wait until the directory has reached this position (printed by a command).
        #[arg(long)]
        wait_for: Option<u64>,
        #[arg(long, default_value_t = 5_000)]
        timeout_ms: u64,
    },
    /// Tenants from the directory, ordered by id.
    List {
        #[arg(long)]
        after: Option<Uuid>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        wait_for: Option<u64>,
        #[arg(long, default_value_t = 5_000)]
        timeout_ms: u64,
    },
}

fn parse_setting(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected key=value, got {s:?}"))
}

fn settings(pairs: Vec<(String, String)>) -> anyhow::Result<TenantSettings> {
    Ok(TenantSettings::parse(
        pairs.into_iter().collect::<BTreeMap<_, _>>(),
    )?)
}

pub async fn run(global: &GlobalArgs, args: TenantsArgs) -> anyhow::Result<()> {
    let app = wiring::open(global).await?;
    let now = chrono::Utc::now();
    let (id, command) = match args.command {
        TenantsCommand::Provision {
            name,
            slug,
            settings: pairs,
        } => {
            // With an idempotency key the tenant id derives from it, so a retry names the
            // same tenant.
            let id = args
                .idempotency_key
                .map_or_else(Uuid::now_v7, |key| Uuid::new_v5(&key, b"tenant"));
            let command = TenantCommand::Provision {
                tenant_id: TenantId::from_uuid(id),
                name: TenantName::parse(&name)?,
                slug: Slug::parse(&slug)?,
                settings: settings(pairs)?,
                at: now,
            };
            (id, command)
        }
        TenantsCommand::Rename { id, name } => (
            id,
            TenantCommand::Rename {
                name: TenantName::parse(&name)?,
                at: now,
            },
        ),
        TenantsCommand::Settings {
            id,
            settings: pairs,
        } => (
            id,
            TenantCommand::ChangeSettings {
                settings: settings(pairs)?,
                at: now,
            },
        ),
        TenantsCommand::Suspend { id, reason } => (id, TenantCommand::Suspend { reason, at: now }),
        TenantsCommand::Reactivate { id } => (id, TenantCommand::Reactivate { at: now }),
        TenantsCommand::Close { id, retention_days } => (
            id,
            TenantCommand::Close {
                at: now,
                retention: chrono::Duration::days(i64::from(retention_days)),
            },
        ),
        TenantsCommand::Show {
            id,
            wait_for: position,
            timeout_ms,
        } => {
            wait(&app.read_db, position, timeout_ms).await?;
            let view = TenantDirectory::get(&app.read_db, TenantId::from_uuid(id))
                .await?
                .with_context(|| format!("no tenant {id} in the directory"))?;
            return print_views(&[view]);
        }
        TenantsCommand::List {
            after,
            limit,
            wait_for: position,
            timeout_ms,
        } => {
            wait(&app.read_db, position, timeout_ms).await?;
            let views =
                TenantDirectory::list(&app.read_db, after.map(TenantId::from_uuid), limit).await?;
            return print_views(&views);
        }
    };
    let mut ctx = CommandContext::new(Actor::system("cli")).for_tenant(TenantId::from_uuid(id));
    if let Some(key) = args.idempotency_key {
        ctx = ctx.with_command_id(CommandId::from_uuid(key));
    }
    let outcome = app.executor.execute::<Tenant>(id, &command, &ctx).await?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "tenant {id} version {} position {}{}",
        outcome.version,
        outcome.position,
        if outcome.replayed {
            " (already done: first outcome)"
        } else {
            ""
        }
    )?;
    Ok(())
}

async fn wait(
    db: &projections::ReadDb,
    position: Option<u64>,
    timeout_ms: u64,
) -> anyhow::Result<()> {
    if let Some(position) = position {
        wait_for(
            db,
            &["tenant_directory"],
            Position(position),
            Duration::from_millis(timeout_ms),
        )
        .await?;
    }
    Ok(())
}

fn print_views(views: &[TenantView]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for v in views {
        let settings = serde_json::to_string(&v.settings)?;
        writeln!(
            out,
            "{}  {:<10} {:<24} {:<32} plan={} settings={} created={} updated={}",
            v.id,
            v.status,
            v.slug,
            v.name,
            v.plan,
            settings,
            v.created_at.to_rfc3339(),
            v.updated_at.to_rfc3339()
        )?;
    }
    Ok(())
}
