//! Periodic jobs: work done on a clock rather than on an event (the retention check now;
//! backup schedules later). Like a projector, each job runs in one process at a time, under a
//! lease of its own name; what it acts on comes from a read model, and what it writes goes
//! through commands whose ids derive from the events that caused them, so a tick repeated by
//! another process after a take-over doubles nothing.

use crate::ReadDb;
use crate::runner::RunnerHandle;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// One tick of a job; its error is logged and the job carries on at the next tick.
pub type Tick = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

#[derive(Clone)]
pub struct Job {
    /// Stable name: the lease's key and the logs' `job` field.
    pub name: &'static str,
    pub every: Duration,
    pub tick: Arc<dyn Fn() -> Tick + Send + Sync>,
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl Job {
    pub fn new<F, Fut>(name: &'static str, every: Duration, tick: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self {
            name,
            every,
            tick: Arc::new(move || Box::pin(tick())),
        }
    }
}

/// Starts one task per job: take the job's lease, then tick every `every` until the lease is
/// lost (then ask for it again).
pub fn spawn(db: ReadDb, jobs: Vec<Job>) -> RunnerHandle {
    let tasks = jobs
        .into_iter()
        .map(|job| {
            let db = db.clone();
            tokio::spawn(async move {
                loop {
                    let mut lease = crate::lease::acquire(&db, job.name).await;
                    let mut ticks = tokio::time::interval(job.every);
                    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    {
                        let lost = lease.lost(job.name);
                        tokio::pin!(lost);
                        loop {
                            tokio::select! {
                                _ = ticks.tick() => {
                                    if let Err(error) = (job.tick)().await {
                                        tracing::warn!(job = job.name, error = %error, "job tick failed; trying again at the next");
                                    }
                                }
                                () = &mut lost => {
                                    tracing::warn!(job = job.name, "job lease lost; stopped");
                                    break;
                                }
                            }
                        }
                    }
                    drop(lease);
                    tokio::time::sleep(crate::lease::RETRY).await;
                }
            })
        })
        .collect();
    RunnerHandle::from_tasks(tasks)
}
