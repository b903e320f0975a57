//! Who belongs to each tenant: members with their roles, pending invites and API keys, from
//! the `access-<tenant>` streams. Personal data stays sealed here (the API opens it), so a
//! forgotten subject's e-mail is unreadable in the read model too.
//!
//! Every query takes [`TenantScope`]s (see [`crate::scope`]); the caller's own memberships
//! ([`TenantScope::memberships`]) are read here. No query takes a bare tenant id.

pub use crate::scope::TenantScope;
use crate::scope::fetch_for;
use crate::{ProjectionError, Projector, ReadDb, ReadTx, decode, exec, fetch_all};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::access::{AccessEvent, TenantAccess};
use domain::aggregate::Aggregate;
use domain::event::{Reads, RecordedEvent};
use domain::ids::{TenantId, UserId};
use domain::personal_data::Sealed;
use sqlx::FromRow;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, Default)]
pub struct TenantAccessDirectory;

impl TenantScope {
    /// The tenants `user` is a member of, ordered by tenant id, after `after`, at most `limit`.
    pub async fn memberships(
        db: &ReadDb,
        user: UserId,
        after: Option<TenantId>,
        limit: u32,
    ) -> Result<Vec<TenantScope>, sqlx::Error> {
        let sql = "SELECT tenant_id, role FROM tenant_members WHERE user_id = $1 AND tenant_id > $2 \
                   ORDER BY tenant_id LIMIT $3";
        let after = after.map_or(Uuid::nil(), |t| t.as_uuid());
        let rows = fetch_all!(
            db,
            (Uuid, String),
            sql,
            user.as_uuid(),
            after,
            i64::from(limit)
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|(tenant, role)| {
                Some(TenantScope::of_membership(
                    TenantId::from_uuid(tenant),
                    role.parse().ok()?,
                ))
            })
            .collect())
    }

    /// How many tenants that are not closed (or deleted) `user` owns: what the tenants-per-
    /// user quota counts. Reads the directory beside the access read model.
    pub async fn owned_open(db: &ReadDb, user: UserId) -> Result<u64, sqlx::Error> {
        let sql = "SELECT count(*) FROM tenant_members m JOIN tenant_directory d \
                   ON d.tenant_id = m.tenant_id \
                   WHERE m.user_id = $1 AND m.role = $2 AND d.status NOT IN ($3, $4)";
        let rows = fetch_all!(
            db,
            (i64,),
            sql,
            user.as_uuid(),
            domain::access::Role::Owner.as_str(),
            domain::tenant::TenantStatus::Closed.as_str(),
            crate::tenant_directory::DELETED
        )?;
        Ok(rows
            .first()
            .map_or(0, |(n,)| u64::try_from(*n).unwrap_or(0)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct MemberView {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub role: String,
    /// Sealed under the user's subject key.
    pub email: String,
    pub joined_at: DateTime<Utc>,
}

impl MemberView {
    pub fn sealed_email(&self) -> Sealed {
        Sealed::from_sealed_text(self.email.clone())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct InviteView {
    pub tenant_id: Uuid,
    pub invite_id: Uuid,
    pub role: String,
    /// Sealed under the invite's subject key.
    pub email: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl InviteView {
    pub fn sealed_email(&self) -> Sealed {
        Sealed::from_sealed_text(self.email.clone())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ApiKeyView {
    pub tenant_id: Uuid,
    pub key_id: Uuid,
    pub name: String,
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TenantAccessDirectory {
    /// The projector's name.
    pub const NAME: &'static str = "tenant_access";

    /// The members of every scoped tenant (one query), ordered by tenant, join time, user.
    pub async fn members(
        db: &ReadDb,
        scopes: &[TenantScope],
    ) -> Result<Vec<MemberView>, sqlx::Error> {
        fetch_for(
            db,
            "SELECT tenant_id, user_id, role, email, joined_at FROM tenant_members \
             WHERE tenant_id IN ({tenants}) ORDER BY tenant_id, joined_at, user_id",
            scopes,
        )
        .await
    }

    /// Pending invites (expired ones included; the API shows the expiry).
    pub async fn invites(
        db: &ReadDb,
        scopes: &[TenantScope],
    ) -> Result<Vec<InviteView>, sqlx::Error> {
        fetch_for(
            db,
            "SELECT tenant_id, invite_id, role, email, expires_at, created_at FROM tenant_invites \
             WHERE tenant_id IN ({tenants}) ORDER BY tenant_id, created_at, invite_id",
            scopes,
        )
        .await
    }

    /// API keys, revoked ones included (when each was last used is not a read model: see
    /// `domain::key_usage`).
    pub async fn api_keys(
        db: &ReadDb,
        scopes: &[TenantScope],
    ) -> Result<Vec<ApiKeyView>, sqlx::Error> {
        fetch_for(
            db,
            "SELECT tenant_id, key_id, name, scope, created_at, revoked_at FROM tenant_api_keys \
             WHERE tenant_id IN ({tenants}) ORDER BY tenant_id, created_at, key_id",
            scopes,
        )
        .await
    }
}

fn tenant_of(event: &RecordedEvent) -> Result<Uuid, ProjectionError> {
    event
        .stream
        .aggregate_id(TenantAccess::CATEGORY)
        .ok_or_else(|| ProjectionError::Event {
            position: event.position.0,
            reason: format!("stream {} is not an access stream", event.stream),
        })
}

#[async_trait]
impl Projector for TenantAccessDirectory {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    /// 2: a closed tenant's members, invites and keys are removed.
    fn version(&self) -> u32 {
        2
    }

    fn reads(&self) -> Reads {
        Reads::categories(&[TenantAccess::CATEGORY, domain::tenant::Tenant::CATEGORY])
    }

    /// Access changes, and a closure (which removes the tenant's access); not the tenant's
    /// other changes (a rename changes no member).
    fn announces(&self, event: &RecordedEvent) -> bool {
        event.stream.category() == TenantAccess::CATEGORY
            || matches!(
                decode::<domain::tenant::Tenant>(event),
                Ok(domain::tenant::TenantEvent::TenantClosed { .. })
            )
    }

    fn tables(&self) -> &'static [&'static str] {
        &["tenant_members", "tenant_invites", "tenant_api_keys"]
    }

    async fn create_tables(
        &self,
        tx: &mut ReadTx<'_>,
        suffix: &str,
    ) -> Result<(), ProjectionError> {
        let (id, time) = tx.id_and_time_types();
        for ddl in [
            format!(
                "CREATE TABLE tenant_members{suffix} (tenant_id {id} NOT NULL, user_id {id} NOT NULL, \
                 role TEXT NOT NULL, email TEXT NOT NULL, joined_at {time} NOT NULL, \
                 PRIMARY KEY (tenant_id, user_id))"
            ),
            format!(
                "CREATE INDEX tenant_members{suffix}_user ON tenant_members{suffix} (user_id, tenant_id)"
            ),
            format!(
                "CREATE TABLE tenant_invites{suffix} (invite_id {id} PRIMARY KEY, tenant_id {id} NOT NULL, \
                 role TEXT NOT NULL, email TEXT NOT NULL, expires_at {time} NOT NULL, created_at {time} NOT NULL)"
            ),
            format!(
                "CREATE INDEX tenant_invites{suffix}_tenant ON tenant_invites{suffix} (tenant_id)"
            ),
            format!(
                "CREATE TABLE tenant_api_keys{suffix} (key_id {id} PRIMARY KEY, tenant_id {id} NOT NULL, \
                 name TEXT NOT NULL, scope TEXT NOT NULL, created_at {time} NOT NULL, revoked_at {time})"
            ),
            format!(
                "CREATE INDEX tenant_api_keys{suffix}_tenant ON tenant_api_keys{suffix} (tenant_id)"
            ),
        ] {
            tx.execute_ddl(&ddl).await?;
        }
        Ok(())
    }

    async fn apply(
        &self,
        tx: &mut ReadTx<'_>,
        suffix: &str,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        for event in events {
            if event.stream.category() == domain::tenant::Tenant::CATEGORY {
                // A closed tenant keeps no access: its members, invites and keys go.
                if let domain::tenant::TenantEvent::TenantClosed { .. } =
                    decode::<domain::tenant::Tenant>(event)?
                    && let Some(tenant) =
                        event.stream.aggregate_id(domain::tenant::Tenant::CATEGORY)
                {
                    for table in ["tenant_members", "tenant_invites", "tenant_api_keys"] {
                        exec!(
                            tx,
                            &format!("DELETE FROM {table}{suffix} WHERE tenant_id = $1"),
                            tenant
                        )?;
                    }
                }
                continue;
            }
            let tenant = tenant_of(event)?;
            let decoded = decode::<TenantAccess>(event)?;
            apply_one(tx, suffix, tenant, decoded).await?;
        }
        Ok(())
    }
}

async fn apply_one(
    tx: &mut ReadTx<'_>,
    suffix: &str,
    tenant: Uuid,
    event: AccessEvent,
) -> Result<(), ProjectionError> {
    use AccessEvent as E;
    match event {
        E::MemberAdded {
            user_id,
            email,
            role,
            invite_id,
            at,
        } => {
            exec!(
                tx,
                &format!(
                    "INSERT INTO tenant_members{suffix} (tenant_id, user_id, role, email, joined_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, user_id) DO UPDATE SET \
                     role = excluded.role, email = excluded.email"
                ),
                tenant,
                user_id.as_uuid(),
                role.as_str(),
                email.as_str().to_owned(),
                at
            )?;
            if let Some(invite) = invite_id {
                exec!(
                    tx,
                    &format!("DELETE FROM tenant_invites{suffix} WHERE invite_id = $1"),
                    invite.as_uuid()
                )?;
            }
        }
        E::MemberInvited {
            invite_id,
            email,
            role,
            expires_at,
            at,
            ..
        } => {
            exec!(
                tx,
                &format!(
                    "INSERT INTO tenant_invites{suffix} (invite_id, tenant_id, role, email, expires_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (invite_id) DO NOTHING"
                ),
                invite_id.as_uuid(),
                tenant,
                role.as_str(),
                email.as_str().to_owned(),
                expires_at,
                at
            )?;
        }
        E::InviteRevoked { invite_id, .. } => {
            exec!(
                tx,
                &format!("DELETE FROM tenant_invites{suffix} WHERE invite_id = $1"),
                invite_id.as_uuid()
            )?;
        }
        E::MemberRoleChanged { user_id, role, .. } => {
            exec!(
                tx,
                &format!(
                    "UPDATE tenant_members{suffix} SET role = $1 WHERE tenant_id = $2 AND user_id = $3"
                ),
                role.as_str(),
                tenant,
                user_id.as_uuid()
            )?;
        }
        E::MemberRemoved { user_id, .. } => {
            exec!(
                tx,
                &format!(
                    "DELETE FROM tenant_members{suffix} WHERE tenant_id = $1 AND user_id = $2"
                ),
                tenant,
                user_id.as_uuid()
            )?;
        }
        E::ApiKeyCreated {
            key_id,
            name,
            scope,
            at,
            ..
        } => {
            exec!(
                tx,
                &format!(
                    "INSERT INTO tenant_api_keys{suffix} (key_id, tenant_id, name, scope, created_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_id) DO NOTHING"
                ),
                key_id.as_uuid(),
                tenant,
                name,
                scope.as_str(),
                at
            )?;
        }
        E::ApiKeyRevoked { key_id, at, .. } => {
            exec!(
                tx,
                &format!(
                    "UPDATE tenant_api_keys{suffix} SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL"
                ),
                at,
                key_id.as_uuid()
            )?;
        }
        // The outbox's business (commands::mail).
        E::InviteMailQueued { .. } => {}
    }
    Ok(())
}
