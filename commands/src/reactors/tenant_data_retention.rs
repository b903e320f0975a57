//! Tenant closed → its data is deleted once the retention period has passed.
//!
//! The reactor follows the log from the start and keeps the closed tenants whose data is not
//! deleted yet, each with the `TenantClosed` event that started its clock. On every tick it
//! records the deletion of those that are due (`RecordDataDeleted`, which the Tenant aggregate
//! refuses before the retention period is over), with a command id derived from the
//! `TenantClosed` event.

use crate::{CommandContext, CommandError, Executor};
use chrono::{DateTime, Utc};
use domain::aggregate::decode_event;
use domain::event::{Position, RecordedEvent};
use domain::ids::TenantId;
use domain::tenant::{Tenant, TenantCommand, TenantError, TenantEvent, tenant_of_stream};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::time::Duration;

pub const NAME: &str = "tenant_data_retention";

/// A closed tenant waiting for its data to be deleted.
#[derive(Debug, Clone)]
struct Pending {
    due: DateTime<Utc>,
    cause: RecordedEvent,
}

/// Runs until the task is aborted, checking for due deletions every `tick`.
pub async fn run(exec: Executor, tick: Duration) {
    let mut pending: BTreeMap<TenantId, Pending> = BTreeMap::new();
    let mut events = exec.store().subscribe(Position::START);
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            next = events.next() => match next {
                Some(Ok(event)) => observe(&mut pending, event),
                Some(Err(error)) => tracing::warn!(reactor = NAME, error = %error, "reading the log failed; retrying"),
                None => return,
            },
            _ = ticks.tick() => act(&exec, &mut pending, Utc::now()).await,
        }
    }
}

fn observe(pending: &mut BTreeMap<TenantId, Pending>, event: RecordedEvent) {
    if !event.event_type.starts_with("Tenant") {
        return;
    }
    let Some(tenant) = tenant_of_stream(&event.stream) else {
        return;
    };
    match decode_event::<Tenant>(
        &event.event_type,
        event.schema_version,
        event.payload.clone(),
    ) {
        Ok(TenantEvent::TenantClosed {
            delete_data_after, ..
        }) => {
            pending.insert(
                tenant,
                Pending {
                    due: delete_data_after,
                    cause: event,
                },
            );
        }
        Ok(TenantEvent::TenantDataDeleted { .. }) => {
            pending.remove(&tenant);
        }
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(reactor = NAME, position = event.position.0, error = %error, "undecodable tenant event skipped")
        }
    }
}

async fn act(exec: &Executor, pending: &mut BTreeMap<TenantId, Pending>, now: DateTime<Utc>) {
    let due: Vec<(TenantId, Pending)> = pending
        .iter()
        .filter(|(_, p)| p.due <= now)
        .map(|(t, p)| (*t, p.clone()))
        .collect();
    for (tenant, job) in due {
        let ctx = CommandContext::caused_by(&job.cause, NAME);
        let command = TenantCommand::RecordDataDeleted { at: now };
        match exec
            .execute::<Tenant>(tenant.as_uuid(), &command, &ctx)
            .await
        {
            Ok(_) => {
                tracing::info!(reactor = NAME, tenant.id = %tenant, "tenant data deletion recorded after its retention period");
                pending.remove(&tenant);
            }
            Err(CommandError::Rejected(TenantError::RetentionNotOver(_))) => {}
            Err(error) => {
                tracing::warn!(reactor = NAME, tenant.id = %tenant, error = %error, "could not record the deletion; will retry")
            }
        }
    }
}
