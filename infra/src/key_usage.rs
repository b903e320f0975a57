//! When each API key was last used, in the platform table `api_key_usage`: written at most
//! once a minute per key (per process), so busy keys cost no write per request. A failed write
//! is logged and skipped: it only makes "last used" older. Reads are served from what this
//! process wrote or read in the last minute (a dashboard listing keys then costs no query per
//! request); another process's use shows within that minute, as coarse as the writes already
//! are.

use crate::database::Database;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::ids::{ApiKeyId, TenantId};
use domain::key_usage::{KeyUsage, KeyUsageError};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

const EVERY: Duration = Duration::from_secs(60);

/// A key's last use as known at an instant (`None`: never used, as far as was known).
type Known = (Instant, Option<DateTime<Utc>>);

/// Most keys either map holds before it starts afresh.
const MOST_KEYS: usize = 100_000;

#[derive(Debug)]
pub struct DbKeyUsage {
    db: Database,
    written: Mutex<HashMap<Uuid, Instant>>,
    /// What was last known of a key's use, and when that was learnt.
    known: Mutex<HashMap<ApiKeyId, Known>>,
}

impl DbKeyUsage {
    pub fn new(db: Database) -> Self {
        Self {
            db,
            written: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
        }
    }

    fn learn(
        &self,
        now: Instant,
        facts: impl IntoIterator<Item = (ApiKeyId, Option<DateTime<Utc>>)>,
    ) {
        let Ok(mut known) = self.known.lock() else {
            return;
        };
        if known.len() > MOST_KEYS {
            known.clear();
        }
        for (key, at) in facts {
            known.insert(key, (now, at));
        }
    }

    /// Whether this process wrote the key's use less than a minute ago.
    fn recently_written(&self, key: Uuid, now: Instant) -> bool {
        let Ok(mut written) = self.written.lock() else {
            return true;
        };
        if written
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < EVERY)
        {
            return true;
        }
        if written.len() > MOST_KEYS {
            written.clear();
        }
        written.insert(key, now);
        false
    }
}

#[async_trait]
impl KeyUsage for DbKeyUsage {
    async fn record(&self, tenant: TenantId, key: ApiKeyId) {
        let (tenant, key) = (tenant.as_uuid(), key.as_uuid());
        if self.recently_written(key, Instant::now()) {
            return;
        }
        let sql = "INSERT INTO api_key_usage (key_id, tenant_id, last_used_at) VALUES ($1, $2, $3) \
                   ON CONFLICT (key_id) DO UPDATE SET last_used_at = excluded.last_used_at";
        let at = Utc::now();
        self.learn(Instant::now(), [(ApiKeyId::from_uuid(key), Some(at))]);
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

    async fn last_used(
        &self,
        keys: &[ApiKeyId],
    ) -> Result<HashMap<ApiKeyId, DateTime<Utc>>, KeyUsageError> {
        let now = Instant::now();
        let mut answer = HashMap::new();
        let mut missing = Vec::new();
        {
            let known = self
                .known
                .lock()
                .map_err(|_| KeyUsageError("the key usage cache is poisoned".into()))?;
            for key in keys {
                match known.get(key) {
                    Some((learnt, at)) if now.duration_since(*learnt) < EVERY => {
                        if let Some(at) = at {
                            answer.insert(*key, *at);
                        }
                    }
                    _ => missing.push(*key),
                }
            }
        }
        if missing.is_empty() {
            return Ok(answer);
        }
        let keys = &missing;
        let binds = (1..=keys.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql =
            format!("SELECT key_id, last_used_at FROM api_key_usage WHERE key_id IN ({binds})");
        let rows: Vec<(Uuid, DateTime<Utc>)> = match &self.db {
            Database::Postgres(pool) => {
                let mut query = sqlx::query_as(&sql);
                for key in keys {
                    query = query.bind(key.as_uuid());
                }
                query.fetch_all(pool).await
            }
            Database::Sqlite(db) => {
                let mut query = sqlx::query_as(&sql);
                for key in keys {
                    query = query.bind(key.as_uuid());
                }
                query.fetch_all(&db.reader).await
            }
        }
        .map_err(|e| KeyUsageError(e.to_string()))?;
        let found: HashMap<ApiKeyId, DateTime<Utc>> = rows
            .into_iter()
            .map(|(key, at)| (ApiKeyId::from_uuid(key), at))
            .collect();
        self.learn(now, keys.iter().map(|k| (*k, found.get(k).copied())));
        answer.extend(found);
        Ok(answer)
    }
}
