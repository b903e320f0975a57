//! Tenant scope: the read side's half of isolation. Every tenant-scoped read-model query takes
//! [`TenantScope`]s, and a scope is made only from an authorization decision: a permission
//! check on the tenant's access state ([`domain::access::Authorized`]), or the caller's own
//! membership rows ([`TenantScope::memberships`]). [`fetch_for`] runs a query over the scoped
//! tenants on either backend.

use crate::ReadDb;
use domain::access::{Authorized, Role};
use domain::ids::TenantId;
use sqlx::{FromRow, postgres::PgRow, sqlite::SqliteRow};

/// Permission to read one tenant's data. See the module documentation for who makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TenantScope {
    tenant: TenantId,
    role: Role,
}

impl From<&Authorized> for TenantScope {
    fn from(grant: &Authorized) -> Self {
        Self {
            tenant: grant.tenant(),
            role: grant.role(),
        }
    }
}

impl TenantScope {
    /// From a membership row of the caller's (the access read model's own query).
    pub(crate) fn of_membership(tenant: TenantId, role: Role) -> Self {
        Self { tenant, role }
    }

    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The caller's role in the tenant.
    pub fn role(&self) -> Role {
        self.role
    }
}

/// `$first, $first+1, ...` for `n` binds.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `sql`, whose `{tenants}` stands for the scoped tenants' ids, on either backend.
pub(crate) async fn fetch_for<R>(
    db: &ReadDb,
    sql: &str,
    scopes: &[TenantScope],
) -> Result<Vec<R>, sqlx::Error>
where
    R: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    if scopes.is_empty() {
        return Ok(vec![]);
    }
    let sql = sql.replace("{tenants}", &placeholders(1, scopes.len()));
    match db {
        ReadDb::Sqlite { reader, .. } => {
            let mut query = sqlx::query_as(&sql);
            for scope in scopes {
                query = query.bind(scope.tenant.as_uuid());
            }
            query.fetch_all(reader).await
        }
        ReadDb::Postgres(pool) => {
            let mut query = sqlx::query_as(&sql);
            for scope in scopes {
                query = query.bind(scope.tenant.as_uuid());
            }
            query.fetch_all(pool).await
        }
    }
}
