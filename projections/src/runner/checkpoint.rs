//! Checkpoints: each projector's row in `projections` (version, live generation, position,
//! state, last error), its registration with its first generation of tables and views, and
//! the status queries.

use super::RunnerError;
use crate::{Projector, ReadDb, ReadTx, exec, fetch_all};
use chrono::Utc;
use domain::event::Position;

/// A projector's row in `projections`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Checkpoint {
    pub name: String,
    pub version: i32,
    pub generation: i32,
    pub position: i64,
    /// `catching_up`, `live` (its last batch reached the head of the log) or `failing`.
    pub status: String,
    pub last_error: Option<String>,
    pub error_position: Option<i64>,
}

impl Checkpoint {
    /// How a registered projector that has not run yet shows in a status listing.
    pub fn not_started(name: &str, version: u32) -> Self {
        Self {
            name: name.to_owned(),
            version: i32::try_from(version).unwrap_or(i32::MAX),
            generation: 0,
            position: 0,
            status: "not_started".into(),
            last_error: None,
            error_position: None,
        }
    }

    pub fn suffix(&self) -> String {
        format!("_g{}", self.generation)
    }

    pub fn position(&self) -> Position {
        Position(u64::try_from(self.position).unwrap_or_default())
    }
}

const CHECKPOINT_COLUMNS: &str =
    "name, version, generation, position, status, last_error, error_position";

/// Every projector's checkpoint.
pub async fn checkpoints(db: &ReadDb) -> Result<Vec<Checkpoint>, sqlx::Error> {
    let sql = format!("SELECT {CHECKPOINT_COLUMNS} FROM projections ORDER BY name");
    fetch_all!(db, Checkpoint, &sql)
}

pub(super) async fn checkpoint(db: &ReadDb, name: &str) -> Result<Option<Checkpoint>, sqlx::Error> {
    let sql = format!("SELECT {CHECKPOINT_COLUMNS} FROM projections WHERE name = $1");
    Ok(fetch_all!(db, Checkpoint, &sql, name)?.into_iter().next())
}

/// Points each of the projector's views at the tables of `suffix`.
pub(super) async fn point_views(
    tx: &mut ReadTx<'_>,
    projector: &dyn Projector,
    suffix: &str,
) -> Result<(), sqlx::Error> {
    for table in projector.tables() {
        tx.execute_ddl(&format!("DROP VIEW IF EXISTS {table}"))
            .await?;
        tx.execute_ddl(&format!(
            "CREATE VIEW {table} AS SELECT * FROM {table}{suffix}"
        ))
        .await?;
    }
    Ok(())
}

/// Registers a new projector (generation 1, position 0). Returns its checkpoint.
pub(super) async fn register(
    db: &ReadDb,
    projector: &dyn Projector,
) -> Result<Checkpoint, RunnerError> {
    if let Some(existing) = checkpoint(db, projector.name()).await? {
        return Ok(existing);
    }
    let mut tx = db.begin().await?;
    projector.create_tables(&mut tx, "_g1").await?;
    point_views(&mut tx, projector, "_g1").await?;
    exec!(
        &mut tx,
        "INSERT INTO projections (name, version, generation, position, status, updated_at) \
         VALUES ($1, $2, 1, 0, 'catching_up', $3) ON CONFLICT (name) DO NOTHING",
        projector.name(),
        i32::try_from(projector.version()).unwrap_or(i32::MAX),
        Utc::now()
    )?;
    tx.commit().await?;
    checkpoint(db, projector.name())
        .await?
        .ok_or_else(|| RunnerError::Unknown(projector.name().to_owned()))
}
