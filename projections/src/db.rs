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

/// A write transaction on the read-model database.
#[derive(Debug)]
pub enum ReadTx<'c> {
    Sqlite(Transaction<'c, Sqlite>),
    Postgres(Transaction<'c, Postgres>),
}

impl ReadDb {
    pub async fn begin(&self) -> Result<ReadTx<'static>, sqlx::Error> {
        Ok(match self {
            Self::Sqlite { writer, .. } => {
                ReadTx::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await?)
            }
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
