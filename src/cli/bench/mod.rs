//! `tenantry bench ...`: benchmarks that print figures and assert nothing, one file each:
//! [`append`] (the event store against raw inserts), [`projections`] (a full rebuild and the
//! command round trip), [`api`] (GraphQL under 32 connections), [`usage`] (usage ingestion), [`audit`] (audit export and verification); [`scratch`] holds the
//! throwaway databases and percentiles they share. Figures go into BENCHMARKS.md.

mod api;
mod append;
mod audit;
mod projections;
mod scratch;
mod usage;

use crate::cli::GlobalArgs;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Appends: single events with 1 and 16 writers, 100-event batches with 1 and 4 writers.
    Append(append::AppendBenchArgs),
    /// A full rebuild of the tenant directory, and command round-trip latency.
    Projections(projections::ProjectionBenchArgs),
    /// The GraphQL API under 32 connections: a dashboard query and a small mutation.
    Api(api::ApiBenchArgs),
    /// Usage ingestion through the internal path, with the usage read model's lag.
    Usage(usage::UsageBenchArgs),
    /// Audit export (file and S3) and verification of a 1M-entry trail.
    Audit(audit::AuditBenchArgs),
}

pub async fn run(_global: &GlobalArgs, command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Append(args) => append::run(args).await,
        BenchCommand::Projections(args) => projections::run(args).await,
        BenchCommand::Api(args) => api::run(args).await,
        BenchCommand::Usage(args) => usage::run(args).await,
        BenchCommand::Audit(args) => audit::run(args).await,
    }
}
