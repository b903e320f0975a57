//! The write path against real stores: every test runs on SQLite and on PostgreSQL.
#![expect(clippy::unwrap_used, reason = "tests")]

use chrono::{TimeZone, Utc};
use commands::{CommandContext, CommandError, ExecutePolicy, Executor};
use domain::aggregate::{Aggregate, Upcasters};
use domain::event::{Actor, EventMetadata, NewEvent, StreamId, StreamVersion};
use domain::event_store::{AppendRequest, EventStore, ExpectedVersion, StreamRead};
use domain::ids::{CommandId, TenantId, UserId};
use domain::tenant::{
    ResourceKind, Slug, Tenant, TenantCommand, TenantError, TenantName, TenantSettings,
    TenantStatus,
};
use infra::database::Database;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

infra::on_both_backends!(
    tenant_lifecycle_writes_events_with_the_callers_metadata,
    a_command_id_executes_once_even_after_a_restart,
    a_retry_that_would_write_again_gets_the_first_outcome,
    an_idempotency_key_reused_for_another_command_is_refused,
    a_command_that_changes_nothing_writes_nothing,
    concurrent_commands_on_one_aggregate_all_land_by_retrying,
    a_per_tenant_limit_holds_under_concurrent_creates,
    snapshots_do_not_change_the_loaded_state,
    events_stored_under_an_old_schema_are_upcast_on_read,
);

async fn executor(db: &Database) -> Executor {
    Executor::new(db.event_store().await.unwrap())
}

fn at(h: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, h, 0, 0).single().unwrap()
}

fn provision(tenant: TenantId, slug: &str) -> TenantCommand {
    TenantCommand::Provision {
        tenant_id: tenant,
        name: TenantName::parse("Acme Backups").unwrap(),
        slug: Slug::parse(slug).unwrap(),
        settings: TenantSettings::default(),
        at: at(0),
    }
}

fn settings(n: usize) -> TenantSettings {
    TenantSettings::parse(BTreeMap::from([("n".to_owned(), n.to_string())])).unwrap()
}

async fn tenant_lifecycle_writes_events_with_the_callers_metadata(db: Database) {
    let exec = executor(&db).await;
    let tenant = TenantId::new_v7();
    let user = UserId::new_v7();
    let ctx = || {
        CommandContext::new(Actor::User { id: user })
            .for_tenant(tenant)
            .from_ip("198.51.100.7")
    };
    let id = tenant.as_uuid();
    let first_ctx = ctx();
    let first = exec
        .execute::<Tenant>(id, &provision(tenant, "acme"), &first_ctx)
        .await
        .unwrap();
    assert_eq!(first.version, StreamVersion(1));
    let steps = [
        TenantCommand::Rename {
            name: TenantName::parse("Acme Ltd").unwrap(),
            at: at(1),
        },
        TenantCommand::ChangeSettings {
            settings: settings(1),
            at: at(2),
        },
        TenantCommand::Suspend {
            reason: "unpaid invoice".into(),
            at: at(3),
        },
        TenantCommand::Reactivate { at: at(4) },
        TenantCommand::Close {
            at: at(5),
            retention: chrono::Duration::days(30),
        },
    ];
    let mut last = first;
    for step in &steps {
        let outcome = exec.execute::<Tenant>(id, step, &ctx()).await.unwrap();
        assert_eq!(outcome.version.0, last.version.0 + 1);
        assert!(outcome.position > last.position);
        last = outcome;
    }
    // A closed tenant refuses further changes.
    let same = TenantCommand::Rename {
        name: TenantName::parse("Acme Ltd").unwrap(),
        at: at(6),
    };
    let rejected = exec.execute::<Tenant>(id, &same, &ctx()).await.unwrap_err();
    assert!(
        matches!(rejected, CommandError::Rejected(TenantError::Closed)),
        "{rejected}"
    );

    let loaded = exec.load::<Tenant>(id).await.unwrap();
    assert_eq!(loaded.state.status, Some(TenantStatus::Closed));
    assert_eq!(
        loaded.state.name.as_ref().map(TenantName::as_str),
        Some("Acme Ltd")
    );
    assert_eq!(loaded.state.settings, settings(1));
    assert_eq!(loaded.version, StreamVersion(6));

    let stored = exec
        .store()
        .read_stream(
            &StreamId::for_aggregate("tenant", id),
            StreamRead::forwards(),
        )
        .await
        .unwrap();
    let types: Vec<&str> = stored.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "TenantProvisioned",
            "TenantRenamed",
            "TenantSettingsChanged",
            "TenantSuspended",
            "TenantReactivated",
            "TenantClosed"
        ]
    );
    let e = &stored[0];
    assert_eq!(e.tenant_id, Some(tenant));
    assert_eq!(e.metadata.command_id, Some(first_ctx.command_id));
    assert_eq!(e.metadata.correlation_id, Some(first_ctx.correlation_id));
    assert_eq!(e.metadata.actor, Actor::User { id: user });
    assert_eq!(e.metadata.source_ip.as_deref(), Some("198.51.100.7"));
}

