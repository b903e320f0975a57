//! Leases: each projector runs in exactly one process at a time. On PostgreSQL the lease is a
//! session advisory lock held on a dedicated connection: when the holding process dies, its
//! connection closes, PostgreSQL releases the lock and a standby takes over within
//! [`RETRY`]. SQLite is one process per file, so its lease is always granted.
//!
//! Even if two runners overlapped (a lease lost but not yet noticed), the checkpoint guard
//! (`WHERE position = <the position this batch started from>`) lets only one of them commit a
//! batch, so no effect is doubled.

use crate::ReadDb;
use sqlx::{Connection, PgConnection};
use std::time::Duration;

/// How often a standby asks for the lease, and a holder checks it still has it.
pub const RETRY: Duration = Duration::from_secs(1);

/// `pg_try_advisory_lock(int, int)` class for projection leases (distinct from the event
/// store's single-bigint append lock).
const LEASE_CLASS: i32 = 0x7e4a_0001;

#[derive(Debug)]
pub(crate) enum Lease {
    Embedded,
    Postgres(PgConnection),
}

/// A stable 31-bit key for a projector name (FNV-1a).
fn key(name: &str) -> i32 {
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    i32::try_from(hash & 0x7fff_ffff).unwrap_or_default()
}

/// Waits until this process holds the lease for `name`.
pub(crate) async fn acquire(db: &ReadDb, name: &str) -> Lease {
    let ReadDb::Postgres(pool) = db else {
        return Lease::Embedded;
    };
    let mut waiting_logged = false;
    loop {
        let attempt = async {
            let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
            loop {
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
                    .bind(LEASE_CLASS)
                    .bind(key(name))
                    .fetch_one(&mut conn)
                    .await?;
                if got {
                    return Ok::<_, sqlx::Error>(conn);
                }
                if !waiting_logged {
                    tracing::info!(
                        projection = name,
                        "another process holds the projection lease; standing by"
                    );
                    waiting_logged = true;
                }
                tokio::time::sleep(RETRY).await;
            }
        }
        .await;
        match attempt {
            Ok(conn) => {
                tracing::info!(projection = name, "acquired the projection lease");
                return Lease::Postgres(conn);
            }
            Err(error) => {
                tracing::warn!(projection = name, error = %error, "cannot ask for the projection lease; retrying");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

impl Lease {
    /// Completes when the lease is lost: its connection failed or stopped answering within
    /// [`RETRY`], or the lock is no longer held by it.
    pub(crate) async fn lost(&mut self, name: &str) {
        let Self::Postgres(conn) = self else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(RETRY).await;
            let check = sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = pg_backend_pid() \
                 AND locktype = 'advisory' AND classid = $1::oid AND objid = $2::oid AND granted)",
            )
            .bind(i64::from(LEASE_CLASS))
            .bind(i64::from(key(name)))
            .fetch_one(&mut *conn);
            match tokio::time::timeout(RETRY, check).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    tracing::warn!(projection = name, "projection lease no longer held");
                    return;
                }
                Ok(Err(error)) => {
                    tracing::warn!(projection = name, error = %error, "projection lease connection failed");
                    return;
                }
                Err(_) => {
                    tracing::warn!(
                        projection = name,
                        "projection lease connection stopped answering"
                    );
                    return;
                }
            }
        }
    }
}
