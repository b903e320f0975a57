//! The projector test harness (feature `testing`): runs any projector over a given history on
//! a fresh SQLite and a fresh PostgreSQL database, both live (the runner following the log)
//! and by a full rebuild, reads the result with the projector's own queries, and checks that
//! all four readings agree. The test then asserts what the rows should be.
//!
//! ```ignore
//! let rows = History::default()
//!     .event::<Tenant>(tenant.as_uuid(), Some(tenant), provisioned)
//!     .project(Arc::new(TenantDirectory), |db| async move {
//!         TenantDirectory::list(&db, None, 100).await.unwrap()
//!     })
//!     .await;
//! ```
#![expect(
    clippy::expect_used,
    reason = "test support: a panic is the failure report"
)]

use crate::database::Database;
use crate::testing::{eventually, fresh_pg_database, fresh_sqlite_database};
use domain::aggregate::{Aggregate, encode_event};
use domain::event::{Actor, EventMetadata, NewEvent, StreamId};
use domain::event_store::{AppendRequest, ExpectedVersion};
use domain::ids::TenantId;
use projections::runner::{self, RunnerConfig};
use projections::{Projector, ReadDb};
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The events a projector test starts from, appended in this order, one append each.
#[derive(Debug, Default, Clone)]
pub struct History {
    appends: Vec<(StreamId, NewEvent)>,
}

impl History {
    /// An event of aggregate `A` on the stream of `id`, belonging to `tenant`.
    #[must_use]
    pub fn event<A: Aggregate>(
        mut self,
        id: uuid::Uuid,
        tenant: Option<TenantId>,
        event: A::Event,
    ) -> Self {
        let (event_type, payload) = encode_event(&event).expect("the event encodes");
        let mut new = NewEvent::new(
            event_type,
            payload,
            EventMetadata::by(Actor::system("test")),
        );
        if let Some(tenant) = tenant {
            new = new.for_tenant(tenant);
        }
        self.appends
            .push((StreamId::for_aggregate(A::CATEGORY, id), new));
        self
    }

    /// Appends the history to `store`, one append per event, in order.
    pub async fn append_to(&self, store: &Arc<dyn domain::event_store::EventStore>) {
        for (stream, event) in &self.appends {
            store
                .append(AppendRequest::to_stream(
                    stream.clone(),
                    ExpectedVersion::Any,
                    vec![event.clone()],
                ))
                .await
                .expect("the history appends");
        }
    }

    /// Projects the history with `projector` on both backends, live and rebuilt, and returns
    /// what `read` finds (the same on all four, or the test fails).
    pub async fn project<T, R, Fut>(&self, projector: Arc<dyn Projector>, read: R) -> T
    where
        T: PartialEq + Debug,
        R: Fn(ReadDb) -> Fut,
        Fut: Future<Output = T>,
    {
        let sqlite = self
            .project_on(fresh_sqlite_database().await, projector.clone(), &read)
            .await;
        let postgres = self
            .project_on(fresh_pg_database().await, projector, &read)
            .await;
        assert_eq!(sqlite, postgres, "SQLite and PostgreSQL disagree");
        sqlite
    }

    async fn project_on<T, R, Fut>(
        &self,
        db: Database,
        projector: Arc<dyn Projector>,
        read: &R,
    ) -> T
    where
        T: PartialEq + Debug,
        R: Fn(ReadDb) -> Fut,
        Fut: Future<Output = T>,
    {
        let store = db.event_store().await.expect("the event store starts");
        self.append_to(&store).await;
        let head = store.head().await.expect("the head");
        let read_db = db.read_db();
        let config = RunnerConfig {
            batch_size: 7,
            retry_delay: Duration::from_millis(10),
            max_retry_delay: Duration::from_millis(50),
            ..RunnerConfig::default()
        };
        let live = {
            let _runner = runner::spawn(
                store.clone(),
                read_db.clone(),
                vec![projector.clone()],
                config.clone(),
            );
            let name = projector.name();
            eventually(
                Duration::from_secs(10),
                "the projector reaches the head",
                || {
                    let read_db = read_db.clone();
                    async move {
                        let at = runner::checkpoints(&read_db)
                            .await
                            .map_err(|e| e.to_string())?
                            .into_iter()
                            .find(|cp| cp.name == name)
                            .map(|cp| cp.position());
                        if at >= Some(head) {
                            Ok(())
                        } else {
                            Err(format!("at {at:?}, head {head:?}"))
                        }
                    }
                },
            )
            .await;
            read(read_db.clone()).await
        };
        runner::rebuild(&store, &read_db, projector.as_ref(), config, |_, _| {})
            .await
            .expect("the rebuild runs");
        let rebuilt = read(read_db).await;
        assert_eq!(live, rebuilt, "the live read model differs from a rebuild");
        live
    }
}
