//! Command-line interface: one file per subcommand.

mod audit;
mod bench;
mod projections;
pub mod s3;
pub mod serve;
mod tenants;

use clap::{Parser, Subcommand, ValueEnum};

/// Tenantry: the event-sourced control plane for multi-tenant SaaS.
#[derive(Debug, Parser)]
#[command(name = "tenantry", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// Database for the event store and read models: `sqlite://PATH` (embedded default) or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`.
    #[arg(long, global = true, env = "TENANTRY_DATABASE_URL",
          default_value = infra::database::DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,

    /// Most database connections this process opens.
    #[arg(long, global = true, env = "TENANTRY_MAX_CONNECTIONS", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub max_connections: u32,

    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        env = "TENANTRY_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (migrates the database first).
    Serve(Box<serve::ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Operator commands on tenants, and the tenant directory.
    Tenants(tenants::TenantsArgs),
    /// Inspect and rebuild read models.
    #[command(subcommand)]
    Projections(projections::ProjectionsCommand),
    /// Export and verify audit trails.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(args) => serve::run(&self.global, *args).await,
            Command::Migrate => {
                crate::wiring::open_database(&self.global).await?;
                Ok(())
            }
            Command::Tenants(args) => tenants::run(&self.global, args).await,
            Command::Projections(command) => projections::run(&self.global, command).await,
            Command::Bench(command) => bench::run(&self.global, command).await,
            Command::Audit(command) => audit::run(&self.global, command).await,
        }
    }
}

/// Structured logs on stderr; `RUST_LOG` overrides the default filter.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
