//! Throwaway databases and latency percentiles for the benchmarks.

use anyhow::Context;
use infra::database::{Database, DatabaseOptions, redact, with_database};
use sqlx::Connection;
use std::path::PathBuf;
use std::time::Duration;
use uuid::Uuid;

/// Which databases a benchmark runs on.
#[derive(Debug, clap::Args)]
pub struct ScratchArgs {
    /// PostgreSQL server to benchmark on; a scratch database is created there and dropped.
    #[arg(
        long,
        env = "TENANTRY_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        hide_env_values = true
    )]
    pub postgres_url: String,
    /// Skip PostgreSQL.
    #[arg(long)]
    pub no_postgres: bool,
    /// Skip SQLite.
    #[arg(long)]
    pub no_sqlite: bool,
}

impl ScratchArgs {
    /// A fresh database on each chosen backend, SQLite first.
    pub async fn create(&self) -> anyhow::Result<Vec<Scratch>> {
        let mut scratches = Vec::new();
        if !self.no_sqlite {
            scratches.push(Scratch::sqlite().await?);
        }
        if !self.no_postgres {
            scratches.push(Scratch::postgres(&self.postgres_url).await?);
        }
        Ok(scratches)
    }
}

/// A benchmark's own database: a new SQLite file, or a new database on a PostgreSQL server.
/// `remove` deletes it (leftovers of an interrupted run are named `tenantry-bench-*` files and
/// `tenantry_bench_*` databases; the test script drops the latter).
#[derive(Debug)]
pub struct Scratch {
    pub backend: &'static str,
    pub db: Database,
    /// The URL `--database-url` takes for it.
    pub url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    File(PathBuf),
    Postgres { admin_url: String, name: String },
}

impl Scratch {
    pub async fn sqlite() -> anyhow::Result<Self> {
        let path =
            std::env::temp_dir().join(format!("tenantry-bench-{}.db", Uuid::now_v7().simple()));
        let url = format!("sqlite://{}", path.display());
        let db = Database::open(&url, &options()).await?;
        Ok(Self {
            backend: "sqlite",
            db,
            url,
            cleanup: Cleanup::File(path),
        })
    }

    pub async fn postgres(admin_url: &str) -> anyhow::Result<Self> {
        let name = format!("tenantry_bench_{}", Uuid::now_v7().simple());
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("connecting to {}", redact(admin_url)))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let url = with_database(admin_url, &name);
        let db = Database::open(&url, &options()).await?;
        Ok(Self {
            backend: "postgres",
            db,
            url,
            cleanup: Cleanup::Postgres {
                admin_url: admin_url.to_owned(),
                name,
            },
        })
    }

    pub async fn remove(self) -> anyhow::Result<()> {
        match self.cleanup {
            Cleanup::File(path) => {
                drop(self.db);
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Postgres { admin_url, name } => {
                if let Database::Postgres(pool) = self.db {
                    pool.close().await;
                }
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await?;
            }
        }
        Ok(())
    }
}

fn options() -> DatabaseOptions {
    DatabaseOptions {
        max_connections: 24,
        ..DatabaseOptions::default()
    }
}

/// The `q` quantile (0..=1) of sorted latencies.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let index = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(index).copied().unwrap_or_default()
}
