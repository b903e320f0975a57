//! The read-model database: the same SQLite file or PostgreSQL database as the event store
//! (pools handed over by the wiring), or another one.

use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

#[derive(Debug, Clone)]
pub enum ReadDb {
    /// SQLite: a one-connection pool for writes and a pool for reads.
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
    },
    Postgres(PgPool),
}

/// `BEGIN IMMEDIATE` on a SQLite write pool (the write lock taken up front, so another process
/// writing the file makes this wait instead of failing on the read-to-write upgrade).
///
/// A task aborted between sqlx's `BEGIN` and the `Transaction` that would roll it back (a
/// runner stopped at shutdown or on a lost lease) can leave the pool's connection inside a
/// transaction, and every later `BEGIN IMMEDIATE` on it fails with
/// `InvalidSavePointStatement`. Such a connection is closed, and the pool opens a clean one.
pub async fn begin_immediate(
    pool: &SqlitePool,
) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
    match pool.begin_with("BEGIN IMMEDIATE").await {
        Err(sqlx::Error::InvalidSavePointStatement) => {
            tracing::warn!("a SQLite connection was left inside a transaction; replacing it");
            pool.acquire().await?.close().await?;
            pool.begin_with("BEGIN IMMEDIATE").await
        }
        other => other,
    }
}

/// A write transaction on the read-model database.
#[derive(Debug)]
pub enum ReadTx<'c> {
    Sqlite(Transaction<'c, Sqlite>),
    Postgres(Transaction<'c, Postgres>),
}

impl ReadDb {
    pub async fn begin(&self) -> Result<ReadTx<'static>, sqlx::Error> {
        Ok(match self {
            Self::Sqlite { writer, .. } => ReadTx::Sqlite(begin_immediate(writer).await?),
            Self::Postgres(pool) => ReadTx::Postgres(pool.begin().await?),
        })
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }
}

impl ReadTx<'_> {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(tx) => tx.commit().await,
            Self::Postgres(tx) => tx.commit().await,
        }
    }

    /// The column types read-model DDL uses for ids and times on this backend.
    pub fn id_and_time_types(&self) -> (&'static str, &'static str) {
        match self {
            Self::Postgres(_) => ("UUID", "TIMESTAMPTZ"),
            Self::Sqlite(_) => ("BLOB", "TEXT"),
        }
    }

    /// Runs a statement without parameters (DDL).
    pub async fn execute_ddl(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(tx) => {
                let conn: &mut sqlx::SqliteConnection = tx;
                sqlx::query(sql)
                    .persistent(false)
                    .execute(conn)
                    .await
                    .map(drop)
            }
            Self::Postgres(tx) => {
                let conn: &mut sqlx::PgConnection = tx;
                sqlx::query(sql)
                    .persistent(false)
                    .execute(conn)
                    .await
                    .map(drop)
            }
        }
    }
}

/// Runs one SQL statement, written once with `$1, $2, ...` placeholders (both backends accept
/// them), with the same binds on either backend.
#[macro_export]
macro_rules! exec {
    ($tx:expr, $sql:expr $(, $bind:expr)* $(,)?) => {
        match $tx {
            $crate::ReadTx::Sqlite(tx) => sqlx::query($sql)$(.bind($bind))*.execute(&mut **tx).await.map(|r| r.rows_affected()),
            $crate::ReadTx::Postgres(tx) => sqlx::query($sql)$(.bind($bind))*.execute(&mut **tx).await.map(|r| r.rows_affected()),
        }
    };
}

/// Runs one query, written once with `$1, $2, ...` placeholders, on the read pool of either
/// backend and fetches every row as `$row` (a tuple or a `FromRow` type).
#[macro_export]
macro_rules! fetch_all {
    ($db:expr, $row:ty, $sql:expr $(, $bind:expr)* $(,)?) => {
        match $db {
            $crate::ReadDb::Sqlite { reader, .. } => {
                sqlx::query_as::<_, $row>($sql)$(.bind($bind))*.fetch_all(reader).await
            }
            $crate::ReadDb::Postgres(pool) => {
                sqlx::query_as::<_, $row>($sql)$(.bind($bind))*.fetch_all(pool).await
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;
    use sqlx::sqlite::SqlitePoolOptions;

    #[tokio::test]
    async fn a_connection_left_inside_a_transaction_is_replaced() {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .expect("an in-memory database");
        // What an aborted task can leave behind: a transaction nobody will roll back.
        {
            let mut conn = pool.acquire().await.expect("the connection");
            std::mem::forget(conn.begin().await.expect("begin"));
        }
        assert!(matches!(
            pool.begin_with("BEGIN IMMEDIATE").await,
            Err(sqlx::Error::InvalidSavePointStatement)
        ));
        let tx = begin_immediate(&pool).await.expect("a clean connection");
        tx.commit().await.expect("commit");
    }
}