async fn a_command_id_executes_once_even_after_a_restart(db: Database) {
    let tenant = TenantId::new_v7();
    let ctx = CommandContext::new(Actor::system("test")).with_command_id(CommandId::new_v7());
    let first = executor(&db)
        .await
        .execute::<Tenant>(tenant.as_uuid(), &provision(tenant, "once"), &ctx)
        .await
        .unwrap();
    assert!(!first.replayed);
    // A new executor over a new store instance stands for a restarted process. Provisioning
    // again would be refused; the same command id returns the first outcome instead.
    let again = executor(&db)
        .await
        .execute::<Tenant>(tenant.as_uuid(), &provision(tenant, "once"), &ctx)
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(
        (again.version, again.position),
        (first.version, first.position)
    );
    let fresh = CommandContext::new(Actor::system("test"));
    let refused = executor(&db)
        .await
        .execute::<Tenant>(tenant.as_uuid(), &provision(tenant, "once"), &fresh)
        .await
        .unwrap_err();
    assert!(matches!(
        refused,
        CommandError::Rejected(TenantError::AlreadyProvisioned)
    ));
    let stream = StreamId::for_aggregate("tenant", tenant.as_uuid());
    let events = db
        .event_store()
        .await
        .unwrap()
        .read_stream(&stream, StreamRead::forwards())
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
}

async fn concurrent_commands_on_one_aggregate_all_land_by_retrying(db: Database) {
    let exec = executor(&db).await.with_policy(ExecutePolicy {
        max_attempts: 20,
        snapshot_every: 0,
    });
    let tenant = TenantId::new_v7();
    let ctx = || CommandContext::new(Actor::system("test"));
    exec.execute::<Tenant>(tenant.as_uuid(), &provision(tenant, "busy"), &ctx())
        .await
        .unwrap();
    let tasks: Vec<_> = (1..=8)
        .map(|n| {
            let exec = exec.clone();
            tokio::spawn(async move {
                let cmd = TenantCommand::ChangeSettings {
                    settings: settings(n),
                    at: at(1),
                };
                exec.execute::<Tenant>(tenant.as_uuid(), &cmd, &ctx())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap().version.0);
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=9).collect::<Vec<_>>());
}

/// A resource that counts against a per-tenant limit: created in the same atomic append as
/// the tenant event that reserves its slot.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Project {
    created: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum ProjectEvent {
    ProjectCreated { tenant_id: TenantId },
}

#[derive(Debug, thiserror::Error)]
enum ProjectError {
    #[error("project exists")]
    Exists,
    #[error(transparent)]
    Tenant(#[from] TenantError),
}

impl Aggregate for Project {
    const CATEGORY: &'static str = "project";
    type Command = TenantId;
    type Event = ProjectEvent;
    type Error = ProjectError;
    fn decide(&self, tenant: &TenantId) -> Result<Vec<ProjectEvent>, ProjectError> {
        if self.created {
            return Err(ProjectError::Exists);
        }
        Ok(vec![ProjectEvent::ProjectCreated { tenant_id: *tenant }])
    }
    fn evolve(&mut self, _: &ProjectEvent) {
        self.created = true;
    }
}

async fn a_per_tenant_limit_holds_under_concurrent_creates(db: Database) {
    const LIMIT: u32 = 5;
    let exec = executor(&db).await.with_policy(ExecutePolicy {
        max_attempts: 25,
        snapshot_every: 0,
    });
    let tenant = TenantId::new_v7();
    exec.execute::<Tenant>(
        tenant.as_uuid(),
        &provision(tenant, "limited"),
        &CommandContext::new(Actor::system("t")),
    )
    .await
    .unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let exec = exec.clone();
            tokio::spawn(async move {
                let project = Uuid::now_v7();
                let ctx = CommandContext::new(Actor::system("t")).for_tenant(tenant);
                let outcome = exec
                    .execute_with::<Project, Tenant, ProjectError>(
                        project,
                        Some(tenant.as_uuid()),
                        &ctx,
                        |p, t| {
                            let reserve = TenantCommand::AddResource {
                                kind: ResourceKind::Project,
                                resource_id: project,
                                limit: LIMIT,
                            };
                            Ok((p.decide(&tenant)?, t.decide(&reserve)?))
                        },
                    )
                    .await;
                (project, outcome)
            })
        })
        .collect();
    let (mut created, mut refused) = (Vec::new(), 0);
    for t in tasks {
        match t.await.unwrap() {
            (project, Ok(_)) => created.push(project),
            (
                _,
                Err(CommandError::Rejected(ProjectError::Tenant(TenantError::LimitReached {
                    limit: LIMIT,
                    ..
                }))),
            ) => refused += 1,
            (_, Err(other)) => panic!("unexpected outcome: {other}"),
        }
    }
    assert_eq!(created.len(), LIMIT as usize);
    assert_eq!(refused, 50 - LIMIT as usize);
    let tenant_state = exec.load::<Tenant>(tenant.as_uuid()).await.unwrap().state;
    let held: Vec<Uuid> = tenant_state.resources[&ResourceKind::Project]
        .iter()
        .copied()
        .collect();
    created.sort_unstable();
    assert_eq!(held, created);
    // No project stream exists for a refused create.
    let log = exec
        .store()
        .read_all(domain::event::Position::START, 10_000)
        .await
        .unwrap();
    assert_eq!(
        log.iter()
            .filter(|e| e.event_type == "ProjectCreated")
            .count(),
        LIMIT as usize
    );
}

