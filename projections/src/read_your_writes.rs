//! Read-your-writes: a command returns the position it wrote; a reader may ask to be served
//! only once the projections it reads have reached that position, waiting a bounded time.
//! Past the bound it gets a clear error, never stale data presented as fresh.

use crate::ReadDb;
use domain::event::Position;
use std::time::{Duration, Instant};

/// How often the checkpoints are read while waiting.
const POLL: Duration = Duration::from_millis(5);

#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error(
        "projection {name} is at position {at}, not yet at {wanted}, after waiting {waited_ms} ms"
    )]
    NotCaughtUp {
        name: String,
        at: u64,
        wanted: u64,
        waited_ms: u128,
    },
    #[error("no projection named {0} is running")]
    Unknown(String),
    #[error("read-model database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Waits until every projection in `names` has reached `position`, for at most `timeout`.
pub async fn wait_for(
    db: &ReadDb,
    names: &[&str],
    position: Position,
    timeout: Duration,
) -> Result<(), WaitError> {
    let started = Instant::now();
    loop {
        // A projection not registered yet (its runner is starting) counts as position 0.
        let mut behind = None;
        for name in names {
            let at = position_of(db, name).await?;
            if at.is_none_or(|at| at < position.0) {
                behind = Some((*name, at));
                break;
            }
        }
        let Some((name, at)) = behind else {
            return Ok(());
        };
        if started.elapsed() >= timeout {
            let Some(at) = at else {
                return Err(WaitError::Unknown(name.to_owned()));
            };
            return Err(WaitError::NotCaughtUp {
                name: name.to_owned(),
                at,
                wanted: position.0,
                waited_ms: started.elapsed().as_millis(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn position_of(db: &ReadDb, name: &str) -> Result<Option<u64>, sqlx::Error> {
    let sql = "SELECT position FROM projections WHERE name = $1";
    let position: Option<i64> = match db {
        ReadDb::Sqlite { reader, .. } => {
            sqlx::query_scalar(sql)
                .bind(name)
                .fetch_optional(reader)
                .await?
        }
        ReadDb::Postgres(pool) => {
            sqlx::query_scalar(sql)
                .bind(name)
                .fetch_optional(pool)
                .await?
        }
    };
    Ok(position.map(|p| u64::try_from(p).unwrap_or_default()))
}
