//! The tenancy use cases against real stores (SQLite and PostgreSQL): creating a tenant
//! (idempotently, with or without an owner) and recording a closed tenant's data deleted once,
//! whoever records it.
#![expect(clippy::unwrap_used, reason = "tests")]

use commands::tenancy::{
    CreateTenant, CreateTenantError, Created, DueDeletion, Founder, OperatorAction, RETENTION,
    SlugClaims, TenantChange, create_tenant, operate_tenant, record_data_deleted,
};
use commands::{CommandContext, CommandError, Executor};
use domain::access::TenantAccess;
use domain::aggregate::Aggregate;
use domain::event::{Actor, StreamId};
use domain::event_store::StreamRead;
use domain::ids::UserId;
use domain::tenant::{Slug, Tenant, TenantError, TenantName, TenantSettings};
use infra::database::Database;
use uuid::Uuid;

infra::on_both_backends!(
    tenants_from_before_slug_claims_get_their_slugs_claimed,
    a_slug_names_one_tenant_even_under_concurrent_creates,
    a_closed_tenants_data_is_recorded_deleted_once_whoever_records_it,
    a_retried_create_names_the_same_tenant_and_writes_nothing,
    an_operator_provisions_without_an_owner_and_a_missing_owner_is_refused,
);

fn input(slug: &str, founder: Founder) -> CreateTenant {
    CreateTenant {
        name: TenantName::parse("Leaving").unwrap(),
        slug: Slug::parse(slug).unwrap(),
        settings: TenantSettings::default(),
        founder,
    }
}

fn operator(key: Option<Uuid>) -> CommandContext {
    CommandContext::from_request(Actor::system("test"), Uuid::nil(), "test", key)
}

/// An operator provisions tenant `slug` (no owner yet), with idempotency `key`.
async fn provision(
    exec: &Executor,
    key: Option<Uuid>,
    slug: &str,
) -> Result<Created, CommandError<CreateTenantError>> {
    let now = chrono::Utc::now();
    create_tenant(exec, &operator(key), now, input(slug, Founder::Operator)).await
}

async fn a_closed_tenants_data_is_recorded_deleted_once_whoever_records_it(db: Database) {
    let store = db.event_store().await.unwrap();
    let exec = Executor::new(store.clone());
    let now = chrono::Utc::now();
    let created = provision(&exec, None, "leaving").await.unwrap();
    let tenant = created.tenant;
    let close = OperatorAction::Change(TenantChange::Close {
        retention: chrono::Duration::hours(1),
    });
    operate_tenant(&exec, &operator(None), now, tenant, close)
        .await
        .unwrap();
    let stream = StreamId::for_aggregate(Tenant::CATEGORY, tenant.as_uuid());
    let events = store
        .read_stream(&stream, StreamRead::forwards())
        .await
        .unwrap();
    let closed = events
        .iter()
        .find(|e| e.event_type == "TenantClosed")
        .unwrap();
    let due = DueDeletion {
        tenant,
        due: now + chrono::Duration::hours(1),
        closed_by: closed.event_id,
        correlation: closed.metadata.correlation_id,
    };

    // Before the retention period is over the aggregate refuses.
    let early = record_data_deleted(&exec, now, &due).await;
    assert!(
        matches!(
            early,
            Err(CommandError::Rejected(TenantError::RetentionNotOver(_)))
        ),
        "{early:?}"
    );

    // Two processes (executors of their own) recording it at once: one write; the other gets
    // the first outcome back, not a refusal (its command id is the same one).
    let later = now + chrono::Duration::hours(2);
    let other = Executor::new(store.clone());
    let (a, b) = tokio::join!(
        record_data_deleted(&exec, later, &due),
        record_data_deleted(&other, later, &due)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        [a.replayed, b.replayed].iter().filter(|r| !**r).count(),
        1,
        "exactly one of them wrote: {a:?} {b:?}"
    );
    assert_eq!(a.position, b.position);
    // And again after a restart (a new executor, nothing cached): still the first outcome.
    let again = record_data_deleted(&Executor::new(store.clone()), later, &due)
        .await
        .unwrap();
    assert!(again.replayed);

    let events = store
        .read_stream(&stream, StreamRead::forwards())
        .await
        .unwrap();
    let deletions: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "TenantDataDeleted")
        .collect();
    assert_eq!(deletions.len(), 1);
    let deletion = deletions[0];
    assert_eq!(deletion.metadata.causation_id, Some(closed.event_id));
    assert_eq!(
        deletion.metadata.command_id,
        Some(CommandContext::caused_by(closed, RETENTION).command_id),
        "the command id derives from the causing event"
    );
    assert_eq!(deletion.metadata.actor, Actor::system(RETENTION));
    assert_eq!(
        deletion.metadata.correlation_id,
        closed.metadata.correlation_id
    );
    assert_eq!(deletion.tenant_id, Some(tenant));
}

async fn a_retried_create_names_the_same_tenant_and_writes_nothing(db: Database) {
    let store = db.event_store().await.unwrap();
    let exec = Executor::new(store.clone());
    let key = Some(Uuid::now_v7());
    let first = provision(&exec, key, "acme").await.unwrap();
    let retry = provision(&exec, key, "acme").await.unwrap();
    assert_eq!(first.tenant, retry.tenant);
    assert!(!first.outcome.replayed);
    assert!(retry.outcome.replayed);
    assert_eq!(first.outcome.position, retry.outcome.position);
    assert_eq!(store.head().await.unwrap(), first.outcome.position);

    // Without a key every call is a new tenant; the slug stays the first one's.
    let a = provision(&exec, None, "acme-two").await.unwrap();
    let b = provision(&exec, None, "acme-three").await.unwrap();
    assert_ne!(a.tenant, b.tenant);
    assert!(!b.outcome.replayed);
    let taken = provision(&exec, None, "acme").await;
    assert!(
        matches!(
            taken,
            Err(CommandError::Rejected(CreateTenantError::Tenant(
                TenantError::SlugTaken
            )))
        ),
        "{taken:?}"
    );
}

