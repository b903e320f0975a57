//! When each API key was last used: written to `api_key_usage` at most once a minute per key
//! (per process), so busy keys cost no write per request. A failed write is logged and
//! skipped: it only makes "last used" older.

use crate::database::Database;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

const EVERY: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct KeyUsage {
    db: Database,
    written: Mutex<HashMap<Uuid, Instant>>,
}

impl KeyUsage {
    pub fn new(db: Database) -> Self {
        Self {
            db,
            written: Mutex::new(HashMap::new()),
        }
    }

    pub async fn touch(&self, tenant: Uuid, key: Uuid) {
        let now = Instant::now();
        {
            let Ok(mut written) = self.written.lock() else {
                return;
            };
            if written
                .get(&key)
                .is_some_and(|at| now.duration_since(*at) < EVERY)
            {
                return;
            }
            if written.len() > 100_000 {
                written.clear();
            }
            written.insert(key, now);
        }
        let sql = "INSERT INTO api_key_usage (key_id, tenant_id, last_used_at) VALUES ($1, $2, $3) \
                   ON CONFLICT (key_id) DO UPDATE SET last_used_at = excluded.last_used_at";
        let at = chrono::Utc::now();
        let result = match &self.db {
            Database::Postgres(pool) => sqlx::query(sql)
                .bind(key)
                .bind(tenant)
                .bind(at)
                .execute(pool)
                .await
                .map(drop),
            Database::Sqlite(db) => sqlx::query(sql)
                .bind(key)
                .bind(tenant)
                .bind(at)
                .execute(&db.writer)
                .await
                .map(drop),
        };
        if let Err(error) = result {
            tracing::warn!(api_key.id = %key, error = %error, "could not record API key use");
        }
    }
}