async fn snapshots_do_not_change_the_loaded_state(db: Database) {
    let store = db.event_store().await.unwrap();
    let with = Executor::new(store.clone())
        .with_snapshots(db.snapshot_store())
        .with_policy(ExecutePolicy {
            max_attempts: 10,
            snapshot_every: 10,
        });
    let without = Executor::new(store.clone());
    let tenant = TenantId::new_v7();
    let ctx = || CommandContext::new(Actor::system("t"));
    with.execute::<Tenant>(tenant.as_uuid(), &provision(tenant, "snap"), &ctx())
        .await
        .unwrap();
    for n in 0..56 {
        let cmd = TenantCommand::ChangeSettings {
            settings: settings(n),
            at: at(1),
        };
        with.execute::<Tenant>(tenant.as_uuid(), &cmd, &ctx())
            .await
            .unwrap();
    }
    let stream = StreamId::for_aggregate("tenant", tenant.as_uuid());
    let snapshot = db
        .snapshot_store()
        .load(&stream)
        .await
        .unwrap()
        .expect("a snapshot was taken");
    assert_eq!(snapshot.version, StreamVersion(50));
    // A fresh executor has nothing cached: it loads from the snapshot plus the tail.
    let fresh = Executor::new(store.clone())
        .with_snapshots(db.snapshot_store())
        .with_policy(ExecutePolicy {
            max_attempts: 10,
            snapshot_every: 10,
        });
    let a = fresh.load::<Tenant>(tenant.as_uuid()).await.unwrap();
    assert!(
        a.from_snapshot,
        "a fresh executor loads a long stream from its snapshot"
    );
    let b = without.load::<Tenant>(tenant.as_uuid()).await.unwrap();
    assert!(!b.from_snapshot);
    assert_eq!(a.state, b.state);
    assert_eq!(a.version, b.version);
    assert_eq!(a.version, StreamVersion(57));
    assert_eq!(a.state.settings, settings(55));
}

/// A counter whose `Incremented` event was `{ "amount": n }` in schema 1 and is `{ "by": n }`
/// in schema 2.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Counter {
    total: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum CounterEvent {
    Incremented { by: i64 },
}

impl Aggregate for Counter {
    const CATEGORY: &'static str = "counter";
    type Command = i64;
    type Event = CounterEvent;
    type Error = std::convert::Infallible;
    fn decide(&self, by: &i64) -> Result<Vec<CounterEvent>, Self::Error> {
        Ok(vec![CounterEvent::Incremented { by: *by }])
    }
    fn evolve(&mut self, CounterEvent::Incremented { by }: &CounterEvent) {
        self.total += by;
    }
    fn schema_version(event_type: &str) -> u32 {
        if event_type == "Incremented" { 2 } else { 1 }
    }
    fn upcasters() -> Upcasters {
        Upcasters::default().register("Incremented", 1, |mut v| {
            v["by"] = v["amount"].take();
            v
        })
    }
}

