//! `tenantry tenants ...`: operator commands on tenants through the write path, and reads of
//! the tenant directory (optionally waiting until it reflects a given position).

use crate::cli::GlobalArgs;
use crate::wiring;
use anyhow::Context;
use commands::CommandContext;
use commands::tenancy::{
    CreateTenant, Founder, OperatorAction, TenantChange, create_tenant, operate_tenant,
};
use domain::event::{Actor, Position};
use domain::ids::{TenantId, UserId};
use domain::tenant::{Slug, TenantName, TenantSettings};
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
    /// Creates a tenant, through the same use case as the API's `createTenant`. With
    /// `--owner` that user becomes its owner; without, it is an operator's provisioning and
    /// the tenant has no owner yet.
    Provision {
        #[arg(long)]
        name: String,
        /// The id of the user who becomes the tenant's owner.
        #[arg(long)]
        owner: Option<Uuid>,
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

/// The command context of a CLI command: an operator's action, its command id made from the
/// idempotency key (scoped to the subcommand) like the API's.
fn cli_context(operation: &str, key: Option<Uuid>) -> CommandContext {
    CommandContext::from_request(
        Actor::system("cli"),
        Uuid::nil(),
        &format!("cli tenants {operation}"),
        key,
    )
}

pub async fn run(global: &GlobalArgs, args: TenantsArgs) -> anyhow::Result<()> {
    let app = wiring::open(global).await?;
    let exec = &app.executor;
    let now = chrono::Utc::now();
    let key = args.idempotency_key;
    let (id, outcome) = match args.command {
        TenantsCommand::Provision {
            name,
            owner,
            slug,
            settings: pairs,
        } => {
            let input = CreateTenant {
                name: TenantName::parse(&name)?,
                slug: Slug::parse(&slug)?,
                settings: settings(pairs)?,
                founder: owner.map_or(Founder::Operator, |id| Founder::User(UserId::from_uuid(id))),
            };
            let created = create_tenant(exec, &cli_context("provision", key), now, input).await?;
            (created.tenant, created.outcome)
        }
        TenantsCommand::Rename { id, name } => {
            let action = OperatorAction::Change(TenantChange::Rename(TenantName::parse(&name)?));
            operate(exec, "rename", key, now, id, action).await?
        }
        TenantsCommand::Settings {
            id,
            settings: pairs,
        } => {
            let action = OperatorAction::Change(TenantChange::ChangeSettings(settings(pairs)?));
            operate(exec, "settings", key, now, id, action).await?
        }
        TenantsCommand::Suspend { id, reason } => {
            let action = OperatorAction::Suspend { reason };
            operate(exec, "suspend", key, now, id, action).await?
        }
        TenantsCommand::Reactivate { id } => {
            let action = OperatorAction::Reactivate;
            operate(exec, "reactivate", key, now, id, action).await?
        }
        TenantsCommand::Close { id, retention_days } => {
            let retention = chrono::Duration::days(i64::from(retention_days));
            let action = OperatorAction::Change(TenantChange::Close { retention });
            operate(exec, "close", key, now, id, action).await?
        }
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

async fn operate(
    exec: &commands::Executor,
    operation: &str,
    key: Option<Uuid>,
    now: chrono::DateTime<chrono::Utc>,
    id: Uuid,
    action: OperatorAction,
) -> anyhow::Result<(TenantId, commands::CommandOutcome)> {
    let tenant = TenantId::from_uuid(id);
    let outcome = operate_tenant(exec, &cli_context(operation, key), now, tenant, action).await?;
    Ok((tenant, outcome))
}

async fn wait(
    db: &projections::ReadDb,
    position: Option<u64>,
    timeout_ms: u64,
) -> anyhow::Result<()> {
    if let Some(position) = position {
        wait_for(
            db,
            &[TenantDirectory::NAME],
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
