//! The UsageFigures port: how much of a period allowance a tenant has used. The metering area
//! implements it over its usage read model; billing asks it whenever an action consumes an
//! allowance (`commands::billing::check_allowance`: backup runs consume bandwidth, ingestion
//! consumes data points).

use crate::ids::TenantId;
use crate::plan::LimitKey;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, thiserror::Error)]
#[error("usage figures could not be read: {0}")]
pub struct UsageError(pub String);

#[async_trait]
pub trait UsageFigures: Send + Sync + std::fmt::Debug + 'static {
    /// What `tenant` used of the allowance `key` in `[from, to)`.
    async fn used(
        &self,
        tenant: TenantId,
        key: LimitKey,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
    ) -> Result<u64, UsageError>;

    /// [`Self::used`] counting at least every usage event up to log position `through` (an
    /// implementation over a read model waits until it has caught up that far).
    async fn used_through(
        &self,
        tenant: TenantId,
        key: LimitKey,
        period: (DateTime<Utc>, DateTime<Utc>),
        through: crate::event::Position,
    ) -> Result<u64, UsageError> {
        let _ = through;
        self.used(tenant, key, period).await
    }
}