async fn an_operator_provisions_without_an_owner_and_a_missing_owner_is_refused(db: Database) {
    let store = db.event_store().await.unwrap();
    let exec = Executor::new(store.clone());
    let now = chrono::Utc::now();
    let created = provision(&exec, None, "solo").await.unwrap();
    let tenant = exec.load::<Tenant>(created.tenant.as_uuid()).await.unwrap();
    assert!(tenant.state.status.is_some(), "the tenant is provisioned");
    let access = exec
        .load::<TenantAccess>(created.tenant.as_uuid())
        .await
        .unwrap();
    assert!(access.state.members.is_empty(), "nobody owns it yet");

    let head = store.head().await.unwrap();
    let ghost = Founder::User(UserId::new_v7());
    let refused = create_tenant(&exec, &operator(None), now, input("ghost", ghost)).await;
    assert!(
        matches!(
            refused,
            Err(CommandError::Rejected(CreateTenantError::NoSuchOwner))
        ),
        "{refused:?}"
    );
    assert_eq!(store.head().await.unwrap(), head, "nothing was written");
}

/// Slugs are unique across the platform: eight concurrent creates of one slug leave one
/// tenant, the others are refused `SlugTaken`; a retry of the winner (same key) still gets its
/// tenant back.
async fn a_slug_names_one_tenant_even_under_concurrent_creates(db: Database) {
    let exec = Executor::new(db.event_store().await.unwrap());
    let keys: Vec<Uuid> = (0..8).map(|_| Uuid::now_v7()).collect();
    let attempts: Vec<_> = keys
        .iter()
        .map(|key| {
            let (exec, key) = (exec.clone(), *key);
            tokio::spawn(async move {
                create_tenant(
                    &exec,
                    &operator(Some(key)),
                    chrono::Utc::now(),
                    input("shared", Founder::Operator),
                )
                .await
            })
        })
        .collect();
    let mut created = Vec::new();
    for (key, attempt) in keys.iter().zip(attempts) {
        match attempt.await.unwrap() {
            Ok(done) => created.push((*key, done.tenant)),
            Err(CommandError::Rejected(CreateTenantError::Tenant(TenantError::SlugTaken))) => {}
            Err(other) => panic!("unexpected: {other}"),
        }
    }
    assert_eq!(created.len(), 1, "{created:?}");
    let (key, tenant) = created[0];
    let again = create_tenant(
        &exec,
        &operator(Some(key)),
        chrono::Utc::now(),
        input("shared", Founder::Operator),
    )
    .await
    .unwrap();
    assert_eq!(again.tenant, tenant);
    assert!(again.outcome.replayed);
}

/// Tenants provisioned before slugs were claimed (written here straight to their streams, as
/// the old code did) get their claims from the `slug_claims` reactor: the first of two with
/// one slug keeps it, a redelivery claims nothing twice, and afterwards a new tenant cannot
/// take a legacy tenant's slug.
async fn tenants_from_before_slug_claims_get_their_slugs_claimed(db: Database) {
    use domain::event::Position;
    use domain::ids::TenantId;
    use domain::reactor::Reactor;
    use domain::tenant::{SlugClaim, TenantCommand};
    let store = db.event_store().await.unwrap();
    let exec = Executor::new(store.clone());
    let legacy = async |slug: &str| {
        let tenant = TenantId::new_v7();
        let provision = TenantCommand::Provision {
            tenant_id: tenant,
            name: TenantName::parse("Old").unwrap(),
            slug: Slug::parse(slug).unwrap(),
            settings: TenantSettings::default(),
            at: chrono::Utc::now(),
        };
        exec.execute::<Tenant>(tenant.as_uuid(), &provision, &operator(None))
            .await
            .unwrap();
        tenant
    };
    let first = legacy("old-slug").await;
    let second = legacy("old-slug").await;
    let other = legacy("other-slug").await;
    let owner = async |slug: &str| {
        exec.load::<SlugClaim>(SlugClaim::id_of(&Slug::parse(slug).unwrap()))
            .await
            .unwrap()
            .state
            .tenant
    };
    assert_eq!(
        owner("old-slug").await,
        None,
        "legacy tenants have no claims"
    );

    let reactor = SlugClaims::new(exec.clone());
    let log = store.read_all(Position::START, 1_000).await.unwrap();
    let tenants: Vec<_> = log
        .into_iter()
        .filter(|e| reactor.reads().includes(e))
        .collect();
    reactor.react(&tenants).await.unwrap();
    assert_eq!(owner("old-slug").await, Some(first));
    assert_eq!(owner("other-slug").await, Some(other));
    assert_ne!(owner("old-slug").await, Some(second));
    let head = store.head().await.unwrap();
    reactor.react(&tenants).await.unwrap();
    assert_eq!(
        store.head().await.unwrap(),
        head,
        "a redelivery claims nothing twice"
    );

    let taken = provision(&exec, None, "old-slug").await;
    assert!(
        matches!(
            taken,
            Err(CommandError::Rejected(CreateTenantError::Tenant(
                TenantError::SlugTaken
            )))
        ),
        "{taken:?}"
    );
    // A new tenant's own claim is found made.
    provision(&exec, None, "new-slug").await.unwrap();
    let log: Vec<_> = store
        .read_all(head, 1_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| reactor.reads().includes(e))
        .collect();
    let head = store.head().await.unwrap();
    reactor.react(&log).await.unwrap();
    assert_eq!(store.head().await.unwrap(), head);
}
