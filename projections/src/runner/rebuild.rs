//! Rebuilds: a projector's read model built again from position 0 into a new generation of
//! tables while the live one keeps serving reads, then swapped in one transaction.

use super::checkpoint::{point_views, register};
use super::{RunnerConfig, RunnerError};
use crate::{ProjectionError, Projector, ReadDb, exec};
use chrono::Utc;
use domain::event::{Position, RecordedEvent};
use domain::event_store::EventStore;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Rebuilds a projector's read model from position 0 into a new generation of tables while
/// the current one keeps serving reads, then swaps the views and the checkpoint in one
/// transaction. `progress(done, total)` is called after each batch.
pub async fn rebuild(
    store: &Arc<dyn EventStore>,
    db: &ReadDb,
    projector: &dyn Projector,
    config: RunnerConfig,
    mut progress: impl FnMut(u64, u64),
) -> Result<(), RunnerError> {
    if projector.reactor().is_some() {
        return Err(ProjectionError::NotRebuildable(projector.name()).into());
    }
    let reads = projector.reads();
    // One rebuild of a projector at a time, across processes (they would share the next
    // generation's tables).
    let _rebuild_lock = crate::lease::acquire(db, &format!("{}.rebuild", projector.name())).await;
    let current = register(db, projector).await?;
    let generation = current.generation + 1;
    let suffix = format!("_g{generation}");
    let mut tx = db.begin().await?;
    for table in projector.tables() {
        tx.execute_ddl(&format!("DROP TABLE IF EXISTS {table}{suffix}"))
            .await?;
    }
    projector.create_tables(&mut tx, &suffix).await?;
    tx.commit().await?;

    // A reader task fetches the next batches while this one applies the current batch.
    let (sender, mut batches) = tokio::sync::mpsc::channel(2);
    let reader = {
        let store = store.clone();
        let batch_size = config.batch_size;
        AbortOnDrop(tokio::spawn(async move {
            let mut at = Position::START;
            loop {
                match store.read_all_of(at, batch_size, reads).await {
                    Ok(events) if events.is_empty() => return,
                    Ok(events) => {
                        at = events.last().map_or(at, |e| e.position);
                        if sender.send(Ok(events)).await.is_err() {
                            return;
                        }
                    }
                    Err(error) => {
                        let _ = sender.send(Err(error)).await;
                        return;
                    }
                }
            }
        }))
    };
    let mut total = store.head().await?.0;
    let mut position = Position::START;
    while let Some(batch) = batches.recv().await {
        let events = batch?;
        let Some(last) = events.last().map(|e| e.position) else {
            break;
        };
        let handled: Vec<RecordedEvent> =
            events.into_iter().filter(|e| reads.includes(e)).collect();
        let mut tx = db.begin().await?;
        if !handled.is_empty() {
            projector.apply(&mut tx, &suffix, &handled).await?;
        }
        tx.commit().await?;
        position = last;
        total = total.max(position.0);
        progress(position.0, total);
    }
    drop(reader);

    // The swap, in one transaction. First lock the checkpoint row (a live runner's next batch
    // waits, then finds the generation changed and carries on with the new one); then catch
    // the new tables up to the head as it stands now, which no live runner can have passed;
    // then re-point the views and the checkpoint. Readers go from the complete old tables to
    // the complete new ones, and the checkpoint never moves backwards.
    let mut tx = db.begin().await?;
    let locked = exec!(
        &mut tx,
        "UPDATE projections SET updated_at = $1 WHERE name = $2 AND generation = $3",
        Utc::now(),
        projector.name(),
        current.generation
    )?;
    if locked != 1 {
        return Err(RunnerError::RebuildRaced(projector.name().to_owned()));
    }
    let head = store.head().await?;
    while position < head {
        let rest = store.read_all(position, config.batch_size).await?;
        let Some(end) = rest.last().map(|e| e.position) else {
            break;
        };
        let handled: Vec<RecordedEvent> = rest
            .into_iter()
            .filter(|e| e.position <= head && reads.includes(e))
            .collect();
        if !handled.is_empty() {
            projector.apply(&mut tx, &suffix, &handled).await?;
        }
        position = end.min(head);
    }
    point_views(&mut tx, projector, &suffix).await?;
    exec!(
        &mut tx,
        "UPDATE projections SET version = $1, generation = $2, position = $3, \
         status = 'live', last_error = NULL, error_position = NULL, updated_at = $4 \
         WHERE name = $5 AND generation = $6",
        i32::try_from(projector.version()).unwrap_or(i32::MAX),
        generation,
        i64::try_from(position.0).unwrap_or(i64::MAX),
        Utc::now(),
        projector.name(),
        current.generation
    )?;
    tx.commit().await?;
    progress(position.0, total.max(position.0));
    drop_generation(db, projector, &current.suffix()).await;
    Ok(())
}

/// Aborts a task when dropped (so an early return does not leave a reader running).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn drop_generation(db: &ReadDb, projector: &dyn Projector, suffix: &str) {
    let result = async {
        let mut tx = db.begin().await?;
        for table in projector.tables() {
            tx.execute_ddl(&format!("DROP TABLE IF EXISTS {table}{suffix}"))
                .await?;
        }
        tx.commit().await
    }
    .await;
    if let Err(error) = result {
        tracing::warn!(projection = projector.name(), error = %error, "old generation not dropped");
    }
}