async fn events_stored_under_an_old_schema_are_upcast_on_read(db: Database) {
    let store: Arc<dyn EventStore> = db.event_store().await.unwrap();
    let id = Uuid::now_v7();
    let v1 = NewEvent::new(
        "Incremented",
        json!({ "amount": 40 }),
        EventMetadata::by(Actor::system("legacy")),
    )
    .with_schema_version(1);
    store
        .append(AppendRequest::to_stream(
            StreamId::for_aggregate("counter", id),
            ExpectedVersion::NoStream,
            vec![v1],
        ))
        .await
        .unwrap();
    let exec = Executor::new(store.clone());
    assert_eq!(exec.load::<Counter>(id).await.unwrap().state.total, 40);
    exec.execute::<Counter>(id, &2, &CommandContext::new(Actor::system("t")))
        .await
        .unwrap();
    assert_eq!(exec.load::<Counter>(id).await.unwrap().state.total, 42);
    let stored = store
        .read_stream(
            &StreamId::for_aggregate("counter", id),
            StreamRead::forwards(),
        )
        .await
        .unwrap();
    assert_eq!(
        stored[0].schema_version, 1,
        "stored events are never rewritten"
    );
    assert_eq!(stored[1].schema_version, 2);
    assert_eq!(stored[1].payload, json!({ "by": 2 }));
}

async fn a_retry_that_would_write_again_gets_the_first_outcome(db: Database) {
    let exec = executor(&db).await;
    let tenant = TenantId::new_v7();
    let ctx = || CommandContext::new(Actor::system("t"));
    exec.execute::<Tenant>(tenant.as_uuid(), &provision(tenant, "retry"), &ctx())
        .await
        .unwrap();
    let key = ctx().with_command_id(CommandId::new_v7());
    let set = |n| TenantCommand::ChangeSettings {
        settings: settings(n),
        at: at(1),
    };
    let first = exec
        .execute::<Tenant>(tenant.as_uuid(), &set(1), &key)
        .await
        .unwrap();
    exec.execute::<Tenant>(tenant.as_uuid(), &set(2), &ctx())
        .await
        .unwrap();
    // The retry's decision would write (settings are 2 now), but the key was used: the first
    // outcome comes back and nothing is written.
    let retry = exec
        .execute::<Tenant>(tenant.as_uuid(), &set(1), &key)
        .await
        .unwrap();
    assert!(retry.replayed);
    assert_eq!(
        (retry.version, retry.position),
        (first.version, first.position)
    );
    let state = exec.load::<Tenant>(tenant.as_uuid()).await.unwrap();
    assert_eq!(state.state.settings, settings(2));
    assert_eq!(state.version, StreamVersion(3));
}

async fn an_idempotency_key_reused_for_another_command_is_refused(db: Database) {
    let exec = executor(&db).await;
    let (a, b) = (TenantId::new_v7(), TenantId::new_v7());
    let key = CommandContext::new(Actor::system("t")).with_command_id(CommandId::new_v7());
    exec.execute::<Tenant>(a.as_uuid(), &provision(a, "first"), &key)
        .await
        .unwrap();
    let err = exec
        .execute::<Tenant>(b.as_uuid(), &provision(b, "second"), &key)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::IdempotencyKeyReused { .. }),
        "{err}"
    );
    assert_eq!(
        exec.load::<Tenant>(b.as_uuid()).await.unwrap().version,
        StreamVersion::NONE
    );
}

async fn a_command_that_changes_nothing_writes_nothing(db: Database) {
    let exec = executor(&db).await;
    let tenant = TenantId::new_v7();
    let ctx = || CommandContext::new(Actor::system("t"));
    let first = exec
        .execute::<Tenant>(tenant.as_uuid(), &provision(tenant, "same"), &ctx())
        .await
        .unwrap();
    let same = TenantCommand::Rename {
        name: TenantName::parse("Acme Backups").unwrap(),
        at: at(1),
    };
    // From a fresh executor (nothing cached) and from the same one.
    for exec in [executor(&db).await, exec.clone()] {
        let outcome = exec
            .execute::<Tenant>(tenant.as_uuid(), &same, &ctx())
            .await
            .unwrap();
        assert_eq!(outcome.appended, 0);
        assert_eq!(outcome.version, first.version);
        assert_eq!(
            outcome.position, first.position,
            "a no-op reports where the state stands"
        );
    }
    assert_eq!(exec.store().head().await.unwrap(), first.position);
}
